"""Photo → :class:`~msma_engine.result.FaceResult`: the engine's main pipeline.

    load image → detect faces → pick face(s) → 68 landmarks (+ the 478 dense Face Mesh
    points when the model has a dense correspondence) → align to the 224 crop
    (5-point template from the model's mean landmarks) → network regression (with weights)
    or the mean face posed from the landmarks → test-time fitting → texture baking →
    FaceResult (photo-space landmarks and camera through the crop's inverse).

:class:`Reconstructor` loads the face model, the network and the detectors once and keeps
them; :func:`reconstruct` is the one-call form and caches its last reconstructors (keyed
by model, weights and device), so calling it in a loop costs no reloads.

Example:
    >>> from msma_engine import reconstruct
    >>> result = reconstruct("portrait.jpg", fit="fast")  # doctest: +SKIP
    >>> result.vertices_world.shape, result.albedo_texture.shape  # doctest: +SKIP
    ((V, 3), (1024, 1024, 3))
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from msma_engine.align import CropTransform, align_crop, template_from_landmarks68
from msma_engine.baking import TextureBaker
from msma_engine.detect import (
    MIN_FACE_SIZE,
    FaceDetection,
    detect_faces,
    five_from_68,
    get_landmarker,
    landmarks68,
    pick_face,
)
from msma_engine.errors import BackendUnavailableError, NoFaceError, ShapeError
from msma_engine.eyes import eyeballs_for, iris_color_from_photo
from msma_engine.face_model import FaceModel, load_face_model
from msma_engine.fitting import QUALITY_PRESETS, FaceFitter, FitConfig, FitTarget
from msma_engine.image_io import LoadedImage, load_image, load_image_array
from msma_engine.mouth import mouth_interior_for
from msma_engine.plausibility import check_face_plausible
from msma_engine.render import RenderContext
from msma_engine.result import FaceResult, FitMetrics, PhotoCamera, Timings
from msma_engine.timing import Stopwatch, timed

__all__ = ["reconstruct", "reconstruct_all", "cached_reconstructor", "clear_cache", "Reconstructor", "FitQuality",
           "FaceChoice"]

logger = logging.getLogger(__name__)

FitQuality = Literal["fast", "default"] | None
FaceChoice = Literal["largest", "only"] | int

# Without fitting, only the landmark-free closed-form light solve runs (the pose comes from
# the network, or from PnP on the landmarks for the mean face).
_NO_FIT = FitConfig(rigid_iters=0, shape_iters=0, light_rounds=1, photo_steps=0, render_size=128)


class Reconstructor:
    """A loaded pipeline: face model, optional network, detectors, fitter and baker.

    Args:
        model: a :class:`FaceModel`, a model file path, or None for the shipped default head.
        weights: network weights file (:func:`msma_engine.network.load_weights`); None = no
            network, start from the mean face.
        device: torch device for the model, network and renderer.
        detector: face-detector backend (``"auto"``, ``"mtcnn"``, ``"mediapipe"``).
        landmarker: 68-point backend (``"auto"``, ``"fan"``, ``"mediapipe"``, ``"dlib"``).
        min_face_size: smallest face (shorter box side, pixels) accepted.

    Raises:
        ModelFileError: the model file is missing or invalid.
        WeightsError: the weights are unreadable or do not fit the model.
    """

    def __init__(self, model: FaceModel | str | Path | None = None, weights: str | Path | None = None, *,
                 device: str | torch.device = "cpu", detector: str = "auto", landmarker: str = "auto",
                 min_face_size: float = MIN_FACE_SIZE) -> None:
        self.device = torch.device(device)
        if isinstance(model, FaceModel):
            self.model = model
        else:
            self.model = load_face_model(model)
        self.model = self.model.to(self.device).eval()
        self.network = None
        if weights is not None:
            from msma_engine.network import load_weights

            lay = self.model.layout
            self.network = load_weights(weights, n_id=lay.n_id, n_exp=lay.n_exp, n_tex=lay.n_tex,
                                        map_location=self.device)
        self.detector = detector
        self.landmarker = landmarker
        self.min_face_size = float(min_face_size)
        self.ctx = RenderContext("auto" if self.device.type == "cuda" else "torch")
        with torch.no_grad():
            lm3d = self.model.mean_shape[self.model.landmark_indices].double().cpu().numpy()
        self.template = template_from_landmarks68(lm3d)
        self.baker = TextureBaker(self.model, ctx=self.ctx)
        self._fitters: dict[str, FaceFitter] = {}

    def _landmarks(self, pixels: np.ndarray, detection: FaceDetection, fit: FitQuality
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(68, 2)`` landmarks and, when the fit can use them, the ``(478, 2)`` dense points.

        The dense points come from Face Mesh (:meth:`MediaPipeLandmarker.mesh`); when the
        68-point landmarker is Face Mesh too, the 68 are taken from the same mesh.
        """
        dense = None
        wants_dense = fit is not None and self._fitter(fit).config.dense and self._fitter(fit).has_dense
        if wants_dense:
            try:
                from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker, mesh_to_ibug68

                mesh = get_landmarker("mediapipe").mesh(pixels, detection)[:, :2]
                dense = mesh
                if isinstance(get_landmarker(self.landmarker), MediaPipeLandmarker):
                    return mesh_to_ibug68(mesh), dense
            except (BackendUnavailableError, NoFaceError) as exc:
                logger.warning("no dense Face Mesh points (%s); fitting the 68 landmarks only", exc)
        return landmarks68(pixels, detection, self.landmarker).points, dense

    def _fitter(self, fit: FitQuality) -> FaceFitter:
        key = "none" if fit is None else fit
        if key not in self._fitters:
            if fit is not None and fit not in QUALITY_PRESETS:
                raise ValueError(f"fit must be one of {sorted(QUALITY_PRESETS)} or None, got {fit!r}")
            self._fitters[key] = FaceFitter(self.model, _NO_FIT if fit is None else fit, ctx=self.ctx)
        return self._fitters[key]

    # --- public ----------------------------------------------------------------------------
    def reconstruct(self, image: str | Path | np.ndarray | LoadedImage, *, fit: FitQuality = "default",
                    texture_size: int = 1024, face: FaceChoice = "largest") -> FaceResult:
        """Reconstruct one face of a photo.

        Args:
            image: file path, ``(H, W, 3)`` uint8 RGB array (other layouts go through
                :func:`msma_engine.image_io.load_image_array`) or a loaded image.
            fit: test-time fitting quality, or None for the start point only (network output,
                or the mean face posed from the landmarks).
            texture_size: side of the baked albedo texture, 64-4096.
            face: ``"largest"``, ``"only"`` (exactly one face) or a face number (left to
                right, from 0); every face: :meth:`reconstruct_all`.

        Returns:
            One :class:`FaceResult`.

        Raises:
            ImageError, NoFaceError, FaceTooSmallError, MultipleFacesError: unusable input.
            ValueError: an unknown ``fit`` or ``face``.
        """
        if face == "all":
            raise ValueError("reconstruct() returns one face; use reconstruct_all() for every face")
        return self._reconstruct(image, fit, texture_size, face)[0]

    def reconstruct_all(self, image: str | Path | np.ndarray | LoadedImage, *, fit: FitQuality = "default",
                        texture_size: int = 1024) -> list[FaceResult]:
        """Reconstruct every usable face of a photo (see :meth:`reconstruct` for the arguments).

        Returns:
            One :class:`FaceResult` per face, left to right; the photo's ``load`` and ``detect``
            seconds are shared equally among them.

        Raises:
            ImageError, NoFaceError, FaceTooSmallError: no usable face.
        """
        return self._reconstruct(image, fit, texture_size, "all")

    def _reconstruct(self, image: str | Path | np.ndarray | LoadedImage, fit: FitQuality, texture_size: int,
                     face: FaceChoice | Literal["all"]) -> list[FaceResult]:
        if fit is not None and fit not in QUALITY_PRESETS:
            raise ValueError(f"fit must be one of {sorted(QUALITY_PRESETS)} or None, got {fit!r}")
        photo: dict[str, float] = {}
        with timed(photo, "load"):
            loaded = _load(image)
        with timed(photo, "detect"):
            detections = detect_faces(loaded.pixels, self.detector)
            chosen = pick_face(detections, face, image_name=loaded.name, min_size=self.min_face_size)
        ordered = sorted(detections, key=lambda d: 0.5 * (d.box[0] + d.box[2]))
        results = []
        for det in chosen:
            index = next(i for i, d in enumerate(ordered) if d is det)
            res = self.reconstruct_detection(loaded, det, index=index, fit=fit, texture_size=texture_size)
            share = {k: v / len(chosen) for k, v in photo.items()}
            timings = dataclasses.replace(res.timings, **share, total=res.timings.total + sum(share.values()))
            results.append(dataclasses.replace(res, timings=timings))
        return results

    @torch.no_grad()
    def _regress(self, crop: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(crop, dtype=torch.float32, device=self.device).permute(2, 0, 1)[None] / 255.0
        return self.network.predict_crops(x).float()

    def reconstruct_detection(self, loaded: LoadedImage, detection: FaceDetection, *, index: int = 0,
                              fit: FitQuality = "default", texture_size: int = 1024) -> FaceResult:
        """Reconstruct one already detected face (see :meth:`reconstruct` for the arguments)."""
        timings: dict[str, float] = {}
        clock = Stopwatch()
        pixels = loaded.pixels
        with timed(timings, "landmarks"):
            lm, dense = self._landmarks(pixels, detection, fit)
            check_face_plausible(pixels, detection, lm, self.detector, loaded.name)  # e.g. an upside-down photo

        with timed(timings, "align"):
            crop = align_crop(five_from_68(lm), self.template)
            size = self.model.camera.image_size[0]
            crop_img = crop.warp(pixels, size)
            valid = crop.warp(np.ones(pixels.shape[:2], np.float32), size)
            lm_crop = crop.apply(lm)

        with timed(timings, "regress"):
            init = self._regress(crop_img) if self.network is not None else None

        with timed(timings, "fit"):
            dev = self.device
            target = FitTarget(
                image=torch.as_tensor(crop_img, dtype=torch.float32, device=dev).permute(2, 0, 1)[None] / 255.0,
                landmarks=torch.as_tensor(lm_crop, dtype=torch.float32, device=dev)[None],
                valid=torch.as_tensor(valid, dtype=torch.float32, device=dev)[None, None],
                dense=None if dense is None else torch.as_tensor(crop.apply(dense), dtype=torch.float32,
                                                                 device=dev)[None],
            )
            fitted = self._fitter(fit).fit(target, init=init, rigid_init=init is None)
            coeffs = fitted.coeffs

        with timed(timings, "bake"):
            baked = self.baker.bake(coeffs, pixels, crop, texture_size, dense_landmarks=dense)
        stages = {k: v for k, v in {**fitted.timings, **baked.timings}.items() if k not in ("fit", "bake")}
        metrics = FitMetrics(**vars(fitted.scores), texture_coverage=baked.coverage,
                             texture_mirrored=baked.mirrored, texture_seam=baked.seam)
        dense_pair = None
        if dense is not None:
            with torch.no_grad():
                fitted_dense = self._fitter(fit).dense_points(coeffs)[0].cpu().double().numpy()
            dense_pair = (np.asarray(dense, dtype=np.float64), crop.inverse(fitted_dense))
        result = self._result(loaded, index, detection, lm, crop, coeffs, baked.texture, metrics, dense_pair)
        return dataclasses.replace(result, timings=Timings(**timings, total=clock.elapsed, stages=stages))

    def _result(self, loaded: LoadedImage, index: int, det: FaceDetection, lm: np.ndarray, crop: CropTransform,
                coeffs: torch.Tensor, texture: np.ndarray, metrics: FitMetrics,
                dense: tuple[np.ndarray, np.ndarray] | None = None) -> FaceResult:
        m = self.model
        with torch.no_grad():
            out = m(coeffs)
            c = m.layout.split(coeffs)
            neutral = m.shape(c.id, torch.zeros_like(c.exp))
        a = crop.matrix[:, :2]
        # align_crop is a scale and a translation; a rotated crop would need the pose re-expressed.
        assert abs(a[0, 1]) < 1e-9 and abs(a[1, 0]) < 1e-9 and abs(a[0, 0] - a[1, 1]) < 1e-9 * abs(a[0, 0]), a
        cam = m.camera
        centre = crop.inverse(np.asarray(cam.center, dtype=np.float64))
        photo_cam = PhotoCamera(focal=float(cam.focal / crop.scale), center=(float(centre[0]), float(centre[1])),
                                image_size=(int(loaded.pixels.shape[0]), int(loaded.pixels.shape[1])),
                                distance=float(cam.distance))
        np_ = lambda t: t[0].detach().cpu().double().numpy()  # noqa: E731
        neutral_np = np_(neutral).astype(np.float32)
        eyes = eyeballs_for(m, neutral_np, iris_color_from_photo(loaded.pixels, lm if dense is None else dense[0]))
        return FaceResult(
            topology=m.topology,
            image_path=str(loaded.path) if loaded.path is not None else None,
            face_index=int(index),
            coeffs=np_(coeffs).astype(np.float32),
            vertices_neutral=neutral_np,
            vertices_model=np_(out.vertices_model).astype(np.float32),
            vertices_world=np_(out.vertices).astype(np.float32),
            albedo_texture=texture,
            rotation=np_(out.rotation),
            landmarks_2d=crop.inverse(np_(out.landmarks_2d)),
            detected_landmarks=np.asarray(lm, dtype=np.float64),
            face_box=np.asarray(det.box, dtype=np.float64),
            crop_matrix=crop.matrix.copy(),
            camera=photo_cam,
            metrics=metrics,
            eyes=eyes,
            mouth=mouth_interior_for(m, np_(c.id)),
            detected_dense=None if dense is None else dense[0],
            landmarks_dense=None if dense is None else dense[1],
        )


def _load(image: str | Path | np.ndarray | LoadedImage) -> LoadedImage:
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        return load_image_array(image)
    raise ShapeError(f"image must be a file path, a NumPy array or a LoadedImage, got {type(image).__name__}")


_CACHE: OrderedDict[tuple, Reconstructor] = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def cached_reconstructor(model: FaceModel | str | Path | None = None, weights: str | Path | None = None,
                         device: str = "cpu") -> Reconstructor:
    """The :class:`Reconstructor` that :func:`reconstruct` uses for these arguments.

    Loaded once and kept (the two most recently used); thread-safe. Use it for the
    lower-level calls (e.g. :meth:`Reconstructor.reconstruct_detection`) without a second load.
    """
    if isinstance(model, FaceModel):
        mkey = ("obj", id(model))
    else:
        mkey = ("path", str(Path(model).resolve()) if model else None)
    key = (mkey, str(Path(weights).resolve()) if weights else None, str(torch.device(device)))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    rec = Reconstructor(model, weights, device=device)
    with _CACHE_LOCK:
        _CACHE[key] = rec
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return rec


def clear_cache() -> None:
    """Forget the cached reconstructors (frees their models and weights)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def reconstruct(image: str | Path | np.ndarray, *, model: FaceModel | str | Path | None = None,
                weights: str | Path | None = None, fit: FitQuality = "default", texture_size: int = 1024,
                face: FaceChoice = "largest", device: str = "cpu") -> FaceResult:
    """Reconstruct one face of a photo (one call; loaded pipelines are cached).

    Args:
        image: file path or ``(H, W, 3)`` uint8 RGB array.
        model: face model (object or ``.npz`` path); None = the shipped default head.
        weights: network weights; None = start from the mean face.
        fit: ``"fast"``, ``"default"`` or None (no test-time fitting).
        texture_size: albedo texture side in texels (default 1024).
        face: ``"largest"``, ``"only"`` or a face number (left to right); every face:
            :func:`reconstruct_all`.
        device: ``"cpu"`` or a CUDA device.

    Returns:
        One :class:`FaceResult`.

    Raises:
        ImageError: unreadable image. NoFaceError / FaceTooSmallError / MultipleFacesError:
        no usable face. ModelFileError / WeightsError: bad model or weights files.
    """
    rec = cached_reconstructor(model, weights, device)
    return rec.reconstruct(image, fit=fit, texture_size=texture_size, face=face)


def reconstruct_all(image: str | Path | np.ndarray, *, model: FaceModel | str | Path | None = None,
                    weights: str | Path | None = None, fit: FitQuality = "default", texture_size: int = 1024,
                    device: str = "cpu") -> list[FaceResult]:
    """Reconstruct every usable face of a photo, left to right (arguments as :func:`reconstruct`)."""
    return cached_reconstructor(model, weights, device).reconstruct_all(image, fit=fit, texture_size=texture_size)
