"""Spherical-harmonic (3 bands) Lambertian shading with Deep3DFaceRecon's constants."""

from __future__ import annotations

import math

import torch

from msma_engine.errors import ShapeError
from msma_engine.sh_constants import A0 as _A0, A1 as _A1, A2 as _A2, C0 as _C0, C1 as _C1, C2 as _C2, N_SH, SH_INIT_DC

__all__ = ["sh_basis", "sh_shading", "sh_irradiance", "SH_INIT_DC", "N_SH"]



def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 irradiance-weighted SH basis values of unit normals.

    Args:
        normals: ``(..., 3)`` unit vectors in the world frame.

    Returns:
        ``(..., 9)``.
    """
    if normals.shape[-1] != 3:
        raise ShapeError(f"normals must be (..., 3), got {tuple(normals.shape)}")
    x, y, z = normals.unbind(-1)
    return torch.stack([
        torch.full_like(x, _A0 * _C0),
        -_A1 * _C1 * y,
        _A1 * _C1 * z,
        -_A1 * _C1 * x,
        _A2 * _C2 * x * y,
        -_A2 * _C2 * y * z,
        0.5 * _A2 * _C2 / math.sqrt(3.0) * (3 * z * z - 1),
        -_A2 * _C2 * x * z,
        0.5 * _A2 * _C2 * (x * x - y * y),
    ], dim=-1)


def sh_irradiance(normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-channel irradiance from SH coefficients.

    Args:
        normals: ``(B, ..., 3)`` unit normals.
        gamma: ``(B, 27)`` SH coefficients, order R(9) G(9) B(9); the DC terms are offset by
            :data:`SH_INIT_DC`.

    Returns:
        ``(B, ..., 3)`` irradiance (multiply by albedo for the shaded colour).
    """
    if gamma.ndim != 2 or gamma.shape[1] != 3 * N_SH:
        raise ShapeError(f"gamma must be (B, 27), got {tuple(gamma.shape)}")
    coeffs = gamma.view(-1, 3, N_SH).clone()
    coeffs[:, :, 0] = coeffs[:, :, 0] + SH_INIT_DC
    basis = sh_basis(normals)  # (B, ..., 9)
    flat = basis.reshape(basis.shape[0], -1, N_SH)
    irr = torch.einsum("bnk,bck->bnc", flat, coeffs)
    return irr.reshape(*normals.shape[:-1], 3)


def sh_shading(normals: torch.Tensor, gamma: torch.Tensor, albedo: torch.Tensor | None = None) -> torch.Tensor:
    """Shaded colour ``albedo × irradiance`` (or the irradiance when ``albedo`` is None).

    Args:
        normals: ``(B, N, 3)`` unit normals.
        gamma: ``(B, 27)``.
        albedo: ``(B, N, 3)`` in [0, 1], optional.

    Returns:
        ``(B, N, 3)``.
    """
    irr = sh_irradiance(normals, gamma)
    return irr if albedo is None else albedo * irr
