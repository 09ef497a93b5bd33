"""The pinhole camera of Deep3DFaceRecon, in metres (see docs/CONVENTIONS.md).

The camera sits at ``(0, 0, distance)`` looking down −z with +y up. A point's depth is
``Z = distance − z``; pixels have their origin at the top-left image corner, +v down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msma_engine.errors import ShapeError

__all__ = ["PerspectiveCamera"]


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera with the Deep3DFaceRecon defaults for a 224×224 crop.

    Attributes:
        focal: focal length in pixels.
        center: principal point ``(cx, cy)`` in pixels.
        image_size: ``(height, width)`` in pixels.
        distance: camera position on +z in metres.
        near, far: depth range (metres) mapped to the clip-space z range.
    """

    focal: float = 1015.0
    center: tuple[float, float] = (112.0, 112.0)
    image_size: tuple[int, int] = (224, 224)
    distance: float = 1.0
    near: float = 0.05
    far: float = 10.0

    def scaled(self, factor: float) -> "PerspectiveCamera":
        """The same view rendered at ``factor`` times the resolution."""
        h, w = self.image_size
        return PerspectiveCamera(
            focal=self.focal * factor,
            center=(self.center[0] * factor, self.center[1] * factor),
            image_size=(round(h * factor), round(w * factor)),
            distance=self.distance, near=self.near, far=self.far,
        )

    def depth(self, points: torch.Tensor) -> torch.Tensor:
        """Depth ``Z = distance − z`` of world points ``(..., 3)`` → ``(...)`` metres."""
        _check_points(points)
        return self.distance - points[..., 2]

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Project world points ``(..., 3)`` (metres) to pixels ``(..., 2)`` (u right, v down)."""
        z = self.depth(points)
        u = self.center[0] + self.focal * points[..., 0] / z
        v = self.center[1] - self.focal * points[..., 1] / z
        return torch.stack([u, v], dim=-1)

    def world_to_clip(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``(..., 3)`` to OpenGL-style clip coordinates ``(..., 4)`` with w = depth.

        ``x_clip / w = 2u/W − 1`` and ``y_clip / w = 1 − 2v/H``, so NDC +y is the image top;
        ``z_clip / w`` maps depth ``[near, far]`` to ``[−1, 1]``.
        """
        h, w = self.image_size
        z = self.depth(points)
        x_c = (2.0 * self.focal / w) * points[..., 0] + (2.0 * self.center[0] / w - 1.0) * z
        y_c = (2.0 * self.focal / h) * points[..., 1] + (1.0 - 2.0 * self.center[1] / h) * z
        n, f = self.near, self.far
        z_c = (f + n) / (f - n) * z - 2.0 * f * n / (f - n)
        return torch.stack([x_c, y_c, z_c, z], dim=-1)

    def unproject(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Pixels ``(..., 2)`` at depths ``(...)`` (metres) back to world points ``(..., 3)``."""
        x = (pixels[..., 0] - self.center[0]) * depth / self.focal
        y = -(pixels[..., 1] - self.center[1]) * depth / self.focal
        return torch.stack([x, y, self.distance - depth], dim=-1)


def _check_points(points: torch.Tensor) -> None:
    if points.shape[-1] != 3:
        raise ShapeError(f"points must have shape (..., 3), got {tuple(points.shape)}")
