"""The one place where engine conventions become Blender conventions.

Engine (docs/CONVENTIONS.md): metres, right-handed, +x subject's left, +y up, +z out of
the face; camera at ``(0, 0, d)`` looking −z; UV origin bottom-left; textures row 0 at the top.
Blender: metres, right-handed, +Z up, a front view looks along +Y.

The axis change is ``engine (x, y, z) → Blender (x, −z, y)``: the engine's up (+y) becomes
Blender's +Z and the face looks towards Blender's −Y, i.e. at the default front view.
Units need no scaling (both in metres) and UVs need no flip (both bottom-left), but every
builder still goes through this module so a change of convention happens here only.

Pure NumPy; no ``bpy`` import, so the maths is testable without Blender.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AXIS_ENGINE_TO_BLENDER",
    "BlenderCameraSettings",
    "camera_to_blender",
    "engine_from_blender_normal_axes",
    "points_to_blender",
    "pose_to_blender_matrix",
    "rotation_to_blender",
    "texture_to_blender_pixels",
    "uvs_to_blender",
]

# Column-vector matrix: v_blender = M @ v_engine.
AXIS_ENGINE_TO_BLENDER = np.array([[1.0, 0.0, 0.0],
                                   [0.0, 0.0, -1.0],
                                   [0.0, 1.0, 0.0]])

# Blender's camera looks down its local −Z with local +Y up; this Euler XYZ rotation makes
# it look along Blender +Y (= engine −z) with +Z (= engine +y) up, as the engine camera.
_CAMERA_EULER_XYZ = (math.pi / 2, 0.0, 0.0)
# Full-frame width in millimetres; any value works as long as the lens is derived from it.
SENSOR_WIDTH_MM = 36.0


def points_to_blender(points: np.ndarray) -> np.ndarray:
    """Engine points or offsets ``(..., 3)`` metres → Blender axes ``(..., 3)`` metres (float32)."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ AXIS_ENGINE_TO_BLENDER.T).astype(np.float32)


def rotation_to_blender(rotation: np.ndarray) -> np.ndarray:
    """Engine rotation ``(3, 3)`` → the same rotation expressed in Blender axes ``M R Mᵀ``."""
    m = AXIS_ENGINE_TO_BLENDER
    return m @ np.asarray(rotation, dtype=np.float64) @ m.T


def pose_to_blender_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Object matrix ``(4, 4)`` for a mesh whose vertices are engine model-frame points in Blender axes.

    ``v_world = R v + t`` (engine) becomes ``M v_world = (M R Mᵀ)(M v) + M t``.

    Args:
        rotation: ``(3, 3)`` engine head rotation.
        translation: ``(3,)`` engine translation, metres.

    Returns:
        ``(4, 4)`` float64 matrix for ``Object.matrix_world``.
    """
    out = np.eye(4)
    out[:3, :3] = rotation_to_blender(rotation)
    out[:3, 3] = AXIS_ENGINE_TO_BLENDER @ np.asarray(translation, dtype=np.float64).reshape(3)
    return out


def engine_from_blender_normal_axes() -> tuple[tuple[int, float], tuple[int, float], tuple[int, float]]:
    """How to read an engine vector from a Blender vector: ``engine[i] = sign * blender[axis]``.

    Used by the SH node group, which builds the conversion from Separate XYZ + Math nodes.

    Returns:
        ``((axis, sign) for engine x, y, z)`` — ``x = X, y = Z, z = −Y``.
    """
    inv = AXIS_ENGINE_TO_BLENDER.T  # orthonormal: the inverse is the transpose
    out = []
    for row in inv:
        axis = int(np.flatnonzero(row)[0])
        out.append((axis, float(row[axis])))
    return tuple(out)


def uvs_to_blender(uv_coords: np.ndarray, uv_triangles: np.ndarray) -> np.ndarray:
    """Per-loop UVs ``(L, 2)`` float32 from UV indices of the loops in mesh order.

    ``uv_triangles`` is ``(F, 3)`` for a triangle mesh, or the flat ``(L,)`` UV index of
    every loop of a mesh with mixed polygons.

    Both conventions put the UV origin at the bottom-left, so no flip is needed.
    """
    uv = np.asarray(uv_coords, dtype=np.float32)
    return uv[np.asarray(uv_triangles, dtype=np.int64).reshape(-1)]


def texture_to_blender_pixels(texture: np.ndarray) -> np.ndarray:
    """Engine ``(H, W, 3)`` uint8 texture (row 0 top) → flat float32 RGBA for ``Image.pixels`` (row 0 bottom).

    Values stay in the file's (sRGB) encoding; the image's colour space says how to read them.
    """
    tex = np.asarray(texture)
    if tex.ndim != 3 or tex.shape[2] not in (3, 4) or tex.dtype != np.uint8:
        raise ValueError(f"texture must be (H, W, 3) uint8, got {tex.shape} {tex.dtype}")
    h, w = tex.shape[:2]
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., :3] = tex[::-1, :, :3].astype(np.float32) / 255.0
    return rgba.reshape(-1)


@dataclass(frozen=True)
class BlenderCameraSettings:
    """Values for a Blender camera that reproduces a :class:`msma_engine.result.PhotoCamera`.

    Attributes:
        location: ``(3,)`` Blender metres.
        rotation_euler: ``(3,)`` radians, XYZ order.
        lens: focal length in millimetres for ``sensor_width`` (``sensor_fit = 'HORIZONTAL'``).
        sensor_width: millimetres.
        shift_x, shift_y: lens shift as a fraction of the larger image side.
        resolution: ``(width, height)`` pixels.
    """

    location: tuple[float, float, float]
    rotation_euler: tuple[float, float, float]
    lens: float
    sensor_width: float
    shift_x: float
    shift_y: float
    resolution: tuple[int, int]


def camera_to_blender(camera) -> BlenderCameraSettings:
    """Blender camera settings for a photo camera.

    Args:
        camera: :class:`msma_engine.result.PhotoCamera` (``focal`` px, ``center`` ``(cx, cy)`` px from the
            top-left, ``image_size`` ``(H, W)``, ``distance`` metres).

    Returns:
        :class:`BlenderCameraSettings`. Blender's shift is measured in units of the larger image
        side; a principal point left of the centre shifts the frame right (+x), one above the
        centre (smaller v) shifts the frame down (−y).
    """
    h, w = (int(s) for s in camera.image_size)
    cx, cy = (float(c) for c in camera.center)
    location = AXIS_ENGINE_TO_BLENDER @ np.array([0.0, 0.0, float(camera.distance)])
    side = float(max(w, h))
    return BlenderCameraSettings(
        location=tuple(float(v) for v in location),
        rotation_euler=_CAMERA_EULER_XYZ,
        lens=float(camera.focal) * SENSOR_WIDTH_MM / w,
        sensor_width=SENSOR_WIDTH_MM,
        shift_x=(w / 2.0 - cx) / side,
        shift_y=(cy - h / 2.0) / side,
        resolution=(w, h),
    )
