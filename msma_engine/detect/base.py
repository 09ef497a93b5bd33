"""The one interface every face detector and 68-point landmarker implements.

Coordinates are continuous pixel coordinates of the photo the backend was
given: origin at the top-left corner, +x right, +y down, pixel centres at
``+0.5`` (docs/CONVENTIONS.md). "Image-left" means smaller x, i.e. the
subject's right side.

Five-point order (MTCNN / Deep3DFaceRecon): image-left eye centre,
image-right eye centre, nose tip, image-left mouth corner, image-right mouth
corner. 68-point order: iBUG 300-W (jaw 0-16 from image-left to
image-right, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from msma_engine.errors import ShapeError

__all__ = [
    "FaceDetection",
    "Landmarks68",
    "FaceDetector",
    "Landmarker68",
    "five_from_68",
    "check_image",
]


@dataclass(frozen=True)
class FaceDetection:
    """One detected face.

    Attributes:
        box: ``(4,)`` float64 ``x0, y0, x1, y1`` in pixels.
        score: Detector confidence in [0, 1].
        points5: ``(5, 2)`` float64 pixels, five-point order (see module doc).
        source: Name of the backend that produced it.
    """

    box: np.ndarray
    score: float
    points5: np.ndarray
    source: str

    def __post_init__(self) -> None:
        box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        points = np.asarray(self.points5, dtype=np.float64)
        if box.shape != (4,):
            raise ShapeError(f"FaceDetection.box must have 4 values, got shape {box.shape}")
        if points.shape != (5, 2):
            raise ShapeError(f"FaceDetection.points5 must be (5, 2), got {points.shape}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "points5", points)
        object.__setattr__(self, "score", float(self.score))

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The box's shorter side in pixels (what "face too small" is judged on)."""
        return min(self.width, self.height)

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(frozen=True)
class Landmarks68:
    """68 facial landmarks of one face.

    Attributes:
        points: ``(68, 2)`` float64 pixels, iBUG 300-W order.
        source: Name of the backend that produced them.
    """

    points: np.ndarray
    source: str

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        if points.shape != (68, 2):
            raise ShapeError(f"Landmarks68.points must be (68, 2), got {points.shape}")
        object.__setattr__(self, "points", points)

    def five(self) -> np.ndarray:
        """The five alignment points derived from these landmarks, ``(5, 2)``."""
        return five_from_68(self.points)


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces and their five alignment points."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces.

        Args:
            image: ``(H, W, 3)`` ``uint8`` RGB.

        Returns:
            Detections sorted by decreasing score (may be empty).
        """
        ...


@runtime_checkable
class Landmarker68(Protocol):
    """Places 68 iBUG landmarks on a detected face."""

    name: str

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """Landmarks of the face ``detection`` points to.

        Args:
            image: ``(H, W, 3)`` ``uint8`` RGB, the image ``detection`` came from.
            detection: The face to mark.

        Returns:
            ``(68, 2)`` float64 pixels, iBUG 300-W order.
        """
        ...


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """Five alignment points from 68 iBUG landmarks, as Deep3DFaceRecon's ``extract_5p``.

    Eye centres are the midpoints of the eye corners (36 & 39, 42 & 45) —
    Deep3DFaceRecon's ``extract_5p`` and ``load_lm3d`` use the corners, not
    all six eye points — the nose tip is point 30, the mouth corners are 48
    and 54.

    Args:
        points68: ``(..., 68, D)`` landmarks (D = 2 or 3).

    Returns:
        ``(..., 5, D)`` in five-point order.
    """
    p = np.asarray(points68)
    if p.ndim < 2 or p.shape[-2] != 68:
        raise ShapeError(f"expected (..., 68, D) landmarks, got shape {p.shape}")
    return np.stack(
        [
            0.5 * (p[..., 36, :] + p[..., 39, :]),
            0.5 * (p[..., 42, :] + p[..., 45, :]),
            p[..., 30, :],
            p[..., 48, :],
            p[..., 54, :],
        ],
        axis=-2,
    )


def check_image(image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is ``(H, W, 3)`` ``uint8`` and return it contiguous.

    Raises:
        ShapeError: wrong shape or dtype (the message gives both).
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(
            f"expected an (H, W, 3) uint8 RGB image (see msma_engine.image_io), got {arr.dtype} {tuple(arr.shape)}"
        )
    return np.ascontiguousarray(arr)
