"""Differentiable interpolation of per-vertex attributes over rasterized fragments."""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError
from msma_engine.render import _nvdiffrast
from msma_engine.render.fragments import Fragments, NvdiffrastFragments, TorchFragments

__all__ = ["interpolate"]


def interpolate(attr: torch.Tensor, frags: Fragments, tris: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes with the fragments' barycentrics.

    As ``nvdiffrast.torch.interpolate(attr, rast, tri)``; the backend follows the fragments'
    type. Differentiable w.r.t. ``attr`` and, through the barycentrics, w.r.t. the clip positions
    that produced ``frags``. ``tris`` need not be the rasterized triangles, only in the same
    face order (e.g. position triangles over :func:`rasterize_uv` fragments).

    Args:
        attr: ``(B, V, C)`` or ``(V, C)`` (shared by the batch) float attributes.
        frags: output of :func:`rasterize` or :func:`rasterize_uv`.
        tris: ``(F, 3)`` integer vertex indices into ``attr``.

    Returns:
        ``(B, H, W, C)``; zero on background pixels.
    """
    bsz, h, w = frags.triangle_id.shape
    if attr.ndim == 2:
        attr = attr.unsqueeze(0)
    if attr.ndim != 3 or attr.shape[0] not in (1, bsz):
        raise ShapeError(f"attr must be (V, C) or ({bsz}, V, C) for {bsz} images, got {tuple(attr.shape)}")
    if tris.ndim != 2 or tris.shape[1] != 3 or tris.dtype.is_floating_point:
        raise ShapeError(f"tris must be an integer (F, 3) tensor, got {tuple(tris.shape)} {tris.dtype}")
    tris = tris.to(attr.device).long()
    if tris.numel() and (int(tris.min()) < 0 or int(tris.max()) >= attr.shape[1]):
        raise ShapeError(
            f"tris index range [{int(tris.min())}, {int(tris.max())}] is out of range "
            f"for attr of shape {tuple(attr.shape)}"
        )
    if isinstance(frags, NvdiffrastFragments):
        return _nvdiffrast.interpolate(attr, frags, tris)
    if not isinstance(frags, TorchFragments):
        raise TypeError(f"frags must come from rasterize() or rasterize_uv(), got {type(frags).__name__}")

    nv, nc = attr.shape[1], attr.shape[2]
    idx, tri = frags.pixel_index, frags.pixel_triangle
    if tri.numel() and int(tri.max()) >= tris.shape[0]:
        raise ShapeError(f"fragments use triangle {int(tri.max())} but tris has shape {tuple(tris.shape)}")
    vid = tris[tri]  # (N, 3)
    if attr.shape[0] > 1:
        vid = vid + (torch.div(idx, h * w, rounding_mode="floor") * nv).unsqueeze(1)
    vals = attr.reshape(-1, nc).index_select(0, vid.reshape(-1)).view(-1, 3, nc)
    bary = frags.pixel_barycentrics.to(attr.dtype)
    # Explicit weighted sum: einsum lowers to a batched 3×C matmul, slow for tiny C on CPU.
    out = vals[:, 0] * bary[:, 0:1]
    out = torch.addcmul(out, vals[:, 1], bary[:, 1:2])
    out = torch.addcmul(out, vals[:, 2], bary[:, 2:3])
    image = out.new_zeros(bsz * h * w, nc).index_put((idx,), out)
    return image.view(bsz, h, w, nc)
