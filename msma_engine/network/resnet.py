"""ResNet backbones with torchvision-compatible parameter names.

torchvision cannot be installed beside the pinned torch, so the ResNets live here.
Parameter and buffer names follow ``torchvision.models.resnet`` exactly
(``conv1``, ``bn1``, ``layer1`` .. ``layer4`` with ``conv1/bn1/conv2/bn2[/conv3/bn3]``
and ``downsample.0/.1`` per block), so a torchvision or Deep3DFaceRecon ResNet
state dict loads with strict key matching (see :func:`msma_engine.network.weights.load_backbone_state_dict`).
The classification layer (``fc``) is left out: every network here reads the
feature pyramid, never ImageNet logits.

Sizes at a 224×224 input (parameters without ``fc``; multiply-adds of the convolutions):

=========  ==========  ======  ==================================================
backbone   parameters  MACs    pyramid F1..F4 (channels at 56², 28², 14², 7²)
=========  ==========  ======  ==================================================
resnet18   11.18 M     1.81 G  64 / 128 / 256 / 512
resnet34   21.28 M     3.66 G  64 / 128 / 256 / 512
resnet50   23.51 M     4.09 G  256 / 512 / 1024 / 2048
=========  ==========  ======  ==================================================
"""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]

logger = logging.getLogger(__name__)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, torchvision "v1.5") → 1×1 with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet trunk (stem + four stages) returning the feature pyramid.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.

    Attributes:
        channels: output channels of F1..F4, e.g. ``(256, 512, 1024, 2048)``.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int]) -> None:
        super().__init__()
        self._in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.channels: tuple[int, int, int, int] = tuple(w * block.expansion for w in (64, 128, 256, 512))

        # torchvision's initialisation, plus its zero_init_residual option: the last BN
        # of every block starts at zero so each block is the identity at first and
        # training of a randomly initialised (no ImageNet weights here) trunk is stable.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in_ch != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._in_ch, width * block.expansion, stride),
                nn.BatchNorm2d(width * block.expansion),
            )
        stage = [block(self._in_ch, width, stride, downsample)]
        self._in_ch = width * block.expansion
        stage += [block(self._in_ch, width) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feature pyramid of a normalised image batch.

        Args:
            x: ``(B, 3, H, W)`` normalised images.

        Returns:
            ``(F1, F2, F3, F4)`` with strides 4, 8, 16, 32: at 224×224 input
            ``(B, C1, 56, 56)``, ``(B, C2, 28, 28)``, ``(B, C3, 14, 14)``, ``(B, C4, 7, 7)``
            where ``(C1..C4) = self.channels``.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return f1, f2, f3, f4


def resnet18() -> ResNet:
    """ResNet-18 trunk, F1..F4 channels 64/128/256/512 (11.18 M parameters, 1.81 GMACs at 224²)."""
    return ResNet(BasicBlock, (2, 2, 2, 2))


def resnet34() -> ResNet:
    """ResNet-34 trunk, F1..F4 channels 64/128/256/512 (21.28 M parameters, 3.66 GMACs at 224²)."""
    return ResNet(BasicBlock, (3, 4, 6, 3))


def resnet50() -> ResNet:
    """ResNet-50 trunk, F1..F4 channels 256/512/1024/2048 (23.51 M parameters, 4.09 GMACs at 224²)."""
    return ResNet(Bottleneck, (3, 4, 6, 3))
