"""The 68 iBUG-300W landmarks and the face/skin vertex masks, picked by geometry.

All picking is done on the mean head in the model frame's axes (+x = subject's left,
+y up, +z forward); units cancel out except where a length is given, which is in
the mesh's units (decimetres while building). Feature locations come from the mesh
itself: the eye and mouth openings are the seams between the head's UV island and the
eye-socket / mouth-cavity islands, the lips from MakeHuman's lips mask, the brows from
the region the ARKit ``browDown*`` targets move most.

iBUG order: 0-16 jaw from the subject's right to left; 17-21 right brow (outer to
inner); 22-26 left brow (inner to outer); 27-30 nose bridge (top to tip); 31-35 nostrils
(right to left); 36-41 right eye and 42-47 left eye, each clockwise in the image from its
image-left corner; 48-59 outer lip and 60-67 inner lip, clockwise in the image from the
image-left corner.

:func:`pick_landmarks` is the geometric starting point. The shipped model uses the
detector-calibrated table :data:`CALIBRATED_PATH` instead when it exists (made by
:mod:`tools.default_head.calibrate_landmarks` from renders of the model), because the
detector's conventions differ from anatomy (e.g. its nostril row and inner brow ends).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from msma_engine.errors import ModelFileError

__all__ = ["CALIBRATED_PATH", "FaceFeatures", "vertex_normals", "pick_landmarks", "load_calibrated",
           "face_region_mask"]

CALIBRATED_PATH = Path(__file__).resolve().parent / "landmarks_calibrated.json"


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a CCW mesh."""
    v = vertices
    fn = np.cross(v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, triangles[:, k], fn)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class FaceFeatures:
    """Geometry queries on the head mesh used to place landmarks.

    Args:
        vertices: (V, 3) mean head.
        triangles: (F, 3) CCW triangles.
        eye_rims: (right, left) vertex indices of the eye openings' rims.
        mouth_rim: vertex indices of the mouth opening's rim (inner lip line).
        lips: (V,) bool, vertices inside the lips mask.
        brow_weight: (V,) >= 0, how much the ARKit brow-down targets move each vertex.
        excluded: (V,) bool, vertices never picked for surface points (ears, cavities, neck).
    """

    def __init__(self, vertices, triangles, eye_rims, mouth_rim, lips, brow_weight, excluded):
        self.v = vertices
        self.t = triangles
        self.n = vertex_normals(vertices, triangles)
        self.eye_rims = eye_rims
        self.mouth_rim = mouth_rim
        self.lips = lips
        self.brow_weight = brow_weight
        self.excluded = excluded

    def front(self, x: float, y: float, radius: float) -> int:
        """The front-most surface vertex seen along -z at (x, y): largest z within ``radius``."""
        d = np.hypot(self.v[:, 0] - x, self.v[:, 1] - y)
        cand = np.flatnonzero((d < radius) & (self.n[:, 2] > 0) & ~self.excluded)
        if cand.size == 0:
            cand = np.flatnonzero((self.n[:, 2] > 0) & ~self.excluded)
            return int(cand[np.argmin(d[cand])])
        # Among the front-most layer, the one closest to (x, y).
        zmax = self.v[cand, 2].max()
        layer = cand[self.v[cand, 2] > zmax - radius]
        return int(layer[np.argmin(d[layer])])


def _opening(rim: np.ndarray, v: np.ndarray, fractions_upper, fractions_lower) -> list[int]:
    """Corner, upper points, corner, lower points of an opening (eye or inner mouth).

    Returns indices in image-clockwise order starting from the image-left (min x) corner:
    left corner, upper points at ``fractions_upper`` of the corner-to-corner span
    (increasing x), right corner, lower points at ``fractions_lower`` (decreasing x).
    """
    xs = v[rim, 0]
    left, right = rim[np.argmin(xs)], rim[np.argmax(xs)]
    x0, x1 = v[left, 0], v[right, 0]
    # Height of the corner-to-corner line at each rim vertex splits upper from lower.
    t = (xs - x0) / (x1 - x0)
    line_y = v[left, 1] + t * (v[right, 1] - v[left, 1])
    upper, lower = rim[v[rim, 1] > line_y], rim[v[rim, 1] <= line_y]

    def at(side, frac):
        xt = x0 + frac * (x1 - x0)
        return int(side[np.argmin(np.abs(v[side, 0] - xt))])

    return [int(left)] + [at(upper, f) for f in fractions_upper] + [int(right)] + \
           [at(lower, f) for f in fractions_lower]


def _jaw(feat: FaceFeatures, centre: np.ndarray, y_top: float, seed: int, n: int = 17) -> list[int]:
    """Jaw contour: the outline of the front-facing face region below ``y_top``.

    The face region is the connected set of front-facing vertices (normal z > 0.15)
    around ``seed`` (a front-facing vertex such as the nose tip); the jaw line is where it
    turns away from the camera. Its outline in the frontal view is traced by angle around
    ``centre`` (x, y), from the subject's right at height ``y_top`` down through the chin to
    the left, resampled evenly by arc length, and each sample snapped to the nearest outline
    vertex.
    """
    v, t = feat.v, feat.t
    front = (feat.n[:, 2] > 0.15) & ~feat.excluded
    e = t[front[t].all(axis=1)]
    rows = np.concatenate([e[:, 0], e[:, 1], e[:, 2]])
    cols = np.concatenate([e[:, 1], e[:, 2], e[:, 0]])
    nv = len(v)
    _, lab = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(nv, nv)), directed=False)
    # Outer outline: the longest loop of boundary edges of the region's triangles (the
    # other loops circle the eyes, nostrils and mouth).
    e = e[lab[e[:, 0]] == lab[seed]]
    edges = np.sort(np.concatenate([e[:, [0, 1]], e[:, [1, 2]], e[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    bnd = uniq[count == 1]
    _, loop_lab = connected_components(coo_matrix((np.ones(len(bnd)), (bnd[:, 0], bnd[:, 1])),
                                                  shape=(nv, nv)), directed=False)
    edge_lab = loop_lab[bnd[:, 0]]
    longest = np.bincount(edge_lab).argmax()
    border = np.unique(bnd[edge_lab == longest])
    rel = v[border, :2] - centre
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    # Sweep counter-clockwise (in x, y) from the subject's right at height y_top, down
    # through the chin, to the left at the same height.
    a_right = np.arctan2(y_top - centre[1], -1.0)
    a_left = np.arctan2(y_top - centre[1], 1.0)
    ang_u = np.mod(ang - a_right, 2 * np.pi)
    keep = ang_u <= np.mod(a_left - a_right, 2 * np.pi)
    path = border[keep][np.argsort(ang_u[keep])]
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(v[path, :2], axis=0), axis=1))]
    return [int(path[np.argmin(np.abs(seg - s))]) for s in np.linspace(0, seg[-1], n)]


def pick_landmarks(feat: FaceFeatures) -> np.ndarray:
    """The 68 iBUG-300W landmark vertex indices (see the module docstring for the order).

    Returns:
        (68,) int64 vertex indices.
    """
    v = feat.v
    right_eye = _opening(feat.eye_rims[0], v, (1 / 3, 2 / 3), (2 / 3, 1 / 3))
    left_eye = _opening(feat.eye_rims[1], v, (1 / 3, 2 / 3), (2 / 3, 1 / 3))
    inner_mouth = _opening(feat.mouth_rim, v, (0.25, 0.5, 0.75), (0.75, 0.5, 0.25))

    # Outer lip: extremes of the lips mask at given fractions of the mouth half-width.
    lips = np.flatnonzero(feat.lips & (feat.n[:, 2] > 0))
    xl, xr = v[lips, 0].min(), v[lips, 0].max()
    cx = 0.5 * (xl + xr)
    half = 0.5 * (xr - xl)
    col = 0.12 * half

    def lip_edge(frac, top):
        xt = cx + frac * half
        m = lips[np.abs(v[lips, 0] - xt) < col]
        return int(m[np.argmax(v[m, 1])] if top else m[np.argmin(v[m, 1])])

    corner_l = int(lips[np.argmin(v[lips, 0])])
    corner_r = int(lips[np.argmax(v[lips, 0])])
    outer = [corner_l] + [lip_edge(f, True) for f in (-0.62, -0.3, 0.0, 0.3, 0.62)] + [corner_r] + \
            [lip_edge(f, False) for f in (0.62, 0.3, 0.0, -0.3, -0.62)]

    eye_h = np.mean([v[right_eye[0], 1], v[right_eye[3], 1], v[left_eye[0], 1], v[left_eye[3], 1]])
    inner_gap = v[left_eye[0], 0] - v[right_eye[3], 0]
    step = 0.1 * inner_gap

    # Nose: tip = most forward midline vertex between mouth and eyes; bridge from eye height.
    mid = np.flatnonzero((np.abs(v[:, 0]) < 0.03 * inner_gap) & (feat.n[:, 2] > 0) & ~feat.excluded)
    y_mouth_top = v[outer[3], 1]
    band = mid[(v[mid, 1] > y_mouth_top) & (v[mid, 1] < eye_h)]
    tip = int(band[np.argmax(v[band, 2])])
    below = band[(v[band, 1] < v[tip, 1]) & (v[band, 1] > y_mouth_top)]
    subnasale = int(below[np.argmin(v[below, 2])])
    y27 = eye_h
    bridge = [feat.front(0.0, y27 + (v[tip, 1] - y27) * f, step) for f in (0.0, 1 / 3, 2 / 3)] + [tip]
    ys = v[subnasale, 1]
    yn = ys + 0.15 * (v[tip, 1] - ys)
    xn = 0.4 * inner_gap
    nostrils = [feat.front(-xn, yn, step), feat.front(-xn / 2, (yn + ys) / 2, step), subnasale,
                feat.front(xn / 2, (yn + ys) / 2, step), feat.front(xn, yn, step)]

    # Brows: along the band the brow target moves, from above the outer to the inner eye corner.
    w = feat.brow_weight * (feat.n[:, 2] > 0) * ~feat.excluded

    def brow(x0, x1):
        out = []
        for f in np.linspace(0, 1, 5):
            xt = x0 + f * (x1 - x0)
            m = (np.abs(v[:, 0] - xt) < step) & (w > 0.6 * w.max())
            yt = np.average(v[m, 1], weights=w[m])
            out.append(feat.front(xt, yt, step))
        return out

    outer_r, inner_r = v[right_eye[0], 0], v[right_eye[3], 0]
    span = inner_r - outer_r
    brow_r = brow(outer_r - 0.25 * span, inner_r + 0.05 * span)
    brow_l = brow(-(inner_r + 0.05 * span), -(outer_r - 0.25 * span))

    centre = np.array([0.0, v[tip, 1]])
    jaw = _jaw(feat, centre, v[right_eye[4], 1], tip)

    idx = jaw + brow_r + brow_l + bridge + nostrils + right_eye + left_eye + outer + inner_mouth
    assert len(idx) == 68
    return np.asarray(idx, np.int64)


def load_calibrated(base_index: np.ndarray, path: Path = CALIBRATED_PATH) -> np.ndarray | None:
    """The detector-calibrated landmark vertices, or None when the table does not exist.

    The table names base-mesh vertices (``landmark_base_indices``), so it survives a re-cut
    of the head.

    Args:
        base_index: (V,) base-mesh vertex of every head vertex (:attr:`.mesh.HeadMesh.base_index`).
        path: the JSON table written by :mod:`tools.default_head.calibrate_landmarks`.

    Returns:
        (68,) int64 head vertex indices, or None.

    Raises:
        ModelFileError: the table exists but is unreadable or names vertices outside the head.
    """
    if not path.exists():
        return None
    try:
        base = np.asarray(json.loads(path.read_text())["landmark_base_indices"], np.int64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"cannot read landmark table {path}: {exc}") from exc
    head_of = {int(b): i for i, b in enumerate(np.asarray(base_index).tolist())}
    idx = np.array([head_of.get(int(b), -1) for b in base.reshape(-1)], np.int64)
    if base.shape != (68,) or idx.min() < 0:
        raise ModelFileError(f"landmark table {path} must hold 68 base-mesh vertices of the head, "
                             f"got shape {base.shape}, {int((idx < 0).sum())} outside the head")
    return idx


def face_region_mask(feat: FaceFeatures, landmarks: np.ndarray, hairline_above_brow: float) -> np.ndarray:
    """(V,) bool: the front face, from hairline to chin and between the jaw-contour ends.

    Roughly BFM's front-face extent: forehead to chin, ear to ear, no ears, neck or scalp.
    A vertex is in when it is front-facing enough (z not behind the jaw-contour ends), within
    the contour's x span, above the chin and below ``hairline_above_brow`` over the brows.
    """
    v = feat.v
    lm = v[landmarks]
    x_lim = np.abs(lm[[0, 16], 0]).max()
    y_low = lm[8, 1]
    y_high = lm[17:27, 1].max() + hairline_above_brow
    z_low = lm[[0, 16], 2].min()
    inside = (np.abs(v[:, 0]) <= x_lim) & (v[:, 1] >= y_low) & (v[:, 1] <= y_high) & (v[:, 2] >= z_low)
    # Below the mouth, keep only what lies above the jaw contour (the chin, not the neck).
    jaw = lm[:17]
    order = np.argsort(jaw[:, 0])
    y_jaw = np.interp(v[:, 0], jaw[order, 0], jaw[order, 1])
    inside &= v[:, 1] >= y_jaw - 0.02 * (y_high - y_low)
    return inside & ~feat.excluded
