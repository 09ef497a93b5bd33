"""Face detection and landmarks behind one small interface.

``detect_faces`` finds faces with five alignment points, ``pick_face``
chooses which to use, ``landmarks68`` places 68 iBUG points. Backends live one
per module (:mod:`~msma_engine.detect.mtcnn`, :mod:`~msma_engine.detect.mediapipe_mesh`,
:mod:`~msma_engine.detect.fan`, :mod:`~msma_engine.detect.dlib68`) and are imported only
when used.

Example:
    >>> from msma_engine.image_io import load_image  # doctest: +SKIP
    >>> img = load_image("portrait.jpg").pixels  # doctest: +SKIP
    >>> face = pick_face(detect_faces(img), image_name="portrait.jpg")[0]  # doctest: +SKIP
    >>> lm = landmarks68(img, face).points  # (68, 2) pixels  # doctest: +SKIP
"""

from msma_engine.detect.base import FaceDetection, FaceDetector, Landmarker68, Landmarks68, five_from_68
from msma_engine.detect.select import (
    DETECTORS,
    LANDMARKERS,
    MIN_FACE_SIZE,
    MIN_SCORE,
    detect_faces,
    get_detector,
    get_landmarker,
    landmarks68,
    pick_face,
)

__all__ = [
    "FaceDetection",
    "FaceDetector",
    "Landmarker68",
    "Landmarks68",
    "five_from_68",
    "DETECTORS",
    "LANDMARKERS",
    "MIN_FACE_SIZE",
    "MIN_SCORE",
    "detect_faces",
    "get_detector",
    "get_landmarker",
    "landmarks68",
    "pick_face",
]
