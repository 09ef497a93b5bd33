"""MLKA and the MAMA attention block (MSMA, DESIGN.md §2).

MLKA is the multi-scale large-kernel attention of Wang et al., "Multi-scale
Attention Network for Single Image Super-Resolution" (MAN, CVPR 2024 workshops).
Written here from the paper's description:

- the channels are split in three groups;
- group ``i`` gets a large-kernel attention ``LKA_i`` = depthwise ``k×k`` →
  dilated depthwise → pointwise 1×1, with (``k``, dilated kernel, dilation) =
  (3, 5, 2), (5, 7, 3), (7, 9, 4) — receptive fields 11, 23 and 39 pixels;
- each ``LKA_i`` is gated by a plain depthwise ``k×k`` branch:
  ``A_i = LKA_i(x_i) * DW_i(x_i)``;
- the three maps are concatenated back to the input's channels.

:class:`MAMA` wraps MLKA the way MAN's multi-scale attention block (MAB) does:
channel LayerNorm → 1×1 in-projection to twice the channels, split into an
attention input ``a`` and a value ``v`` → ``v * MLKA(a)`` → 1×1 out-projection →
residual with a learnable per-channel scale; then MAN's gated spatial attention
unit (GSAU, a gated depthwise-7×7 feed-forward) with its own scaled residual.

Cost per MAMA block at 224² input (parameters / MACs): on MSMA-ResNet-50's maps
28²×512: 1.75 M / 1.36 G, 14²×1024: 6.82 M / 1.33 G, 7²×2048: 26.92 M / 1.32 G;
on the light variant's 28²×128 / 14²×256 / 7²×512: 0.13 M / 0.10 G, 0.46 M / 0.09 G,
1.75 M / 0.09 G.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from msma_engine.errors import ShapeError

__all__ = ["ChannelLayerNorm", "MLKA", "GSAU", "MAMA", "MLKA_KERNELS"]

logger = logging.getLogger(__name__)

#: (gate / first depthwise kernel, dilated depthwise kernel, dilation) per channel group.
MLKA_KERNELS: tuple[tuple[int, int, int], ...] = ((3, 5, 2), (5, 7, 3), (7, 9, 4))


def _check_nchw(x: torch.Tensor, channels: int, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ShapeError(f"{name} expects (B, {channels}, H, W), got {tuple(x.shape)}")


def _dw(channels: int, kernel: int, dilation: int = 1) -> nn.Conv2d:
    """Depthwise conv keeping the spatial size."""
    return nn.Conv2d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=channels)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)`` maps (each pixel normalised on its own).

    Args:
        channels: ``C``.
        eps: added to the variance (MAN's value, 1e-6).
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class MLKA(nn.Module):
    """Multi-scale large-kernel attention map.

    Args:
        channels: ``C`` (any value ≥ 3; the groups get ``C − 2⌊C/3⌋``, ``⌊C/3⌋``, ``⌊C/3⌋`` channels).

    Shapes:
        ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 3:
            raise ValueError(f"MLKA needs at least 3 channels (three groups), got {channels}")
        self.channels = channels
        third = channels // 3
        self.groups = (channels - 2 * third, third, third)
        self.lka = nn.ModuleList()
        self.gate = nn.ModuleList()
        for c, (k, k_dil, dil) in zip(self.groups, MLKA_KERNELS):
            self.lka.append(nn.Sequential(_dw(c, k), _dw(c, k_dil, dil), nn.Conv2d(c, c, 1)))
            self.gate.append(_dw(c, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_nchw(x, self.channels, "MLKA")
        parts = torch.split(x, self.groups, dim=1)
        return torch.cat([lka(p) * gate(p) for p, lka, gate in zip(parts, self.lka, self.gate)], dim=1)


class GSAU(nn.Module):
    """MAN's gated spatial attention unit: ``x + s · W_out(u · DW7(g))``, ``[g, u] = W_in(LN(x))``.

    Args:
        channels: ``C``.
        layer_scale_init: initial value of the per-channel residual scale ``s``.
    """

    def __init__(self, channels: int, layer_scale_init: float = 1e-2) -> None:
        super().__init__()
        self.channels = channels
        self.norm = ChannelLayerNorm(channels)
        self.proj_in = nn.Conv2d(channels, 2 * channels, 1)
        self.dw = _dw(channels, 7)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.scale = nn.Parameter(torch.full((1, channels, 1, 1), float(layer_scale_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_nchw(x, self.channels, "GSAU")
        g, u = self.proj_in(self.norm(x)).chunk(2, dim=1)
        return x + self.scale * self.proj_out(u * self.dw(g))


class MAMA(nn.Module):
    """Multi-scale attention block around :class:`MLKA` (MAN's MAB).

    ``y = x + s₁ · W_out(v · MLKA(a))`` with ``[a, v] = W_in(LN(x))``, then ``GSAU(y)``.

    Args:
        channels: ``C`` of the map it refines.
        layer_scale_init: initial residual scales ``s``. MAN starts them at 0 (an exact
            identity); a small non-zero value keeps the block almost an identity while
            letting every weight receive a gradient from the first step.
        feedforward: append the GSAU feed-forward unit (MAN's MAB has it).

    Shapes:
        ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, layer_scale_init: float = 1e-2, feedforward: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.norm = ChannelLayerNorm(channels)
        self.proj_in = nn.Conv2d(channels, 2 * channels, 1)
        self.mlka = MLKA(channels)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.scale = nn.Parameter(torch.full((1, channels, 1, 1), float(layer_scale_init)))
        self.ffn = GSAU(channels, layer_scale_init) if feedforward else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_nchw(x, self.channels, "MAMA")
        a, v = self.proj_in(self.norm(x)).chunk(2, dim=1)
        x = x + self.scale * self.proj_out(v * self.mlka(a))
        return x if self.ffn is None else self.ffn(x)
