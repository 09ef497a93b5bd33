"""What :func:`msma_engine.reconstruct` returns for one face: plain NumPy, no torch, no bpy.

The Blender extension and the exporters read only this object, so it carries everything
needed to build a mesh with shape keys, a textured material, SH lighting and a matching
camera: the per-face data, and :attr:`FaceResult.topology`, the face model's shared
connectivity, UVs and expression basis (:class:`~msma_engine.topology.FaceTopology`).
Everything is frozen: the dataclasses cannot be re-assigned and their arrays are read-only;
derive a changed result with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

import numpy as np

from msma_engine.errors import ShapeError
from msma_engine.topology import FaceTopology, freeze_arrays, reduce_fields

if TYPE_CHECKING:
    from msma_engine.eyes import Eyeballs
    from msma_engine.mouth import MouthInterior

__all__ = ["FaceResult", "FitMetrics", "FitScores", "PhotoCamera", "Timings"]


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


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds per stage of one face's reconstruction.

    ``detect`` and ``load`` are the photo's, shared equally by the faces of
    :meth:`~msma_engine.pipeline.Reconstructor.reconstruct_all`; ``total`` includes them.

    Attributes:
        load: reading and decoding the photo.
        detect: face detection (share of this face).
        landmarks: 68 landmarks (+ dense points) and the plausibility check.
        align: the 224 crop.
        regress: the network (0 without weights).
        fit: test-time fitting.
        bake: texture baking.
        total: this face's wall time: the stages above plus assembling the result (neutral
            shape, eyes, mouth interior), so a little more than their sum.
        stages: finer sub-stages (``fit_rigid``, ``fit_photo``, ``bake_uv``, ``bake_fill`` ...).
    """

    load: float = 0.0
    detect: float = 0.0
    landmarks: float = 0.0
    align: float = 0.0
    regress: float = 0.0
    fit: float = 0.0
    bake: float = 0.0
    total: float = 0.0
    stages: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", MappingProxyType({k: float(v) for k, v in self.stages.items()}))

    def __reduce__(self) -> tuple:  # a mappingproxy does not pickle
        return type(self), tuple(dict(v) if isinstance(v, MappingProxyType) else v
                                 for v in reduce_fields(self)[1])

    def as_dict(self) -> dict[str, float]:
        """``{stage: seconds}``: the main stages, then the sub-stages (JSON-ready)."""
        out = {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "stages"}
        out.update(self.stages)
        return out


@dataclass(frozen=True, kw_only=True)
class FitScores:
    """Quality figures of one test-time fit (:attr:`msma_engine.fitting.FitOutput.scores`).

    Attributes:
        landmark_nme_start: 68-landmark error of the start point (network or mean face),
            mean distance over the inter-ocular distance.
        landmark_nme_fit: the same after fitting.
        photometric_start: mean per-pixel RGB L2 error on the rendered skin at the start point.
        photometric_fit: the same after fitting.
        dense_nme_fit: dense-point error after fitting (fraction of the inter-ocular distance),
            or None when the fit used the 68 landmarks only.
        prior_strength: scale of the priors in the debiasing refit, from the landmark noise
            (1 = the full priors, as on photos; lower when the points are explained almost exactly).
    """

    landmark_nme_start: float
    landmark_nme_fit: float
    photometric_start: float
    photometric_fit: float
    dense_nme_fit: float | None = None
    prior_strength: float = 1.0

    def as_dict(self) -> dict[str, float]:
        """``{name: value}`` without the figures that were not measured (JSON-ready)."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class FitMetrics(FitScores):
    """Quality figures of one fitted and baked face: the fit's :class:`FitScores` and the bake's.

    Attributes:
        texture_coverage: fraction of the UV-covered texels taken from the photo directly.
        texture_mirrored: fraction filled from the mirrored side.
        texture_seam: colour step where the photo-derived skin meets the model-albedo fill
            (8-bit levels; NaN when there is no such border).
    """

    texture_coverage: float
    texture_mirrored: float
    texture_seam: float = math.nan


@dataclass(frozen=True)
class FaceResult:
    """One reconstructed face (frozen; its arrays are read-only).

    Geometry is in metres. ``model`` frame: +x subject's left, +y up, +z out of the face;
    ``world`` frame: the model frame posed by ``rotation``/``translation``, camera at
    ``(0, 0, camera.distance)`` (docs/CONVENTIONS.md). Mesh connectivity, UVs, expression
    names/ranges/basis and the coefficient layout are in :attr:`topology`, shared by all
    results of a face model; the named coefficient parts (:attr:`expression_weights`,
    :attr:`angles`, :attr:`sh_coeffs`, :attr:`translation`) are views of :attr:`coeffs`.

    Attributes:
        topology: the face model's shared :class:`~msma_engine.topology.FaceTopology`.
        image_path: source photo (or None for in-memory images).
        face_index: index of this face among the detections of the photo (left to right).
        coeffs: ``(C,)`` float32, the full coefficient vector ``id | exp | tex | angles | gamma | trans``.
        vertices_neutral: ``(V, 3)`` identity shape without expression, model frame.
        vertices_model: ``(V, 3)`` identity + expression, model frame.
        vertices_world: ``(V, 3)`` posed vertices, world frame.
        albedo_texture: ``(H, W, 3)`` uint8 sRGB baked albedo in UV space, row 0 at the top.
        rotation: ``(3, 3)`` head rotation (of :attr:`angles`).
        landmarks_2d: ``(68, 2)`` fitted landmarks in photo pixels.
        detected_landmarks: ``(68, 2)`` detector landmarks in photo pixels.
        face_box: ``(4,)`` detector box ``x0, y0, x1, y1`` in photo pixels.
        crop_matrix: ``(2, 3)`` affine map from photo pixels to the 224 crop.
        camera: the photo's camera.
        timings: seconds per stage (:class:`Timings`).
        metrics: quality figures (:class:`FitMetrics`), or None where nothing was fitted
            (results built outside the pipeline).
        eyes: rigid eyeballs seated in the sockets of ``vertices_neutral`` (model frame,
            :class:`msma_engine.eyes.Eyeballs`), or None for models without eye sockets.
        mouth: teeth and tongue of this identity (:class:`msma_engine.mouth.MouthInterior`), or
            None for models without a mouth interior (BFM09).
        detected_dense: ``(478, 2)`` Face Mesh points in photo pixels, or None when the fit
            used the 68 landmarks only.
        landmarks_dense: ``(478, 2)`` the fitted model's dense points in photo pixels, or None.

    Raises:
        ShapeError: ``coeffs`` or the vertices do not match the topology.
    """

    topology: FaceTopology
    image_path: str | None
    face_index: int
    coeffs: np.ndarray
    vertices_neutral: np.ndarray
    vertices_model: np.ndarray
    vertices_world: np.ndarray
    albedo_texture: np.ndarray
    rotation: np.ndarray
    landmarks_2d: np.ndarray
    detected_landmarks: np.ndarray
    face_box: np.ndarray
    crop_matrix: np.ndarray
    camera: PhotoCamera
    timings: Timings = field(default_factory=Timings)
    metrics: FitMetrics | None = None
    eyes: Eyeballs | None = None
    mouth: MouthInterior | None = None
    detected_dense: np.ndarray | None = None
    landmarks_dense: np.ndarray | None = None

    def __post_init__(self) -> None:
        freeze_arrays(self)
        total, nv = self.topology.layout.total, self.topology.n_vertices
        if self.coeffs.shape != (total,):
            raise ShapeError(f"coeffs must be ({total},) for model {self.topology.name!r}, got {self.coeffs.shape}")
        for name in ("vertices_neutral", "vertices_model", "vertices_world"):
            if getattr(self, name).shape != (nv, 3):
                raise ShapeError(f"{name} must be ({nv}, 3) for model {self.topology.name!r}, "
                                 f"got {getattr(self, name).shape}")

    __reduce__ = reduce_fields

    def part(self, name: str) -> np.ndarray:
        """One named part of :attr:`coeffs` (``id``, ``exp``, ``tex``, ``angles``, ``gamma``, ``trans``)."""
        return self.coeffs[self.topology.layout.slices()[name]]

    @property
    def model_name(self) -> str:
        """Name of the face model (``topology.name``)."""
        return self.topology.name

    @property
    def expression_weights(self) -> np.ndarray:
        """``(Kexp,)`` fitted expression coefficients."""
        return self.part("exp")

    @property
    def angles(self) -> np.ndarray:
        """``(3,)`` head angles, radians (pitch, yaw, roll)."""
        return self.part("angles")

    @property
    def sh_coeffs(self) -> np.ndarray:
        """``(27,)`` SH lighting R(9) G(9) B(9) (Deep3DFaceRecon offset applied in shading)."""
        return self.part("gamma")

    @property
    def translation(self) -> np.ndarray:
        """``(3,)`` head translation, metres."""
        return self.part("trans")
