"""Specular highlights out of shading-divided photo albedo.

After the SH irradiance is divided out, skin of one region (skin, lips) has nearly one
brightness and one saturation; glare adds a near-white specular term ``s·(1, 1, 1)``
(dichromatic reflection model, Shafer 1985; the light's colour is already divided out with
the irradiance), so a glare texel is at once **brighter** and **less saturated** than its
region. :func:`remove_specular` scores both against the region's robust statistics (median
and 1.4826 MAD of log luminance and of saturation ``1 − min/max``) and, per texel, with
``g`` = (brightness score ramp) × (desaturation score ramp) in [0, 1], or a second
brightness ramp alone for texels far brighter than the region (glare on shiny lids, shading
the SH fit could not explain):

* subtracts ``g·s``, ``s`` the white part of the least-squares split ``a ≈ k·c + s·1`` with
  ``c`` the region's median chromaticity (moderate shine keeps the detail under it);
* multiplies the texel's keep factor by ``1 − g`` — strong glare is "missing, to be
  filled" (the baker's multi-band blend fills it from the skin around), as is every texel
  whose photo pixel was clipped.

Colours are in [0, 1] (the photo's sRGB-encoded values divided by the irradiance, as the
rest of the baker uses).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["SpecularSettings", "remove_specular"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpecularSettings:
    """Score ramps of :func:`remove_specular`, in robust standard deviations of the region.

    Attributes:
        bright_from, bright_full: brightness score (log luminance above the median) where
            the glare factor starts to rise and where its brightness part is 1.
        desat_from, desat_full: the same for the saturation drop below the median.
        very_bright_from, very_bright_full: brightness score ramp that counts as glare
            whatever the saturation.
    """

    bright_from: float = 1.5
    bright_full: float = 3.0
    desat_from: float = 0.0
    desat_full: float = 1.5
    very_bright_from: float = 3.0
    very_bright_full: float = 4.5


def _robust(x: np.ndarray, floor: float = 0.02) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 MAD, floored) of ``x``."""
    med = float(np.median(x))
    return med, max(1.4826 * float(np.median(np.abs(x - med))), floor)


def _chromaticity(rgb: np.ndarray) -> np.ndarray:
    return rgb / np.maximum(rgb.sum(-1, keepdims=True), 1e-6)


def remove_specular(albedo: np.ndarray, weight: np.ndarray, label: np.ndarray, clipped: np.ndarray,
                    settings: SpecularSettings | None = None, min_texels: int = 20
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diffuse albedo, keep factor and specular amount of photo texels.

    Args:
        albedo: ``(N, 3)`` shading-divided photo colour.
        weight: ``(N,)`` photo weight (texels with weight ≤ 0.05 are ignored).
        label: ``(N,)`` int region of each texel (one chromaticity per label; label 0 is left alone).
        clipped: ``(N,)`` bool — the photo pixel had a channel at 255 (glare clipped).
        settings: :class:`SpecularSettings`.
        min_texels: least texels of a label for it to be treated.

    Returns:
        ``(N, 3)`` albedo, ``(N,)`` keep factor in [0, 1] (multiplies the photo weight; 0 =
        fill this texel) and ``(N,)`` specular amount ``s`` (0 where untreated).
    """
    st = settings or SpecularSettings()
    a = np.asarray(albedo, np.float32)
    w = np.asarray(weight, np.float32)
    keep = np.ones(len(w), np.float32)
    lab = np.asarray(label)
    n = a.shape[0]
    if a.shape != (n, 3) or w.shape != (n,) or lab.shape != (n,) or np.shape(clipped) != (n,):
        raise ShapeError(f"albedo (N, 3), weight, label, clipped (N,) expected; got {a.shape}, {w.shape}, "
                         f"{lab.shape}, {np.shape(clipped)}")
    out = a.copy()
    spec = np.zeros(n, np.float32)
    log_lum = np.log(np.maximum(a.mean(-1), 1e-4))
    sat = 1.0 - a.min(-1) / np.maximum(a.max(-1), 1e-4)
    for value in np.unique(lab):
        if value == 0:
            continue
        sel = (lab == value) & (w > 0.05)
        if sel.sum() < min_texels:
            continue
        idx = np.flatnonzero(lab == value)
        med_l, sig_l = _robust(log_lum[sel])
        med_s, sig_s = _robust(sat[sel])
        bright = np.clip(((log_lum[idx] - med_l) / sig_l - st.bright_from) / (st.bright_full - st.bright_from), 0, 1)
        desat = np.clip(((med_s - sat[idx]) / sig_s - st.desat_from) / (st.desat_full - st.desat_from), 0, 1)
        # Far brighter than the region whatever its colour: glare on a shiny lid, or shading
        # the SH fit could not explain (irradiance divided out where the fit is wrong).
        very = np.clip(((log_lum[idx] - med_l) / sig_l - st.very_bright_from)
                       / (st.very_bright_full - st.very_bright_from), 0, 1)
        g = np.maximum(bright * desat, very).astype(np.float32)
        # Region chromaticity from its not-bright half (glare pulls the median towards grey).
        dim = sel & (log_lum <= med_l)
        c = np.median(_chromaticity(a[dim]), axis=0)
        basis = np.stack([c / np.linalg.norm(c), np.full(3, 1.0 / np.sqrt(3.0))], axis=1)  # (3, 2)
        s = np.maximum((a[idx] @ np.linalg.pinv(basis).T)[:, 1] / np.sqrt(3.0), 0.0) * g
        spec[idx] = s
        out[idx] = np.clip(a[idx] - s[:, None], 0.0, None)
        keep[idx] = 1.0 - g
    keep[np.asarray(clipped, bool)] = 0.0
    logger.debug("specular: %d texels treated, %d dropped", int((spec > 0).sum()), int((keep < 0.5).sum()))
    return out, keep, spec
