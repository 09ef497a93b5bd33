"""Turn one :class:`msma_engine.result.FaceResult` into Blender data (main thread only).

Creates, never modifies: a mesh with a UV map, an object named after the photo, "Basis" +
expression shape keys, the albedo image, a material with the SH lighting group, two
eyeball child objects (:mod:`.eyes`), and optionally a camera matching the photo. The
coefficients, pose and lighting are stored as custom properties on the object (``msma_*``)
so they can be read back and re-edited.

The mesh keeps the face model's quads (``result.topology.polygons``; triangles for BFM09). The mouth
interior (teeth, tongue; :mod:`msma_engine.mouth`), when the model has one, is part of the
same mesh: its vertices follow the head's (the first ``V`` vertices are the model's, in
order), its polygons use the "Teeth" and "Tongue" materials and vertex groups
``upper_teeth``, ``lower_teeth``, ``tongue``, and the same shape keys move it (``jawOpen``
swings the lower teeth and tongue), so every exporter keeps them together. A Subdivision
Surface modifier (after the shape keys) smooths the quads when ``subdivision`` > 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from msma_engine.mouth import PART_COLORS

from . import conversion, eyes, material, mesh_builder, shape_keys

__all__ = ["BuildOptions", "SUBSURF_NAME", "build_face_object", "new_photo_camera", "object_name_for",
           "store_result_properties"]

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    """How a face object is built.

    Attributes:
        texture_mode: ``"PACK"`` (albedo packed into the .blend) or ``"SAVE"`` (PNG beside the .blend).
        texture_dir: folder for ``"SAVE"`` (default: the .blend file's folder).
        add_camera: also create a camera matching the photo.
        set_scene_camera: make that camera the scene camera and set the render size to the photo's.
        lighting: initial "Lighting" factor of the SH group (1 = photo lighting, 0 = plain albedo).
        name: object name; default the photo's stem (``"Face"`` for in-memory images).
        add_eyes: add the result's eyeballs (if it has any) as child objects
            ``"<name> Eye.L"`` / ``"<name> Eye.R"``.
        add_mouth: add the result's mouth interior (if it has one) to the face mesh.
        subdivision: Subdivision Surface viewport levels (0 = no modifier); render levels
            are one more.
    """

    texture_mode: str = "PACK"
    texture_dir: str | None = None
    add_camera: bool = False
    set_scene_camera: bool = False
    lighting: float = 1.0
    name: str | None = None
    add_eyes: bool = True
    add_mouth: bool = True
    subdivision: int = 1


SUBSURF_NAME = "MSMA Subdivision"
MOUTH_MATERIALS = {"upper_teeth": "Teeth", "lower_teeth": "Teeth", "tongue": "Tongue"}


def object_name_for(result) -> str:
    """Object name for a result: the photo stem, plus ``.face<i>`` for faces after the first."""
    stem = Path(result.image_path).stem if result.image_path else "Face"
    return stem if result.face_index == 0 else f"{stem}.face{result.face_index}"


def build_face_object(result, collection: bpy.types.Collection,
                      options: BuildOptions | None = None, scene: bpy.types.Scene | None = None,
                      vertices_neutral: np.ndarray | None = None,
                      all_expression_values: np.ndarray | None = None) -> bpy.types.Object:
    """Build the face object of one result.

    Args:
        result: :class:`msma_engine.result.FaceResult` (its topology gives the mesh and the shape keys).
        collection: where the new objects are linked.
        options: :class:`BuildOptions`.
        scene: scene for ``options.set_scene_camera``.
        vertices_neutral: ``(V, 3)`` identity to use instead of ``result.vertices_neutral``
            (animation keeps one identity over frames).
        all_expression_values: ``(T, Kexp)`` values that will be keyframed (slider ranges cover them).

    Returns:
        The new object (camera, if any, in ``obj["msma_camera"]``; eye objects, if any, are
        its children, names in ``obj["msma_eyes"]``).
    """
    opts = options or BuildOptions()
    name = opts.name or object_name_for(result)
    neutral = result.vertices_neutral if vertices_neutral is None else vertices_neutral
    topo = result.topology
    geo = _face_geometry(result, neutral, add_mouth=opts.add_mouth, reseat=vertices_neutral is not None)
    mesh = mesh_builder.new_face_mesh(name, geo.vertices, geo.polygons, geo.uv_coords, geo.uv_polygons)
    obj = mesh_builder.new_face_object(name, mesh, collection)
    shape_keys.add_expression_keys(obj, geo.vertices, geo.exp_basis, list(topo.expression_names),
                                   topo.expression_range, result.expression_weights,
                                   all_values=all_expression_values)
    texture_dir = opts.texture_dir
    if opts.texture_mode == "SAVE" and texture_dir is None:
        if not bpy.data.filepath:
            raise ValueError("save the .blend file first, or choose to pack the texture")
        texture_dir = str(Path(bpy.path.abspath("//")))
    image = material.new_albedo_image(f"{obj.name} albedo", result.albedo_texture, opts.texture_mode, texture_dir)
    mat = material.new_face_material(f"{obj.name}", image, result.sh_coeffs, lighting=opts.lighting,
                                     texture=result.albedo_texture)
    mesh.materials.append(mat)
    if geo.mouth is not None:
        _add_mouth_parts(obj, geo)
    if opts.subdivision > 0:
        mod = obj.modifiers.new(SUBSURF_NAME, "SUBSURF")
        mod.levels, mod.render_levels = int(opts.subdivision), int(opts.subdivision) + 1
    mesh_builder.set_object_pose(obj, result.rotation, result.translation)
    store_result_properties(obj, result)
    if opts.add_eyes and result.eyes is not None:
        eyes.add_eye_objects(obj, result.eyes, collection, opts.texture_mode, texture_dir,
                             vertices_neutral=vertices_neutral)
    if opts.add_camera:
        cam = new_photo_camera(f"{obj.name} Camera", result.camera, collection)
        obj["msma_camera"] = cam.name
        if opts.set_scene_camera and scene is not None:
            scene.camera = cam
            scene.render.resolution_x, scene.render.resolution_y = cam.data["msma_resolution"]
            scene.render.resolution_percentage = 100
    log.info("built %r: %d vertices (%d head), %d polygons, %d shape keys", obj.name, len(mesh.vertices), geo.n_head,
             len(mesh.polygons), len(topo.expression_names))
    return obj


@dataclass
class _FaceGeometry:
    """Head (+ mouth interior) arrays of one face mesh, engine model frame, metres."""

    vertices: np.ndarray  # (V + Vi, 3)
    polygons: np.ndarray  # (P, 4) or (F, 3)
    uv_coords: np.ndarray
    uv_polygons: np.ndarray
    exp_basis: np.ndarray  # (K, V + Vi, 3)
    n_head: int
    mouth: object = None  # MouthInterior or None
    n_head_polygons: int = 0


def _face_geometry(result, neutral: np.ndarray, add_mouth: bool, reseat: bool) -> _FaceGeometry:
    """The mesh arrays: the model's polygons (quads when it has them) and the mouth interior
    (re-fitted to ``neutral`` when ``reseat``, i.e. ``neutral`` is not the result's own)."""
    topo = result.topology
    polys, uv_polys = topo.polygons, topo.uv_polygons
    if polys is None:
        polys, uv_polys = topo.triangles, topo.uv_triangles
    polys, uv_polys = np.asarray(polys, np.int64), np.asarray(uv_polys, np.int64)
    neutral = np.asarray(neutral, np.float64)
    exp_basis = np.asarray(topo.expression_basis, np.float64)
    n_v = len(neutral)
    mouth = result.mouth if add_mouth else None
    if mouth is None:
        return _FaceGeometry(neutral, polys, topo.uv_coords, uv_polys, exp_basis, n_v, None, len(polys))
    if reseat:
        mouth = mouth.reseated(neutral)
    if polys.shape[1] == 3:
        pad = np.full((len(polys), 1), -1, np.int64)
        polys, uv_polys = np.hstack([polys, pad]), np.hstack([uv_polys, pad])
    m_polys = np.asarray(mouth.polygons, np.int64)
    # The interior is untextured (own materials): every corner uses one extra UV at (0, 0).
    uv_coords = np.vstack([topo.uv_coords, np.zeros((1, 2), np.float32)])
    m_uv = np.where(m_polys >= 0, len(topo.uv_coords), -1)
    return _FaceGeometry(
        vertices=np.vstack([neutral, mouth.vertices_neutral]),
        polygons=np.vstack([polys, np.where(m_polys >= 0, m_polys + n_v, -1)]),
        uv_coords=uv_coords, uv_polygons=np.vstack([uv_polys, m_uv]),
        exp_basis=np.concatenate([exp_basis, np.asarray(mouth.exp_basis, np.float64)], axis=1),
        n_head=n_v, mouth=mouth, n_head_polygons=len(polys))


def _add_mouth_parts(obj: bpy.types.Object, geo: _FaceGeometry) -> None:
    """Materials and vertex groups of the interior polygons (after the head's)."""
    mesh, mouth = obj.data, geo.mouth
    slots = {}
    for name in dict.fromkeys(MOUTH_MATERIALS.get(p, p) for p in mouth.part_names):
        part = next(p for p in mouth.part_names if MOUTH_MATERIALS.get(p, p) == name)
        mesh.materials.append(material.new_plain_material(f"{obj.name} {name}", PART_COLORS.get(part, (0.8,) * 3),
                                                          roughness=0.35 if name == "Teeth" else 0.5))
        slots[name] = len(mesh.materials) - 1
    index = np.zeros(len(mesh.polygons), np.int32)
    index[geo.n_head_polygons:] = [slots[MOUTH_MATERIALS.get(mouth.part_names[p], mouth.part_names[p])]
                                   for p in mouth.part]
    mesh.polygons.foreach_set("material_index", index)
    for part in mouth.part_names:
        group = obj.vertex_groups.new(name=part)
        group.add([int(i) + geo.n_head for i in mouth.part_vertices(part)], 1.0, "REPLACE")
    obj["msma_mouth_parts"] = list(mouth.part_names)
    mesh.update()


def store_result_properties(obj: bpy.types.Object, result) -> None:
    """Keep the reconstruction on the object as ``msma_*`` custom properties (plain lists)."""
    as_list = lambda a: [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]  # noqa: E731
    obj["msma_model"] = str(result.topology.name)
    obj["msma_image"] = str(result.image_path or "")
    obj["msma_face_index"] = int(result.face_index)
    obj["msma_coeffs"] = as_list(result.coeffs)
    obj["msma_expression_weights"] = as_list(result.expression_weights)
    obj["msma_angles"] = as_list(result.angles)
    obj["msma_translation"] = as_list(result.translation)
    obj["msma_sh"] = as_list(result.sh_coeffs)
    cam = result.camera
    obj["msma_photo_camera"] = {"focal": float(cam.focal), "center": [float(c) for c in cam.center],
                                "image_size": [int(s) for s in cam.image_size], "distance": float(cam.distance)}


def new_photo_camera(name: str, photo_camera, collection: bpy.types.Collection) -> bpy.types.Object:
    """A new camera object that sees the world as the photo's camera did."""
    settings = conversion.camera_to_blender(photo_camera)
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = settings.sensor_width
    data.lens = settings.lens
    data.shift_x, data.shift_y = settings.shift_x, settings.shift_y
    data.clip_start, data.clip_end = 0.01, 100.0
    data["msma_resolution"] = list(settings.resolution)
    cam = bpy.data.objects.new(name, data)
    cam.location = settings.location
    cam.rotation_euler = settings.rotation_euler
    collection.objects.link(cam)
    return cam
