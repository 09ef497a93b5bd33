"""The rasterizer's output: which triangle covers each pixel, where, and how deep."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Fragments"]


@dataclass
class Fragments:
    """Per-pixel visibility of a rasterized mesh (image row 0 at the top).

    Attributes:
        triangle_id: ``(B, H, W)`` int64 index into the triangle list, −1 for background.
        barycentrics: ``(B, H, W, 3)`` perspective-correct barycentric weights of the
            triangle's three vertices (zeros on background). Differentiable w.r.t. the clip
            positions that were rasterized.
        depth: ``(B, H, W)`` camera depth ``Z = w_clip`` (metres for the project camera),
            ``+inf`` on background. Differentiable like ``barycentrics``.
        backend: ``"torch"`` or ``"nvdiffrast"``; :func:`~engine.render.interpolate` uses
            the backend's own data below.
        pixel_index: torch backend: ``(N,)`` flat indices into ``B·H·W`` of the covered
            pixels (None for nvdiffrast).
        pixel_triangle: torch backend: ``(N,)`` triangle id of each covered pixel.
        pixel_barycentrics: torch backend: ``(N, 3)`` their barycentrics (differentiable).
        raw: nvdiffrast backend: its ``rast_out`` ``(B, H, W, 4)`` = (u, v, z/w, id + 1) in
            nvdiffrast's bottom-up row order (None for torch).
    """

    triangle_id: torch.Tensor
    barycentrics: torch.Tensor
    depth: torch.Tensor
    backend: str = "torch"
    pixel_index: torch.Tensor | None = None
    pixel_triangle: torch.Tensor | None = None
    pixel_barycentrics: torch.Tensor | None = None
    raw: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, True where a triangle covers the pixel."""
        return self.triangle_id >= 0

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[2])
