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


def new_face_mesh(name: str, vertices_model: np.ndarray, triangles: np.ndarray,
                  uv_coords: np.ndarray, uv_triangles: np.ndarray) -> bpy.types.Mesh:
    """A new smooth-shaded triangle mesh with one UV map.

    Args:
        name: wanted mesh name (Blender adds a suffix if it exists).
        vertices_model: ``(V, 3)`` engine model-frame vertices, metres.
        triangles: ``(F, 3)`` vertex indices, counter-clockwise outward.
        uv_coords: ``(T, 2)`` UVs, origin bottom-left.
        uv_triangles: ``(F, 3)`` indices into ``uv_coords``.

    Returns:
        The new mesh; its polygons are the triangles in the given order.
    """
    verts = conversion.points_to_blender(vertices_model)
    tris = np.asarray(triangles, dtype=np.int32)
    n_f = len(tris)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.reshape(-1))
    mesh.loops.add(n_f * 3)
    mesh.loops.foreach_set("vertex_index", tris.reshape(-1))
    mesh.polygons.add(n_f)
    mesh.polygons.foreach_set("loop_start", np.arange(0, n_f * 3, 3, dtype=np.int32))
    uv_layer = mesh.uv_layers.new(name=UV_LAYER_NAME)
    uv_layer.data.foreach_set("uv", conversion.uvs_to_blender(uv_coords, uv_triangles).reshape(-1))
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
