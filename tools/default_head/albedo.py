"""UV-space albedo model: mean + PCA bases of randomly generated plausible skin maps.

A random albedo map is a skin colour everywhere plus regional colours blended in by
soft region maps (lips, eyelids, brows, ears, cheek blush, mouth cavity, eye sockets):

    albedo(p) = skin + sum_r M_r(p) * (colour_r - skin)

Every sample is linear in the fixed region maps with per-sample, per-channel weights, so
the PCA over samples is computed exactly from small matrices (weights' covariance and the
maps' Gram matrix) without storing the sampled maps.

Colours are display-referred (sRGB-encoded) reflectance in [0, 1], like BFM's texture, so
that albedo × shading compares directly with photo pixels. The skin-tone line runs from
very light to very dark, log-interpolated per channel, with redness, yellowness and
brightness jitter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["REGIONS", "AlbedoSpace", "rasterize_uv", "fill_uncovered", "build_albedo_space"]

log = logging.getLogger(__name__)

REGIONS = ("lips", "eyelids", "brows", "ears", "cheeks", "mouth_cavity", "eye_sockets")
SKIN_LIGHT = np.array([0.95, 0.80, 0.72])
SKIN_DARK = np.array([0.30, 0.19, 0.14])


def rasterize_uv(uv: np.ndarray, uv_triangles: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre, and where.

    Args:
        uv: (T, 2) UV coordinates, origin bottom-left.
        uv_triangles: (F, 3) indices into ``uv``.
        size: texture height = width.

    Returns:
        face: (size, size) int64 triangle index per texel (row 0 at the top), -1 where uncovered.
        bary: (size, size, 3) barycentric coordinates of the texel centre in that triangle.
    """
    face = np.full((size, size), -1, np.int64)
    bary = np.zeros((size, size, 3))
    # Texel (row i, col j) centre in UV: u = (j + 0.5) / size, v = 1 - (i + 0.5) / size.
    px = np.stack([uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5], axis=1)  # (col, row)
    for f, (a, b, c) in enumerate(uv_triangles):
        pa, pb, pc = px[a], px[b], px[c]
        lo = np.floor(np.minimum(np.minimum(pa, pb), pc)).astype(int).clip(0, size - 1)
        hi = np.ceil(np.maximum(np.maximum(pa, pb), pc)).astype(int).clip(0, size - 1)
        cols, rows = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        d = (pb[1] - pc[1]) * (pa[0] - pc[0]) + (pc[0] - pb[0]) * (pa[1] - pc[1])
        if abs(d) < 1e-12:
            continue
        w0 = ((pb[1] - pc[1]) * (cols - pc[0]) + (pc[0] - pb[0]) * (rows - pc[1])) / d
        w1 = ((pc[1] - pa[1]) * (cols - pc[0]) + (pa[0] - pc[0]) * (rows - pc[1])) / d
        w2 = 1 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        face[rows[inside], cols[inside]] = f
        bary[rows[inside], cols[inside]] = np.stack([w0, w1, w2], axis=-1)[inside]
    return face, bary


@dataclass
class AlbedoSpace:
    """Albedo PCA space in UV.

    Attributes:
        mean: (H, W, 3) mean albedo, row 0 at the top.
        basis: (K, H, W, 3) components × standard deviation.
        explained: (K,) fraction of sampled variance per component.
        region_maps: name -> (H, W) soft region map, for inspection.
    """

    mean: np.ndarray
    basis: np.ndarray
    explained: np.ndarray
    region_maps: dict


def fill_uncovered(maps: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy the nearest covered texel into uncovered ones (avoids dark seams when filtering).

    Args:
        maps: (J, H, W) maps.
        covered: (H, W) bool.
    """
    idx = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    return maps[:, idx[0], idx[1]]


def _sample_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-sample RGB colours of skin and each region: (n, 1 + len(REGIONS), 3)."""
    t = rng.uniform(0, 1, n)[:, None]
    skin = np.exp((1 - t) * np.log(SKIN_LIGHT) + t * np.log(SKIN_DARK))
    red = rng.normal(0, 0.05, n)[:, None]
    yellow = rng.normal(0, 0.05, n)[:, None]
    bright = rng.normal(0, 0.04, n)[:, None]
    skin = skin * np.exp(bright + red * np.array([1.0, -0.3, -0.3]) + yellow * np.array([0.3, 0.3, -1.0]))

    def towards(colour, strength):
        return skin + strength[:, None] * (colour - skin)

    jitter = lambda sd: np.exp(rng.normal(0, sd, (n, 3)))  # noqa: E731
    lips = towards(skin * np.array([0.85, 0.62, 0.66]) * jitter(0.06), rng.uniform(0.5, 1.0, n))
    eyelids = towards(skin * np.array([0.90, 0.82, 0.86]) * jitter(0.04), rng.uniform(0.2, 1.0, n))
    h = rng.uniform(0, 1, n)[:, None] ** 2  # hair colour, mostly dark: black-brown to light brown
    hair = np.exp((1 - h) * np.log([0.08, 0.06, 0.05]) + h * np.log([0.55, 0.42, 0.28]))
    brows = towards(hair, rng.uniform(0.3, 0.9, n))
    ears = towards(skin * np.array([1.04, 0.92, 0.92]), rng.uniform(0.0, 1.0, n))
    cheeks = towards(skin * np.array([1.06, 0.90, 0.92]), rng.uniform(0.0, 1.0, n))
    mouth = np.array([0.45, 0.16, 0.16]) * jitter(0.1)
    sockets = np.array([0.30, 0.18, 0.18]) * jitter(0.05)
    cols = [skin, lips, eyelids, brows, ears, cheeks, mouth, sockets]
    assert len(cols) == 1 + len(REGIONS)
    # Region weights are (colour_r - skin); the first is the skin itself.
    return np.stack([skin] + [c - skin for c in cols[1:]], axis=1)


def build_albedo_space(region_maps: dict, n_components: int, n_samples: int, seed: int) -> AlbedoSpace:
    """PCA of random albedo maps built from ``region_maps``.

    Args:
        region_maps: name -> (H, W) soft map in [0, 1] for every name in :data:`REGIONS`.
        n_components: components kept.
        n_samples: number of random colourings sampled.
        seed: seed of ``numpy.random.default_rng``.
    """
    rng = np.random.default_rng(seed)
    h, w = next(iter(region_maps.values())).shape
    maps = np.stack([np.ones((h, w))] + [region_maps[r] for r in REGIONS]).reshape(1 + len(REGIONS), -1)
    a = _sample_weights(rng, n_samples)  # (N, J, 3)
    j = maps.shape[0]
    # Sample n's map in channel c is a[n, :, c] @ maps: features (J * 3) per sample.
    coeff = a.transpose(0, 2, 1).reshape(n_samples, 3 * j)  # channel-major
    mean_c = coeff.mean(axis=0)
    centred = coeff - mean_c
    gram = maps @ maps.T  # (J, J); the channel blocks are orthogonal to each other
    gram3 = np.kron(np.eye(3), gram)
    evals_g, evecs_g = np.linalg.eigh(gram3)
    root = evecs_g @ np.diag(np.sqrt(np.clip(evals_g, 0, None))) @ evecs_g.T  # gram^(1/2)
    # Xc = centred @ Phi with Phi Phi^T = gram3; SVD of centred @ gram^(1/2) gives the PCA.
    _, s, vt = np.linalg.svd(centred @ root, full_matrices=False)
    std = s / np.sqrt(n_samples - 1)
    # Component k in feature space: v_k^T gram^(-1/2) Phi; coefficients in map space:
    inv_root = evecs_g @ np.diag(1 / np.sqrt(np.clip(evals_g, 1e-12, None))) @ evecs_g.T
    comp_coeff = vt[:n_components] @ inv_root  # (K, 3J)
    comps = np.stack([comp_coeff[:, c * j:(c + 1) * j] @ maps for c in range(3)], axis=-1)  # (K, HW, 3)
    # Deterministic sign: positive total. A pure colour-balance component sums to ~0 (its
    # sign would follow round-off and layout details): its green channel sums positive instead.
    flat = comps.reshape(n_components, -1)
    total = flat.sum(axis=1)
    balanced = np.abs(total) < 1e-3 * np.abs(flat).sum(axis=1)
    signs = np.sign(np.where(balanced, comps[..., 1].sum(axis=1), total))
    signs[signs == 0] = 1
    basis = comps * (signs * std[:n_components])[:, None, None]
    mean = np.stack([mean_c[c * j:(c + 1) * j] @ maps for c in range(3)], axis=-1)
    explained = std[:n_components] ** 2 / np.sum(std ** 2)
    log.info("albedo PCA: %d samples, %d components explain %.5f of the variance",
             n_samples, n_components, explained.sum())
    return AlbedoSpace(mean.reshape(h, w, 3), basis.reshape(n_components, h, w, 3), explained,
                       dict(region_maps))
