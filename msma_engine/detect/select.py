"""Choosing backends and faces: the functions the rest of the engine calls.

Backends are tried in order of quality and the first that is installed (and
has its weights) is used; each absent one's reason is logged and, if none is
available, reported in the error.

- Five-point detectors: ``"mtcnn"`` (facenet-pytorch weights; the detector
  Deep3DFaceRecon aligns with), then ``"mediapipe"`` (full-range BlazeFace +
  Face Mesh, MediaPipe's models ported to PyTorch). MTCNN stays first although
  BlazeFace is 4-50× faster (benchmarks/bench_detect.py): on 150 tightly cropped
  UTKFace photos BlazeFace found 63 faces, MTCNN 150, and BlazeFace missed the
  astronaut's face at 100 px in a 1000² photo, which MTCNN finds down to 40 px.
- 68-point landmarkers: ``"fan"`` (face-alignment, only with cached weights),
  ``"mediapipe"`` (Face Mesh mapped to iBUG 68; always available, its
  converted weights ship in ``msma_engine/data``), ``"dlib"`` (non-commercial
  predictor, optional).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Literal

import numpy as np

from msma_engine.detect.base import FaceDetection, FaceDetector, Landmarker68, Landmarks68, check_image
from msma_engine.errors import BackendUnavailableError, FaceTooSmallError, MultipleFacesError, NoFaceError

__all__ = [
    "DETECTORS",
    "LANDMARKERS",
    "MIN_FACE_SIZE",
    "MIN_SCORE",
    "clear_backends",
    "get_detector",
    "get_landmarker",
    "detect_faces",
    "landmarks68",
    "pick_face",
]

logger = logging.getLogger(__name__)

MIN_FACE_SIZE = 40.0
"""Smallest face (shorter box side, pixels) :func:`pick_face` accepts by default."""

MIN_SCORE = 0.9
"""Detections below this score are ignored by :func:`pick_face` when a surer one exists."""


def _mtcnn() -> FaceDetector:
    from msma_engine.detect.mtcnn import MTCNNDetector

    return MTCNNDetector()


def _mediapipe_detector() -> FaceDetector:
    from msma_engine.detect.mediapipe_mesh import MediaPipeDetector

    return MediaPipeDetector()


def _fan() -> Landmarker68:
    from msma_engine.detect.fan import FANLandmarker

    return FANLandmarker()


def _mediapipe_landmarker() -> Landmarker68:
    from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker

    return MediaPipeLandmarker()


def _dlib() -> Landmarker68:
    from msma_engine.detect.dlib68 import DlibLandmarker

    return DlibLandmarker()


DETECTORS: dict[str, Callable[[], FaceDetector]] = {"mtcnn": _mtcnn, "mediapipe": _mediapipe_detector}
"""Five-point detector factories in order of preference."""

LANDMARKERS: dict[str, Callable[[], Landmarker68]] = {
    "fan": _fan,
    "mediapipe": _mediapipe_landmarker,
    "dlib": _dlib,
}
"""68-point landmarker factories in order of preference."""


@functools.lru_cache(maxsize=None)
def _build(kind: str, name: str):
    factories = DETECTORS if kind == "detector" else LANDMARKERS
    return factories[name]()


@functools.lru_cache(maxsize=None)
def _resolve(kind: str, name: str):
    # Cached so "auto" probes the missing backends once per process, not on every face.
    factories = DETECTORS if kind == "detector" else LANDMARKERS
    if name != "auto":
        if name not in factories:
            raise ValueError(f"unknown {kind} {name!r}; choose 'auto' or one of {list(factories)}")
        return _build(kind, name)
    reasons = []
    for candidate in factories:
        try:
            return _build(kind, candidate)
        except BackendUnavailableError as exc:
            logger.info("%s %s unavailable: %s", kind, candidate, exc)
            reasons.append(f"{candidate}: {exc}")
    raise BackendUnavailableError(f"no face {kind} is available — " + "; ".join(reasons))


def clear_backends() -> None:
    """Forget the built backends and what ``"auto"`` chose; the next call probes again.

    For a process that installs a backend (or changes :data:`DETECTORS` / :data:`LANDMARKERS`)
    after a first detection.
    """
    _build.cache_clear()
    _resolve.cache_clear()


def get_detector(name: str = "auto") -> FaceDetector:
    """The detector called ``name`` (built once and cached), or the best available for ``"auto"``.

    Raises:
        BackendUnavailableError: the named backend (or, for ``"auto"``, every backend) is missing.
        ValueError: unknown name.
    """
    return _resolve("detector", name)


def get_landmarker(name: str = "auto") -> Landmarker68:
    """The 68-point landmarker called ``name`` (cached), or the best available for ``"auto"``.

    Raises:
        BackendUnavailableError: the named backend (or, for ``"auto"``, every backend) is missing.
        ValueError: unknown name.
    """
    return _resolve("landmarker", name)


def detect_faces(image: np.ndarray, detector: str = "auto") -> list[FaceDetection]:
    """Detect faces and their five alignment points.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB (see :mod:`msma_engine.image_io`).
        detector: ``"auto"``, ``"mtcnn"`` or ``"mediapipe"``.

    Returns:
        Detections by decreasing score; empty if there is no face.
    """
    return get_detector(detector).detect(check_image(image))


def landmarks68(image: np.ndarray, detection: FaceDetection, backend: str = "auto") -> Landmarks68:
    """68 iBUG landmarks of one detected face.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB, the image ``detection`` came from.
        detection: The face.
        backend: ``"auto"``, ``"fan"``, ``"mediapipe"`` or ``"dlib"``.

    Returns:
        :class:`Landmarks68` in image pixels.
    """
    landmarker = get_landmarker(backend)
    points = landmarker.landmarks(check_image(image), detection)
    return Landmarks68(points=points, source=landmarker.name)


def pick_face(
    detections: list[FaceDetection],
    which: Literal["largest", "only", "all"] | int = "largest",
    image_name: str = "image",
    min_size: float = MIN_FACE_SIZE,
    min_score: float = MIN_SCORE,
) -> list[FaceDetection]:
    """Choose the face(s) to reconstruct.

    Faces are numbered left to right (by box centre), so ``which=0`` is the
    leftmost face in the photo.

    Args:
        detections: Output of :func:`detect_faces`.
        which: ``"largest"`` (default), ``"only"`` (exactly one face must be
            present), ``"all"``, or a face number (negative counts from the right).
        image_name: Used in error messages (e.g. the file path).
        min_size: Smallest accepted face, shorter box side in pixels. With
            ``"all"``, smaller faces are skipped as long as one is big enough.
        min_score: Detections scoring below this are dropped before choosing,
            unless none reaches it (then all are kept, so a faint face is still
            usable). MTCNN scores real faces ≥ 0.95 and sometimes reports
            background texture at 0.7-0.85 (e.g. in the Obama portrait).

    Returns:
        The chosen detections: one for ``"largest"``, ``"only"`` and numbers;
        all big-enough faces, left to right, for ``"all"``.

    Raises:
        NoFaceError: no detections, or the face number does not exist.
        MultipleFacesError: ``"only"`` with several faces.
        FaceTooSmallError: the chosen face (every face, for ``"all"``) is smaller than ``min_size``.
        ValueError: an unknown ``which``.
    """
    if not detections:
        raise NoFaceError(f"no face found in {image_name}")
    sure = [d for d in detections if d.score >= min_score]
    if sure and len(sure) < len(detections):
        logger.info("%s: ignoring %d detection(s) scoring below %.2f", image_name, len(detections) - len(sure),
                    min_score)
        detections = sure
    ordered = sorted(detections, key=lambda d: 0.5 * (d.box[0] + d.box[2]))
    n = len(ordered)
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
        if not -n <= which < n:
            raise NoFaceError(f"face number {which} requested but {image_name} has {n} face(s), "
                              f"numbered 0-{n - 1} left to right")
        chosen = [ordered[which]]
    elif which == "largest":
        chosen = [max(ordered, key=lambda d: d.area)]
    elif which == "only":
        if n > 1:
            boxes = ", ".join(f"({d.box[0]:.0f},{d.box[1]:.0f})-({d.box[2]:.0f},{d.box[3]:.0f})" for d in ordered)
            raise MultipleFacesError(
                f"{n} faces found in {image_name} where one was expected: {boxes}; "
                "choose one by number or use 'largest'"
            )
        chosen = ordered
    elif which == "all":
        big = [d for d in ordered if d.size >= min_size]
        if not big:
            largest = max(d.size for d in ordered)
            raise FaceTooSmallError(
                f"all {n} face(s) in {image_name} are too small: the largest is {largest:.0f} px, "
                f"the minimum is {min_size:.0f} px"
            )
        if len(big) < n:
            logger.info("%s: skipping %d face(s) smaller than %.0f px", image_name, n - len(big), min_size)
        return big
    else:
        raise ValueError(f"which must be 'largest', 'only', 'all' or a face number, got {which!r}")
    face = chosen[0]
    if face.size < min_size:
        raise FaceTooSmallError(
            f"the face in {image_name} is too small: {face.width:.0f}x{face.height:.0f} px found, "
            f"the minimum is {min_size:.0f} px; use a larger or closer photo"
        )
    return chosen
