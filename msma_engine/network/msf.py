"""MSF: HRNet-style multi-scale fusion of the backbone's feature pyramid (MSMA, DESIGN.md §2).

For every kept target scale ``i`` each other pyramid level ``F_j`` is brought to
``F_i``'s resolution and channel count and the aligned maps are summed:

- coarser source (``j > i``): 1×1 convolution (+BN) to ``C_i`` channels, then
  bilinear upsampling to ``F_i``'s size. A 1×1 convolution, an affine BN and a
  bilinear interpolation are all linear and act on different axes, so doing the
  convolution first at the low resolution gives the same result as
  "interpolate, then 1×1 conv" at a fraction of the cost;
- finer source (``j < i``): ``i − j`` stride-2 3×3 convolutions as in HRNet: the
  intermediate ones keep ``C_j`` channels and are followed by BN + ReLU, the
  last maps to ``C_i`` and is followed by BN only;
- same level: identity.

The sum goes through a ReLU. MSMA keeps the fused F2, F3 and F4.

Cost at 224² (keep F2..F4): on ResNet-50's pyramid 49.11 M parameters, 5.69 GMACs
(the 3×3 stride-2 convs into F3/F4's wide maps dominate, as in HRNet); on ResNet-18's
3.07 M parameters, 0.36 GMACs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from msma_engine.errors import ShapeError

__all__ = ["MultiScaleFusion"]

logger = logging.getLogger(__name__)


def _downsampler(in_ch: int, out_ch: int, steps: int) -> nn.Sequential:
    """``steps`` stride-2 3×3 convs, HRNet style: BN+ReLU between, BN only after the last."""
    layers: list[nn.Module] = []
    for k in range(steps):
        last = k == steps - 1
        layers.append(nn.Conv2d(in_ch, out_ch if last else in_ch, 3, stride=2, padding=1, bias=False))
        layers.append(nn.BatchNorm2d(out_ch if last else in_ch))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Upsampler(nn.Module):
    """1×1 conv + BN to the target channels, then bilinear resize to the target size."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.bn(self.conv(x)), size=size, mode="bilinear", align_corners=False)


class MultiScaleFusion(nn.Module):
    """Fuse a feature pyramid into each kept scale.

    Args:
        channels: channels of ``F1..Fn``, e.g. ``(256, 512, 1024, 2048)``.
        keep: 0-based indices of the levels to output, default ``(1, 2, 3)`` = F2, F3, F4.

    Shapes:
        input: sequence of ``(B, channels[j], H_j, W_j)`` with ``H_j`` halving level to level
        (ceil), e.g. 56, 28, 14, 7. Output: tuple of ``(B, channels[i], H_i, W_i)`` for
        ``i in keep`` — the same shapes as the inputs it replaces.
    """

    def __init__(self, channels: Sequence[int], keep: Sequence[int] = (1, 2, 3)) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.keep = tuple(int(i) for i in keep)
        if not self.keep or any(not 0 <= i < len(self.channels) for i in self.keep):
            raise ValueError(f"keep={self.keep} must index levels 0..{len(self.channels) - 1}")
        # branches[t][j]: aligner from level j to kept target t (None for j == target).
        self.branches = nn.ModuleList()
        for i in self.keep:
            row = nn.ModuleList()
            for j, c_j in enumerate(self.channels):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(_Upsampler(c_j, self.channels[i]))
                else:
                    row.append(_downsampler(c_j, self.channels[i], i - j))
            self.branches.append(row)
        # Not in-place: with a single level the sum would be the caller's tensor.
        self.relu = nn.ReLU()

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Fused maps for the kept levels.

        Args:
            feats: ``(F1, ..., Fn)``, each ``(B, C_j, H_j, W_j)``.

        Returns:
            Tuple of fused ``(B, C_i, H_i, W_i)`` maps, one per kept level, finest first.
        """
        if len(feats) != len(self.channels):
            raise ShapeError(f"MultiScaleFusion expects {len(self.channels)} feature maps, got {len(feats)}")
        for j, (f, c) in enumerate(zip(feats, self.channels)):
            if f.dim() != 4 or f.shape[1] != c:
                raise ShapeError(f"feature map F{j + 1} must be (B, {c}, H, W), got {tuple(f.shape)}")
        out = []
        for i, row in zip(self.keep, self.branches):
            size = tuple(feats[i].shape[-2:])
            total = feats[i]
            for j, branch in enumerate(row):
                if j == i:
                    continue
                aligned = branch(feats[j], size) if j > i else branch(feats[j])
                if aligned.shape[-2:] != size:
                    raise ShapeError(
                        f"F{j + 1} of size {tuple(feats[j].shape[-2:])} does not downsample to F{i + 1}'s "
                        f"{size}; pyramid levels must halve (ceil) from one to the next"
                    )
                total = total + aligned
            out.append(self.relu(total))
        return tuple(out)
