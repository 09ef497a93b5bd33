"""Calibrate the default head's 68 landmark vertices to the project's landmark detector.

The geometric picker (:mod:`.landmarks`) places points where anatomy says they are; the
detector (MediaPipe FaceMesh mapped to iBUG-68) has its own conventions (e.g. its nostril
row sits on the alar base, its brow ends lie further in). This tool renders the model
itself — random identities, near-neutral expressions, yaw ±25°, pitch ±15°, textured and
SH-lit over a noisy grey background — runs the detector on each render and, per
landmark, picks the vertex whose projection is on average nearest the detected point.
No photos are used.

Usage::

    python -m tools.default_head.calibrate_landmarks [--n 60] [--seed 7] \\
        [-o tools/default_head/landmarks_calibrated.json]

It writes :data:`CALIBRATED_PATH` (68 base-mesh vertex indices and the recipe). The build
(:func:`tools.default_head.build_default_head`) reads that table; rebuild the model
afterwards with ``python -m tools.build_default_head``.

Selection rules: candidates lie within ``radius_m`` of the current landmark vertex on the
mean head and are visible in at least half the renders (jaw points excepted: they sit on
the silhouette); left/right landmark pairs are chosen together as mirror images (the mesh
is symmetric) and midline landmarks stay on the midline; jaw points 0-16 are scored only
on renders with |yaw| < ``jaw_max_yaw_deg`` because the far-side contour slides over the
surface as the head turns.
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
import torch

from msma_engine.camera import PerspectiveCamera
from msma_engine.errors import MSMAError, NoFaceError
from msma_engine.face_model import DEFAULT_MODEL_PATH, FaceModel, load_face_model
from msma_engine.model_file import load_face_model_data
from msma_engine.geometry import euler_to_rotation, vertex_normals
from msma_engine.render import RenderContext
from msma_engine.render.interpolate import interpolate
from msma_engine.render.rasterize import rasterize
from msma_engine.render.texture import texture
from msma_engine.shading import sh_irradiance

from tools.default_head.landmarks import CALIBRATED_PATH

REPO = Path(__file__).resolve().parents[2]

__all__ = ["CalibrationConfig", "Renders", "render_and_detect", "choose_vertices", "ibug_mirror", "main"]

log = logging.getLogger(__name__)

# iBUG-68 left/right partner of each landmark (itself on the midline).
_PAIRS = [(0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
          (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34),
          (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
          (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]


def ibug_mirror() -> np.ndarray:
    """(68,) index of each iBUG landmark's mirror partner (itself on the midline)."""
    out = np.arange(68)
    for a, b in _PAIRS:
        out[a], out[b] = b, a
    return out


@dataclass(frozen=True)
class CalibrationConfig:
    """Every number that changes the calibration (stored in the JSON recipe).

    Attributes:
        n_renders: random renders.
        seed: random seed for identities, poses, lighting and background.
        scale: camera scale over the 224 crop (3 → 672² renders).
        distance_m: extra distance of the head from the camera, so the face has a margin
            around it (the detectors miss faces that fill the frame).
        max_yaw_deg, max_pitch_deg, max_roll_deg: uniform pose ranges.
        exp_max: expression weights uniform in [0, exp_max] (near-neutral).
        radius_m: candidate vertices lie within this distance of the current landmark vertex.
        jaw_max_yaw_deg: jaw points are scored only on renders turned less than this.
        clip_iod: per-render errors are clipped at this (fraction of IOD) so that a few
            failed detections do not steer the choice.
    """

    n_renders: int = 60
    seed: int = 7
    scale: float = 3.0
    distance_m: float = 0.5
    max_yaw_deg: float = 25.0
    max_pitch_deg: float = 15.0
    max_roll_deg: float = 5.0
    exp_max: float = 0.1
    radius_m: float = 0.03
    jaw_max_yaw_deg: float = 10.0
    clip_iod: float = 0.3


@dataclass
class Renders:
    """What the calibration needs from the renders (R = renders that gave a face).

    Attributes:
        vertices_2d: (R, V, 2) projected vertices, pixels.
        depth_ok: (R, V) bool, vertex not hidden by nearer surface.
        detected: (R, 68, 2) detector landmarks, pixels.
        surface: (R, 68, 3) mean-shape point under each detected landmark (NaN on background).
        yaw_deg: (R,) head yaw.
        n_tried: renders made (some may have given no face).
    """

    vertices_2d: np.ndarray
    depth_ok: np.ndarray
    detected: np.ndarray
    surface: np.ndarray
    yaw_deg: np.ndarray
    n_tried: int


def _render(model: FaceModel, cam: PerspectiveCamera, ctx: RenderContext, rng: np.random.Generator,
            cfg: CalibrationConfig):
    """One random textured, lit render: (H, W, 3) uint8 image, fragments, posed vertices, yaw."""
    lay = model.layout
    c = lay.split(lay.zeros(1))
    c.id[:] = torch.as_tensor(rng.standard_normal(lay.n_id), dtype=torch.float32)
    # Half-width skin-tone spread: the far tails (near-black, saturated red) defeat the detector.
    c.tex[:] = torch.as_tensor(0.5 * rng.standard_normal(lay.n_tex), dtype=torch.float32)
    c.exp[:] = torch.as_tensor(rng.uniform(0, cfg.exp_max, lay.n_exp), dtype=torch.float32)
    ang = np.deg2rad([rng.uniform(-cfg.max_pitch_deg, cfg.max_pitch_deg),
                      rng.uniform(-cfg.max_yaw_deg, cfg.max_yaw_deg),
                      rng.uniform(-cfg.max_roll_deg, cfg.max_roll_deg)])
    gamma = torch.zeros(1, 27)
    lx, ly, lz = rng.normal(0, 0.08, 3) + np.array([0.0, 0.1, 0.15])  # mostly from the front, above
    for ch in range(3):
        # SH bands 1-3 are (-y, z, -x) (msma_engine.shading.sh_basis).
        gamma[0, ch * 9 + 1:ch * 9 + 4] = torch.tensor([-ly, lz, -lx], dtype=torch.float32)
    gamma[0, [0, 9, 18]] = float(rng.uniform(-0.2, 0.2))
    with torch.no_grad():
        rot = euler_to_rotation(torch.as_tensor(ang[None], dtype=torch.float32))
        verts = model.shape(c.id, c.exp) @ rot.transpose(1, 2)
        verts = verts - torch.tensor([0.0, 0.0, cfg.distance_m])
        frags = rasterize(ctx, cam.world_to_clip(verts), model.triangles, cam.image_size)
        uv = interpolate(model.uv_coords, frags, model.uv_triangles)
        alb = texture(ctx, model.albedo(c.tex), uv, boundary="clamp")
        irr = interpolate(sh_irradiance(vertex_normals(verts, model.triangles), gamma)[0], frags, model.triangles)
        img = (alb * irr)[0].numpy()
    h, w = cam.image_size
    bg = np.clip(rng.uniform(0.35, 0.6) + rng.normal(0, 0.03, (h, w, 1)), 0, 1)
    mask = frags.mask[0].numpy()[..., None]
    rgb = np.where(mask, np.clip(img, 0, 1), bg)
    return (rgb * 255 + 0.5).astype(np.uint8), frags, verts[0], float(np.rad2deg(ang[1]))


def render_and_detect(model: FaceModel, cfg: CalibrationConfig, save_dir: Path | None = None) -> Renders:
    """Render ``cfg.n_renders`` random heads and run the detector + 68-point landmarker.

    Args:
        model: the default head.
        cfg: the recipe.
        save_dir: if given, every render is written there as PNG (for inspection).

    Returns:
        :class:`Renders` of the renders that gave exactly one usable face.
    """
    from msma_engine.detect import detect_faces, landmarks68

    cam = PerspectiveCamera().scaled(cfg.scale)
    ctx = RenderContext("torch")
    rng = np.random.default_rng(cfg.seed)
    mean = model.mean_shape.numpy().astype(np.float64)
    tris = model.triangles.numpy()
    out = {k: [] for k in ("vertices_2d", "depth_ok", "detected", "surface", "yaw_deg")}
    for i in range(cfg.n_renders):
        img, frags, verts, yaw = _render(model, cam, ctx, rng, cfg)
        if save_dir is not None:
            from PIL import Image
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(save_dir / f"render_{i:03d}.png")
        try:
            faces = detect_faces(img)
            if not faces:
                raise NoFaceError("no face")
            face = max(faces, key=lambda f: f.area)
            pts = landmarks68(img, face).points.astype(np.float64)
        except NoFaceError as exc:
            log.warning("render %d/%d (yaw %+.1f°): no face (%s)", i + 1, cfg.n_renders, yaw, exc)
            continue
        px = cam.project(verts).numpy().astype(np.float64)
        h, w = cam.image_size
        # Visibility: the vertex's depth against the rendered depth at its pixel.
        col = np.clip(np.round(px[:, 0] - 0.5).astype(int), 0, w - 1)
        row = np.clip(np.round(px[:, 1] - 0.5).astype(int), 0, h - 1)
        # A vertex over the background (just off the silhouette) is not hidden by anything.
        zbuf = frags.depth[0].numpy()[row, col]
        depth_ok = ~frags.mask[0].numpy()[row, col] | (cam.depth(verts).numpy() <= zbuf + 2e-3)
        # The mean-shape surface point under each detected landmark (rasterized triangle + barycentrics).
        lc = np.clip(np.floor(pts[:, 0]).astype(int), 0, w - 1)
        lr = np.clip(np.floor(pts[:, 1]).astype(int), 0, h - 1)
        tid = frags.triangle_id[0].numpy()[lr, lc]
        bary = frags.barycentrics[0].numpy()[lr, lc].astype(np.float64)
        surf = np.einsum("kj,kjc->kc", bary, mean[tris[np.maximum(tid, 0)]])
        surf[tid < 0] = np.nan
        for k, v in zip(out, (px, depth_ok, pts, surf, yaw)):
            out[k].append(v)
        log.info("render %d/%d: yaw %+.1f°, face found", i + 1, cfg.n_renders, yaw)
    if not out["detected"]:
        raise NoFaceError(f"the detector found no face in any of {cfg.n_renders} renders")
    return Renders(**{k: np.asarray(v) for k, v in out.items()}, n_tried=cfg.n_renders)


def _iod(pts: np.ndarray) -> np.ndarray:
    """(R,) outer-eye-corner distance of (R, 68, 2) landmarks (as msma_engine.fit_losses)."""
    return np.linalg.norm(pts[:, 45] - pts[:, 36], axis=-1)


def reprojection_error(r: Renders, indices: np.ndarray, jaw_max_yaw_deg: float) -> np.ndarray:
    """(68,) mean distance (fraction of IOD) between detected points and ``indices``' projections.

    Jaw points 0-16 are averaged over the renders with |yaw| < ``jaw_max_yaw_deg`` only.
    """
    d = np.linalg.norm(r.vertices_2d[:, indices] - r.detected, axis=-1) / _iod(r.detected)[:, None]
    out = d.mean(axis=0)
    near = np.abs(r.yaw_deg) < jaw_max_yaw_deg
    out[:17] = d[near, :17].mean(axis=0)
    return out


def _mirror_vertices(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) nearest vertex to each vertex's mirror image (x → −x) and the distance."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    return idx, dist


def choose_vertices(r: Renders, mean_shape: np.ndarray, start: np.ndarray, cfg: CalibrationConfig) -> np.ndarray:
    """Per landmark, the vertex with the least mean reprojection error over the renders.

    Args:
        r: renders and detections.
        mean_shape: (V, 3) metres.
        start: (68,) current landmark vertices (search centres).
        cfg: the recipe (radius, jaw yaw limit).

    Returns:
        (68,) int64 vertex indices; mirror pairs are mirror vertices, midline points on the midline.
    """
    iod = _iod(r.detected)
    near = np.abs(r.yaw_deg) < cfg.jaw_max_yaw_deg
    mirror_v, mirror_d = _mirror_vertices(mean_shape)
    symmetric = mirror_d < 1e-4
    visible = r.depth_ok.mean(axis=0) >= 0.5
    partner = ibug_mirror()
    out = np.array(start, np.int64)

    def cost(k, cand):
        use = near if k < 17 else np.ones(len(iod), bool)
        d = np.linalg.norm(r.vertices_2d[use][:, cand] - r.detected[use, k][:, None], axis=-1)
        return np.minimum(d / iod[use, None], cfg.clip_iod).mean(axis=0)

    for k in range(68):
        j = partner[k]
        if j < k:
            continue
        dist = np.linalg.norm(mean_shape - mean_shape[start[k]], axis=1)
        ok = (dist < cfg.radius_m) & symmetric & (visible | (k < 17))
        if j == k:
            ok &= np.abs(mean_shape[:, 0]) < 1e-3
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            log.warning("landmark %d: no candidate vertex, keeping %d", k, start[k])
            continue
        c = cost(k, cand) if j == k else 0.5 * (cost(k, cand) + cost(j, mirror_v[cand]))
        best = cand[np.argmin(c)]
        out[k] = best
        out[j] = mirror_v[best]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=CalibrationConfig.n_renders, help="number of renders")
    parser.add_argument("--seed", type=int, default=CalibrationConfig.seed)
    parser.add_argument("--model", type=Path, default=None, help="model .npz (default: the shipped head)")
    parser.add_argument("--save-renders", type=Path, default=None, help="write the renders here as PNG")
    parser.add_argument("-o", "--output", type=Path, default=CALIBRATED_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = CalibrationConfig(n_renders=args.n, seed=args.seed)
    start_t = time.perf_counter()
    try:
        model = load_face_model(args.model)
        r = render_and_detect(model, cfg, args.save_renders)
    except MSMAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    source_index = load_face_model_data(args.model or DEFAULT_MODEL_PATH).source_index
    if source_index is None:
        print("error: the model has no source_index (base-mesh vertex of each vertex)", file=sys.stderr)
        return 1
    # Search from the landmarks stored in the model file.
    start = model.landmark_indices.numpy()
    mean = model.mean_shape.numpy().astype(np.float64)
    chosen = choose_vertices(r, mean, start, cfg)
    before = reprojection_error(r, start, cfg.jaw_max_yaw_deg)
    after = reprojection_error(r, chosen, cfg.jaw_max_yaw_deg)
    surf_off = np.nanmean(r.surface, axis=0) - mean[chosen]
    import mediapipe
    from msma_engine.detect import get_detector, get_landmarker

    table = {
        "about": "Default-head landmark vertices calibrated to the project's 68-point detector on "
                 "renders of the model itself (no photos); made by "
                 "python -m tools.default_head.calibrate_landmarks",
        "landmark_base_indices": [int(i) for i in source_index[chosen]],
        "recipe": asdict(cfg),
        "detector": {"faces": type(get_detector()).__name__, "landmarks": type(get_landmarker()).__name__,
                     "mediapipe": mediapipe.__version__},
        "renders_with_face": int(len(r.detected)),
        "renders_for_jaw": int((np.abs(r.yaw_deg) < cfg.jaw_max_yaw_deg).sum()),
        "mean_residual_iod": {"before": round(float(before.mean()), 5), "after": round(float(after.mean()), 5)},
        "residual_iod_per_landmark": {"before": [round(float(x), 4) for x in before],
                                      "after": [round(float(x), 4) for x in after]},
        "changed": int((chosen != start).sum()),
    }
    args.output.write_text(json.dumps(table, indent=1) + "\n")
    elapsed = time.perf_counter() - start_t
    worst = np.argsort(-before)[:8]
    print(f"{len(r.detected)}/{cfg.n_renders} renders gave a face ({table['renders_for_jaw']} for the jaw); "
          f"mean landmark residual {before.mean():.4f} -> {after.mean():.4f} IOD; "
          f"{table['changed']} vertices changed; worst before: "
          + ", ".join(f"{k}: {before[k]:.3f}->{after[k]:.3f}" for k in worst)
          + "; surface-point offset from chosen vertex (median) "
          + f"{np.nanmedian(np.linalg.norm(surf_off, axis=1)) * 1e3:.1f} mm"
          + f"; wrote {args.output} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
