"""The loss terms of MSMA / Deep3DFaceRecon (eq. 14-20) and the supervised synthetic losses.

One module for test-time fitting (:mod:`msma_engine.fitting`) and training
(:mod:`training.trainer`, weights in :class:`training.losses.LossWeights`). Every loss is a
pure function of tensors returning a scalar; where the two uses differ the difference is
an explicit argument, and the fit's deliberate deviations from the paper are:

- landmarks: the fit normalises by the inter-ocular distance (``normalise="iod"``: a
  weighted mean of squared distances over ``Σ w · iod²``, independent of the crop scale;
  the paper's 1.6e-3 px⁻² on a 224 crop with iod ≈ 60 px is 5.8 in these units) and uses
  weight 1 on the inner mouth and nose bridge (the paper's 20 was tuned for FAN's
  inner-lip convention and pulls fitted mouths into a pout on our detector's); training
  keeps the paper's pixels and weights (``normalise="pixels"``, :func:`landmark_weights`
  with ``nose=20, mouth=20``). With the dense points the fit has its own per-region
  weights (:class:`msma_engine.dense_landmarks.RegionWeights`) through the same formula.
- everything else (photometric, coefficient and light-colour regularisers) is the paper's
  definition in both, with the paper's weights.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

import torch
import torch.nn.functional as F

from msma_engine.errors import ShapeError

__all__ = [
    "landmark_weights",
    "inter_ocular_distance",
    "landmark_loss",
    "landmark_nme",
    "photometric_loss",
    "perceptual_loss",
    "coefficient_regularisation",
    "gamma_regularisation",
    "reflectance_loss",
    "coefficient_loss",
    "vertex_loss",
    "PAPER_WEIGHTS",
]

PAPER_WEIGHTS = MappingProxyType({"photometric": 1.92, "perceptual": 0.2, "landmark_px": 1.6e-3, "regularisation": 3e-4,
                 "reg_id": 1.0, "reg_exp": 0.8, "reg_tex": 1.7e-2, "gamma": 10.0, "reflectance": 5.0})
"""The paper's loss weights (Deep3DFaceRecon's values where MSMA defers to it), the defaults of
both :class:`training.losses.LossWeights` and :class:`msma_engine.fitting.FitConfig`;
``landmark_px`` is per squared pixel of the 224 crop."""


def landmark_weights(nose: float = 20.0, mouth: float = 20.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Per-landmark weights ``(68,)`` of the iBUG layout: ``nose`` on 28-30 (nose bridge),
    ``mouth`` on 60-67 (inner mouth), 1 elsewhere. Defaults are Deep3DFaceRecon's."""
    w = torch.ones(68, device=device, dtype=dtype)
    w[28:31] = nose
    w[60:68] = mouth
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


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                  normalise: Literal["pixels", "iod"] = "pixels", iod: torch.Tensor | None = None,
                  visibility: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted squared landmark distance (eq. 17).

    Args:
        pred, target: ``(B, N, 2)`` pixels.
        weights: ``(N,)`` per-point weights; None = :func:`landmark_weights` (68 points only).
        normalise: ``"pixels"`` (the paper's): ``Σ w·|pred − target|² / (B·N)``;
            ``"iod"``: per image ``Σ w·|pred − target|² / (Σ w · iod²)``, mean over the batch.
        iod: ``(B,)`` inter-ocular distance in pixels for ``"iod"`` (None = of the 68-point target).
        visibility: ``(B, N)`` optional 0/1 factor (e.g. to ignore occluded ground truth).

    Returns:
        Scalar.
    """
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ShapeError(f"landmarks must both be (B, N, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if weights is None:
        if pred.shape[1] != 68:
            raise ShapeError(f"default landmark weights are defined for the 68-point iBUG layout, got {pred.shape[1]}")
        weights = landmark_weights()
    w = weights.to(pred)
    sq = ((pred - target) ** 2).sum(-1) * w
    if visibility is not None:
        sq = sq * visibility.to(pred)
    if normalise == "pixels":
        return sq.sum() / (pred.shape[0] * pred.shape[1])
    if normalise == "iod":
        iod = inter_ocular_distance(target) if iod is None else iod
        return (sq.sum(-1) / w.sum() / iod.to(pred).clamp_min(1e-6) ** 2).mean()
    raise ValueError(f"normalise must be 'pixels' or 'iod', got {normalise!r}")


def landmark_nme(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean point-to-point landmark error normalised by the target's inter-ocular distance.

    Args:
        pred, target: ``(B, 68, 2)`` pixels.

    Returns:
        ``(B,)`` unit-free (0.025 = 2.5 % of the inter-ocular distance).
    """
    return (pred - target).norm(dim=-1).mean(-1) / inter_ocular_distance(target).clamp_min(1e-6)


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Masked mean of the per-pixel colour L2 norm (eq. 15).

    Args:
        pred, target: ``(B, 3, H, W)`` in [0, 1].
        mask: ``(B, 1, H, W)`` skin ∩ rendered-face mask in [0, 1].
        eps: inside the square root, keeps the gradient finite at zero error.

    Returns:
        Scalar: ``Σ mask·sqrt(eps + |pred − target|²) / Σ mask`` over the whole batch.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ShapeError(
            f"pred and target must both be (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    if mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ShapeError(f"mask must be ({pred.shape[0]}, 1, H, W) matching the images, got {tuple(mask.shape)}")
    dist = torch.sqrt(eps + ((pred - target) ** 2).sum(dim=1, keepdim=True))
    return (dist * mask).sum() / mask.sum().clamp_min(1.0)


def perceptual_loss(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Mean ``1 − cos(emb_a, emb_b)`` of identity embeddings ``(B, D)`` (eq. 16)."""
    if emb_a.shape != emb_b.shape or emb_a.ndim != 2:
        raise ShapeError(f"embeddings must both be (B, D), got {tuple(emb_a.shape)} and {tuple(emb_b.shape)}")
    return (1.0 - F.cosine_similarity(emb_a, emb_b, dim=-1)).mean()


def coefficient_regularisation(id_c: torch.Tensor, exp_c: torch.Tensor, tex_c: torch.Tensor,
                               w_id: float = 1.0, w_exp: float = 0.8, w_tex: float = 1.7e-2) -> torch.Tensor:
    """``w_id|α|² + w_exp|β|² + w_tex|γ|²`` (eq. 19, the paper's λα, λβ, λγ), mean over the batch.

    Args:
        id_c, exp_c, tex_c: ``(B, n)`` coefficients (unit-variance priors).
    """
    reg = w_id * (id_c ** 2).sum(-1) + w_exp * (exp_c ** 2).sum(-1) + w_tex * (tex_c ** 2).sum(-1)
    return reg.mean()


def gamma_regularisation(gamma: torch.Tensor) -> torch.Tensor:
    """Penalise coloured light: mean squared deviation of each channel's SH from their mean.

    Deep3DFaceRecon's ``reg_gamma`` (a mean over all B·27 coefficients): without it a colour
    cast can be explained by the light instead of the albedo, tinting the baked texture.

    Args:
        gamma: ``(B, 27)`` SH coefficients R(9) G(9) B(9).
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
