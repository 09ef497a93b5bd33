"""Loss terms of test-time fitting (analysis by synthesis), pure tensor functions.

They follow the weakly supervised losses of Deep3DFaceRecon / MSMA (eq. 14-20):
landmark (68 points, weight 20 on the inner mouth), skin-masked photometric (L2 norm of the
RGB difference per pixel), coefficient regularisation and the light-colour regulariser.
The landmark error is measured in units of the inter-ocular distance so its weight does
not depend on the crop scale.
"""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError

__all__ = [
    "landmark_weights",
    "inter_ocular_distance",
    "landmark_loss",
    "landmark_nme",
    "photometric_loss",
    "coefficient_regularisation",
    "gamma_regularisation",
]

INNER_MOUTH = slice(60, 68)


def landmark_weights(inner_mouth: float = 20.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Per-landmark weights ``(68,)``: 1, and ``inner_mouth`` on points 60-67 (the paper's 20)."""
    w = torch.ones(68, device=device, dtype=dtype)
    w[INNER_MOUTH] = inner_mouth
    return w


def inter_ocular_distance(landmarks: torch.Tensor) -> torch.Tensor:
    """Distance between the outer eye corners (points 36 and 45).

    Args:
        landmarks: ``(B, 68, 2)`` pixels.

    Returns:
        ``(B,)`` pixels.
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ShapeError(f"landmarks must be (B, 68, 2), got {tuple(landmarks.shape)}")
    return (landmarks[:, 45] - landmarks[:, 36]).norm(dim=-1)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, iod: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared landmark distance in inter-ocular units.

    Args:
        pred, target: ``(B, 68, 2)`` pixels.
        weights: ``(68,)`` per-point weights.
        iod: ``(B,)`` inter-ocular distance in pixels (of the target).

    Returns:
        ``()`` mean over the batch of ``Σ w_i |p_i − q_i|² / (Σ w_i · iod²)``.
    """
    if pred.shape != target.shape:
        raise ShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} landmarks differ")
    sq = ((pred - target) ** 2).sum(-1)  # (B, 68)
    per = (sq * weights).sum(-1) / weights.sum() / iod.clamp_min(1e-6) ** 2
    return per.mean()


def landmark_nme(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean point-to-point landmark error normalised by the target's inter-ocular distance.

    Args:
        pred, target: ``(B, 68, 2)`` pixels.

    Returns:
        ``(B,)`` unit-free (0.025 = 2.5 % of the inter-ocular distance).
    """
    return (pred - target).norm(dim=-1).mean(-1) / inter_ocular_distance(target).clamp_min(1e-6)


def photometric_loss(rendered: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Masked mean of the per-pixel L2 norm of the RGB difference (the paper's eq. 15).

    Args:
        rendered, image: ``(B, 3, H, W)`` colours in [0, 1].
        mask: ``(B, 1, H, W)`` weights in [0, 1] (rendered skin ∩ photo pixels).
        eps: keeps the square root differentiable at zero difference.

    Returns:
        ``()`` mean over the batch of ``Σ m·|I − R|₂ / Σ m``.
    """
    if rendered.shape != image.shape or mask.shape != (image.shape[0], 1, *image.shape[2:]):
        raise ShapeError(f"rendered {tuple(rendered.shape)}, image {tuple(image.shape)} and mask "
                         f"{tuple(mask.shape)} do not match")
    diff = torch.sqrt(((rendered - image) ** 2).sum(1, keepdim=True) + eps)
    per = (diff * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)
    return per.mean()


def coefficient_regularisation(id_c: torch.Tensor, exp_c: torch.Tensor, tex_c: torch.Tensor,
                               w_id: float = 1.0, w_exp: float = 0.8, w_tex: float = 1.7e-2) -> torch.Tensor:
    """``w_id|α|² + w_exp|β|² + w_tex|γ|²`` (the paper's λα, λβ, λγ), mean over the batch.

    Args:
        id_c, exp_c, tex_c: ``(B, n)`` coefficients (unit-variance priors).
    """
    reg = w_id * (id_c ** 2).sum(-1) + w_exp * (exp_c ** 2).sum(-1) + w_tex * (tex_c ** 2).sum(-1)
    return reg.mean()


def gamma_regularisation(gamma: torch.Tensor) -> torch.Tensor:
    """Penalise coloured light: squared deviation of each channel's SH from their mean.

    Deep3DFaceRecon's ``reg_gamma``: without it a colour cast can be explained by the light
    instead of the albedo, which would tint the baked texture.

    Args:
        gamma: ``(B, 27)`` SH coefficients R(9) G(9) B(9).
    """
    if gamma.ndim != 2 or gamma.shape[1] != 27:
        raise ShapeError(f"gamma must be (B, 27), got {tuple(gamma.shape)}")
    g = gamma.view(-1, 3, 9)
    return ((g - g.mean(1, keepdim=True)) ** 2).sum((1, 2)).mean()
