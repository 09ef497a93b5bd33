"""Evaluation harness: an oracle scores perfectly, the mean face does not; table; photo path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sphere_model import make_sphere_model
from msma_engine.face_model import DEFAULT_MODEL_PATH, FaceModel
from training.config import SyntheticConfig
from training.data.synthetic import SyntheticFaces
from training.evaluate import (
    EvalResult,
    evaluate_photos,
    evaluate_synthetic,
    expression_recovery,
    markdown_table,
    skin_hull_mask,
)


class Oracle(nn.Module):
    """Returns the ground-truth coefficients of the hold-out, batch by batch."""

    def __init__(self, coeffs: torch.Tensor) -> None:
        super().__init__()
        self.coeffs, self.pos = coeffs, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.coeffs[self.pos:self.pos + images.shape[0]]
        self.pos += images.shape[0]
        return out


class Zeros(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros(images.shape[0], self.n)


@pytest.fixture(scope="module")
def sphere() -> FaceModel:
    return FaceModel(make_sphere_model(n_lat=16, n_lon=20))


def test_oracle_scores_perfectly_and_mean_face_does_not(sphere):
    cfg = SyntheticConfig(p_occluder=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0, p_color=0.0)
    gt = torch.stack([SyntheticFaces(sphere, cfg, seed=9, length=4)[i]["coeffs"] for i in range(4)])
    perfect = evaluate_synthetic(Oracle(gt), sphere, seed=9, n=4, cfg=cfg, batch_size=3)[0]
    assert perfect.n == 4
    assert perfect.metrics["vertex_mm"] < 1e-3 and perfect.metrics["nme"] < 1e-5
    assert perfect.metrics["ssim"] > 0.999 and perfect.metrics["psnr"] > 40
    mean_face = evaluate_synthetic(Zeros(sphere.layout.total), sphere, seed=9, n=4, cfg=cfg)[0]
    assert mean_face.metrics["vertex_mm"] > 0.5 and mean_face.metrics["nme"] > 0.01
    assert mean_face.metrics["psnr"] < perfect.metrics["psnr"]
    assert len(mean_face.per_image["vertex_mm"]) == 4


def test_markdown_table():
    rows = [EvalResult("synthetic hold-out", 64, {"vertex_mm": 3.14159, "nme": 0.0312, "psnr": 25.0, "ssim": 0.8}),
            EvalResult("astronaut", 1, {"nme": 0.05, "psnr": float("nan")})]
    table = markdown_table(rows, model_label="w.pt").splitlines()
    assert table[0].startswith("| model | set | n | vertex error (mm)")
    assert table[2] == "| w.pt | synthetic hold-out | 64 | 3.14 | 0.0312 | 25.00 | 0.800 | – | – |"
    assert table[3] == "| w.pt | astronaut | 1 | – | 0.0500 | – | – | – | – |"


def test_expression_recovery_counts_active_errors_and_phantoms():
    truth = np.array([0.0, 0.5, 0.0, 0.0, 1.0])
    pred = np.array([0.3, 0.4, 0.1, 0.0, 0.7])  # active errors 0.1, 0.3; one phantom (0.3 > 0.2) of 3
    mae, phantom = expression_recovery(pred, truth)
    assert mae == pytest.approx(0.2) and phantom == pytest.approx(1 / 3)
    assert np.isnan(expression_recovery(pred, np.zeros(5))[0])


def test_skin_hull_mask_cuts_eyes_and_mouth():
    t = np.linspace(0, np.pi, 17)
    lm = np.zeros((68, 2))
    lm[0:17] = np.stack([112 - 80 * np.cos(t), 112 + 80 * np.sin(t)], 1)  # jaw: lower half circle
    lm[17:27] = np.stack([np.linspace(40, 184, 10), np.full(10, 50.0)], 1)  # brows
    eye = np.stack([np.cos(np.linspace(0, 2 * np.pi, 7)[:-1]), np.sin(np.linspace(0, 2 * np.pi, 7)[:-1])], 1)
    lm[36:42] = eye * 10 + [80, 90]
    lm[42:48] = eye * 10 + [144, 90]
    ring = np.linspace(0, 2 * np.pi, 9)[:-1]
    lm[60:68] = np.stack([np.cos(ring), np.sin(ring)], 1) * 12 + [112, 160]
    mask = skin_hull_mask(lm)
    assert mask[120, 112] == 1 and mask[90, 80] == 0 and mask[160, 112] == 0 and mask[10, 10] == 0


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")
def test_photo_evaluation_on_astronaut():
    from skimage.data import astronaut

    from msma_engine.face_model import load_face_model

    head = load_face_model()
    res = evaluate_photos(Zeros(head.layout.total), head, [("astronaut", astronaut()),
                                                           ("blank", np.zeros((64, 64, 3), np.uint8))])
    assert res.n == 1  # the blank image is skipped
    assert 0 < res.metrics["nme"] < 0.5 and math.isfinite(res.metrics["psnr"])
