"""Differentiable mesh renderer built from a few nvdiffrast-style primitives.

``rasterize`` → :class:`Fragments` (triangle id, perspective-correct barycentrics, depth per
pixel); ``interpolate`` per-vertex attributes over them; ``texture`` lookups; and
``rasterize_uv`` for texture baking. A :class:`RenderContext` picks the backend: pure
PyTorch (CPU/CUDA) or nvdiffrast (CUDA, optional). :func:`render_mesh` builds shaded images,
masks, depth and normal maps from these.

Gradients reach vertex positions through the barycentrics of covered pixels; there is no
anti-aliasing primitive, so silhouette (coverage) changes have no gradient.
"""

from msma_engine.render.context import RenderContext, nvdiffrast_available
from msma_engine.render.fragments import Fragments
from msma_engine.render.interpolate import interpolate
from msma_engine.render.mesh_renderer import MeshRender, render_mesh
from msma_engine.render.rasterize import rasterize, rasterize_uv
from msma_engine.render.texture import dilate_texture, texture

__all__ = [
    "RenderContext",
    "nvdiffrast_available",
    "Fragments",
    "rasterize",
    "rasterize_uv",
    "interpolate",
    "texture",
    "dilate_texture",
    "render_mesh",
    "MeshRender",
]
