"""nvdiffrast backend of the rendering primitives (CUDA only, optional).

Written against nvdiffrast's documented ``nvdiffrast.torch`` API: ``rasterize(glctx, pos,
tri, resolution)`` returns ``rast_out`` ``[B, H, W, 4]`` = ``(u, v, z/w, triangle_id + 1)``
with row 0 at NDC ``y = −1`` (bottom-up), where ``(u, v)`` weight vertices 0 and 1 and
``1 − u − v`` weights vertex 2; ``interpolate(attr, rast, tri)`` and ``texture(tex, uv)``
(texel row 0 at ``v = 0``). This module flips rows so the public outputs have row 0 at the
top, and flips ``v`` for textures so UV origin is bottom-left as in docs/CONVENTIONS.md.
nvdiffrast itself is imported lazily: it is not installable everywhere.
"""

from __future__ import annotations

import torch

from msma_engine.render.fragments import NvdiffrastFragments

__all__ = ["rasterize", "interpolate", "texture"]


def _dr():
    import nvdiffrast.torch as dr

    return dr


def rasterize(ctx, pos: torch.Tensor, tris: torch.Tensor, resolution: tuple[int, int],
              cull_backfaces: bool) -> NvdiffrastFragments:
    """nvdiffrast version of :func:`msma_engine.render.rasterize` (arguments already checked)."""
    dr = _dr()
    glctx = ctx.nvdiffrast_context(pos.device)
    pos32 = pos.float().contiguous()
    tri32 = tris.int().contiguous()
    if cull_backfaces:
        # nvdiffrast draws both sides: rasterize each batch item's front faces alone, then map
        # the subset's ids back to the full triangle list so interpolate() can use `tris`.
        outs = []
        for b in range(pos32.shape[0]):
            front = _front_facing(pos32[b], tris).nonzero().squeeze(1)
            rast_b, _ = dr.rasterize(glctx, pos32[b : b + 1], tri32[front].contiguous(), resolution)
            ids = rast_b[..., 3:4].long()
            lut = torch.cat([front.new_zeros(1), front + 1])
            outs.append(torch.cat([rast_b[..., :3], lut[ids.squeeze(-1)].unsqueeze(-1).float()], dim=-1))
        raw = torch.cat(outs, dim=0)
    else:
        raw, _ = dr.rasterize(glctx, pos32, tri32, resolution)
    flipped = raw.flip(1)
    tri_id = flipped[..., 3].round().long() - 1
    u, v = flipped[..., 0], flipped[..., 1]
    covered = (tri_id >= 0).unsqueeze(-1)
    bary = torch.where(covered, torch.stack([u, v, 1.0 - u - v], dim=-1), torch.zeros_like(flipped[..., :3]))
    depth_attr, _ = dr.interpolate(pos32[..., 3:4].contiguous(), raw, tri32)
    depth = torch.where(covered.squeeze(-1), depth_attr.flip(1)[..., 0], torch.zeros_like(u))
    return NvdiffrastFragments(triangle_id=tri_id, barycentrics=bary, depth=depth, raw=raw)


def _front_facing(pos: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    ndc = pos[:, :2] / pos[:, 3:4]
    a, b, c = ndc[tris[:, 0]], ndc[tris[:, 1]], ndc[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    return area > 0


def interpolate(attr: torch.Tensor, frags: NvdiffrastFragments, tris: torch.Tensor) -> torch.Tensor:
    """nvdiffrast version of :func:`msma_engine.render.interpolate` (arguments already checked)."""
    out, _ = _dr().interpolate(attr.float().contiguous(), frags.raw, tris.int().contiguous())
    return out.flip(1)


def texture(tex: torch.Tensor, uv: torch.Tensor, boundary: str) -> torch.Tensor:
    """nvdiffrast version of :func:`msma_engine.render.texture` (bilinear, no mipmaps)."""
    uv_nv = torch.stack([uv[..., 0], 1.0 - uv[..., 1]], dim=-1).float().contiguous()
    return _dr().texture(tex.float().contiguous(), uv_nv, filter_mode="linear", boundary_mode=boundary)
