"""Keep the mouth interior (teeth, tongue) behind the skin in every pose.

The interior's identity is a linear regression on the head's identity coefficients and
its jaw motion is the Face Units targets' own (identity-independent, like the head's).
Neither knows where the skin is. At the lower lip corners the targets drop the lower teeth
about 7 mm further than the chin skin around them, which uses up ~3.5 mm of the rest
clearance of every identity (mean identity: 5.8 → 2.4 mm at ``jawOpen`` = 1); the regressed
teeth of some identities start with less (Obama's fitted identity: 1.6 mm) and come out
through the chin (two white patches below the lip corners). This module checks that by
geometry and fixes it.

**Criterion.** The head surface around the mouth is the outer skin plus the lining of the
mouth cavity; together they bound the flesh. Follow the segment from a part's centroid
(in the cavity) to one of its vertices, extended by :data:`MARGIN`, and count the surface
crossings: the vertex *pokes through* when the segment leaves the flesh through the
outer skin (a skin crossing after which the count is even), i.e. it ends up outside the
head but not in the mouth. Teeth embedded in the gums or the lips (odd count) are hidden;
teeth and tongue seen through the open lips (no crossing) are meant to be seen.

**Fix.** Each part is scaled by the largest factor ``s ≤ 1`` that keeps every vertex
:data:`MARGIN` before such an exit, in the rest pose and in each checked pose (the jaw and
mouth keys at weight 1, alone and with ``jawOpen``). The scale applies to the rest shape
about its centroid *and* to each key's motion about the part's mean motion, so in every
pose (any weights) the part is the same shape scaled about its own centroid: the segments
only shorten and one pass gives the exact factor. A uniform scale keeps the part's shape (a
slightly smaller dental arch, moving a little less), which per-vertex pushing would crumple.

All positions in metres, model frame (+x subject's left, +y up, +z out of the face).
"""

from __future__ import annotations

import logging

import numpy as np

from msma_engine.errors import ShapeError
from msma_engine.topology import as_numpy

__all__ = ["MARGIN", "MIN_SCALE", "cavity_triangles", "segment_crossings", "skin_exits", "fit_behind_skin"]

log = logging.getLogger(__name__)

MARGIN = 0.001  # metres: every interior vertex stays at least this far behind the outer skin.
MIN_SCALE = 0.7  # a part is never shrunk below this (a sign of a broken fit, logged).
_ITERATIONS = 4  # one pass finds the scale, the next confirms it (more only for rounding).
_SLACK = 0.001  # metres: bounding-box tolerance of the candidate segment/triangle pairs.

def cavity_triangles(model, inner_lip_centre: np.ndarray) -> np.ndarray | None:
    """``(F,)`` bool: the triangles of the mouth cavity's lining.

    The lining is the UV island, other than the outer skin (the largest island), whose
    border with the skin (the inner lip margin) is centred within 15 mm of ``inner_lip_centre``.

    Args:
        model: a face model with ``triangles``, ``uv_triangles`` and ``mean_shape``.
        inner_lip_centre: ``(3,)`` centre of the inner-lip landmarks on the mean shape, metres.

    Returns:
        The mask, or None when the model has no separate lining (e.g. BFM09).
    """
    from msma_engine.uv_islands import triangle_uv_islands

    tris = as_numpy(model.triangles).astype(np.int64)
    verts = as_numpy(model.mean_shape).astype(np.float64)
    island = triangle_uv_islands(as_numpy(model.uv_triangles))
    skin = np.unique(tris[island == 0])
    best = None
    for k in range(1, int(island.max()) + 1):
        rim = np.intersect1d(np.unique(tris[island == k]), skin)
        if len(rim) < 3:
            continue
        d = float(np.linalg.norm(verts[rim].mean(axis=0) - inner_lip_centre))
        if d < 0.015 and (best is None or d < best[0]):
            best = (d, k)
    return None if best is None else island == best[1]


def segment_crossings(origins: np.ndarray, ends: np.ndarray, triangles: np.ndarray,
                      pairs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every crossing of segments with triangles (Möller–Trumbore, vectorised over pairs).

    Args:
        origins: ``(N, 3)`` segment starts.
        ends: ``(N, 3)`` segment ends.
        triangles: ``(F, 3, 3)`` corner positions.
        pairs: ``(seg, tri)`` index arrays of the candidate pairs to test; default all N × F.

    Returns:
        ``(seg, tri, t)``: the crossing pairs and the fraction ``t`` in ``(0, 1]`` along
        ``origin → end`` of each crossing, sorted by segment then ``t``.
    """
    o = np.asarray(origins, np.float64)
    d = np.asarray(ends, np.float64) - o
    tri = np.asarray(triangles, np.float64)
    if o.shape != d.shape or o.ndim != 2 or o.shape[1] != 3 or tri.ndim != 3 or tri.shape[1:] != (3, 3):
        raise ShapeError(f"need (N, 3) origins/ends and (F, 3, 3) triangles, got {o.shape}, {d.shape}, {tri.shape}")
    if pairs is None:
        seg, ti = (a.ravel() for a in np.meshgrid(np.arange(len(o)), np.arange(len(tri)), indexing="ij"))
    else:
        seg, ti = (np.asarray(a, np.int64) for a in pairs)
    a = tri[ti, 0]
    e1, e2 = tri[ti, 1] - a, tri[ti, 2] - a
    dd = d[seg]
    p = _cross(dd, e2)
    det = np.einsum("ij,ij->i", e1, p)
    sv = o[seg] - a
    u_det = np.einsum("ij,ij->i", sv, p)
    # u = u_det / det in [0, 1], tested without dividing; drop the misses before the rest.
    keep = (np.abs(det) > 1e-18) & (u_det * det >= 0) & (np.abs(u_det) <= np.abs(det))
    seg, ti, dd, sv, e1, e2, det, u_det = (x[keep] for x in (seg, ti, dd, sv, e1, e2, det, u_det))
    inv = 1.0 / det
    q = _cross(sv, e1)
    u = u_det * inv
    v = np.einsum("ij,ij->i", q, dd) * inv
    t = np.einsum("ij,ij->i", q, e2) * inv
    hit = (v >= 0) & (u + v <= 1) & (t > 1e-9) & (t <= 1)
    seg, ti, t = seg[hit], ti[hit], t[hit]
    order = np.lexsort((t, seg))
    return seg[order], ti[order], t[order]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross products of ``(N, 3)`` arrays (faster than ``np.cross`` for long N)."""
    return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


def skin_exits(origins: np.ndarray, ends: np.ndarray, triangles: np.ndarray, lining: np.ndarray,
               pairs: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(N,)`` where each segment first leaves the flesh through the outer skin.

    Args:
        origins, ends: ``(N, 3)`` segments starting in the mouth cavity.
        triangles: ``(F, 3, 3)`` the surface around the mouth (outer skin and cavity lining).
        lining: ``(F,)`` bool, True for the cavity lining's triangles.
        pairs: candidate ``(seg, tri)`` pairs, see :func:`segment_crossings`.

    Returns:
        The fraction ``t`` along ``origin → end`` of the first skin crossing after which the
        number of crossings is even (out of the flesh, not into the cavity); ``inf`` for none.
    """
    seg, tri, t = segment_crossings(origins, ends, triangles, pairs)
    out = np.full(len(origins), np.inf)
    if len(seg):
        first = np.r_[True, seg[1:] != seg[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(seg)), 0))
        count = np.arange(len(seg)) - start + 1  # crossings up to and including this one
        exits = ~np.asarray(lining, bool)[tri] & (count % 2 == 0)
        np.minimum.at(out, seg[exits], t[exits])
    return out


def _segments(verts: np.ndarray, parts: list[np.ndarray], margin: float):
    """Centroid-to-vertex segments of every part's vertices, extended by ``margin``."""
    centres = np.concatenate([np.broadcast_to(verts[idx].mean(axis=0), (len(idx), 3)) for idx in parts])
    pts = np.concatenate([verts[idx] for idx in parts])
    off = pts - centres
    length = np.maximum(np.linalg.norm(off, axis=1), 1e-9)
    return centres, pts + margin * off / length[:, None], length


def fit_behind_skin(neutral: np.ndarray, exp_basis: np.ndarray, parts: list[np.ndarray],
                    skin_neutral: np.ndarray, skin_exp_basis: np.ndarray, skin_triangles: np.ndarray,
                    lining: np.ndarray, poses: np.ndarray,
                    margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shrink each part until it stays behind the skin in every checked pose (see the module doc).

    Args:
        neutral: ``(Vi, 3)`` interior at rest.
        exp_basis: ``(K, Vi, 3)`` interior offsets per unit expression.
        parts: vertex indices ``(n_p,)`` of each part (disjoint).
        skin_neutral: ``(S, 3)`` head vertices around the mouth at rest.
        skin_exp_basis: ``(K, S, 3)`` their offsets per unit expression.
        skin_triangles: ``(F, 3)`` indices into ``skin_neutral``: outer skin and cavity lining.
        lining: ``(F,)`` bool, True for the lining.
        poses: ``(J, K)`` expression weights of the poses checked besides the rest pose.
        margin: metres.

    Returns:
        ``(neutral', exp_basis', scales)``: the fitted ``(Vi, 3)`` rest interior, its
        ``(K, Vi, 3)`` expression basis and ``(P,)`` the scale applied to each part (1 = untouched).
    """
    out = np.array(neutral, dtype=np.float64)
    exp_out = np.array(exp_basis, dtype=np.float64)
    scales = np.ones(len(parts))
    k_exp = exp_basis.shape[0]
    weights = np.vstack([np.zeros((1, k_exp)), np.asarray(poses, np.float64).reshape(-1, k_exp)])
    moves = np.einsum("jk,kvc->jvc", weights, exp_out)  # (J + 1, Vi, 3)
    skin = np.asarray(skin_neutral, np.float64) + np.einsum("jk,kvc->jvc", weights, skin_exp_basis)
    skin = skin[:, skin_triangles]  # (J + 1, F, 3, 3)
    lining = np.asarray(lining, bool)
    owner = np.concatenate([np.full(len(idx), k) for k, idx in enumerate(parts)])
    outer = _outer_pairs(out, moves, weights, exp_out, parts, skin, lining, margin)
    t_lo, t_hi = skin.min(axis=2), skin.max(axis=2)
    todo = list(range(len(weights)))
    for _ in range(_ITERATIONS):
        need = np.ones(len(parts))
        failing = []
        for j in todo:
            origins, ends, length = _segments(out + moves[j], parts, margin)
            t = _exits(origins, ends, skin[j], (t_lo[j], t_hi[j]), lining, outer[j])
            bad = np.isfinite(t)
            if bad.any():
                # The exit is t * (length + margin) from the centroid; the vertex must end margin before it.
                s = (t[bad] * (length[bad] + margin) - margin) / length[bad]
                np.minimum.at(need, owner[bad], s)
                failing.append(j)
        if not failing:
            if len(todo) == len(weights):
                break
            todo = list(range(len(weights)))  # the poses that were fine: check them once more
            continue
        # A hair past the requirement, for rounding.
        step = np.clip(np.where(need < 1.0, need - 1e-3, 1.0), MIN_SCALE / scales, 1.0)
        for idx, s in zip(parts, step):
            for arr in (out, *exp_out, *moves):
                c = arr[idx].mean(axis=0)
                arr[idx] = c + s * (arr[idx] - c)
        scales *= step
        todo = failing
    if scales.min() <= MIN_SCALE + 1e-9:
        log.warning("mouth interior needed more than the %.0f %% shrink allowed to stay behind the skin "
                    "(scales %s)", 100 * (1 - MIN_SCALE), np.round(scales, 3).tolist())
    return out, exp_out, scales


def _exits(origins, ends, triangles, boxes, lining, outer_pairs):
    """:func:`skin_exits`, fast: only segments that cross the outer skin at all (tested on
    the candidate pairs ``outer_pairs``) are followed through every triangle (``boxes``:
    the triangles' ``(lo, hi)`` corners)."""
    out = np.full(len(origins), np.inf)
    crossing = np.unique(segment_crossings(origins, ends, triangles, outer_pairs)[0])
    if len(crossing):
        o, e = origins[crossing], ends[crossing]
        out[crossing] = skin_exits(o, e, triangles, lining,
                                   _box_pairs(np.minimum(o, e), np.maximum(o, e), *boxes))
    return out


def _box_pairs(lo, hi, t_lo, t_hi):
    """``(seg, tri)`` pairs whose boxes ``lo..hi`` ``(N, 3)`` and ``t_lo..t_hi`` ``(F, 3)`` overlap."""
    ok = (lo[:, None, 0] <= t_hi[None, :, 0]) & (hi[:, None, 0] >= t_lo[None, :, 0])
    for c in (1, 2):
        ok &= (lo[:, None, c] <= t_hi[None, :, c]) & (hi[:, None, c] >= t_lo[None, :, c])
    return np.nonzero(ok)


def _outer_pairs(neutral, moves, weights, exp_basis, parts, skin, lining, margin):
    """Per pose, the ``(seg, tri)`` pairs of segments and outer-skin triangles whose bounding
    boxes overlap in some pose of its group: poses group by the interior's own motion (the
    rest pose with the keys that only move the skin, ``jawOpen`` with them, ...), so the
    boxes stay tight. Parts only shrink about their posed centroids afterwards, so the
    segments only shorten and the pairs stay valid."""
    moving = np.abs(exp_basis).reshape(len(exp_basis), -1).max(axis=1) > 0
    outer = np.flatnonzero(~lining)
    corners = skin[:, outer]  # (J, Fo, 3, 3)
    t_lo, t_hi = corners.min(axis=2), corners.max(axis=2)
    groups: dict[bytes, list[int]] = {}
    for j, w in enumerate(weights):
        groups.setdefault(w[moving].tobytes(), []).append(j)
    pairs = [None] * len(weights)
    for members in groups.values():
        lo = hi = None
        for j in members:
            origins, ends, _ = _segments(neutral + moves[j], parts, margin)
            a, b = np.minimum(origins, ends), np.maximum(origins, ends)
            lo = a if lo is None else np.minimum(lo, a)
            hi = b if hi is None else np.maximum(hi, b)
        seg, tri = _box_pairs(lo - _SLACK, hi + _SLACK, t_lo[members].min(axis=0), t_hi[members].max(axis=0))
        for j in members:
            pairs[j] = (seg, outer[tri])
    return pairs
