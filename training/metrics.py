"""Evaluation metrics: aligned vertex error, landmark NME, masked PSNR/SSIM, NoW and MICC.

Geometry is in metres (docs/CONVENTIONS.md); the errors these functions report are in
millimetres where the name says ``_mm``. The image metrics take ``(B, 3, H, W)`` images in
[0, 1] and a ``(B, 1, H, W)`` mask.

The two 3D benchmark protocols are implemented for users who hold those data sets:

- NoW (Sanyal et al. 2019): the predicted mesh is aligned to the scan with a similarity
  transform estimated on 7 landmarks (eye corners, nose tip, mouth corners), refined by a
  rigid scan-to-mesh ICP, then the distance of every scan point to the predicted *surface*
  is reported (median / mean / std, mm).
- MICC Florence (as Deep3DFaceRecon / Genova et al.): the ground-truth scan is cropped to
  a 95 mm sphere around the nose tip, the prediction is aligned to the crop by ICP with
  isotropic scale, and the point-to-plane RMSE (ground-truth points to the predicted
  surface's tangent planes) is reported in mm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from msma_engine.errors import ShapeError

__all__ = [
    "similarity_transform",
    "procrustes_align",
    "aligned_vertex_error_mm",
    "landmark_nme",
    "masked_psnr",
    "masked_ssim",
    "closest_point_on_triangles",
    "point_to_mesh_distance",
    "vertex_normals_np",
    "NowResult",
    "now_scan_to_mesh",
    "icp_similarity",
    "micc_point_to_plane_rmse",
]

logger = logging.getLogger(__name__)


# --- rigid / similarity alignment -------------------------------------------------------
def similarity_transform(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None,
                         with_scale: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares ``dst ≈ s · R @ src + t`` (Umeyama 1991), batched.

    Args:
        src, dst: ``(B, N, 3)`` corresponding points.
        weights: ``(N,)`` or ``(B, N)`` non-negative point weights; None = uniform.
        with_scale: estimate the isotropic scale ``s`` (otherwise ``s = 1``).

    Returns:
        ``(s (B,), R (B, 3, 3), t (B, 3))``, proper rotations (det +1).
    """
    if src.ndim != 3 or src.shape != dst.shape or src.shape[-1] != 3:
        raise ShapeError(f"src and dst must both be (B, N, 3), got {tuple(src.shape)} and {tuple(dst.shape)}")
    bsz, n = src.shape[:2]
    w = src.new_ones(bsz, n) if weights is None else weights.to(src).expand(bsz, n)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * src).sum(1)
    mu_d = (w[..., None] * dst).sum(1)
    xs, xd = src - mu_s[:, None], dst - mu_d[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", w, xd, xs)
    u, sig, vh = torch.linalg.svd(cov)
    d = torch.ones_like(sig)
    d[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    d[:, 2][d[:, 2] == 0] = 1.0
    rot = u @ torch.diag_embed(d) @ vh
    if with_scale:
        var_s = (w * (xs ** 2).sum(-1)).sum(1).clamp_min(1e-24)
        scale = (sig * d).sum(1) / var_s
    else:
        scale = torch.ones(bsz, dtype=src.dtype, device=src.device)
    t = mu_d - scale[:, None] * torch.einsum("bij,bj->bi", rot, mu_s)
    return scale, rot, t


def procrustes_align(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None,
                     with_scale: bool = False) -> torch.Tensor:
    """``src`` ``(B, N, 3)`` moved onto ``dst`` by :func:`similarity_transform`."""
    s, r, t = similarity_transform(src, dst, weights, with_scale)
    return s[:, None, None] * src @ r.transpose(1, 2) + t[:, None]


def aligned_vertex_error_mm(pred: torch.Tensor, gt: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-vertex distance (mm) after rigid Procrustes alignment on ``region``.

    Args:
        pred, gt: ``(B, V, 3)`` vertices in metres with the same topology.
        region: ``(V,)`` bool mask of the vertices to align and measure (the face region);
            None = all vertices.

    Returns:
        ``(B,)`` mean Euclidean error in millimetres.
    """
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ShapeError(f"pred and gt must both be (B, V, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if region is not None:
        if region.shape != (pred.shape[1],):
            raise ShapeError(f"region must be ({pred.shape[1]},), got {tuple(region.shape)}")
        pred, gt = pred[:, region], gt[:, region]
    p, g = pred.double(), gt.double()
    aligned = procrustes_align(p, g)
    return ((aligned - g).norm(dim=-1).mean(dim=1) * 1000.0).to(pred.dtype)


# --- 2D landmarks ---------------------------------------------------------------------------
def landmark_nme(pred: torch.Tensor, gt: torch.Tensor, norm: str = "bbox") -> torch.Tensor:
    """Normalised mean error of 2D landmarks.

    Args:
        pred, gt: ``(B, 68, 2)`` pixels.
        norm: ``"bbox"`` = ``sqrt(w·h)`` of the ground-truth landmarks' bounding box (AFLW2000-3D
            protocol; stays finite in profile views) or ``"interocular"`` = distance between
            the outer eye corners 36 and 45 (300-W protocol).

    Returns:
        ``(B,)`` mean point error divided by the normaliser (a fraction, not percent).
    """
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ShapeError(f"pred and gt must both be (B, N, 2), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    err = (pred - gt).norm(dim=-1).mean(dim=1)
    if norm == "bbox":
        span = gt.amax(dim=1) - gt.amin(dim=1)
        denom = (span[:, 0] * span[:, 1]).clamp_min(1e-12).sqrt()
    elif norm == "interocular":
        if gt.shape[1] != 68:
            raise ShapeError(f"interocular normalisation needs 68 landmarks, got {gt.shape[1]}")
        denom = (gt[:, 36] - gt[:, 45]).norm(dim=-1).clamp_min(1e-12)
    else:
        raise ValueError(f"norm must be 'bbox' or 'interocular', got {norm!r}")
    return err / denom


# --- image metrics ------------------------------------------------------------------------
def _check_images(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ShapeError(f"images must both be (B, C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    if mask.shape != (a.shape[0], 1, *a.shape[2:]):
        raise ShapeError(f"mask must be ({a.shape[0]}, 1, {a.shape[2]}, {a.shape[3]}), got {tuple(mask.shape)}")


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """PSNR (dB) over the masked pixels of each image.

    Args:
        a, b: ``(B, C, H, W)`` in [0, max_val].
        mask: ``(B, 1, H, W)`` weights in [0, 1].

    Returns:
        ``(B,)``; ``inf`` for identical images, ``nan`` for an empty mask.
    """
    _check_images(a, b, mask)
    m = mask.to(a.dtype)
    count = m.sum(dim=(1, 2, 3)) * a.shape[1]
    mse = (((a - b) ** 2) * m).sum(dim=(1, 2, 3)) / count
    return 10.0 * torch.log10(max_val ** 2 / mse)


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def masked_ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, max_val: float = 1.0,
                window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, Gaussian 11×11, σ 1.5) over the masked pixels.

    Args:
        a, b: ``(B, C, H, W)`` in [0, max_val].
        mask: ``(B, 1, H, W)`` weights in [0, 1]; the SSIM map is averaged with these weights.

    Returns:
        ``(B,)`` in [−1, 1]; 1 for identical images.
    """
    _check_images(a, b, mask)
    c = a.shape[1]
    win = _gaussian_window(window, sigma, a.dtype, a.device).expand(c, 1, window, window)
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), win, groups=c)

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    m = mask.to(a.dtype)
    return (ssim.mean(dim=1, keepdim=True) * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))


# --- point-to-surface geometry (numpy) ------------------------------------------------------
def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points on triangles ``(N, 3)`` ×3 to points ``p`` ``(N, 3)`` (Ericson, RTCD 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        out = a + ab * v[:, None] + ac * w[:, None]  # interior
        # Edge regions.
        t_ab = np.clip(np.where(d1 - d3 != 0, d1 / (d1 - d3), 0.0), 0, 1)
        t_ac = np.clip(np.where(d2 - d6 != 0, d2 / (d2 - d6), 0.0), 0, 1)
        t_bc = np.clip(np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) / ((d4 - d3) + (d5 - d6)), 0.0), 0, 1)
    on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    out = np.where(on_bc[:, None], b + (c - b) * t_bc[:, None], out)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out = np.where(on_ac[:, None], a + ac * t_ac[:, None], out)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out = np.where(on_ab[:, None], a + ab * t_ab[:, None], out)
    # Vertex regions.
    out = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)
    return out


def point_to_mesh_distance(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
                           candidates: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to a triangle mesh surface.

    The exact point-triangle distance is taken over the ``candidates`` triangles whose
    centroids are nearest to the point (exact for reasonably regular meshes; raise
    ``candidates`` for meshes with long thin triangles).

    Args:
        points: ``(N, 3)``.
        vertices: ``(V, 3)``.
        triangles: ``(F, 3)`` int.
        candidates: triangles examined per point.

    Returns:
        ``(distances (N,), closest points (N, 3))`` in the input units.
    """
    points = np.asarray(points, np.float64)
    vertices = np.asarray(vertices, np.float64)
    triangles = np.asarray(triangles, np.int64)
    if points.ndim != 2 or points.shape[1] != 3 or vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ShapeError(f"points and vertices must be (N, 3), got {points.shape} and {vertices.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise ShapeError(f"triangles must be a non-empty (F, 3) array, got {triangles.shape}")
    k = min(candidates, len(triangles))
    tri_v = vertices[triangles]
    _, idx = cKDTree(tri_v.mean(axis=1)).query(points, k=k)
    idx = idx.reshape(len(points), k)
    best_d = np.full(len(points), np.inf)
    best_p = np.zeros_like(points)
    for j in range(k):
        t = tri_v[idx[:, j]]
        q = closest_point_on_triangles(points, t[:, 0], t[:, 1], t[:, 2])
        d = np.linalg.norm(points - q, axis=1)
        better = d < best_d
        best_d[better], best_p[better] = d[better], q[better]
    return best_d, best_p


def vertex_normals_np(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of a CCW mesh (numpy)."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for corner in range(3):
        np.add.at(n, t[:, corner], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _apply(s: float, r: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return s * x @ r.T + t


def _similarity_np(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> tuple[float, np.ndarray, np.ndarray]:
    s, r, t = similarity_transform(torch.as_tensor(src[None], dtype=torch.float64),
                                   torch.as_tensor(dst[None], dtype=torch.float64), with_scale=with_scale)
    return float(s[0]), r[0].numpy(), t[0].numpy()


# --- NoW ---------------------------------------------------------------------------------
@dataclass
class NowResult:
    """Scan-to-mesh distances of the NoW protocol, millimetres.

    Attributes:
        median, mean, std: statistics of ``distances``.
        distances: ``(N,)`` per scan point.
        aligned_vertices: ``(V, 3)`` the prediction after alignment, in the scan's units.
    """

    median: float
    mean: float
    std: float
    distances: np.ndarray
    aligned_vertices: np.ndarray


def now_scan_to_mesh(pred_vertices: np.ndarray, pred_triangles: np.ndarray, pred_landmarks7: np.ndarray,
                     scan_points: np.ndarray, scan_landmarks7: np.ndarray, refine_iters: int = 10,
                     units_to_mm: float = 1000.0) -> NowResult:
    """NoW challenge error of one prediction.

    Args:
        pred_vertices: ``(V, 3)`` predicted mesh (metres).
        pred_triangles: ``(F, 3)``.
        pred_landmarks7: ``(7, 3)`` the prediction's 7 NoW landmarks (outer/inner eye corners,
            nose tip, mouth corners), in the order of ``scan_landmarks7``.
        scan_points: ``(N, 3)`` the (already face-cropped) ground-truth scan points (metres).
        scan_landmarks7: ``(7, 3)``.
        refine_iters: ICP refinements (rotation, translation and scale, as NoW's
            ``rigid_scan_2_mesh_alignment`` optimises all three) of the scan-to-mesh
            distance after the landmark alignment (0 = landmark alignment only).
        units_to_mm: factor from the input units to millimetres.

    Returns:
        :class:`NowResult`.
    """
    for name, arr, shape in (("pred_landmarks7", pred_landmarks7, (7, 3)),
                             ("scan_landmarks7", scan_landmarks7, (7, 3))):
        if np.shape(arr) != shape:
            raise ShapeError(f"{name} must be {shape}, got {np.shape(arr)}")
    verts = np.asarray(pred_vertices, np.float64)
    scan = np.asarray(scan_points, np.float64)
    s, r, t = _similarity_np(np.asarray(pred_landmarks7, np.float64), np.asarray(scan_landmarks7, np.float64), True)
    verts = _apply(s, r, t, verts)
    for _ in range(refine_iters):
        # Similarity update moving the mesh's closest surface points onto the scan points.
        _, closest = point_to_mesh_distance(scan, verts, pred_triangles)
        s_i, r_i, t_i = _similarity_np(closest, scan, with_scale=True)
        verts = _apply(s_i, r_i, t_i, verts)
    dist, _ = point_to_mesh_distance(scan, verts, pred_triangles)
    dist_mm = dist * units_to_mm
    return NowResult(float(np.median(dist_mm)), float(dist_mm.mean()), float(dist_mm.std()), dist_mm, verts)


# --- MICC -----------------------------------------------------------------------------
def icp_similarity(src: np.ndarray, dst: np.ndarray, iters: int = 50, with_scale: bool = True,
                   tol: float = 1e-9, src_triangles: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """ICP with optional isotropic scale moving ``src`` onto ``dst``.

    Correspondences go from every ``dst`` point to its nearest point of the moved ``src``
    (its nearest vertex, or with ``src_triangles`` the nearest point on its surface, which
    avoids the bias of sparse vertices), so ``src`` may cover more than ``dst`` (a whole
    predicted head against a cropped scan).

    Args:
        src: ``(N, 3)`` moving points (mesh vertices when ``src_triangles`` is given).
        dst: ``(M, 3)`` fixed points.
        src_triangles: ``(F, 3)`` triangles of ``src``.
        iters: maximum iterations.
        with_scale: estimate an isotropic scale.
        tol: stop when the mean squared correspondence distance changes by less than this
            fraction.

    Returns:
        ``(s, R (3, 3), t (3,))`` with ``dst ≈ s · R @ src + t``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    s, r, t = 1.0, np.eye(3), np.zeros(3)
    prev = np.inf
    for _ in range(iters):
        moved = _apply(s, r, t, src)
        if src_triangles is None:
            d, idx = cKDTree(moved).query(dst)
            matched = src[idx]
        else:
            d, closest = point_to_mesh_distance(dst, moved, src_triangles)
            matched = ((closest - t) @ r) / s  # back to src coordinates
        err = float((d ** 2).mean())
        if abs(prev - err) <= tol * err:
            break
        prev = err
        s, r, t = _similarity_np(matched, dst, with_scale)
    return s, r, t


def micc_point_to_plane_rmse(pred_vertices: np.ndarray, pred_triangles: np.ndarray, pred_nose_tip: np.ndarray,
                             gt_points: np.ndarray, gt_nose_tip: np.ndarray, crop_radius: float = 0.095,
                             icp_iters: int = 50, units_to_mm: float = 1000.0) -> float:
    """MICC Florence error of one prediction: point-to-plane RMSE in mm.

    The ground-truth scan is cropped to ``crop_radius`` around its nose tip; the
    prediction (translated so the nose tips coincide) is moved onto the crop by ICP with
    isotropic scale (:func:`icp_similarity`); then each cropped ground-truth point's
    distance to the tangent plane of its nearest predicted vertex is measured.

    Args:
        pred_vertices: ``(V, 3)`` metres.
        pred_triangles: ``(F, 3)`` (for the normals).
        pred_nose_tip, gt_nose_tip: ``(3,)``.
        gt_points: ``(N, 3)`` ground-truth scan points, metres.
        crop_radius: crop sphere radius, 95 mm.
        icp_iters: ICP iterations.
        units_to_mm: factor from the input units to millimetres.

    Returns:
        RMSE in millimetres.
    """
    verts = np.asarray(pred_vertices, np.float64)
    gt = np.asarray(gt_points, np.float64)
    p_tip, g_tip = np.asarray(pred_nose_tip, np.float64).reshape(3), np.asarray(gt_nose_tip, np.float64).reshape(3)
    normals = vertex_normals_np(verts, pred_triangles)
    keep = np.linalg.norm(gt - g_tip, axis=1) <= crop_radius
    if keep.sum() < 3:
        raise ShapeError(f"the {crop_radius} crop around the nose tip keeps {keep.sum()} ground-truth points; "
                         "need ≥ 3 (check units: metres)")
    g = gt[keep]
    src = verts - p_tip + g_tip
    s, r, t = icp_similarity(src, g, iters=icp_iters, with_scale=True, src_triangles=pred_triangles)
    moved = _apply(s, r, t, src)
    moved_n = normals @ r.T
    _, idx = cKDTree(moved).query(g)
    d = ((g - moved[idx]) * moved_n[idx]).sum(-1)
    return float(math.sqrt((d ** 2).mean()) * units_to_mm)
