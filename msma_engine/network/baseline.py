"""Baseline regressor for ablations: ResNet-50 → global average pool → one linear layer.

The same design as Deep3DFaceRecon's R-Net (its seven zero-initialised 1×1
"final layers" are one linear layer here, rows in the same order). 24.03 M
parameters, 4.09 GMACs at 224² for BFM09 sizes (257 coefficients).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from msma_engine.network.heads import TRANS_UNIT
from msma_engine.network.regressor import CoefficientRegressor
from msma_engine.network.resnet import resnet50

__all__ = ["BaselineNet"]

logger = logging.getLogger(__name__)


class BaselineNet(CoefficientRegressor):
    """Plain ResNet-50 coefficient regressor ("baseline").

    Args:
        n_id, n_exp, n_tex: coefficient counts of the face model.

    Shapes:
        ``(B, 3, H, W)`` images in [0, 1] → ``(B, n_id + n_exp + n_tex + 33)``, translation in metres.
    """

    def __init__(self, n_id: int, n_exp: int, n_tex: int) -> None:
        super().__init__("baseline", n_id, n_exp, n_tex)
        self.backbone = resnet50()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.backbone.channels[-1], self.n_coeffs)
        # Zero start, as Deep3DFaceRecon: the untrained network predicts the mean face.
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        unit = torch.ones(self.n_coeffs)
        unit[self.layout.slices()["trans"]] = TRANS_UNIT
        self.register_buffer("output_unit", unit, persistent=False)

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.backbone(x)[-1]
        return self.fc(self.pool(f4).flatten(1)) * self.output_unit
