"""Per-attribute regression heads (MSMA eq. 11) and the coefficient layout sizes.

MSMA reads each attribute from the fused map whose resolution suits it:
identity α and expression β from the coarsest kept map (F4, 7²), texture γ and
rotation r from the middle one (F3, 14²), SH lighting δ and translation t from
the finest kept map (F2, 28²). The outputs are concatenated in the face model's
coefficient order ``id | exp | tex | angles (3) | gamma (27) | trans (3)``
(docs/CONVENTIONS.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from msma_engine.errors import ShapeError

__all__ = ["CoeffSizes", "AttributeHead", "AttributeHeads", "N_ANGLES", "N_GAMMA", "N_TRANS", "TRANS_UNIT"]

logger = logging.getLogger(__name__)

N_ANGLES = 3
N_GAMMA = 27
N_TRANS = 3
#: Metres per raw translation output. Deep3DFaceRecon regresses translation in
#: decimetres; keeping its raw scale and converting with a fixed ×0.1 gives the same
#: optimisation behaviour while every coefficient leaving the network is in metres.
TRANS_UNIT = 0.1


@dataclass(frozen=True)
class CoeffSizes:
    """Sizes of the face-model-dependent coefficient groups.

    Attributes:
        id: identity coefficients (BFM09: 80).
        exp: expression coefficients (BFM09: 64).
        tex: albedo coefficients (BFM09: 80).
    """

    id: int
    exp: int
    tex: int

    def __post_init__(self) -> None:
        for name in ("id", "exp", "tex"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CoeffSizes.{name} must be a non-negative int, got {value!r}")

    @property
    def n_coeffs(self) -> int:
        """Length of the full coefficient vector (BFM09: 257)."""
        return self.id + self.exp + self.tex + N_ANGLES + N_GAMMA + N_TRANS

    def slices(self) -> dict[str, slice]:
        """Slices of each group in the coefficient vector, in layout order."""
        out, start = {}, 0
        for name, n in (("id", self.id), ("exp", self.exp), ("tex", self.tex),
                        ("angles", N_ANGLES), ("gamma", N_GAMMA), ("trans", N_TRANS)):
            out[name] = slice(start, start + n)
            start += n
        return out

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.id, self.exp, self.tex)


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

    Shapes:
        ``forward(f2, f3, f4)`` with ``f_k`` of shape ``(B, channels[k-2], H_k, W_k)``
        → ``(B, n_id + n_exp + n_tex + 33)`` in layout order; translation in metres.
    """

    #: (attribute, index of the fused map it reads: 0 = F2 (finest kept) .. 2 = F4 (coarsest)).
    SOURCES = (("id", 2), ("exp", 2), ("tex", 1), ("angles", 1), ("gamma", 0), ("trans", 0))

    def __init__(self, channels: tuple[int, int, int], n_id: int, n_exp: int, n_tex: int, hidden: int = 256) -> None:
        super().__init__()
        self.sizes = CoeffSizes(n_id, n_exp, n_tex)
        self.channels = tuple(channels)
        counts = {"id": n_id, "exp": n_exp, "tex": n_tex, "angles": N_ANGLES, "gamma": N_GAMMA, "trans": N_TRANS}
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
