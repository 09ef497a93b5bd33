"""Rotated regions of interest: cutting a model's input tensor out of a photo and mapping back.

The maths follows MediaPipe's ``ImageToTensorCalculator`` (OpenCV path) and
``LandmarkProjectionCalculator`` so that the ported models see the same pixels
MediaPipe's graphs feed them: the rectangle's corners map to the tensor's
corners (``cv2.boxPoints`` → ``cv2.getPerspectiveTransform``), the image is
resampled with ``INTER_LINEAR`` as ``uint8`` and only then scaled to floats.

Coordinates are photo pixels (docs/CONVENTIONS.md); ``rotation`` is in radians,
positive turning +x towards +y (clockwise on screen, y down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RotatedRect", "warp_rect", "rect_to_image"]


@dataclass(frozen=True)
class RotatedRect:
    """A rotated rectangle in photo pixels.

    Attributes:
        cx, cy: Centre.
        width, height: Side lengths along the rectangle's own axes.
        rotation: Radians, positive clockwise on screen.
    """

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0


def warp_rect(image: np.ndarray, rect: RotatedRect, size: tuple[int, int], replicate_border: bool,
              value_range: tuple[float, float]) -> np.ndarray:
    """The part of ``image`` under ``rect`` as a model input.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        rect: Region to cut out.
        size: Output ``(height, width)`` in tensor pixels.
        replicate_border: Outside the photo, repeat its edge (True) or use black (False).
        value_range: ``(lo, hi)``: pixel value 0 maps to ``lo``, 255 to ``hi``.

    Returns:
        ``(1, height, width, 3)`` float32 NHWC tensor data.
    """
    import cv2

    h, w = size
    src = cv2.boxPoints(((rect.cx, rect.cy), (rect.width, rect.height), math.degrees(rect.rotation)))
    dst = np.array([[0, h], [0, 0], [w, 0], [w, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src.astype(np.float32), dst)
    border = cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT
    crop = cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0))
    lo, hi = value_range
    return (crop.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo))[None]


def rect_to_image(points: np.ndarray, rect: RotatedRect) -> np.ndarray:
    """Map points normalised to ``rect`` (``[0, 1]²`` spans it) to photo pixels.

    Args:
        points: ``(N, 2)`` or ``(N, 3)``; x, y in ``[0, 1]`` over the rectangle; an
            optional z in units of the rectangle's width.

    Returns:
        Same shape, float64: x, y in photo pixels, z in photo pixels.
    """
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0] - 0.5, p[:, 1] - 0.5
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    out = p.copy()
    out[:, 0] = (c * x - s * y) * rect.width + rect.cx
    out[:, 1] = (s * x + c * y) * rect.height + rect.cy
    if p.shape[1] > 2:
        out[:, 2] = p[:, 2] * rect.width
    return out
