"""The MSMA regressor: ResNet pyramid → MSF → MAMA per kept scale → attribute heads.

``MSMANet(light=False)`` ("msma") is the paper's network on ResNet-50;
``MSMANet(light=True)`` ("msma_light") is the same design on ResNet-18 for CPU
users (4× narrower maps everywhere, heads 128 wide).

At 224² input, BFM09 sizes (80/64/80 → 257 coefficients), multiply-adds of the
convolutions and linear layers (printed by ``benchmarks/bench_network.py``):

============  ===========  =======
arch          parameters   MACs
============  ===========  =======
msma          110.01 M     14.15 G
msma_light     16.85 M      2.49 G
============  ===========  =======

Of msma's parameters 23.51 M are the backbone, 49.11 M the MSF, 35.48 M the three
MAMA blocks and 1.90 M the heads (light: 11.18 / 3.07 / 2.33 / 0.26 M).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from msma_engine.network.heads import AttributeHeads
from msma_engine.network.mlka import MAMA
from msma_engine.network.msf import MultiScaleFusion
from msma_engine.network.regressor import CoefficientRegressor
from msma_engine.network.resnet import resnet18, resnet50

__all__ = ["MSMANet"]

logger = logging.getLogger(__name__)


class MSMANet(CoefficientRegressor):
    """Multi-scale multi-attribute coefficient regressor.

    Args:
        n_id, n_exp, n_tex: coefficient counts of the face model.
        light: ResNet-18 backbone and 128-wide heads instead of ResNet-50 and 256.

    Shapes:
        ``(B, 3, H, W)`` images in [0, 1] → ``(B, n_id + n_exp + n_tex + 33)``.
    """

    def __init__(self, n_id: int, n_exp: int, n_tex: int, light: bool = False) -> None:
        super().__init__("msma_light" if light else "msma", n_id, n_exp, n_tex)
        self.backbone = resnet18() if light else resnet50()
        channels = self.backbone.channels
        self.msf = MultiScaleFusion(channels, keep=(1, 2, 3))
        self.attention = nn.ModuleList([MAMA(c) for c in channels[1:]])
        self.heads = AttributeHeads(channels[1:], n_id, n_exp, n_tex, hidden=128 if light else 256)

    def fused_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fused and attended ``(F2, F3, F4)`` of normalised images ``(B, 3, H, W)``."""
        fused = self.msf(self.backbone(x))
        return tuple(block(f) for block, f in zip(self.attention, fused))

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(*self.fused_features(x))
