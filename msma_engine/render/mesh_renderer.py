"""Render a posed mesh: shaded image, face mask, depth map and normal map.

Built from the primitives only: rasterize the clip positions, interpolate per-vertex
colours (albedo × SH irradiance evaluated at the vertices, as Deep3DFaceRecon does), depth
comes from the fragments, normals are interpolated vertex normals renormalised per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from msma_engine.errors import ShapeError
from msma_engine.geometry import vertex_normals
from msma_engine.render.context import RenderContext
from msma_engine.render.fragments import Fragments
from msma_engine.render.interpolate import interpolate
from msma_engine.render.rasterize import rasterize

__all__ = ["MeshRender", "render_mesh"]


@dataclass
class MeshRender:
    """Images from :func:`render_mesh`, all channels-last ``(B, H, W, C)`` with row 0 at the
    top, like the primitives (:func:`~msma_engine.render.channels_first` converts for the
    ``(B, C, H, W)`` image losses and networks).

    Attributes:
        image: ``(B, H, W, 3)`` shaded colour in [0, 1]-ish (not clamped), ``background``
            outside the mesh.
        mask: ``(B, H, W, 1)`` float, 1 where the mesh covers the pixel.
        depth: ``(B, H, W, 1)`` camera depth ``Z`` in metres, 0 on background.
        normals: ``(B, H, W, 3)`` unit normals in the world frame (which has the camera's
            axes), 0 on background.
        fragments: the rasterizer output, for further interpolation.
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    fragments: Fragments


def render_mesh(
    ctx: RenderContext,
    vertices: torch.Tensor,
    tris: torch.Tensor,
    resolution: tuple[int, int],
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pos_clip: torch.Tensor | None = None,
    colors: torch.Tensor | None = None,
    albedo: torch.Tensor | None = None,
    gamma: torch.Tensor | None = None,
    normals: torch.Tensor | None = None,
    background: float = 0.0,
    cull_backfaces: bool = True,
) -> MeshRender:
    """Render a posed mesh with per-vertex colour or albedo × SH lighting.

    Exactly one of ``project`` / ``pos_clip`` gives the projection, and either ``colors``
    or ``albedo`` (+ ``gamma``) the colour.

    Args:
        ctx: render context.
        vertices: ``(B, V, 3)`` posed vertices in the world frame, metres.
        tris: ``(F, 3)`` integer indices, counter-clockwise seen from outside.
        resolution: ``(H, W)``.
        project: world points ``(B, V, 3)`` → clip ``(B, V, 4)``, e.g.
            ``PerspectiveCamera.world_to_clip``.
        pos_clip: ``(B, V, 4)`` precomputed clip positions instead of ``project``.
        colors: ``(B, V, 3)`` or ``(V, 3)`` final vertex colours (no lighting).
        albedo: ``(B, V, 3)`` or ``(V, 3)`` vertex albedo in [0, 1], lit by ``gamma``.
        gamma: ``(B, 27)`` SH coefficients (docs/CONVENTIONS.md); None = plain albedo.
        normals: ``(B, V, 3)`` unit vertex normals; None = area-weighted from the mesh.
        background: value of the image outside the mesh.
        cull_backfaces: skip triangles facing away from the camera.

    Returns:
        :class:`MeshRender`.
    """
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise ShapeError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
    if (project is None) == (pos_clip is None):
        raise ValueError("give exactly one of project= or pos_clip=")
    if (colors is None) == (albedo is None):
        raise ValueError("give exactly one of colors= or albedo=")
    bsz, nv = vertices.shape[:2]
    clip = project(vertices) if project is not None else pos_clip
    if clip.shape != (bsz, nv, 4):
        raise ShapeError(f"clip positions must be ({bsz}, {nv}, 4), got {tuple(clip.shape)}")
    if normals is None:
        normals = vertex_normals(vertices, tris.long())
    elif normals.shape != vertices.shape:
        raise ShapeError(f"normals must match vertices {tuple(vertices.shape)}, got {tuple(normals.shape)}")

    if colors is not None:
        vert_rgb = colors
    else:
        if albedo.shape[-1] != 3 or albedo.shape[-2] != nv:
            raise ShapeError(f"albedo must be (B, {nv}, 3) or ({nv}, 3), got {tuple(albedo.shape)}")
        vert_rgb = albedo
        if gamma is not None:
            from msma_engine.shading import sh_shading

            vert_rgb = sh_shading(normals, gamma, albedo.expand(bsz, -1, -1))

    frags = rasterize(ctx, clip, tris, resolution, cull_backfaces=cull_backfaces)
    mask = frags.mask.unsqueeze(-1).to(vertices.dtype)
    rgb = interpolate(vert_rgb, frags, tris)
    image = rgb + (1.0 - mask) * background
    pix_n = interpolate(normals, frags, tris)
    pix_n = pix_n / pix_n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return MeshRender(image=image, mask=mask, depth=frags.depth.unsqueeze(-1), normals=pix_n, fragments=frags)
