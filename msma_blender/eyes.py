"""Eyeball objects for a face object (main thread only).

The engine seats two rigid spheres in the eye sockets (:mod:`msma_engine.eyes`, model frame);
here they become two new mesh objects, ``"<face> Eye.L"`` (subject's left) and
``"<face> Eye.R"``, parented to the face object with an identity parent inverse, so
they sit where the engine put them and follow every move of the head. They share one
material with the packed (or saved) procedural eye texture. New data-blocks only; Blender
adds ``.001`` suffixes when names are taken.

When the face has ``eyeLook{In,Out,Up,Down}{Left,Right}`` shape keys, each eye gets shape
keys of the same names that turn it about its centre (:func:`msma_engine.eyes.eye_look_targets`),
driven by the face's keys: moving the face's ``eyeLookOutLeft`` slider turns the left
eyeball, and .glb/.fbx exports carry the eyes' keys as morph targets / blend shapes.
"""

from __future__ import annotations

import logging

import bpy
import numpy as np

from msma_engine.eyes import eye_look_targets

from . import material, mesh_builder, shape_keys

__all__ = ["add_eye_objects", "new_eye_material"]

log = logging.getLogger(__name__)

def new_eye_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    """A new glossy material: the eye image straight into a Principled BSDF."""
    mat, bsdf, tex = material.new_image_material(name, image, "MSMA Eye", roughness=0.15)  # wet cornea
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    mat.diffuse_color = (0.9, 0.88, 0.85, 1.0)
    return mat


def add_eye_objects(face_obj: bpy.types.Object, eyes, collection: bpy.types.Collection, texture_mode: str = "PACK",
                    texture_dir: str | None = None,
                    vertices_neutral: np.ndarray | None = None) -> list[bpy.types.Object]:
    """Create the two eyeball objects as children of ``face_obj``.

    Args:
        face_obj: the face object (its mesh is in the engine model frame, converted).
        eyes: :class:`msma_engine.eyes.Eyeballs` of the result.
        collection: where the eye objects are linked.
        texture_mode, texture_dir: as :func:`.material.new_albedo_image`.
        vertices_neutral: ``(V, 3)`` the identity the face was built on when it is not the
            result's (the animation's identity): the eyes are re-seated on it.

    Returns:
        ``[left, right]`` eye objects (``obj["msma_eye"]`` is ``"L"`` / ``"R"``).
    """
    image = material.new_albedo_image(f"{face_obj.name} eyes", eyes.texture, texture_mode, texture_dir)
    mat = new_eye_material(f"{face_obj.name} Eyes", image)
    if vertices_neutral is not None:
        eyes = eyes.reseated(vertices_neutral)
    objs = []
    for eye in eyes:
        verts = np.asarray(eye.vertices, dtype=np.float64)
        name = f"{face_obj.name} Eye.{eye.side}"
        mesh = mesh_builder.new_face_mesh(name, verts, eyes.triangles, eyes.uv_coords, eyes.uv_triangles)
        mesh.materials.append(mat)
        obj = mesh_builder.new_face_object(name, mesh, collection)
        obj.parent = face_obj
        obj.matrix_parent_inverse.identity()
        obj["msma_eye"] = eye.side
        obj["msma_eye_radius"] = float(eye.radius)
        obj["msma_eye_centre"] = [float(c) for c in eye.centre]
        face_keys = face_obj.data.shape_keys
        if face_keys is not None:
            names, offsets = eye_look_targets(eye, [k.name for k in face_keys.key_blocks])
            if names:
                shape_keys.add_driven_keys(obj, verts, offsets, names, face_obj)
        objs.append(obj)
    face_obj["msma_eyes"] = [o.name for o in objs]
    log.info("added eyes %r to %r", [o.name for o in objs], face_obj.name)
    return objs
