"""UV islands of a face model: which triangles share a connected piece of the UV layout.

The default head lays out the outer skin, the two eye-socket cups and the mouth cavity's
lining (and the neck band) as separate UV islands; :mod:`msma_engine.eyes` and
:mod:`msma_engine.mouth_clearance` find their parts of the mesh through them.
"""

from __future__ import annotations

import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["triangle_uv_islands"]


def triangle_uv_islands(uv_triangles: np.ndarray) -> np.ndarray:
    """Island label of every triangle, 0 for the island with the most triangles.

    Args:
        uv_triangles: ``(F, 3)`` int indices into the UV coordinates.

    Returns:
        ``(F,)`` int64 labels ``0 .. n_islands - 1``, numbered by decreasing triangle count.
    """
    # SciPy is imported here so that msma_engine.result (which names Eyeballs) stays NumPy-only.
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    uv_tris = np.asarray(uv_triangles, dtype=np.int64)
    if uv_tris.ndim != 2 or uv_tris.shape[1] != 3 or uv_tris.size == 0:
        raise ShapeError(f"uv_triangles must be a non-empty (F, 3) array, got {uv_tris.shape}")
    n_uv = int(uv_tris.max()) + 1
    rows = uv_tris.reshape(-1)
    cols = np.roll(uv_tris, 1, axis=1).reshape(-1)
    adj = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_uv, n_uv))
    _, uv_label = connected_components(adj, directed=False)
    face_label = uv_label[uv_tris[:, 0]]
    order = np.argsort(-np.bincount(face_label), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[face_label]
