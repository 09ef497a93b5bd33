"""Build a coefficient regressor by architecture name."""

from __future__ import annotations

import logging
from typing import Literal, get_args

from msma_engine.network.baseline import BaselineNet
from msma_engine.network.msma import MSMANet
from msma_engine.network.regressor import CoefficientRegressor

__all__ = ["Arch", "ARCHS", "build_network"]

logger = logging.getLogger(__name__)

Arch = Literal["msma", "msma_light", "baseline"]
ARCHS: tuple[str, ...] = get_args(Arch)


def build_network(arch: Arch, n_id: int, n_exp: int, n_tex: int) -> CoefficientRegressor:
    """Create an untrained regressor.

    Args:
        arch: ``"msma"`` (paper, ResNet-50), ``"msma_light"`` (ResNet-18, for CPUs) or
            ``"baseline"`` (ResNet-50 + linear layer, Deep3DFaceRecon's R-Net).
        n_id, n_exp, n_tex: coefficient counts of the face model (``FaceModel.layout``).

    Returns:
        A module mapping ``(B, 3, H, W)`` images in [0, 1] to ``(B, n_id + n_exp + n_tex + 33)``
        coefficients; the final layers are zero so it outputs zeros until trained.

    Example:
        >>> net = build_network("msma_light", 80, 64, 80)
        >>> net.n_coeffs
        257
    """
    if arch == "msma":
        return MSMANet(n_id, n_exp, n_tex, light=False)
    if arch == "msma_light":
        return MSMANet(n_id, n_exp, n_tex, light=True)
    if arch == "baseline":
        return BaselineNet(n_id, n_exp, n_tex)
    raise ValueError(f"unknown network architecture {arch!r}; choose one of {', '.join(ARCHS)}")
