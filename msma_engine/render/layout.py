"""The one conversion from the renderer's channels-last images to channels-first ones.

The renderer (primitives and :func:`~msma_engine.render.render_mesh`) returns ``(B, H, W, C)``
images, as nvdiffrast does; the networks and the image losses and metrics that compare
renders with network inputs take ``(B, C, H, W)``.
"""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError

__all__ = ["channels_first"]


def channels_first(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` rendered images → a ``(B, C, H, W)`` view (no copy)."""
    if images.ndim != 4:
        raise ShapeError(f"images must be (B, H, W, C), got {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2)
