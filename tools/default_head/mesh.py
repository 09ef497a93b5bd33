"""Cut the head (face, scalp, ears, upper neck) out of the MakeHuman body mesh.

The result keeps the body's own geometry (eye sockets and mouth cavity are part of
the closed body surface) as quads (triangles are derived from them, split along the 0-2
diagonal), drops the helper geometry (eyeballs, teeth, tongue, lashes, joint cubes,
clothes helpers; the teeth and tongue come back as the mouth interior, see
:mod:`.interior`) and labels the head's UV islands (laid out by :mod:`.uv_layout`).

The first cut (every face above :data:`NECK_CUT_DM`) follows no edge loop, so its rim
zigzags with one-face spikes. :func:`neck_loop_trim` then cuts again along the lowest
closed edge loop of the quad mesh that runs around the neck inside the first cut: a
smooth boundary loop. The identity space is computed on the first cut (the network was
trained on it) and only row-subset afterwards, so identity coefficients keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from msma_engine.errors import ModelFileError
from msma_engine.model_file import triangulate_polygons

from .source import BaseMesh

__all__ = ["HeadMesh", "cut_head", "neck_loop_trim", "NECK_CUT_DM"]

# Height of the neck cut in MakeHuman decimetres: below the chin (y ~ 6.15 dm)
# and above the trapezius / shoulders (y ~ 5.7 dm) of the base mesh.
NECK_CUT_DM = 5.85


@dataclass
class HeadMesh:
    """The head sub-mesh, still in MakeHuman units (decimetres, y up, z forward).

    Attributes:
        base_index: (V,) int64 base-mesh vertex index of every head vertex.
        vertices: (V, 3) float64 positions.
        quads: (Q, 4) int64, counter-clockwise seen from outside (the source topology).
        uv_quads: (Q, 4) int64 indices into ``source_uv``.
        source_uv: (T, 2) float64 UV corners in the base mesh's original layout (where
            MakeHuman's region masks live).
        uv_island: (T,) int64 island id of every UV coordinate (0 = the main head island).
        island_names: names of the islands, indexed by id.
    """

    base_index: np.ndarray
    vertices: np.ndarray
    quads: np.ndarray
    uv_quads: np.ndarray
    source_uv: np.ndarray
    uv_island: np.ndarray
    island_names: list[str]

    @property
    def triangles(self) -> np.ndarray:
        """(2Q, 3) int64: every quad split along its 0-2 diagonal, in quad order
        (:func:`msma_engine.model_file.triangulate_polygons`)."""
        return triangulate_polygons(self.quads)[0]

    @property
    def uv_triangles(self) -> np.ndarray:
        """(2Q, 3) int64 UV corners of :attr:`triangles`."""
        return triangulate_polygons(self.uv_quads)[0]

    def subset(self, keep_quads: np.ndarray) -> tuple[HeadMesh, np.ndarray]:
        """The mesh of the kept quads only (unused vertices and UVs dropped, islands kept).

        Args:
            keep_quads: (Q,) bool.

        Returns:
            The smaller mesh and ``kept`` (V_new,) the old vertex index of every new vertex.
        """
        quads, uv_quads = self.quads[keep_quads], self.uv_quads[keep_quads]
        kept, quads = np.unique(quads, return_inverse=True)
        kept_uv, uv_quads = np.unique(uv_quads, return_inverse=True)
        mesh = HeadMesh(self.base_index[kept], self.vertices[kept], quads.reshape(-1, 4),
                        uv_quads.reshape(-1, 4), self.source_uv[kept_uv], self.uv_island[kept_uv],
                        list(self.island_names))
        return mesh, kept

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
    """Select the body faces above ``cut_y`` and label their UV islands.

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
    return HeadMesh(base_index, vertices, quads, quad_uvs, source_uv, island, names)


def _faces_of(quads: np.ndarray) -> dict[int, list[int]]:
    """Quads around every vertex."""
    out: dict[int, list[int]] = {}
    for f, q in enumerate(quads.tolist()):
        for v in q:
            out.setdefault(v, []).append(f)
    return out


def _edge_loop(quads: np.ndarray, faces_of: dict[int, list[int]], start: tuple[int, int],
               max_len: int = 200) -> list[int] | None:
    """Vertices of the edge loop through edge ``start`` of a quad mesh, or None if it does not close.

    At each valence-4 vertex the loop goes on along the edge that shares no quad with the
    edge it came by; it stops (None) at a vertex of another valence or after ``max_len`` steps.
    ``faces_of`` is :func:`_faces_of` of ``quads``.
    """
    loop = [start[0], start[1]]
    for _ in range(max_len):
        a, b = loop[-2], loop[-1]
        faces = faces_of.get(b, [])
        if len(faces) != 4:
            return None
        nbrs = {int(q[(k + d) % 4]) for f in faces for q in [quads[f]] for k in range(4) if q[k] == b for d in (1, 3)}
        touching = {int(v) for f in faces if a in quads[f] for v in quads[f]}
        nxt = sorted(nbrs - touching)
        if len(nxt) != 1:
            return None
        if nxt[0] == loop[0]:
            return loop
        loop.append(nxt[0])
    return None


def neck_loop_trim(head: HeadMesh, base: BaseMesh, band_dm: float = 0.5) -> np.ndarray:
    """Quads of ``head`` to keep so that the neck ends on a closed edge loop.

    Loops are walked on the whole body mesh (full valence below the first cut), starting at
    roughly horizontal front-of-neck edges up to ``band_dm`` above :data:`NECK_CUT_DM`; the
    lowest (by its highest vertex) loop that closes, goes all round the neck and lies
    entirely inside ``head`` is the new boundary. Quads connected to the top of the head
    without crossing it are kept.

    Args:
        head: the first cut (:func:`cut_head`).
        base: the base mesh it was cut from.

    Returns:
        (Q,) bool over ``head.quads``.

    Raises:
        ModelFileError: no such loop (the base mesh is not MakeHuman's).
    """
    body = base.quads[base.groups == "body"]
    bv = base.vertices
    to_head = np.full(len(bv), -1, np.int64)
    to_head[head.base_index] = np.arange(len(head.base_index))
    used = np.unique(body)
    near = np.zeros(len(bv), bool)
    near[used] = (bv[used, 1] > NECK_CUT_DM) & (bv[used, 1] < NECK_CUT_DM + band_dm) & (bv[used, 2] > 0.5) \
        & (np.abs(bv[used, 0]) < 0.3)
    edges = np.unique(np.sort(np.stack([body, np.roll(body, -1, axis=1)], axis=-1).reshape(-1, 2), axis=1), axis=0)
    best, seen, faces_of = None, set(), _faces_of(body)
    for a, b in edges[near[edges].all(axis=1)]:
        if abs(bv[a, 1] - bv[b, 1]) > 0.5 * np.linalg.norm(bv[a] - bv[b]):
            continue  # start on a roughly horizontal edge
        loop = _edge_loop(body, faces_of, (int(a), int(b)))
        if loop is None or frozenset(loop) in seen:
            continue
        seen.add(frozenset(loop))
        lv = bv[loop]
        if (to_head[loop] < 0).any() or lv[:, 0].min() > -0.2 or lv[:, 0].max() < 0.2 or np.ptp(lv[:, 2]) < 0.5:
            continue
        if best is None or lv[:, 1].max() < best[0]:
            best = (lv[:, 1].max(), [int(i) for i in to_head[loop]])
    if best is None:
        raise ModelFileError("no closed edge loop around the neck inside the head cut")
    loop = best[1]
    quads, v = head.quads, head.vertices
    cut = {tuple(sorted(e)) for e in zip(loop, loop[1:] + loop[:1])}
    # Flood fill over quads sharing an edge that is not on the loop, from the top of the head.
    n_q = len(quads)
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for f, q in enumerate(quads):
        for k in range(4):
            edge_faces.setdefault(tuple(sorted((int(q[k]), int(q[(k + 1) % 4])))), []).append(f)
    keep = np.zeros(n_q, bool)
    seed = int(np.argmax(v[quads].mean(axis=1)[:, 1]))
    stack = [seed]
    keep[seed] = True
    while stack:
        f = stack.pop()
        q = quads[f]
        for k in range(4):
            e = tuple(sorted((int(q[k]), int(q[(k + 1) % 4]))))
            if e in cut:
                continue
            for g in edge_faces[e]:
                if not keep[g]:
                    keep[g] = True
                    stack.append(g)
    return keep

