"""Face-centred UV layout: the face gets most of the texture, upright, like a photo.

MakeHuman's layout puts the whole head in one island (face in the middle, scalp, ears and
back of the head around it, cut open at the back), lying on its side and sharing the
texture with the body. Here that island is

1. rotated so the forehead points to +v (a rotation, never a mirror: triangle
   orientations are kept, and the subject's right side lands at small u as in a photo);
2. magnified radially about the face centre: uniform scale inside the face, smoothly
   falling to a smaller scale outside (scalp, ears, back of the head).

A radial magnification ``p -> c + (p - c) g(r) / r`` with ``g`` strictly increasing maps
every ray from ``c`` onto itself one to one, so the island stays continuous and free of
overlaps (the Jacobian's determinant is ``(g / r) g' > 0`` whatever the norm ``r`` is
measured in). Its alternative, a separate face projection next to the old layout, would
add a seam all around the face, where baking and painting show edges. The norm is a
superellipse (an L4 norm scaled to the face's bounding box), so the uniform zone hugs
the roughly square face instead of a circle around its corners: inside it the layout is
MakeHuman's own, scaled (no added distortion on the face).

The small islands (mouth cavity, eye sockets, neck) keep their shapes and MakeHuman's
orientation (wider than tall) and are placed in a row below the head island, at the
largest common scale that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayoutConfig", "face_centred_layout", "radial_profile"]


@dataclass(frozen=True)
class LayoutConfig:
    """Numbers of the layout (all stored in the model metadata).

    Attributes:
        far_scale: scale far outside the face relative to the face's (texel density ratio
            is its square).
        transition: width over which the scale falls from 1 to ``far_scale``, in units of
            the face's radius.
        norm_power: exponent of the superellipse norm (2 = ellipse, large = box).
        margin: empty UV margin around and between islands.
    """

    far_scale: float = 0.25
    transition: float = 0.3
    norm_power: float = 4.0
    margin: float = 0.01

    def as_dict(self) -> dict:
        return {"far_scale": self.far_scale, "transition": self.transition,
                "norm_power": self.norm_power, "margin": self.margin}


def radial_profile(r: np.ndarray, far_scale: float, transition: float) -> np.ndarray:
    """Magnified radius ``g(r)``: identity for ``r <= 1``, slope decaying to ``far_scale``.

    ``g'(r) = far_scale + (1 - far_scale) exp(-(r - 1) / transition)`` beyond 1, so ``g``
    is continuously differentiable and strictly increasing.

    Args:
        r: (...) radii, in units of the face's radius.
        far_scale: asymptotic slope, in (0, 1].
        transition: decay length of the slope, > 0.

    Returns:
        (...) magnified radii.
    """
    x = np.maximum(r - 1.0, 0.0)
    return np.minimum(r, 1.0) + far_scale * x + (1 - far_scale) * transition * (1 - np.exp(-x / transition))


def _rotation_to_up(direction: np.ndarray) -> np.ndarray:
    """(2, 2) rotation taking ``direction`` to +v."""
    a = np.pi / 2 - np.arctan2(direction[1], direction[0])
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def face_centred_layout(source_uv: np.ndarray, uv_triangles: np.ndarray, uv_island: np.ndarray,
                        face_triangles: np.ndarray, face_up: np.ndarray,
                        config: LayoutConfig | None = None) -> np.ndarray:
    """Lay out the islands in the unit square, face first.

    Args:
        source_uv: (T, 2) UVs in MakeHuman's layout.
        uv_triangles: (F, 3) indices into ``source_uv``.
        uv_island: (T,) island id per UV (0 = the head island holding the face).
        face_triangles: (F,) bool, the triangles of the face (all on island 0).
        face_up: (2,) chin-to-forehead direction in ``source_uv``.
        config: layout numbers; defaults to :class:`LayoutConfig`.

    Returns:
        (T, 2) UVs in [0, 1]^2, same triangle orientations as ``source_uv``.
    """
    cfg = config or LayoutConfig()
    m = cfg.margin
    head = uv_island == 0
    uv = source_uv.copy()
    uv[head] = source_uv[head] @ _rotation_to_up(face_up).T
    face_uv = uv[uv_triangles[face_triangles]].reshape(-1, 2)
    assert np.all(head[uv_triangles[face_triangles]]), "face triangles must lie on the head island"
    lo, hi = face_uv.min(0), face_uv.max(0)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)

    def norm(q):
        return np.sum(np.abs(q / half) ** cfg.norm_power, axis=-1) ** (1 / cfg.norm_power)

    radius = norm(face_uv - centre).max()  # every face corner inside the uniform zone
    q = uv[head] - centre
    r = norm(q) / radius
    gain = np.where(r > 0, radial_profile(r, cfg.far_scale, cfg.transition) / np.maximum(r, 1e-12), 1.0)
    uv[head] = centre + q * gain[:, None]

    out = np.empty_like(uv)
    n = int(uv_island.max()) + 1
    lo = np.array([uv[uv_island == k].min(0) for k in range(n)])
    size = np.array([uv[uv_island == k].max(0) for k in range(n)]) - lo
    # Head island: the full width at the top (it is wider than tall).
    head_scale = min((1 - 2 * m) / size[0, 0], (1 - 2 * m) / size[0, 1])
    out[head] = (uv[head] - lo[0]) * head_scale + np.array([m, 1 - m - size[0, 1] * head_scale])
    if n > 1:
        # Small islands in one row below it, bottom-aligned, at one common scale.
        strip = 1 - 3 * m - size[0, 1] * head_scale
        scale = min((1 - (n + 1) * m) / size[1:, 0].sum(), strip / size[1:, 1].max())
        assert scale > 0, "no room left below the head island"
        left = m
        for k in range(1, n):
            sel = uv_island == k
            out[sel] = (uv[sel] - lo[k]) * scale + np.array([left, m])
            left += size[k, 0] * scale + m
    return out
