"""Pure tensor geometry: rotations and vertex normals (no face-model state)."""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError

__all__ = ["euler_to_rotation", "rotation_to_euler", "vertex_normals", "face_normals"]


def euler_to_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (Deep3DFaceRecon's order).

    Args:
        angles: ``(B, 3)`` radians ``(pitch, yaw, roll)``.

    Returns:
        ``(B, 3, 3)`` rotation matrices acting on column vectors: ``v' = R @ v``.
    """
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise ShapeError(f"angles must be (B, 3), got {tuple(angles.shape)}")
    x, y, z = angles.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def rotation_to_euler(rotation: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_rotation` for ``|yaw| < π/2``.

    Args:
        rotation: ``(B, 3, 3)``.

    Returns:
        ``(B, 3)`` radians ``(pitch, yaw, roll)``.
    """
    if rotation.ndim != 3 or rotation.shape[1:] != (3, 3):
        raise ShapeError(f"rotation must be (B, 3, 3), got {tuple(rotation.shape)}")
    yaw = torch.asin((-rotation[:, 2, 0]).clamp(-1.0, 1.0))
    pitch = torch.atan2(rotation[:, 2, 1], rotation[:, 2, 2])
    roll = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return torch.stack([pitch, yaw, roll], dim=-1)


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unnormalised triangle normals (twice the area, CCW = outward).

    Args:
        vertices: ``(B, V, 3)``.
        triangles: ``(F, 3)`` int64 vertex indices.

    Returns:
        ``(B, F, 3)``.
    """
    v0 = vertices[:, triangles[:, 0]]
    v1 = vertices[:, triangles[:, 1]]
    v2 = vertices[:, triangles[:, 2]]
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        vertices: ``(B, V, 3)``.
        triangles: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside.

    Returns:
        ``(B, V, 3)`` unit normals (zero for vertices in no triangle).
    """
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ShapeError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
    fn = face_normals(vertices, triangles)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals = normals.index_add(1, triangles[:, corner], fn)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(eps)
