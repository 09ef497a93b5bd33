"""Loss terms that only real photos have: distillation from pseudo-labels, same-person identity.

- :func:`distillation_loss`: the network's coefficients against the offline test-time fit of
  the same photo (:mod:`training.pseudo_labels`), with the supervised coefficient loss of
  :func:`msma_engine.losses.coefficient_loss` (the same per-group weighting as on synthetic
  data), on the photos that have a label.
- :func:`identity_consistency_loss`: photos of one person (LFW) should get one identity:
  squared distance of each photo's identity coefficients to the mean of that person's
  photos in the batch.
- :func:`dense_landmark_loss`: the model's 478 Face Mesh points (:func:`dense_points_2d`, when
  the face model carries a dense correspondence) against the cached detector points, in the
  68-point term's units (squared crop pixels), on the photos whose dense points were found.

:func:`real_losses` applies both with the weights of :class:`training.config.RealConfig`
to a batch from :class:`training.data.folder.FaceFolder`.
"""

from __future__ import annotations

import torch

from msma_engine.errors import ShapeError
from msma_engine.losses import coefficient_loss

__all__ = ["distillation_loss", "identity_consistency_loss", "dense_points_2d", "dense_landmark_loss", "real_losses"]


def distillation_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, slices: dict[str, slice],
                      group_weights: tuple[float, ...]) -> torch.Tensor:
    """Coefficient loss against pseudo-labels on the labelled rows.

    Args:
        pred, target: ``(B, n)`` coefficients (network, offline fit).
        valid: ``(B,)`` 1 where the photo has a pseudo-label.
        slices, group_weights: as :func:`msma_engine.losses.coefficient_loss`.

    Returns:
        Scalar; 0 (with a gradient path) when no row is labelled.
    """
    if valid.shape != (pred.shape[0],):
        raise ShapeError(f"valid must be ({pred.shape[0]},), got {tuple(valid.shape)}")
    keep = valid > 0.5
    if not bool(keep.any()):
        return pred.sum() * 0.0
    return coefficient_loss(pred[keep], target[keep].to(pred), slices, group_weights)


def identity_consistency_loss(id_coeffs: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
    """Spread of identity coefficients among photos of the same person.

    Args:
        id_coeffs: ``(B, n_id)`` identity coefficients.
        person: ``(B,)`` int person numbers; negative = unknown identity (ignored).

    Returns:
        Scalar: mean over the photos whose person appears at least twice in the batch of
        ``|α_i − mean_{j ∈ person(i)} α_j|²`` (sum over coefficients); 0 when no person repeats.
    """
    if id_coeffs.ndim != 2 or person.shape != (id_coeffs.shape[0],):
        raise ShapeError(f"id_coeffs must be (B, n) and person (B,), "
                         f"got {tuple(id_coeffs.shape)} and {tuple(person.shape)}")
    person = person.to(id_coeffs.device)
    known = person >= 0
    same = (person[:, None] == person[None, :]) & known[:, None] & known[None, :]
    counts = same.sum(1)
    rows = counts >= 2
    if not bool(rows.any()):
        return id_coeffs.sum() * 0.0
    weights = same.to(id_coeffs) / counts.clamp_min(1)[:, None].to(id_coeffs)
    means = weights @ id_coeffs
    return ((id_coeffs - means) ** 2).sum(-1)[rows].mean()


def dense_points_2d(model, vertices: torch.Tensor) -> torch.Tensor | None:
    """The model's 478 Face Mesh points projected to crop pixels ``(B, 478, 2)``, or None.

    Uses the face model's dense correspondence (``dense_landmark_vertices (478, 3)`` vertex
    indices and ``dense_landmark_weights (478, 3)`` barycentric weights) when it has one.

    Args:
        model: the :class:`~msma_engine.face_model.FaceModel`.
        vertices: ``(B, V, 3)`` posed world vertices, metres.
    """
    idx = getattr(model, "dense_landmark_vertices", None)
    w = getattr(model, "dense_landmark_weights", None)
    if idx is None or w is None:
        return None
    idx = torch.as_tensor(idx, dtype=torch.long, device=vertices.device)
    w = torch.as_tensor(w, dtype=vertices.dtype, device=vertices.device)
    pts = (vertices[:, idx] * w[None, ..., None]).sum(2)
    return model.camera.project(pts)


def dense_landmark_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared distance (crop pixels²) of dense points on the photos that have them.

    Args:
        pred, target: ``(B, N, 2)`` crop pixels.
        valid: ``(B,)`` 1 where the detector found the dense points.

    Returns:
        Scalar ``Σ_valid |pred − target|² / (n_valid · N)``; 0 when no photo has them.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ShapeError(f"dense points must both be (B, N, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    keep = valid > 0.5
    if not bool(keep.any()):
        return pred.sum() * 0.0
    return ((pred[keep] - target[keep].to(pred)) ** 2).sum(-1).mean()


def real_losses(cfg, pred: torch.Tensor, batch: dict[str, torch.Tensor], model, vertices: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
    """The weighted real-photo terms present in ``batch`` (none for synthetic batches).

    Args:
        cfg: :class:`training.config.RealConfig` (``w_distill``, ``w_identity``, ``w_dense``, ``distill_groups``).
        pred: ``(B, n)`` network coefficients (float32).
        batch: a :class:`FaceFolder` batch (``pseudo_coeffs``/``pseudo_valid``, ``person``, ``dense``/``dense_valid``).
        model: the face model (its layout; its dense correspondence, if any).
        vertices: ``(B, V, 3)`` posed vertices of ``pred`` (for the dense term).

    Returns:
        ``{"distill": ..., "identity_consistency": ..., "dense_landmark": ...}`` for the active terms.
    """
    layout = model.layout
    out: dict[str, torch.Tensor] = {}
    if cfg.w_dense > 0 and "dense" in batch and vertices is not None:
        dense = dense_points_2d(model, vertices)
        if dense is not None:
            out["dense_landmark"] = cfg.w_dense * dense_landmark_loss(dense, batch["dense"][:, : dense.shape[1]],
                                                                      batch["dense_valid"])
    if cfg.w_distill > 0 and "pseudo_coeffs" in batch:
        out["distill"] = cfg.w_distill * distillation_loss(pred, batch["pseudo_coeffs"], batch["pseudo_valid"],
                                                           layout.slices(), cfg.distill_groups)
    if cfg.w_identity > 0 and "person" in batch:
        out["identity_consistency"] = cfg.w_identity * identity_consistency_loss(layout.split(pred).id, batch["person"])
    return out
