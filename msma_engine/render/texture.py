"""Bilinear texture lookup and texture-island dilation.

UV origin is the bottom-left of the texture, v up; textures are stored with row 0 at the
top, so ``row = (1 − v)·Ht`` and ``col = u·Wt`` (docs/CONVENTIONS.md). Texel centres sit
at half-integer rows/columns; bilinear filtering blends the four nearest centres.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from msma_engine.errors import ShapeError
from msma_engine.render import _nvdiffrast
from msma_engine.render.context import RenderContext

__all__ = ["texture", "dilate_texture"]


def texture(
    ctx: RenderContext,
    tex: torch.Tensor,
    uv: torch.Tensor,
    boundary: Literal["wrap", "clamp"] = "wrap",
) -> torch.Tensor:
    """Sample a texture bilinearly at UV coordinates (as ``nvdiffrast.torch.texture(tex, uv)``).

    Args:
        ctx: render context; its nvdiffrast backend serves CUDA tensors when chosen.
        tex: ``(B, Ht, Wt, C)`` (or ``(1, ...)`` broadcast over the batch) float texture, row 0
            at the top.
        uv: ``(B, H, W, 2)`` UV coordinates, origin bottom-left.
        boundary: ``"wrap"`` (repeat: the fractional part of u and v is used, and filtering
            wraps across the border — right for tiling textures) or ``"clamp"`` (coordinates
            are clamped to the centres of the border texels — right for UV atlases).

    Returns:
        ``(B, H, W, C)``, differentiable w.r.t. ``tex`` and ``uv``.
    """
    if tex.ndim != 4:
        raise ShapeError(f"tex must be (B, Ht, Wt, C), got {tuple(tex.shape)}")
    if uv.ndim != 4 or uv.shape[-1] != 2:
        raise ShapeError(f"uv must be (B, H, W, 2), got {tuple(uv.shape)}")
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ShapeError(f"tex batch {tex.shape[0]} does not match uv batch {uv.shape[0]} ({tuple(uv.shape)})")
    if boundary not in ("wrap", "clamp"):
        raise ValueError(f"boundary must be 'wrap' or 'clamp', got {boundary!r}")
    if ctx.backend_for(uv.device) == "nvdiffrast":
        return _nvdiffrast.texture(tex, uv, boundary)

    bsz = uv.shape[0]
    th, tw = tex.shape[1], tex.shape[2]
    img = tex.permute(0, 3, 1, 2).expand(bsz, -1, -1, -1)
    u, v = uv[..., 0], 1.0 - uv[..., 1]
    if boundary == "wrap":
        # One texel of circular padding lets grid_sample blend across the seam.
        u, v = torch.remainder(u, 1.0), torch.remainder(v, 1.0)
        img = F.pad(img, (1, 1, 1, 1), mode="circular")
        gx = (2.0 * (u * tw + 1.0)) / (tw + 2) - 1.0
        gy = (2.0 * (v * th + 1.0)) / (th + 2) - 1.0
    else:
        gx, gy = 2.0 * u - 1.0, 2.0 * v - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(img.dtype)
    # "border" clamps to the outermost texel centres; with the circular pad it never triggers.
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1)


def dilate_texture(tex: torch.Tensor, mask: torch.Tensor, iterations: int = 4) -> torch.Tensor:
    """Grow texture islands outwards so bilinear/mipmap lookups near seams stay on-colour.

    Each iteration fills every uncovered texel that touches covered ones (8-neighbourhood)
    with the mean of those neighbours.

    Args:
        tex: ``(B, H, W, C)`` or ``(H, W, C)`` texture.
        mask: ``(B, H, W)`` or ``(H, W)`` bool, True where ``tex`` holds baked values.
        iterations: number of one-texel growth steps.

    Returns:
        Texture of the same shape; covered texels are unchanged.
    """
    if tex.ndim not in (3, 4) or mask.shape != tex.shape[:-1]:
        raise ShapeError(
            f"tex (B, H, W, C) and mask (B, H, W) do not match: {tuple(tex.shape)} vs {tuple(mask.shape)}"
        )
    squeeze = tex.ndim == 3
    if squeeze:
        tex, mask = tex.unsqueeze(0), mask.unsqueeze(0)
    img = tex.permute(0, 3, 1, 2)
    m = mask.to(tex.dtype).unsqueeze(1)
    kernel = torch.ones(1, 1, 3, 3, dtype=tex.dtype, device=tex.device)
    for _ in range(iterations):
        nc = img.shape[1]
        total = F.conv2d(img * m, kernel.expand(nc, 1, 3, 3), padding=1, groups=nc)
        count = F.conv2d(m, kernel, padding=1)
        grow = (count > 0) & (m == 0)
        img = torch.where(grow, total / count.clamp_min(1.0), img)
        m = torch.where(grow, torch.ones_like(m), m)
    out = img.permute(0, 2, 3, 1)
    return out.squeeze(0) if squeeze else out
