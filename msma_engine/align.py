"""Deep3DFaceRecon's alignment of a photo to the 224×224 network crop.

Deep3DFaceRecon (``util/preprocess.py``: ``POS``, ``resize_n_crop_img``,
``align_img``) fits the five detected points to the five points of a 3D
template with a least-squares affine camera (``POS``), keeps only its scale
``s`` and translation ``t``, and cuts a ``target_size`` square whose centre is
where the template origin projects, resized so the template measures
``rescale_factor`` crop pixels per decimetre. Rotation is left to the network,
so the photo → crop map is a scale and a translation.

This module computes that map in continuous pixel coordinates
(docs/CONVENTIONS.md: origin at the top-left corner, +y down) as an exact
affine :class:`CropTransform`. Deep3DFaceRecon rounds the resized image size
and the crop corner to whole pixels; we do not, so crops differ from theirs by
less than one pixel, and landmarks mapped with :meth:`CropTransform.apply`
land exactly on the same image content in :meth:`CropTransform.warp`.

The template is in metres (the face model's units, model frame +y up);
Deep3DFaceRecon's own ``lm3d`` is in decimetres — pass
``metres_per_unit=0.1`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msma_engine.detect.base import five_from_68
from msma_engine.image_io import to_cv2_affine
from msma_engine.errors import ShapeError

__all__ = [
    "CropTransform",
    "TARGET_SIZE",
    "RESCALE_FACTOR",
    "pos",
    "align_crop",
    "template_from_landmarks68",
]

TARGET_SIZE = 224
"""Side of the network crop in pixels."""

RESCALE_FACTOR = 102.0
"""Crop pixels per decimetre of template (Deep3DFaceRecon's ``rescale_factor``)."""


@dataclass(frozen=True)
class CropTransform:
    """Affine map from photo pixels to crop pixels.

    Attributes:
        matrix: ``(2, 3)`` float64 ``A`` with ``crop = A[:, :2] @ photo + A[:, 2]``.
        size: Side of the crop in pixels.
    """

    matrix: np.ndarray
    size: int = TARGET_SIZE

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (2, 3):
            raise ShapeError(f"CropTransform.matrix must be (2, 3), got {m.shape}")
        if abs(np.linalg.det(m[:, :2])) < 1e-12:
            raise ValueError(f"CropTransform.matrix is singular: {m.tolist()}")
        object.__setattr__(self, "matrix", m)

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel (geometric mean of the axes' scales)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    @property
    def inverse_matrix(self) -> np.ndarray:
        """``(2, 3)`` map from crop pixels back to photo pixels."""
        a = np.linalg.inv(self.matrix[:, :2])
        return np.concatenate([a, -(a @ self.matrix[:, 2])[:, None]], axis=1)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` photo pixels to crop pixels (float64)."""
        return _affine(self.matrix, points)

    def inverse(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop pixels back to photo pixels (float64)."""
        return _affine(self.inverse_matrix, points)

    def warp(self, image: np.ndarray, size: int | None = None) -> np.ndarray:
        """Cut the crop out of a photo.

        Bilinear sampling; when the crop shrinks the photo by more than 2×, the
        photo is first reduced by area averaging so the crop does not alias.
        Pixels outside the photo are black. OpenCV quantises sampling positions
        to 1/32 pixel; :meth:`apply` / :meth:`inverse` are exact.

        Args:
            image: ``(H, W, C)`` or ``(H, W)`` photo (any dtype OpenCV warps, e.g. uint8, float32).
            size: Output side; defaults to :attr:`size`. Another size scales the crop uniformly,
                so ``apply`` coordinates scale by ``size / self.size``.

        Returns:
            ``(size, size, C)`` (or ``(size, size)``) array of the input's dtype.
        """
        import cv2

        size = self.size if size is None else int(size)
        m = self.matrix * (size / self.size)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        src = np.asarray(image)
        # Work on the part of the photo the crop sees (plus a margin for the filters).
        a_inv = np.linalg.inv(m[:, :2])
        corners = (np.array([[0, 0], [size, 0], [0, size], [size, size]], float) - m[:, 2]) @ a_inv.T
        margin = 2.0 / min(scale, 1.0) + 2.0
        h, w = src.shape[:2]
        x0, y0 = (max(0, int(np.floor(v - margin))) for v in corners.min(axis=0))
        x1, y1 = min(w, int(np.ceil(corners[:, 0].max() + margin))), min(h, int(np.ceil(corners[:, 1].max() + margin)))
        if x1 <= x0 or y1 <= y0:
            return np.zeros((size, size) + src.shape[2:], dtype=src.dtype)
        src = src[y0:y1, x0:x1]
        m = np.concatenate([m[:, :2], (m[:, 2] + m[:, :2] @ [x0, y0])[:, None]], axis=1)
        if scale < 0.5:
            # Pre-shrink so the remaining bilinear step downsamples by at most 2x.
            f = 2.0 * scale
            h, w = src.shape[:2]
            nw, nh = max(1, round(w * f)), max(1, round(h * f))
            src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
            pre = np.diag([nw / w, nh / h])
            m = np.concatenate([m[:, :2] @ np.linalg.inv(pre), m[:, 2:]], axis=1)
        return cv2.warpAffine(
            src,
            to_cv2_affine(m),
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


def pos(points2d: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, float]:
    """Deep3DFaceRecon's ``POS``: least-squares affine camera from 3D template to image points.

    Solves ``points2d ≈ [r1; r2] @ X + t`` for two free 3-vectors and a
    translation, and returns the translation and the mean row norm as scale.

    Args:
        points2d: ``(N, 2)`` image points with **y up** (N ≥ 4).
        template: ``(N, 3)`` template points (or ``(N, 2)``, taken at z = 0).

    Returns:
        ``t`` ``(2,)`` where the template origin projects (y up) and ``s``,
        image units per template unit.
    """
    xp = np.asarray(points2d, dtype=np.float64)
    x = _template3(template)
    if xp.ndim != 2 or xp.shape[1] != 2 or xp.shape[0] != x.shape[0]:
        raise ShapeError(f"points2d must be (N, 2) matching template {x.shape}, got {xp.shape}")
    n = xp.shape[0]
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = x
    a[0::2, 3] = 1.0
    a[1::2, 4:7] = x
    a[1::2, 7] = 1.0
    k = np.linalg.lstsq(a, xp.reshape(-1), rcond=None)[0]
    s = 0.5 * (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7]))
    return np.array([k[3], k[7]]), float(s)


def align_crop(
    points5: np.ndarray,
    template: np.ndarray,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
    metres_per_unit: float = 1.0,
) -> CropTransform:
    """The photo → crop transform Deep3DFaceRecon's ``align_img`` uses.

    Args:
        points5: ``(5, 2)`` photo pixels, five-point order (image-left eye,
            image-right eye, nose tip, image-left and image-right mouth corner).
        template: ``(5, 3)`` (or ``(5, 2)``) template points in the face
            model's frame (+y up), same order, e.g. :func:`template_from_landmarks68`.
        target_size: Crop side in pixels.
        rescale_factor: Crop pixels per decimetre of template.
        metres_per_unit: Size of one template unit in metres (0.1 for Deep3DFaceRecon's own files).

    Returns:
        The :class:`CropTransform`; the template origin lands on the crop centre.
    """
    p = np.asarray(points5, dtype=np.float64)
    if p.shape != (5, 2):
        raise ShapeError(f"points5 must be (5, 2), got {p.shape}")
    tmpl = _template3(template)
    if tmpl.shape[0] != 5:
        raise ShapeError(f"template must be (5, 3) or (5, 2), got {np.shape(template)}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"points5 contains non-finite values: {p.tolist()}")
    # POS works with y up (the template's frame); y = -v keeps photo scale.
    t, s_pos = pos(p * np.array([1.0, -1.0]), tmpl)
    if s_pos <= 0:
        raise ValueError(f"degenerate five points, POS scale {s_pos}: {p.tolist()}")
    px_per_decimetre = 0.1 * s_pos / metres_per_unit
    s = rescale_factor / px_per_decimetre
    centre = np.array([t[0], -t[1]])
    c = target_size / 2.0
    matrix = np.array([[s, 0.0, c - s * centre[0]], [0.0, s, c - s * centre[1]]])
    return CropTransform(matrix=matrix, size=int(target_size))


def template_from_landmarks68(lm3d: np.ndarray) -> np.ndarray:
    """Five-point template from a model's 68 3D landmarks, as Deep3DFaceRecon's ``load_lm3d``.

    Args:
        lm3d: ``(68, 3)`` landmark positions in the model frame.

    Returns:
        ``(5, 3)``: eye centres (midpoints of corners 36/39 and 42/45), nose
        tip (30), mouth corners (48, 54).
    """
    lm = np.asarray(lm3d, dtype=np.float64)
    if lm.shape != (68, 3):
        raise ShapeError(f"lm3d must be (68, 3), got {lm.shape}")
    return five_from_68(lm)


def _template3(template: np.ndarray) -> np.ndarray:
    x = np.asarray(template, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] not in (2, 3):
        raise ShapeError(f"template must be (N, 3) or (N, 2), got {x.shape}")
    if x.shape[1] == 2:
        x = np.concatenate([x, np.zeros((x.shape[0], 1))], axis=1)
    return x


def _affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (2,):
        raise ShapeError(f"points must be (..., 2), got {p.shape}")
    return p @ m[:, :2].T + m[:, 2]

