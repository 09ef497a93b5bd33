"""Refuse faces the pipeline cannot reconstruct sensibly: upside-down photos and impossible landmarks.

A vertically flipped photo does not fail on its own: the detector still reports a "face"
(MTCNN at score 0.91 on the flipped astronaut) and the 68-point landmarker fits an upright
face template into it, so the fit converges to a garbage face with a normal-looking
landmark error. Two checks catch this before any fitting:

- **Orientation.** The detector is run on the face's neighbourhood as it is and flipped
  upside down; an upright face scores higher as it is. Scores saturate near 1, so they are
  compared as log-odds. On 103 upright faces (CelebA, LFW, UTKFace, the public-domain
  portraits, the astronaut) the flipped crop scored at least 3.1 log-odds lower; on all 51
  faces still detected after flipping those photos, at least 3.05 higher.
- **Landmark geometry.** In the face's own frame (x from the image-left to the image-right
  eye) the mouth must lie below the eye line and the roll must be within ±90°.
"""

from __future__ import annotations

import logging

import numpy as np

from msma_engine.errors import ImplausibleFaceError

__all__ = ["check_face_plausible", "check_landmark_geometry", "check_upright"]

logger = logging.getLogger(__name__)

MIN_MOUTH_BELOW_EYES = 0.3
"""Smallest distance of the mouth centre below the eye line, in inter-ocular distances (upright faces: 0.7-1.2)."""

FLIP_MARGIN = 0.0
"""Log-odds by which the upside-down crop must outscore the upright one (measured gap: ±3 either side)."""


def check_landmark_geometry(landmarks: np.ndarray, name: str = "image") -> None:
    """Raise when 68 iBUG landmarks ``(68, 2)`` (pixels) do not form an upright face.

    Raises:
        ImplausibleFaceError: the mouth is not below the eye line, or the roll exceeds ±90°;
            the message gives the measured values.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    iod = float(np.linalg.norm(right - left))
    if not np.isfinite(iod) or iod < 1e-6:
        raise ImplausibleFaceError(f"{name}: the eyes found coincide (inter-ocular distance {iod:.3g} px)")
    x_axis = (right - left) / iod
    down = np.array([-x_axis[1], x_axis[0]])  # image y points down
    mouth_below = float((lm[48:68].mean(axis=0) - 0.5 * (left + right)) @ down / iod)
    roll = float(np.degrees(np.arctan2(x_axis[1], x_axis[0])))
    if mouth_below < MIN_MOUTH_BELOW_EYES or abs(roll) > 90.0:
        raise ImplausibleFaceError(
            f"{name}: the landmarks found are not an upright face (mouth {mouth_below:.2f} eye distances below the "
            f"eyes, at least {MIN_MOUTH_BELOW_EYES} expected; roll {roll:.0f}°); is the photo upside down or mirrored?")


NEIGHBOURHOOD_SIDE = 256
"""Longest side (pixels) the face's neighbourhood is shrunk to for the orientation check."""


def _neighbourhood(pixels: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box grown by half its size on each side, shrunk to at most :data:`NEIGHBOURHOOD_SIDE`."""
    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    rows, cols = pixels.shape[:2]
    top, bottom = int(max(0, y0 - 0.5 * h)), int(min(rows, y1 + 0.5 * h))
    left, right = int(max(0, x0 - 0.5 * w)), int(min(cols, x1 + 0.5 * w))
    crop = np.ascontiguousarray(pixels[top:bottom, left:right])
    scale = NEIGHBOURHOOD_SIDE / max(crop.shape[:2], default=1)
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return crop


def _log_odds(p: float) -> float:
    p = min(max(float(p), 1e-7), 1.0 - 1e-7)
    return float(np.log(p / (1.0 - p)))


def check_upright(pixels: np.ndarray, detection, detector: str = "auto", name: str = "image") -> None:
    """Raise when the detected face looks upside down (see the module doc).

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB photo.
        detection: the :class:`~msma_engine.detect.FaceDetection` to check.
        detector: the detector backend that found it.

    Raises:
        ImplausibleFaceError: the upside-down neighbourhood scores higher (scores in the message).
    """
    from msma_engine.detect import detect_faces

    crop = _neighbourhood(pixels, detection.box)
    if min(crop.shape[:2]) < 8:
        return
    as_is = max((d.score for d in detect_faces(crop, detector)), default=0.0)
    flipped = max((d.score for d in detect_faces(np.ascontiguousarray(crop[::-1]), detector)), default=0.0)
    logger.debug("%s: orientation scores as is %.3f (detection %.3f), upside down %.3f",
                 name, as_is, detection.score, flipped)
    if _log_odds(flipped) > _log_odds(max(as_is, detection.score)) + FLIP_MARGIN:
        raise ImplausibleFaceError(
            f"{name}: the face looks upside down (the detector scores it {flipped:.3f} turned over against "
            f"{max(as_is, detection.score):.3f} as it is); rotate or flip the photo upright")


def check_face_plausible(pixels: np.ndarray, detection, landmarks: np.ndarray, detector: str = "auto",
                         name: str = "image") -> None:
    """Both checks: :func:`check_landmark_geometry`, then :func:`check_upright`.

    Raises:
        ImplausibleFaceError: the face cannot be reconstructed sensibly as it is.
    """
    check_landmark_geometry(landmarks, name)
    check_upright(pixels, detection, detector, name)
