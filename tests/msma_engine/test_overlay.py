"""Tests for msma_engine.overlay.render_overlay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.overlay import DETECTED_COLOR, FITTED_COLOR, render_overlay
from msma_engine.result import FaceResult, PhotoCamera


def _result(hw=(300, 400), albedo=(0, 0, 0)) -> FaceResult:
    model = FaceModel(make_sphere_model())
    with torch.no_grad():
        out = model(model.layout.zeros(1))
    cam = PhotoCamera(focal=1500.0, center=(200.0, 150.0), image_size=hw)
    v = out.vertices[0].numpy()
    lm = v[model.landmark_indices.numpy()]
    z = 1.0 - lm[:, 2]
    lm2d = np.stack([200 + 1500 * lm[:, 0] / z, 150 - 1500 * lm[:, 1] / z], 1)
    return FaceResult(
        image_path=None, face_index=0, model_name="sphere", coeffs=np.zeros(model.layout.total, np.float32),
        vertices_neutral=v, vertices_model=v, vertices_world=v, triangles=model.triangles.numpy(),
        uv_coords=model.uv_coords.numpy(), uv_triangles=model.uv_triangles.numpy(),
        expression_names=model.expression_names, expression_weights=np.zeros(3, np.float32),
        expression_range=model.expression_range.numpy(), albedo_texture=np.full((8, 8, 3), albedo, np.uint8),
        sh_coeffs=np.zeros(27, np.float32), angles=np.zeros(3), rotation=np.eye(3), translation=np.zeros(3),
        landmarks_2d=lm2d, detected_landmarks=lm2d + 3.0, face_box=np.array([100.0, 50, 300, 250]),
        crop_matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), camera=cam,
    )


def test_overlay_draws_render_and_landmarks():
    res = _result(albedo=(200, 200, 200))
    photo = np.zeros((300, 400, 3), np.uint8)
    out = render_overlay(photo, res, output_size=256)
    assert out.dtype == np.uint8 and max(out.shape[:2]) == 256
    flat = out.reshape(-1, 3)
    assert (np.abs(flat.astype(int) - FITTED_COLOR).sum(1) < 30).any()
    assert (np.abs(flat.astype(int) - DETECTED_COLOR).sum(1) < 30).any()
    # The shaded head brightens the black photo in the middle of the window.
    h, w = out.shape[:2]
    assert out[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5].mean() > 40


def test_overlay_render_has_the_albedo_colour():
    """The render is albedo × fitted light: a skin-coloured texture under white light stays skin-coloured."""
    albedo = np.array([200, 140, 110])
    res = _result(albedo=tuple(albedo))
    res.sh_coeffs[[0, 9, 18]] = 0.2  # white light, stronger than the default
    out = render_overlay(np.zeros((300, 400, 3), np.uint8), res, alpha=1.0, output_size=256)
    h, w = out.shape[:2]
    centre = out[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5].reshape(-1, 3).mean(0)
    # Same chromaticity as the albedo (a grey clay render would have r ≈ g ≈ b).
    assert np.abs(centre / centre.sum() - albedo / albedo.sum()).max() < 0.01, centre
    assert centre.mean() > 60


def test_overlay_size_mismatch():
    with pytest.raises(ShapeError, match="does not match"):
        render_overlay(np.zeros((10, 10, 3), np.uint8), _result())
    with pytest.raises(ShapeError, match="uint8"):
        render_overlay(np.zeros((300, 400), np.float32), _result())
