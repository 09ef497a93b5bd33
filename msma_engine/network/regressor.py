"""Common base of every coefficient regressor: input check, ImageNet normalisation, sizes."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from msma_engine.errors import ShapeError
from msma_engine.face_model import CoeffLayout

__all__ = ["CoefficientRegressor", "IMAGENET_MEAN", "IMAGENET_STD", "MIN_INPUT_SIZE"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Smallest input side: the backbone's total stride (F4 is 1/32 of the input).
MIN_INPUT_SIZE = 32


class CoefficientRegressor(nn.Module):
    """Image batch → face-model coefficients.

    Subclasses implement :meth:`regress` on normalised images. The normalisation
    constants are buffers (``input_mean``, ``input_std``), saved with the weights, so
    a network trained on un-normalised inputs (Deep3DFaceRecon feeds raw [0, 1]
    images) can carry mean 0 / std 1 instead.

    Args:
        arch: architecture name stored with saved weights (``"msma"``, ``"msma_light"``, ``"baseline"``).
        n_id, n_exp, n_tex: coefficient counts of the face model.

    Attributes:
        layout: :class:`~msma_engine.face_model.CoeffLayout` of the output.
        n_coeffs: output length, ``n_id + n_exp + n_tex + 33``.
        input_size: side (px) of the square input the network was trained at; the 224
            alignment crop is resized to it by :meth:`predict_crops`. :func:`load_weights`
            sets it from the file's ``meta["input_size"]`` (224 when absent).
    """

    def __init__(self, arch: str, n_id: int, n_exp: int, n_tex: int) -> None:
        super().__init__()
        self.arch = arch
        self.layout = CoeffLayout(n_id, n_exp, n_tex)
        self.input_size = 224
        self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @property
    def n_coeffs(self) -> int:
        return self.layout.total

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Regress coefficients.

        Args:
            images: ``(B, 3, H, W)`` float RGB in [0, 1]; aligned 224×224 face crops in
                normal use (any ``H, W ≥ 32`` works).

        Returns:
            ``(B, n_coeffs)`` in the layout ``id | exp | tex | angles (rad) | gamma (27) |
            trans (m)``.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(f"{self.arch} network expects images (B, 3, H, W), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < MIN_INPUT_SIZE:
            raise ShapeError(
                f"{self.arch} network needs images of at least {MIN_INPUT_SIZE}×{MIN_INPUT_SIZE}, "
                f"got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ShapeError(f"{self.arch} network expects float images in [0, 1], got dtype {images.dtype}")
        return self.regress((images - self.input_mean) / self.input_std)

    def predict_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(B, n_coeffs)`` of aligned crops ``(B, 3, S, S)`` in [0, 1].

        The crops are resized to :attr:`input_size` first, the same antialiased bilinear
        resize the trainer applies, so weights trained at a reduced input see what they
        were trained on.
        """
        if crops.dim() == 4 and crops.shape[-1] != self.input_size:
            crops = F.interpolate(crops, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False, antialias=True)
        return self(crops)

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, n_coeffs)``."""
        raise NotImplementedError
