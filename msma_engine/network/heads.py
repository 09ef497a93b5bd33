"""Per-attribute regression heads (MSMA eq. 11).

MSMA reads each attribute from the fused map whose resolution suits it:
identity α and expression β from the coarsest kept map (F4, 7²), texture γ and
rotation r from the middle one (F3, 14²), SH lighting δ and translation t from
the finest kept map (F2, 28²). The outputs are concatenated in the face model's
coefficient order ``id | exp | tex | angles (3) | gamma (27) | trans (3)``
(:class:`~msma_engine.face_model.CoeffLayout`, docs/CONVENTIONS.md).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from msma_engine.errors import ShapeError
from msma_engine.face_model import CoeffLayout

__all__ = ["AttributeHead", "AttributeHeads", "TRANS_UNIT"]

logger = logging.getLogger(__name__)

#: Metres per raw translation output. Deep3DFaceRecon regresses translation in
#: decimetres; keeping its raw scale and converting with a fixed ×0.1 gives the same
#: optimisation behaviour while every coefficient leaving the network is in metres.
TRANS_UNIT = 0.1


class AttributeHead(nn.Module):
    """1×1 conv + BN + ReLU → global average pool → linear (zero-initialised).

    Why conv before the pool rather than pool + MLP: the non-linearity acts per
    pixel before averaging, so each attribute can build its own spatial evidence
    (e.g. where the face sits, for translation) that survives the pooling; an MLP
    after pooling only sees the channel means. The final linear layer starts at
    zero, as in Deep3DFaceRecon, so an untrained network outputs zero coefficients
    (the mean face, frontal, at the origin, under the default light).

    Args:
        in_channels: channels of the map the head reads.
        out_features: number of coefficients; 0 gives an empty ``(B, 0)`` output.
        hidden: channels after the 1×1 convolution.
    """

    def __init__(self, in_channels: int, out_features: int, hidden: int = 256) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_features = out_features
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_features)``."""
        if self.out_features == 0:
            return x.new_zeros(x.shape[0], 0)
        return self.fc(self.pool(self.reduce(x)).flatten(1))


class AttributeHeads(nn.Module):
    """The six MSMA heads on the fused maps (eq. 11).

    Args:
        channels: channels of the fused ``(F2, F3, F4)`` maps, e.g. ``(512, 1024, 2048)``.
        n_id, n_exp, n_tex: coefficient counts of the face model.
        hidden: width of each head's 1×1 convolution.

    Attributes:
        layout: the :class:`~msma_engine.face_model.CoeffLayout` of the output.

    Shapes:
        ``forward(f2, f3, f4)`` with ``f_k`` of shape ``(B, channels[k-2], H_k, W_k)``
        → ``(B, n_id + n_exp + n_tex + 33)`` in layout order; translation in metres.
    """

    #: (attribute, index of the fused map it reads: 0 = F2 (finest kept) .. 2 = F4 (coarsest)).
    SOURCES = (("id", 2), ("exp", 2), ("tex", 1), ("angles", 1), ("gamma", 0), ("trans", 0))

    def __init__(self, channels: tuple[int, int, int], n_id: int, n_exp: int, n_tex: int, hidden: int = 256) -> None:
        super().__init__()
        self.layout = CoeffLayout(n_id, n_exp, n_tex)
        self.channels = tuple(channels)
        counts = dict(zip(self.layout.names, self.layout.sizes))
        self.heads = nn.ModuleDict(
            {name: AttributeHead(self.channels[src], counts[name], hidden) for name, src in self.SOURCES}
        )

    def forward(self, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        maps = (f2, f3, f4)
        for k, (m, c) in enumerate(zip(maps, self.channels)):
            if m.dim() != 4 or m.shape[1] != c:
                raise ShapeError(f"fused map F{k + 2} must be (B, {c}, H, W), got {tuple(m.shape)}")
        outs = []
        for name, src in self.SOURCES:
            y = self.heads[name](maps[src])
            outs.append(y * TRANS_UNIT if name == "trans" else y)
        return torch.cat(outs, dim=1)
