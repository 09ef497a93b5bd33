"""MediaPipe Face Mesh with attention (478 points: 468 mesh + 10 iris) in PyTorch.

The network is MediaPipe's ``face_landmark_with_attention.tflite`` (Apache-2.0),
converted by ``tools/convert_mediapipe.py`` and run by
:class:`~msma_engine.detect.tflite_graph.TFLiteGraph` (its three MediaPipe custom
operators included). Around it this module reproduces the
``face_landmark_front`` graph of ``mediapipe.solutions.face_mesh`` with
``refine_landmarks=True`` and ``static_image_mode=True``:

1. region of interest from a BlazeFace detection (``DetectionsToRectsCalculator``
   + ``RectTransformationCalculator``): centred on the box, rotated so the eye
   keypoints lie on a horizontal line, square with side 1.5 × the box's longer side;
2. that square resampled to 192² (edge pixels repeated outside the photo), values in ``[0, 1]``;
3. the six landmark outputs decoded and merged (``LandmarksRefinementCalculator``):
   the lips (80) and eye (2 × 71) submodels replace the mesh's x, y at those
   vertices, the irises (2 × 5) become points 468-477 with the mean z of their
   eye's contour; the face-presence logit gates the result at 0.5;
4. points mapped back to photo pixels (``LandmarkProjectionCalculator``).
"""

from __future__ import annotations

import logging
import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from msma_engine.detect.base import check_image
from msma_engine.detect.blazeface import BlazeFaceBox
from msma_engine.detect.roi import RotatedRect, rect_to_image, warp_rect
from msma_engine.detect.tflite_graph import TFLiteGraph, load_graph

__all__ = ["FaceMesh", "MeshResult", "roi_from_detection", "REFINEMENTS"]

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / "data"
_MODEL = "mediapipe_face_landmark_with_attention.npz"
_SIZE = 192
_ROI_SCALE = 1.5
_PRESENCE = 0.5

# Mesh vertices refined by the lips and eye submodels, in the submodels' output
# order (MediaPipe's tensors_to_face_landmarks_with_attention graph, Apache-2.0).
_LIPS = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
)
_EYE_IMAGE_LEFT = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
    156, 70, 63, 105, 66, 107, 55, 193,
)
_EYE_IMAGE_RIGHT = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
)
REFINEMENTS: dict[str, tuple[int, ...]] = {
    "lips": _LIPS,
    "eye_image_left": _EYE_IMAGE_LEFT,
    "eye_image_right": _EYE_IMAGE_RIGHT,
    "iris_image_left": tuple(range(468, 473)),
    "iris_image_right": tuple(range(473, 478)),
}
"""Output vertex ids each submodel writes (iris z = mean z of the first 16 ids of its eye)."""


def roi_from_detection(detection: BlazeFaceBox) -> RotatedRect:
    """The landmark model's region for one BlazeFace detection (MediaPipe's face ROI)."""
    x0, y0, x1, y1 = detection.box
    (ex0, ey0), (ex1, ey1) = detection.keypoints[0], detection.keypoints[1]
    rotation = math.atan2(ey1 - ey0, ex1 - ex0)
    side = _ROI_SCALE * max(x1 - x0, y1 - y0)
    return RotatedRect(0.5 * (x0 + x1), 0.5 * (y0 + y1), side, side, rotation)


class MeshResult:
    """478 Face Mesh points of one face.

    Attributes:
        points: ``(478, 3)`` float64: x, y photo pixels, z photo pixels (smaller = nearer the camera).
        presence: Face-presence probability in ``[0, 1]``.
        roi: The region the model looked at.
    """

    __slots__ = ("points", "presence", "roi")

    def __init__(self, points: np.ndarray, presence: float, roi: RotatedRect) -> None:
        self.points, self.presence, self.roi = points, presence, roi


@lru_cache(maxsize=None)
def _graph() -> TFLiteGraph:
    return load_graph(DATA / _MODEL)


class FaceMesh:
    """The 478-point attention Face Mesh on a region of interest.

    Raises:
        ModelFileError: the converted model file is missing.
    """

    def __init__(self) -> None:
        self._net = _graph()
        self._lock = threading.Lock()

    def run(self, image: np.ndarray, roi: RotatedRect) -> MeshResult | None:
        """Landmarks of the face in ``roi``; ``None`` when the presence score is below 0.5.

        Args:
            image: ``(H, W, 3)`` ``uint8`` RGB.
            roi: From :func:`roi_from_detection`.
        """
        image = check_image(image)
        tensor = warp_rect(image, roi, (_SIZE, _SIZE), replicate_border=True, value_range=(0.0, 1.0))
        with self._lock, torch.inference_mode():
            mesh, lips, eye_l, eye_r, iris_l, iris_r, flag = (
                o.reshape(-1).double().numpy() for o in self._net(torch.from_numpy(tensor))
            )
        presence = float(1.0 / (1.0 + math.exp(-float(flag[0]))))
        if presence < _PRESENCE:
            logger.debug("face mesh presence %.3f below %.1f", presence, _PRESENCE)
            return None
        points = np.zeros((478, 3))
        points[:468] = mesh.reshape(468, 3)
        for ids, part in ((_LIPS, lips), (_EYE_IMAGE_LEFT, eye_l), (_EYE_IMAGE_RIGHT, eye_r)):
            points[list(ids), :2] = part.reshape(-1, 2)
        points[468:473, :2] = iris_l.reshape(5, 2)
        points[473:478, :2] = iris_r.reshape(5, 2)
        points[468:473, 2] = points[list(_EYE_IMAGE_LEFT[:16]), 2].mean()
        points[473:478, 2] = points[list(_EYE_IMAGE_RIGHT[:16]), 2].mean()
        return MeshResult(rect_to_image(points / _SIZE, roi), presence, roi)
