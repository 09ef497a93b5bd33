"""Face-recognition embeddings for the perceptual loss (eq. 16).

Two embedders, chosen by :func:`load_identity_embedder`:

- ArcFace, the paper's choice, from a file the user holds (its weights cannot be shipped
  or downloaded here): the PyTorch ``backbone.pth`` of insightface's ``arcface_torch``
  IResNet-50 (e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``, the file Deep3DFaceRecon
  uses), named by the config or the ``MSMA_ARCFACE_WEIGHTS`` variable.
- Otherwise dlib's ResNet face descriptor (:mod:`training.identity_dlib`, CC0 weights
  from the ``face-recognition-models`` package), so the perceptual term runs offline. The
  package is an optional install: it also carries dlib's non-commercial 68-point
  predictor, which keeps it out of the default set-up (README, optional parts).

Only when neither is available does it raise
:class:`~msma_engine.errors.BackendUnavailableError`; the trainer then runs without the
perceptual term (and says so in its log). :class:`IdentityEmbedder` wraps either network
(or any module mapping its input square to ``(B, D)``) so that it takes the trainer's
aligned 224 crops in [0, 1].
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from msma_engine.errors import BackendUnavailableError, WeightsError
from training.identity_dlib import CHIP_BOX_IN_CROP, CHIP_SIZE, face_recognition_model_path, load_dlib_face_descriptor

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

    The part of the aligned crop the recogniser was trained on (``box``; the whole crop
    for ArcFace, whose 112×112 input Deep3DFaceRecon also warps from the five points) is
    resized to the network's input side and mapped linearly to its value range.

    Args:
        net: the recognition network, ``(B, 3, input_size, input_size)`` in ``value_range`` → ``(B, D)``.
        input_size: the network's input side.
        box: ``(x0, y0, x1, y1)`` of the crop the network sees, as fractions of the crop
            side (rounded to whole pixels); None = the whole crop.
        value_range: the values [0, 1] map to: (−1, 1) for ArcFace, (0, 255) for dlib.
    """

    def __init__(self, net: nn.Module, input_size: int = 112,
                 box: tuple[float, float, float, float] | None = None,
                 value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        if box is not None and not (0.0 <= box[0] < box[2] <= 1.0 and 0.0 <= box[1] < box[3] <= 1.0):
            raise ValueError(f"box must be (x0, y0, x1, y1) fractions with 0 <= x0 < x1 <= 1, got {box}")
        self.net = net.eval()
        self.input_size = input_size
        self.box = None if box is None else tuple(float(b) for b in box)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "IdentityEmbedder":
        # Always frozen: BatchNorm statistics must not move with the reconstruction batch.
        super().train(False)
        return self

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Network input: crops ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, S, S)`` in ``value_range`` (S = input_size)."""
        if self.box is not None:
            h, w = images.shape[-2:]
            x0, x1 = round(self.box[0] * w), round(self.box[2] * w)
            y0, y1 = round(self.box[1] * h), round(self.box[3] * h)
            images = images[..., y0:y1, x0:x1]
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        lo, hi = self.value_range
        return lo + (hi - lo) * x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(self.prepare(images)), dim=-1)


def load_identity_embedder(path: str | Path | None = None) -> IdentityEmbedder:
    """The perceptual loss's frozen :class:`IdentityEmbedder`: ArcFace if given, else dlib's descriptor.

    Order: ``path`` or the ``MSMA_ARCFACE_WEIGHTS`` variable names an ArcFace IResNet-50
    ``backbone.pth`` → ArcFace; neither set → dlib's ResNet face descriptor from the
    installed ``face-recognition-models``. The choice is logged.

    Args:
        path: ArcFace weights file; None = the ``MSMA_ARCFACE_WEIGHTS`` environment variable.

    Raises:
        BackendUnavailableError: the named ArcFace file does not exist, or no ArcFace file is
            named and ``face-recognition-models`` is not installed (the message names both options).
        WeightsError: the file does not hold IResNet-50 weights / the dlib file is corrupt.
    """
    path = path or os.environ.get(ARCFACE_ENV)
    if path:
        return _load_arcface(Path(path).expanduser())
    try:
        dat = face_recognition_model_path()
    except BackendUnavailableError as exc:
        raise BackendUnavailableError(
            "no face-recognition embedder for the perceptual loss: give run.perceptual_weights in the config "
            f"or set {ARCFACE_ENV} to an arcface_torch IResNet-50 backbone.pth (non-commercial weights, none "
            "ship with the project), or install face-recognition-models==0.3.0 for dlib's CC0 ResNet "
            f"descriptor ({exc})"
        ) from exc
    net = load_dlib_face_descriptor(dat)
    logger.info("perceptual loss embedder: dlib ResNet face descriptor from %s (no ArcFace weights given)", dat)
    return IdentityEmbedder(net, input_size=CHIP_SIZE, box=CHIP_BOX_IN_CROP, value_range=(0.0, 255.0))


def _load_arcface(path: Path) -> IdentityEmbedder:
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
    logger.info("perceptual loss embedder: ArcFace IResNet-50 from %s", path)
    return IdentityEmbedder(net)
