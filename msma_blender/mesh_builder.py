"""Build the Blender mesh and object of one reconstructed face.

All axis/UV conventions come from :mod:`.conversion`; this module only moves arrays into
``bpy`` data. New data-blocks are always created with ``bpy.data.*.new``, which gives a
unique name (``Name.001``) when the name is taken, so existing user data is never touched.
"""

from __future__ import annotations

import logging

import bpy
import numpy as np

from . import conversion

__all__ = ["UV_LAYER_NAME", "new_face_mesh", "new_face_object", "set_object_pose"]

log = logging.getLogger(__name__)

UV_LAYER_NAME = "UVMap"


def new_face_mesh(name: str, vertices_model: np.ndarray, polygons: np.ndarray,
                  uv_coords: np.ndarray, uv_polygons: np.ndarray) -> bpy.types.Mesh:
    """A new smooth-shaded mesh of triangles and quads with one UV map.

    Args:
        name: wanted mesh name (Blender adds a suffix if it exists).
        vertices_model: ``(V, 3)`` engine model-frame vertices, metres.
        polygons: ``(F, 3)`` triangles, or ``(P, 4)`` quads and triangles (4th corner -1),
            vertex indices, counter-clockwise outward.
        uv_coords: ``(T, 2)`` UVs, origin bottom-left.
        uv_polygons: indices into ``uv_coords``, same shape and -1 corners as ``polygons``.

    Returns:
        The new mesh; its polygons are the given ones in the given order.
    """
    verts = conversion.points_to_blender(vertices_model)
    polys = np.asarray(polygons, dtype=np.int64)
    uv_polys = np.asarray(uv_polygons, dtype=np.int64)
    corner = polys >= 0
    sizes = corner.sum(axis=1).astype(np.int32)
    n_f = len(polys)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.reshape(-1))
    mesh.loops.add(int(sizes.sum()))
    mesh.loops.foreach_set("vertex_index", polys[corner].astype(np.int32))
    mesh.polygons.add(n_f)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    mesh.polygons.foreach_set("loop_start", starts)
    uv_layer = mesh.uv_layers.new(name=UV_LAYER_NAME)
    uv_layer.data.foreach_set("uv", conversion.uvs_to_blender(uv_coords, uv_polys[corner]).reshape(-1))
    mesh.update(calc_edges=True)
    if mesh.validate(verbose=False):
        # validate() returns True when it had to fix something: the input was inconsistent.
        log.warning("mesh %r: Blender corrected invalid geometry in the face model", mesh.name)
    mesh.shade_smooth()
    return mesh


def new_face_object(name: str, mesh: bpy.types.Mesh, collection: bpy.types.Collection) -> bpy.types.Object:
    """A new object using ``mesh``, linked into ``collection`` (unique name)."""
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def set_object_pose(obj: bpy.types.Object, rotation: np.ndarray, translation: np.ndarray) -> None:
    """Place ``obj`` at the engine pose (``(3, 3)`` rotation, ``(3,)`` metres) in Blender axes."""
    from mathutils import Matrix

    mat = conversion.pose_to_blender_matrix(rotation, translation)
    obj.matrix_world = Matrix(mat.tolist())
