"""Evaluation harness: synthetic hold-out, real photos, and a Markdown table.

- Synthetic hold-out (fixed seed, the generator's shipped settings): mean vertex error (mm)
  on the face region after rigid Procrustes alignment, 68-landmark NME (bbox-normalised),
  and masked PSNR / SSIM of the re-rendering against the input (mask = predicted face ∩
  visible skin). Optionally also after test-time fitting (:mod:`msma_engine.fitting`) to the
  ground-truth 2D landmarks and the image.
- Real photos: each photo is detected, landmarked and aligned as the engine does; the
  network's projected landmarks are compared with the detector's (NME) and the
  re-rendering with the crop on the skin hull of the detected landmarks.

The NoW and MICC protocols live in :mod:`training.metrics` (they need the user's data sets).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from msma_engine.face_model import FaceModel
from msma_engine.network.regressor import CoefficientRegressor
from msma_engine.render import RenderContext, channels_first, render_mesh
from training.config import SyntheticConfig
from training.data.synthetic import SyntheticFaces
from training.metrics import aligned_vertex_error_mm, landmark_nme, masked_psnr, masked_ssim

__all__ = ["EvalResult", "MeanFace", "predict", "rerender", "evaluate_synthetic", "evaluate_photos", "skin_hull_mask",
           "expression_recovery",
           "load_photo_folder", "markdown_table", "IMAGE_SUFFIXES"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class EvalResult:
    """Averages of one evaluation set.

    Attributes:
        name: row label.
        n: number of evaluated images.
        metrics: metric name → mean value (``vertex_mm``, ``nme``, ``psnr``, ``ssim`` ...).
        per_image: metric name → list of per-image values.
    """

    name: str
    n: int
    metrics: dict[str, float]
    per_image: dict[str, list[float]] = field(default_factory=dict)


class MeanFace(torch.nn.Module):
    """Reference "network" that outputs all-zero coefficients (the mean face, frontal, centred).

    Args:
        n_coeffs: coefficient count of the face model.
    """

    def __init__(self, n_coeffs: int) -> None:
        super().__init__()
        self.n_coeffs = n_coeffs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros(images.shape[0], self.n_coeffs)


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Coefficients ``(B, n)`` of aligned crops ``(B, 3, 224, 224)``.

    A :class:`CoefficientRegressor` resizes them to its training input size first
    (:meth:`~CoefficientRegressor.predict_crops`); reference modules (:class:`MeanFace`)
    take them as they are.
    """
    net.eval()
    if isinstance(net, CoefficientRegressor):
        return net.predict_crops(images).float()
    return net(images).float()


@torch.no_grad()
def rerender(model: FaceModel, coeffs: torch.Tensor,
             ctx: RenderContext | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render coefficients ``(B, n)``: image ``(B, 3, H, W)`` and face mask ``(B, 1, H, W)``."""
    out = model(coeffs)
    cam = model.camera
    res = render_mesh(ctx or RenderContext("torch"), out.vertices, model.triangles, cam.image_size,
                      project=cam.world_to_clip, colors=out.vertex_colors, normals=out.normals, cull_backfaces=True)
    return channels_first(res.image.clamp(0, 1)), channels_first(res.mask)


def _image_metrics(model: FaceModel, coeffs: torch.Tensor, images: torch.Tensor, skin: torch.Tensor,
                   ctx: RenderContext) -> dict[str, torch.Tensor]:
    rendered, face = rerender(model, coeffs, ctx)
    mask = face * skin
    composite = rendered * face + images * (1 - face)
    return {"psnr": masked_psnr(composite, images, mask), "ssim": masked_ssim(composite, images, mask)}


def expression_recovery(pred: np.ndarray, truth: np.ndarray, phantom_at: float = 0.2) -> tuple[float, float]:
    """Expression recovery of one sample: (MAE on the active units, share of phantom units).

    Args:
        pred, truth: ``(K,)`` expression weights (fitted and true).
        phantom_at: an inactive unit (true weight 0) fitted above this is a phantom.

    Returns:
        Mean absolute error over the units with a true weight > 0 (NaN when none is active)
        and the fraction of the inactive units that are phantoms.
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape != truth.shape or pred.ndim != 1:
        raise ValueError(f"expression weights must both be (K,), got {pred.shape} and {truth.shape}")
    active = truth > 0
    mae = float(np.abs(pred[active] - truth[active]).mean()) if active.any() else float("nan")
    phantom = float((pred[~active] > phantom_at).mean()) if (~active).any() else 0.0
    return mae, phantom


def _mean(values: list[float]) -> float:
    """Mean ignoring NaN (an empty mask); +inf (a perfect PSNR) is kept."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


@torch.no_grad()
def evaluate_synthetic(net: CoefficientRegressor, model: FaceModel, seed: int = 1_000_003, n: int = 64,
                       cfg: SyntheticConfig | None = None, batch_size: int = 8,
                       fit: str | None = None, name: str = "synthetic hold-out") -> list[EvalResult]:
    """Evaluate on ``n`` synthetic hold-out samples.

    Args:
        net: the regressor.
        model: the face model the data are rendered with.
        seed: hold-out seed (never a training seed).
        n: number of samples.
        cfg: generator settings; None = the shipped defaults.
        batch_size: images per forward pass.
        fit: also evaluate after test-time fitting with this quality preset (``"fast"``,
            ``"default"``), fitted to the ground-truth 2D landmarks.
        name: row label.

    Returns:
        One :class:`EvalResult` (two with ``fit``).
    """
    ds = SyntheticFaces(model, cfg or SyntheticConfig(), seed=seed, length=n)
    ctx = RenderContext("torch")
    rows: dict[str, dict[str, list[float]]] = {"regression": {}}
    fitter = None
    if fit is not None:
        from msma_engine.fitting import FaceFitter, FitTarget

        fitter = FaceFitter(model, fit, ctx=ctx)
        rows["fitted"] = {}
    for start in range(0, n, batch_size):
        items = [ds[i] for i in range(start, min(n, start + batch_size))]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        coeffs = predict(net, batch["image"])
        variants = [("regression", coeffs)]
        if fitter is not None:
            fitted = []
            for i in range(coeffs.shape[0]):
                with torch.enable_grad():
                    target = FitTarget(image=batch["image"][i:i + 1], landmarks=batch["landmarks"][i:i + 1],
                                       valid=torch.ones_like(batch["mask"][i:i + 1]))
                    fitted.append(fitter.fit(target, init=coeffs[i:i + 1], rigid_init=False).coeffs)
            variants.append(("fitted", torch.cat(fitted)))
        for key, c in variants:
            out = model(c)
            vals = {
                "vertex_mm": aligned_vertex_error_mm(out.vertices, batch["vertices"], model.face_region),
                "nme": landmark_nme(out.landmarks_2d, batch["landmarks"]),
            }
            vals.update(_image_metrics(model, c, batch["image"], batch["mask"], ctx))
            if model.layout.n_exp:
                gt_exp, pred_exp = model.layout.split(batch["coeffs"]).exp, model.layout.split(c).exp
                rec = [expression_recovery(p_.numpy(), t_.numpy()) for p_, t_ in zip(pred_exp, gt_exp)]
                vals["exp_mae"] = torch.tensor([r[0] for r in rec])
                vals["exp_phantom"] = torch.tensor([r[1] for r in rec])
            for m, v in vals.items():
                rows[key].setdefault(m, []).extend(v.tolist())
    results = []
    for key, per in rows.items():
        label = name if key == "regression" else f"{name} + fitting ({fit}, GT landmarks)"
        results.append(EvalResult(label, n, {m: _mean(v) for m, v in per.items()}, per))
    return results


def skin_hull_mask(landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """Skin mask ``(size, size)`` float32: convex hull of the 68 landmarks minus eyes and inner mouth.

    The jaw line (0-16) and the brows (17-26) span the face; the eye contours (36-47) and
    the inner lips (60-67) are cut out so the photometric loss ignores eyes and teeth.
    """
    lm = np.asarray(landmarks, np.float64)
    mask = np.zeros((size, size), np.uint8)
    outline = np.concatenate([lm[0:17], lm[17:27]])
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(outline).astype(np.int32)), 1)
    for part in (lm[36:42], lm[42:48], lm[60:68]):
        cv2.fillPoly(mask, [np.round(part).astype(np.int32)], 0)
    return mask.astype(np.float32)


@torch.no_grad()
def evaluate_photos(net: CoefficientRegressor, model: FaceModel, images: list[tuple[str, np.ndarray]],
                    detector: str = "auto", landmarker: str = "auto",
                    name: str = "photos") -> EvalResult:
    """Evaluate on real photos against the detector's landmarks.

    Args:
        net: the regressor.
        model: the face model.
        images: ``(label, (H, W, 3) uint8 RGB)`` pairs; photos without a usable face are
            skipped with a logged reason.
        detector, landmarker: engine backends (``msma_engine.detect``).
        name: row label.

    Returns:
        :class:`EvalResult` with ``nme`` (vs. the landmarker), ``psnr`` and ``ssim``.
    """
    from msma_engine.align import align_crop, template_from_landmarks68
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.errors import MSMAError

    ctx = RenderContext("torch")
    size = model.camera.image_size[0]
    template = template_from_landmarks68(model.mean_shape[model.landmark_indices].cpu().numpy())
    per: dict[str, list[float]] = {}
    count = 0
    for label, pixels in images:
        try:
            det = pick_face(detect_faces(pixels, detector), "largest", image_name=label)[0]
            lm = landmarks68(pixels, det, landmarker).points
        except MSMAError as exc:
            logger.warning("skipping %s: %s", label, exc)
            continue
        crop = align_crop(five_from_68(lm), template)
        crop_img = torch.as_tensor(crop.warp(pixels, size), dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        lm_crop = torch.as_tensor(crop.apply(lm), dtype=torch.float32)[None]
        valid = crop.warp(np.ones(pixels.shape[:2], np.float32), size)
        skin = torch.as_tensor(skin_hull_mask(lm_crop[0].numpy(), size) * (valid > 0.5))[None, None]
        coeffs = predict(net, crop_img)
        out = model(coeffs)
        vals = {"nme": landmark_nme(out.landmarks_2d, lm_crop)}
        vals.update(_image_metrics(model, coeffs, crop_img, skin, ctx))
        for m, v in vals.items():
            per.setdefault(m, []).extend(v.tolist())
        count += 1
    return EvalResult(name, count, {m: _mean(v) for m, v in per.items()}, per)


def load_photo_folder(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """All images of a folder (sorted) as ``(name, pixels)``; unreadable files are skipped."""
    from msma_engine.errors import ImageError
    from msma_engine.image_io import load_image

    out = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            out.append((path.name, load_image(path).pixels))
        except ImageError as exc:
            logger.warning("skipping %s: %s", path, exc)
    return out


_COLUMNS = (("vertex_mm", "vertex error (mm) ↓", "{:.2f}"), ("nme", "landmark NME ↓", "{:.4f}"),
            ("psnr", "masked PSNR (dB) ↑", "{:.2f}"), ("ssim", "masked SSIM ↑", "{:.3f}"),
            ("exp_mae", "expression MAE, active ↓", "{:.3f}"), ("exp_phantom", "phantom units ↓", "{:.3f}"))


def markdown_table(results: list[EvalResult], model_label: str | list[str] | None = None) -> str:
    """Results as a Markdown table (one row per result; missing metrics shown as "–").

    Args:
        results: the rows.
        model_label: a "model" column: one label for every row, or one per row.
    """
    labels = [model_label] * len(results) if isinstance(model_label, str) else model_label
    head = (["model"] if labels is not None else []) + ["set", "n"] + [c[1] for c in _COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(results):
        cells = ([labels[i]] if labels is not None else []) + [r.name, str(r.n)]
        for key, _, fmt in _COLUMNS:
            v = r.metrics.get(key)
            if v is None or math.isnan(v):
                cells.append("–")
            else:
                cells.append(fmt.format(v) if math.isfinite(v) else "∞")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
