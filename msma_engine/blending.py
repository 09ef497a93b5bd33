"""Seamless image blending: push-pull hole filling and multi-band (Laplacian pyramid) blending.

Used by the texture baker to join the photo-derived albedo and the filled skin without a
visible border (Burt & Adelson 1983): each frequency band is blended over a transition as
wide as its wavelength, so the low-frequency colour difference is spread over the whole
face while skin detail stays sharp. The photo side is first extended into its holes by
push-pull interpolation (Gortler et al. 1996) so no band sees a step at the region border.

Images are ``(H, W, C)`` float32, weights ``(H, W)`` float32 in [0, 1]; any H, W ≥ 1.
"""

from __future__ import annotations

import cv2
import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["push_pull", "multiband_blend", "pyramid_levels"]


def _check(image: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image, np.float32)
    w = np.asarray(weight, np.float32)
    if img.ndim != 3 or w.shape != img.shape[:2]:
        raise ShapeError(f"image must be (H, W, C) and weight (H, W); got {img.shape} and {w.shape}")
    return img, w


def pyramid_levels(size: int, coarsest: int = 16) -> int:
    """Number of pyramid levels that brings a side ``size`` down to about ``coarsest`` texels."""
    return max(1, int(np.floor(np.log2(max(size, 1) / coarsest))) + 1)


def push_pull(image: np.ndarray, weight: np.ndarray, min_weight: float = 1e-3) -> np.ndarray:
    """Fill the texels of ``image`` where ``weight`` is ~0 with a smooth interpolation of the rest.

    Push: weighted averages down a pyramid (``image·w`` and ``w`` blurred and halved) until
    every texel of the coarsest level has weight. Pull: back up, each level's texels taking
    ``w·own + (1 − w)·upsampled coarser`` (``w`` clipped to [0, 1]), so known texels keep
    their values and holes get the coarse levels' colour, smoothly.

    Args:
        image: ``(H, W, C)``.
        weight: ``(H, W)`` confidence of each texel; 0 = unknown.

    Returns:
        ``(H, W, C)`` float32.
    """
    img, w = _check(image, weight)
    if not (w > min_weight).any():
        return np.zeros_like(img)
    levels = [(img * w[..., None], w)]
    while min(levels[-1][1].shape) > 1 and (levels[-1][1] <= min_weight).any():
        num, den = levels[-1]
        levels.append((_down(num), _down(den)))
    num, den = levels[-1]
    out = num / np.maximum(den, min_weight)[..., None]
    if (den <= min_weight).any():  # a 1-texel level with no weight left: its mean colour
        out[den <= min_weight] = (num.reshape(-1, num.shape[-1]).sum(0) / max(den.sum(), min_weight))
    for num, den in reversed(levels[:-1]):
        up = _up(out, den.shape)
        own = num / np.maximum(den, min_weight)[..., None]
        a = np.clip(den, 0.0, 1.0)[..., None]
        out = a * own + (1.0 - a) * up
    return out.astype(np.float32)


def multiband_blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Laplacian-pyramid blend: ``weight`` selects ``a`` (1) or ``b`` (0), band by band.

    Args:
        a, b: ``(H, W, C)`` images defined everywhere (extend holes first, e.g. :func:`push_pull`).
        weight: ``(H, W)`` in [0, 1].
        levels: pyramid levels (1 = a plain per-texel blend).

    Returns:
        ``(H, W, C)`` float32.
    """
    a, w = _check(a, weight)
    b = np.asarray(b, np.float32)
    if b.shape != a.shape:
        raise ShapeError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    ga, gb, gw = [a], [b], [w]
    for _ in range(max(1, int(levels)) - 1):
        if min(ga[-1].shape[:2]) < 2:
            break
        ga.append(_down(ga[-1]))
        gb.append(_down(gb[-1]))
        gw.append(_down(gw[-1]))
    out = gw[-1][..., None] * ga[-1] + (1.0 - gw[-1][..., None]) * gb[-1]
    for k in range(len(ga) - 2, -1, -1):
        shape = ga[k].shape[:2]
        la = ga[k] - _up(ga[k + 1], shape)
        lb = gb[k] - _up(gb[k + 1], shape)
        wk = gw[k][..., None]
        out = _up(out, shape) + wk * la + (1.0 - wk) * lb
    return out.astype(np.float32)


def _down(x: np.ndarray) -> np.ndarray:
    out = cv2.pyrDown(x, borderType=cv2.BORDER_REFLECT101)
    return out.reshape(out.shape[:2] + x.shape[2:])


def _up(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = cv2.pyrUp(x, dstsize=(int(shape[1]), int(shape[0])), borderType=cv2.BORDER_REFLECT101)
    return out.reshape(tuple(shape) + x.shape[2:])
