"""The training losses of MSMA / Deep3DFaceRecon (eq. 14-20) and supervised synthetic losses.

Every loss is a pure function of tensors returning a scalar; :class:`LossWeights` holds
their weights with the paper's defaults (Deep3DFaceRecon's values where MSMA follows it).
Landmarks are in pixels of the 224×224 crop, which is the scale the landmark weight
1.6e-3 was tuned for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from msma_engine.errors import ShapeError

__all__ = [
    "LossWeights",
    "photometric_loss",
    "perceptual_loss",
    "landmark_weights",
    "landmark_loss",
    "coefficient_regularization",
    "gamma_loss",
    "reflectance_loss",
    "coefficient_loss",
    "vertex_loss",
]


@dataclass
class LossWeights:
    """Weights of the loss terms; defaults are the paper's (Deep3DFaceRecon's where it defers).

    Attributes:
        photometric: skin-masked per-pixel L2 colour distance (w_color 1.92).
        perceptual: 1 − cosine of identity embeddings (w_feat 0.2).
        landmark: weighted squared landmark distance in pixels (w_lm 1.6e-3).
        regularization: overall coefficient regulariser weight (w_reg 3e-4).
        reg_id, reg_exp, reg_tex: the regulariser's per-group weights λα, λβ, λγ (1.0, 0.8, 1.7e-2).
        gamma: monochromatic-light regulariser (w_gamma 10).
        reflectance: albedo variance in the skin region (w_reflc 5.0).
        landmark_nose, landmark_mouth: per-point weights of landmarks 28-30 (nose bridge)
            and 60-67 (inner mouth) in the landmark loss (20, 20; the rest 1).
        coeff: supervised coefficient loss on synthetic data (0 = off).
        vertex: supervised vertex loss (mean distance in mm of the posed vertices, face
            region) on synthetic data (0 = off).
        shape: supervised pose-free shape loss on synthetic data: mean face-region vertex
            distance (mm) in the model frame between ``mean + A_id α + A_exp β`` of the
            prediction and of the ground truth (0 = off). It weighs each identity and
            expression direction by how far it moves the face, which is what the
            evaluation's aligned vertex error measures; the plain coefficient loss weighs
            all 80 identity directions alike although the first ten move the face most.
        coeff_groups: per-group weights inside the supervised coefficient loss, in layout
            order ``id, exp, tex, angles, gamma, trans`` (angles in radians, trans in
            decimetres so each group has a similar scale).
    """

    photometric: float = 1.92
    perceptual: float = 0.2
    landmark: float = 1.6e-3
    regularization: float = 3e-4
    reg_id: float = 1.0
    reg_exp: float = 0.8
    reg_tex: float = 1.7e-2
    gamma: float = 10.0
    reflectance: float = 5.0
    landmark_nose: float = 20.0
    landmark_mouth: float = 20.0
    coeff: float = 0.0
    vertex: float = 0.0
    shape: float = 0.0
    coeff_groups: tuple[float, float, float, float, float, float] = (1.0, 1.0, 0.5, 10.0, 1.0, 10.0)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            if any((not isinstance(v, (int, float))) or v < 0 for v in values):
                raise ValueError(f"LossWeights.{name} must be non-negative, got {value!r}")
        self.coeff_groups = tuple(float(v) for v in self.coeff_groups)
        if len(self.coeff_groups) != 6:
            raise ValueError(f"LossWeights.coeff_groups needs 6 values, got {self.coeff_groups!r}")


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Masked mean of the per-pixel colour L2 norm (eq. 15).

    Args:
        pred, target: ``(B, 3, H, W)`` in [0, 1].
        mask: ``(B, 1, H, W)`` skin ∩ rendered-face mask in [0, 1].
        eps: inside the square root, keeps the gradient finite at zero error.

    Returns:
        Scalar: ``Σ mask·sqrt(eps + |pred − target|²) / Σ mask``.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ShapeError(f"pred and target must both be (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ShapeError(f"mask must be ({pred.shape[0]}, 1, H, W) matching the images, got {tuple(mask.shape)}")
    dist = torch.sqrt(eps + ((pred - target) ** 2).sum(dim=1, keepdim=True))
    return (dist * mask).sum() / mask.sum().clamp_min(1.0)


def perceptual_loss(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Mean ``1 − cos(emb_a, emb_b)`` of identity embeddings ``(B, D)`` (eq. 16)."""
    if emb_a.shape != emb_b.shape or emb_a.ndim != 2:
        raise ShapeError(f"embeddings must both be (B, D), got {tuple(emb_a.shape)} and {tuple(emb_b.shape)}")
    return (1.0 - F.cosine_similarity(emb_a, emb_b, dim=-1)).mean()


def landmark_weights(n: int = 68, nose: float = 20.0, mouth: float = 20.0) -> torch.Tensor:
    """Per-landmark weights ``(n,)`` of Deep3DFaceRecon: 20 on 28-30 and on the inner mouth 60-67."""
    if n != 68:
        raise ShapeError(f"the landmark weighting is defined for the 68-point iBUG layout, got {n} points")
    w = torch.ones(n)
    w[28:31] = nose
    w[60:68] = mouth
    return w


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                  visibility: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted squared landmark distance (eq. 17).

    Args:
        pred, target: ``(B, N, 2)`` pixels.
        weights: ``(N,)`` per-point weights; None = :func:`landmark_weights`.
        visibility: ``(B, N)`` optional 0/1 factor (e.g. to ignore occluded ground truth).

    Returns:
        Scalar ``Σ w·|pred − target|² / (B·N)``.
    """
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ShapeError(f"landmarks must both be (B, N, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    w = landmark_weights(pred.shape[1]) if weights is None else weights
    w = w.to(pred)
    sq = ((pred - target) ** 2).sum(-1) * w
    if visibility is not None:
        sq = sq * visibility.to(pred)
    return sq.sum() / (pred.shape[0] * pred.shape[1])


def coefficient_regularization(id_c: torch.Tensor, exp_c: torch.Tensor, tex_c: torch.Tensor,
                               w_id: float = 1.0, w_exp: float = 0.8, w_tex: float = 1.7e-2) -> torch.Tensor:
    """``(w_id|α|² + w_exp|β|² + w_tex|γ|²) / B`` (eq. 19), coefficients ``(B, n)``."""
    bsz = id_c.shape[0]
    return (w_id * (id_c ** 2).sum() + w_exp * (exp_c ** 2).sum() + w_tex * (tex_c ** 2).sum()) / bsz


def gamma_loss(gamma: torch.Tensor) -> torch.Tensor:
    """Variance of the SH coefficients across colour channels: favours nearly white light.

    Args:
        gamma: ``(B, 27)`` in the R(9) G(9) B(9) order.
    """
    if gamma.ndim != 2 or gamma.shape[1] != 27:
        raise ShapeError(f"gamma must be (B, 27), got {tuple(gamma.shape)}")
    g = gamma.view(-1, 3, 9)
    return ((g - g.mean(dim=1, keepdim=True)) ** 2).mean()


def reflectance_loss(albedo: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """Albedo variance over the skin region (eq. 20).

    Args:
        albedo: ``(B, V, 3)`` vertex albedo in [0, 1].
        skin: ``(V,)`` skin weights in [0, 1].

    Returns:
        Scalar ``Σ skin·|albedo − mean_skin(albedo)|² / (B·Σ skin)`` (squared mask, as
        Deep3DFaceRecon, which only matters for soft masks).
    """
    if albedo.ndim != 3 or albedo.shape[-1] != 3 or skin.shape != (albedo.shape[1],):
        raise ShapeError(f"albedo must be (B, V, 3) and skin (V,), got {tuple(albedo.shape)} and {tuple(skin.shape)}")
    m = skin.to(albedo).view(1, -1, 1)
    total = m.sum().clamp_min(1e-12)
    mean = (m * albedo).sum(dim=1, keepdim=True) / total
    return (((albedo - mean) * m) ** 2).sum() / (albedo.shape[0] * total)


def coefficient_loss(pred: torch.Tensor, target: torch.Tensor, slices: dict[str, slice],
                     group_weights: tuple[float, ...] = (1.0, 1.0, 0.5, 10.0, 1.0, 10.0),
                     trans_scale: float = 10.0) -> torch.Tensor:
    """Supervised coefficient loss for synthetic data: weighted per-group mean squared error.

    Args:
        pred, target: ``(B, total)`` coefficient vectors.
        slices: the layout's group slices (``CoeffLayout.slices()``), in layout order.
        group_weights: one weight per group in the order of ``slices``.
        trans_scale: translation is multiplied by this before the error (metres →
            decimetres, the scale of the other groups).

    Returns:
        Scalar ``Σ_g w_g · mean((pred_g − target_g)²)``.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ShapeError(f"coefficients must both be (B, n), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if len(group_weights) != len(slices):
        raise ShapeError(f"{len(slices)} coefficient groups but {len(group_weights)} group weights")
    total = pred.new_zeros(())
    for (name, sl), w in zip(slices.items(), group_weights):
        if w == 0 or sl.stop <= sl.start:
            continue
        diff = pred[:, sl] - target[:, sl]
        if name == "trans":
            diff = diff * trans_scale
        total = total + w * (diff ** 2).mean()
    return total


def vertex_loss(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean vertex distance in millimetres (on ``region`` when given).

    Args:
        pred, target: ``(B, V, 3)`` metres.
        region: ``(V,)`` bool.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ShapeError(f"vertices must both be (B, V, 3), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if region is not None:
        pred, target = pred[:, region], target[:, region]
    # eps inside the root keeps the gradient finite where the error is exactly zero.
    return torch.sqrt((((pred - target) * 1000.0) ** 2).sum(-1) + 1e-8).mean()
