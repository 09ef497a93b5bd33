"""The rasterizer's output: which triangle covers each pixel, where, and how deep."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Fragments"]


@dataclass
class Fragments:
    """Per-pixel visibility of a rasterized mesh (image row 0 at the top).

    Dense views (built on first access by the torch backend, which works on covered pixels
    only):

    - ``triangle_id``: ``(B, H, W)`` int64 index into the triangle list, −1 for background.
    - ``barycentrics``: ``(B, H, W, 3)`` perspective-correct barycentric weights of the
      triangle's three vertices (zeros on background), differentiable w.r.t. the clip
      positions that were rasterized.
    - ``depth``: ``(B, H, W)`` camera depth ``Z = w_clip`` (metres for the project camera),
      ``+inf`` on background; differentiable like ``barycentrics``.
    - ``mask``: ``(B, H, W)`` bool, True where a triangle covers the pixel.

    Attributes:
        triangle_id: see above.
        backend: ``"torch"`` or ``"nvdiffrast"``; :func:`~msma_engine.render.interpolate` uses the
            backend's own data below.
        pixel_index: torch backend: ``(N,)`` flat indices into ``B·H·W`` of covered pixels.
        pixel_triangle: torch backend: ``(N,)`` triangle id of each covered pixel.
        pixel_barycentrics: torch backend: ``(N, 3)`` their barycentrics (differentiable).
        pixel_depth: torch backend: ``(N,)`` their depth (differentiable).
        raw: nvdiffrast backend: its ``rast_out`` ``(B, H, W, 4)`` = (u, v, z/w, id + 1) in
            nvdiffrast's bottom-up row order.
    """

    triangle_id: torch.Tensor
    backend: str = "torch"
    pixel_index: torch.Tensor | None = None
    pixel_triangle: torch.Tensor | None = None
    pixel_barycentrics: torch.Tensor | None = None
    pixel_depth: torch.Tensor | None = None
    raw: torch.Tensor | None = None
    dense_barycentrics: torch.Tensor | None = field(default=None, repr=False)
    dense_depth: torch.Tensor | None = field(default=None, repr=False)

    @property
    def barycentrics(self) -> torch.Tensor:
        if self.dense_barycentrics is None:
            flat = self.pixel_barycentrics.new_zeros(self.triangle_id.numel(), 3)
            flat = flat.index_put((self.pixel_index,), self.pixel_barycentrics)
            self.dense_barycentrics = flat.view(*self.triangle_id.shape, 3)
        return self.dense_barycentrics

    @property
    def depth(self) -> torch.Tensor:
        if self.dense_depth is None:
            flat = self.pixel_depth.new_full((self.triangle_id.numel(),), float("inf"))
            self.dense_depth = flat.index_put((self.pixel_index,), self.pixel_depth).view(self.triangle_id.shape)
        return self.dense_depth

    @property
    def mask(self) -> torch.Tensor:
        return self.triangle_id >= 0

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[2])
