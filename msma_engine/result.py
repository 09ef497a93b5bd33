"""What :func:`msma_engine.reconstruct` returns for one face: plain NumPy, no torch, no bpy.

The Blender extension and the exporters read only this object (plus the face model for
the expression basis), so it carries everything needed to build a mesh with shape keys,
a textured material, SH lighting and a matching camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from msma_engine.eyes import Eyeballs
    from msma_engine.mouth import MouthInterior

__all__ = ["FaceResult", "PhotoCamera"]


@dataclass(frozen=True)
class PhotoCamera:
    """Pinhole camera of the original photo, in photo pixels, that sees ``vertices_world``.

    Attributes:
        focal: focal length in photo pixels.
        center: principal point ``(cx, cy)`` in photo pixels (origin top-left, v down).
        image_size: ``(height, width)`` of the photo.
        distance: camera position on +z of the world frame, metres.
    """

    focal: float
    center: tuple[float, float]
    image_size: tuple[int, int]
    distance: float = 1.0


@dataclass
class FaceResult:
    """One reconstructed face.

    Geometry is in metres. ``model`` frame: +x subject's left, +y up, +z out of the face;
    ``world`` frame: the model frame posed by ``rotation``/``translation``, camera at
    ``(0, 0, camera.distance)`` (docs/CONVENTIONS.md).

    Attributes:
        image_path: source photo (or None for in-memory images).
        face_index: index of this face among the detections of the photo.
        model_name: face model used (container ``name``).
        coeffs: ``(C,)`` the full coefficient vector ``id | exp | tex | angles | gamma | trans``.
        vertices_neutral: ``(V, 3)`` identity shape without expression, model frame.
        vertices_model: ``(V, 3)`` identity + expression, model frame.
        vertices_world: ``(V, 3)`` posed vertices, world frame.
        triangles: ``(F, 3)`` int vertex indices, CCW outward.
        uv_coords: ``(T, 2)`` UVs, origin bottom-left; ``uv_triangles`` ``(F, 3)`` index them.
        uv_triangles: ``(F, 3)``.
        expression_names: ``Kexp`` names of the expression basis.
        expression_weights: ``(Kexp,)`` fitted expression coefficients.
        expression_range: ``(Kexp, 2)`` slider range per expression.
        albedo_texture: ``(H, W, 3)`` uint8 sRGB baked albedo in UV space, row 0 at the top.
        sh_coeffs: ``(27,)`` SH lighting R(9) G(9) B(9) (Deep3DFaceRecon offset applied in shading).
        angles: ``(3,)`` radians (pitch, yaw, roll); ``rotation`` ``(3, 3)``; ``translation`` ``(3,)`` metres.
        landmarks_2d: ``(68, 2)`` fitted landmarks in photo pixels.
        detected_landmarks: ``(68, 2)`` detector landmarks in photo pixels.
        face_box: ``(4,)`` detector box ``x0, y0, x1, y1`` in photo pixels.
        crop_matrix: ``(2, 3)`` affine map from photo pixels to the 224 crop.
        camera: the photo's camera.
        timings: seconds per stage (``detect``, ``regress``, ``fit``, ``bake``, ``total`` ...).
        metrics: quality figures (e.g. ``landmark_nme_start``, ``landmark_nme_fit``).
        eyes: rigid eyeballs seated in the sockets of ``vertices_neutral`` (model frame,
            :class:`msma_engine.eyes.Eyeballs`), or None for models without eye sockets.
        polygons: ``(P, 4)`` the model's source polygons (quads; a triangle's 4th corner is -1)
            that ``triangles`` split, or None (BFM09: triangles only); ``uv_polygons`` likewise.
        uv_polygons: ``(P, 4)`` or None.
        mouth: teeth and tongue of this identity (:class:`msma_engine.mouth.MouthInterior`), or
            None for models without a mouth interior (BFM09).
        detected_dense: ``(478, 2)`` Face Mesh points in photo pixels, or None when the fit
            used the 68 landmarks only.
        landmarks_dense: ``(478, 2)`` the fitted model's dense points in photo pixels, or None.
    """

    image_path: str | None
    face_index: int
    model_name: str
    coeffs: np.ndarray
    vertices_neutral: np.ndarray
    vertices_model: np.ndarray
    vertices_world: np.ndarray
    triangles: np.ndarray
    uv_coords: np.ndarray
    uv_triangles: np.ndarray
    expression_names: list[str]
    expression_weights: np.ndarray
    expression_range: np.ndarray
    albedo_texture: np.ndarray
    sh_coeffs: np.ndarray
    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    landmarks_2d: np.ndarray
    detected_landmarks: np.ndarray
    face_box: np.ndarray
    crop_matrix: np.ndarray
    camera: PhotoCamera
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    eyes: Eyeballs | None = None
    polygons: np.ndarray | None = None
    uv_polygons: np.ndarray | None = None
    mouth: MouthInterior | None = None
    detected_dense: np.ndarray | None = None
    landmarks_dense: np.ndarray | None = None
