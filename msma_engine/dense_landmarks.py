"""The 478 dense Face Mesh landmarks on a face model: regions, weights and surface points.

MediaPipe's Face Mesh (and the PyTorch port of the same network) places 468 mesh points
plus 10 iris points (468-472 on the subject's right eye, 473-477 on the left, centre
first). A face model that carries a dense correspondence (container keys
``dense_landmark_vertices`` ``(478, 3)`` and ``dense_landmark_weights`` ``(478, 3)``, made
by ``tools/default_head/calibrate_dense.py`` on renders of the model) maps each point to a
point on its surface: the barycentric combination of three vertices. This module holds
the topology-side tables (which point belongs to which region) and the small pure
functions the fitter and the checks share.

The index tables are MediaPipe's ``FACEMESH_*`` connection sets written out (no mediapipe
import at run time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from msma_engine.errors import ShapeError

__all__ = ["N_DENSE", "N_MESH", "REGIONS", "OVAL", "IRIS_RIGHT", "IRIS_LEFT", "EYE_CORNERS",
           "RegionWeights", "region_of", "point_weights", "surface_points", "contour_normals",
           "dense_iod"]

N_MESH = 468
N_DENSE = 478

# Face oval as a closed loop (forehead top 10 → subject's right side → chin 152 → left side).
OVAL = (10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
        377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
EYELIDS = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
           249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
BROWS = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)
IRIS_RIGHT = (468, 469, 470, 471, 472)  # subject's right eye (image left on a frontal photo), centre first
IRIS_LEFT = (473, 474, 475, 476, 477)
EYE_CORNERS = {"R": (33, 133), "L": (263, 362)}  # (outer, inner) per eye
"""Outer and inner corner of each eye; the outer corners (33, 263) give the inter-ocular distance."""

REGIONS: dict[str, tuple[int, ...]] = {
    "oval": OVAL, "lips_outer": LIPS_OUTER, "lips_inner": LIPS_INNER, "eyelids": EYELIDS,
    "brows": BROWS, "nose": NOSE, "iris": IRIS_RIGHT + IRIS_LEFT,
}
"""Named regions; every other mesh point is ``"interior"`` (cheeks, forehead, chin)."""


def region_of() -> np.ndarray:
    """``(478,)`` region name of every point (``"interior"`` where no table lists it)."""
    out = np.full(N_DENSE, "interior", dtype=object)
    for name, idx in REGIONS.items():
        out[list(idx)] = name
    return out


@dataclass(frozen=True)
class RegionWeights:
    """Relative per-point weights of the dense landmark term by region.

    The iris points default to 0: the model's eyeballs are rigid and not part of the mesh,
    so gaze comes from them separately (:mod:`msma_engine.expression_prior`).
    """

    oval: float = 0.5
    lips_outer: float = 2.0
    lips_inner: float = 1.0
    eyelids: float = 2.0
    brows: float = 1.0
    nose: float = 1.0
    iris: float = 0.0
    interior: float = 0.5


def point_weights(weights: RegionWeights = RegionWeights()) -> np.ndarray:
    """``(478,)`` float64 weight of every dense point."""
    names = region_of()
    return np.array([getattr(weights, str(n)) for n in names], dtype=np.float64)


def surface_points(vertices: torch.Tensor, idx: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Barycentric surface points of a (batch of) meshes.

    Args:
        vertices: ``(B, V, C)`` (or any per-vertex attribute, e.g. a basis ``(K, V, 3)``).
        idx: ``(P, 3)`` int64 vertex indices.
        bary: ``(P, 3)`` weights (sum to 1).

    Returns:
        ``(B, P, C)``.
    """
    if idx.shape != bary.shape or idx.ndim != 2 or idx.shape[1] != 3:
        raise ShapeError(f"idx and bary must both be (P, 3), got {tuple(idx.shape)} and {tuple(bary.shape)}")
    return (vertices[:, idx] * bary.to(vertices.dtype)[None, :, :, None]).sum(2)


def contour_normals(points: np.ndarray) -> np.ndarray:
    """Unit in-image normals of the detected face oval at each of its points.

    Args:
        points: ``(478, 2+)`` detected dense points (pixels); only :data:`OVAL` is read.

    Returns:
        ``(len(OVAL), 2)`` normals (perpendicular to the chord between each point's two
        neighbours on the loop). The fit measures oval points along these only, so a model
        point may slide along the outline: the outline of a turned head is a silhouette,
        not a fixed line of skin.
    """
    p = np.asarray(points, dtype=np.float64)[list(OVAL), :2]
    tangent = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    n = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)


def dense_iod(points: torch.Tensor) -> torch.Tensor:
    """Outer-eye-corner distance ``(B,)`` of dense points ``(B, 478, 2)`` (points 33 and 263)."""
    if points.ndim != 3 or points.shape[1] != N_DENSE:
        raise ShapeError(f"dense points must be (B, {N_DENSE}, 2), got {tuple(points.shape)}")
    return (points[:, EYE_CORNERS["L"][0]] - points[:, EYE_CORNERS["R"][0]]).norm(dim=-1)
