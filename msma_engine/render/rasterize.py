"""Rasterization primitives: :func:`rasterize` (clip space) and :func:`rasterize_uv` (UV layout).

Conventions (docs/CONVENTIONS.md): clip space is OpenGL style with ``w`` = camera depth;
NDC ``y = +1`` is image row 0 (the top); pixel ``(i, j)`` has its centre at NDC
``(2(j + 0.5)/W − 1, 1 − 2(i + 0.5)/H)``. Fragments with NDC ``z`` outside ``[−1, 1]``
are discarded (near/far planes); triangles with a vertex at ``w ≤ 0`` are dropped
whole (there is no near-plane clipping).
"""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError
from msma_engine.render import _nvdiffrast
from msma_engine.render._torch_raster import covered_barycentrics, visibility
from msma_engine.render.context import RenderContext
from msma_engine.render.fragments import Fragments, TorchFragments

__all__ = ["rasterize", "rasterize_uv"]


def _check_resolution(resolution) -> tuple[int, int]:
    try:
        h, w = (int(r) for r in resolution)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"resolution must be (H, W), got {resolution!r}") from exc
    if h <= 0 or w <= 0:
        raise ShapeError(f"resolution must be positive, got {(h, w)}")
    return h, w


def _check_tris(tris: torch.Tensor, num_vertices: int, name: str = "tris") -> torch.Tensor:
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise ShapeError(f"{name} must be (F, 3), got {tuple(tris.shape)}")
    if tris.dtype.is_floating_point or tris.dtype == torch.bool:
        raise ShapeError(f"{name} must be an integer tensor, got {tris.dtype}")
    tris = tris.long()
    if tris.numel() and (int(tris.min()) < 0 or int(tris.max()) >= num_vertices):
        raise ShapeError(
            f"{name} index range [{int(tris.min())}, {int(tris.max())}] is outside the {num_vertices} vertices"
        )
    return tris


def rasterize(
    ctx: RenderContext,
    pos_clip: torch.Tensor,
    tris: torch.Tensor,
    resolution: tuple[int, int],
    cull_backfaces: bool = False,
) -> Fragments:
    """Rasterize triangles given in clip space.

    Args:
        ctx: render context (backend choice).
        pos_clip: ``(B, V, 4)`` float clip positions ``(x, y, z, w)``, w = camera depth.
        tris: ``(F, 3)`` integer vertex indices, counter-clockwise seen from outside.
        resolution: ``(H, W)`` in pixels.
        cull_backfaces: drop triangles seen from behind (clockwise on screen).

    Returns:
        :class:`Fragments` (the backend's subclass) with triangle ids, perspective-correct
        barycentrics and depth, row 0 at the top, 0 on background. Barycentrics and depth are
        differentiable w.r.t. ``pos_clip``.

    Example:
        >>> frags = rasterize(RenderContext("torch"), pos, tris, (224, 224))
        >>> frags.triangle_id.shape
        torch.Size([1, 224, 224])
    """
    if pos_clip.ndim != 3 or pos_clip.shape[2] != 4:
        raise ShapeError(f"pos_clip must be (B, V, 4), got {tuple(pos_clip.shape)}")
    if not pos_clip.dtype.is_floating_point:
        raise ShapeError(f"pos_clip must be a float tensor, got {pos_clip.dtype}")
    h, w = _check_resolution(resolution)
    tris = _check_tris(tris.to(pos_clip.device), pos_clip.shape[1])
    if ctx.backend_for(pos_clip.device) == "nvdiffrast":
        return _nvdiffrast.rasterize(ctx, pos_clip, tris, (h, w), cull_backfaces)
    return _rasterize_torch(pos_clip, tris, h, w, cull_backfaces)


def _rasterize_torch(pos: torch.Tensor, tris: torch.Tensor, h: int, w: int, cull: bool) -> TorchFragments:
    bsz = pos.shape[0]
    pixel_index, pixel_triangle = visibility(pos.detach(), tris, h, w, cull)
    bary, depth = covered_barycentrics(pos, tris, pixel_index, pixel_triangle, h, w)
    tri_id = torch.full((bsz * h * w,), -1, dtype=torch.long, device=pos.device)
    tri_id[pixel_index] = pixel_triangle
    return TorchFragments(
        triangle_id=tri_id.view(bsz, h, w),
        pixel_index=pixel_index,
        pixel_triangle=pixel_triangle,
        pixel_barycentrics=bary,
        pixel_depth=depth,
    )


def rasterize_uv(
    ctx: RenderContext,
    uv: torch.Tensor,
    uv_tris: torch.Tensor,
    resolution: tuple[int, int],
) -> Fragments:
    """Rasterize a UV layout into texture space (for texture baking).

    Each texel centre inside a UV triangle gets that triangle's id and its (affine)
    barycentrics, so :func:`~msma_engine.render.interpolate` of per-vertex positions or normals
    over the *position* triangles (same face order as ``uv_tris``) gives a position map.
    Texture row 0 is ``v = 1`` (``row = (1 − v)·H``, ``col = u·W``). Where UV triangles
    overlap, the lower triangle id wins.

    Args:
        ctx: render context.
        uv: ``(T, 2)`` UV coordinates in ``[0, 1]``, origin bottom-left.
        uv_tris: ``(F, 3)`` integer indices into ``uv``.
        resolution: texture ``(H, W)``.

    Returns:
        :class:`Fragments` with batch size 1; ``depth`` is 1 on covered texels.
    """
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ShapeError(f"uv must be (T, 2), got {tuple(uv.shape)}")
    if not uv.dtype.is_floating_point:
        raise ShapeError(f"uv must be a float tensor, got {uv.dtype}")
    uv = uv.detach()
    pos = torch.cat([uv * 2.0 - 1.0, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], dim=1)
    return rasterize(ctx, pos.unsqueeze(0), uv_tris, resolution, cull_backfaces=False)
