"""Cut the head (face, scalp, ears, upper neck) out of the MakeHuman body mesh.

The result keeps the body's own geometry (eye sockets and mouth cavity are part of
the closed body surface), drops the helper geometry (eyeballs, teeth, tongue,
lashes, joint cubes, clothes helpers), triangulates the quads and labels the head's
UV islands (laid out in the texture by :mod:`.uv_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .source import BaseMesh

__all__ = ["HeadMesh", "cut_head", "NECK_CUT_DM"]

# Height of the neck cut in MakeHuman decimetres: below the chin (y ~ 6.15 dm)
# and above the trapezius / shoulders (y ~ 5.7 dm) of the base mesh.
NECK_CUT_DM = 5.85


@dataclass
class HeadMesh:
    """The head sub-mesh, still in MakeHuman units (decimetres, y up, z forward).

    Attributes:
        base_index: (V,) int64 base-mesh vertex index of every head vertex.
        vertices: (V, 3) float64 positions.
        triangles: (F, 3) int64, counter-clockwise seen from outside.
        uv_triangles: (F, 3) int64 indices into ``source_uv``.
        source_uv: (T, 2) float64 UV corners in the base mesh's original layout (where
            MakeHuman's region masks live).
        uv_island: (T,) int64 island id of every UV coordinate (0 = the main head island).
        island_names: names of the islands, indexed by id.
    """

    base_index: np.ndarray
    vertices: np.ndarray
    triangles: np.ndarray
    uv_triangles: np.ndarray
    source_uv: np.ndarray
    uv_island: np.ndarray
    island_names: list[str]

    def vertex_island(self) -> np.ndarray:
        """(V,) island id of each vertex (from the first UV corner that uses it)."""
        out = np.full(len(self.vertices), -1, np.int64)
        out[self.triangles.ravel()] = self.uv_island[self.uv_triangles.ravel()]
        return out


def _uv_islands(quad_uvs: np.ndarray, n_uv: int) -> np.ndarray:
    """Connected components of the UV graph; (n_uv,) label per UV index."""
    rows = np.concatenate([quad_uvs[:, i] for i in range(4)])
    cols = np.concatenate([quad_uvs[:, (i + 1) % 4] for i in range(4)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_uv, n_uv))
    return connected_components(graph, directed=False)[1]


def _name_island(verts: np.ndarray) -> str:
    """Name an island from its 3D extent (decimetres): what the base mesh's layout holds."""
    lo, hi = verts.min(0), verts.max(0)
    if hi[0] - lo[0] < 0.5 and abs(verts[:, 0].mean()) > 0.2:
        return "eye_socket_left" if verts[:, 0].mean() > 0 else "eye_socket_right"
    if hi[1] - lo[1] > 1.5:
        return "head"
    if lo[1] < NECK_CUT_DM + 0.05:
        return "neck"
    return "mouth_cavity"


def cut_head(base: BaseMesh, cut_y: float = NECK_CUT_DM) -> HeadMesh:
    """Select the body faces above ``cut_y``, triangulate them and label their UV islands.

    Args:
        base: the parsed base mesh.
        cut_y: neck cut height in decimetres; faces with every corner above it are kept.

    Returns:
        The :class:`HeadMesh`.
    """
    keep = (base.groups == "body") & (base.vertices[base.quads][:, :, 1].min(axis=1) > cut_y)
    quads, quad_uvs = base.quads[keep], base.quad_uvs[keep]

    base_index = np.unique(quads)
    remap = np.full(len(base.vertices), -1, np.int64)
    remap[base_index] = np.arange(len(base_index))
    uv_index = np.unique(quad_uvs)
    uv_remap = np.full(len(base.uvs), -1, np.int64)
    uv_remap[uv_index] = np.arange(len(uv_index))
    quads, quad_uvs = remap[quads], uv_remap[quad_uvs]
    vertices = base.vertices[base_index]
    source_uv = base.uvs[uv_index]

    # OBJ quads are counter-clockwise seen from outside; split along the 0-2 diagonal.
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    uv_triangles = np.concatenate([quad_uvs[:, [0, 1, 2]], quad_uvs[:, [0, 2, 3]]])

    labels = _uv_islands(quad_uvs, len(source_uv))
    uv_vertex = np.zeros(len(source_uv), np.int64)
    uv_vertex[quad_uvs.ravel()] = quads.ravel()
    sizes = np.bincount(labels)
    # Islands ordered by size (largest = the head) for a deterministic layout.
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    names = [_name_island(vertices[uv_vertex[labels == k]]) for k in order]
    island = np.empty_like(labels)
    for new, old in enumerate(order):
        island[labels == old] = new
    return HeadMesh(base_index, vertices, triangles, uv_triangles, source_uv, island, names)

