"""Differentiable mesh renderer built from a few nvdiffrast-style primitives.

Conventions follow nvdiffrast: the :class:`RenderContext` comes first in every primitive
that runs on a backend (``rasterize(ctx, pos, tri, resolution)``, ``rasterize_uv``,
``texture(ctx, tex, uv)``); ``interpolate(attr, frags, tri)`` follows the fragments' backend.
Every image is channels-last ``(B, H, W, C)`` with row 0 at the top, and every per-pixel
value is 0 on background (:attr:`Fragments.mask` tells covered pixels apart).

``rasterize`` → :class:`Fragments` (triangle id, perspective-correct barycentrics, depth per
pixel; :class:`TorchFragments` or :class:`NvdiffrastFragments` by backend); ``interpolate``
per-vertex attributes over them; ``texture`` lookups; and ``rasterize_uv`` for texture
baking. A :class:`RenderContext` picks the backend: pure PyTorch (CPU/CUDA) or nvdiffrast
(CUDA, optional). :func:`render_mesh` builds shaded images, masks, depth and normal maps
from these; :func:`channels_first` converts images for the ``(B, C, H, W)`` networks and losses.

Gradients reach vertex positions through the barycentrics of covered pixels; there is no
anti-aliasing primitive, so silhouette (coverage) changes have no gradient.
"""

from msma_engine.render.context import RenderContext, nvdiffrast_available
from msma_engine.render.fragments import Fragments, NvdiffrastFragments, TorchFragments
from msma_engine.render.interpolate import interpolate
from msma_engine.render.layout import channels_first
from msma_engine.render.mesh_renderer import MeshRender, render_mesh
from msma_engine.render.rasterize import rasterize, rasterize_uv
from msma_engine.render.texture import dilate_texture, texture

__all__ = [
    "RenderContext",
    "nvdiffrast_available",
    "Fragments",
    "TorchFragments",
    "NvdiffrastFragments",
    "rasterize",
    "rasterize_uv",
    "interpolate",
    "texture",
    "dilate_texture",
    "render_mesh",
    "MeshRender",
    "channels_first",
]
