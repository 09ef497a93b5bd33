"""The rasterizer's output: which triangle covers each pixel, where, and how deep.

Every backend returns a :class:`Fragments` subclass carrying only its own data; the common
views below are what consumers use, and :func:`~msma_engine.render.interpolate` dispatches
on the subclass. All views have image row 0 at the top.

- ``triangle_id``: ``(B, H, W)`` int64 index into the triangle list, −1 on background.
- ``barycentrics``: ``(B, H, W, 3)`` perspective-correct barycentric weights of the
  triangle's three vertices, differentiable w.r.t. the rasterized clip positions.
- ``depth``: ``(B, H, W)`` camera depth ``Z = w_clip`` (metres for the project camera),
  differentiable like ``barycentrics``.
- ``mask``: ``(B, H, W)`` bool, True where a triangle covers the pixel.

Background: every per-pixel value (barycentrics, depth, interpolated attributes, rendered
images) is **0** where no triangle covers the pixel, as in nvdiffrast; use ``mask`` (not a
depth sentinel) to tell covered pixels apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Fragments", "TorchFragments", "NvdiffrastFragments"]


class Fragments:
    """Per-pixel visibility of a rasterized mesh; the common interface of the backends.

    Subclasses provide ``triangle_id``, ``barycentrics`` and ``depth`` (see the module doc).
    """

    triangle_id: torch.Tensor
    barycentrics: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, True where a triangle covers the pixel."""
        return self.triangle_id >= 0

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.triangle_id.shape[1]), int(self.triangle_id.shape[2])


@dataclass(eq=False)
class TorchFragments(Fragments):
    """Fragments of the PyTorch rasterizer, which works on covered pixels only.

    The dense ``barycentrics`` and ``depth`` views are built on first access.

    Attributes:
        triangle_id: ``(B, H, W)`` int64, −1 on background.
        pixel_index: ``(N,)`` flat indices into ``B·H·W`` of the covered pixels (sorted).
        pixel_triangle: ``(N,)`` triangle id of each covered pixel.
        pixel_barycentrics: ``(N, 3)`` their barycentrics (differentiable).
        pixel_depth: ``(N,)`` their camera depth (differentiable).
    """

    triangle_id: torch.Tensor
    pixel_index: torch.Tensor
    pixel_triangle: torch.Tensor
    pixel_barycentrics: torch.Tensor
    pixel_depth: torch.Tensor
    _dense: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def _scatter(self, name: str, values: torch.Tensor) -> torch.Tensor:
        """Dense ``(B, H, W, ...)`` view of per-covered-pixel ``values``, 0 on background (cached)."""
        if name not in self._dense:
            flat = values.new_zeros(self.triangle_id.numel(), *values.shape[1:])
            flat = flat.index_put((self.pixel_index,), values)
            self._dense[name] = flat.view(*self.triangle_id.shape, *values.shape[1:])
        return self._dense[name]

    @property
    def barycentrics(self) -> torch.Tensor:
        return self._scatter("barycentrics", self.pixel_barycentrics)

    @property
    def depth(self) -> torch.Tensor:
        return self._scatter("depth", self.pixel_depth)


@dataclass(eq=False)
class NvdiffrastFragments(Fragments):
    """Fragments of the nvdiffrast backend.

    Attributes:
        triangle_id: ``(B, H, W)`` int64, −1 on background (row 0 at the top).
        barycentrics: ``(B, H, W, 3)`` (row 0 at the top).
        depth: ``(B, H, W)`` (row 0 at the top).
        raw: nvdiffrast's own ``rast_out`` ``(B, H, W, 4)`` = ``(u, v, z/w, id + 1)`` in its
            bottom-up row order, for ``nvdiffrast.torch.interpolate``.
    """

    triangle_id: torch.Tensor
    barycentrics: torch.Tensor
    depth: torch.Tensor
    raw: torch.Tensor = field(repr=False)
