"""Tests for msma_engine.overlay.render_overlay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.overlay import DETECTED_COLOR, FITTED_COLOR, clay_views, render_overlay
from msma_engine.result import FaceResult, PhotoCamera


def _result(hw=(300, 400), albedo=(0, 0, 0), light: float = 0.0) -> FaceResult:
    """The sphere model's mean face seen by a camera of size ``hw``; ``light`` is added to
    the three DC SH terms (0: the default light)."""
    model = FaceModel(make_sphere_model())
    with torch.no_grad():
        out = model(model.layout.zeros(1))
    cam = PhotoCamera(focal=1500.0, center=(200.0, 150.0), image_size=hw)
    v = out.vertices[0].numpy()
    lm = v[model.landmark_indices.numpy()]
    z = 1.0 - lm[:, 2]
    lm2d = np.stack([200 + 1500 * lm[:, 0] / z, 150 - 1500 * lm[:, 1] / z], 1)
    coeffs = np.zeros(model.layout.total, np.float32)
    coeffs[model.layout.slices()["gamma"].start + np.array([0, 9, 18])] = light
    return FaceResult(
        topology=model.topology, image_path=None, face_index=0, coeffs=coeffs,
        vertices_neutral=v, vertices_model=v, vertices_world=v,
        albedo_texture=np.full((8, 8, 3), albedo, np.uint8), rotation=np.eye(3), landmarks_2d=lm2d,
        detected_landmarks=lm2d + 3.0, face_box=np.array([100.0, 50, 300, 250]),
        crop_matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), camera=cam,
    )


def test_overlay_draws_photo_with_landmarks_beside_the_clay_render():
    res = _result(albedo=(200, 200, 200))
    photo = np.zeros((300, 400, 3), np.uint8)
    out = render_overlay(photo, res, output_size=256)
    assert out.dtype == np.uint8 and max(out.shape[0], out.shape[1] // 2) == 256
    w = out.shape[1] // 2
    left, right = out[:, :w], out[:, w:]
    flat = left.reshape(-1, 3).astype(int)
    assert (np.abs(flat - FITTED_COLOR).sum(1) < 30).any()
    assert (np.abs(flat - DETECTED_COLOR).sum(1) < 30).any()
    # The photo panel keeps the black photo in the middle; the clay panel shows the lit head there.
    h = out.shape[0]
    assert right[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5].mean() > 40
    assert left[h // 2 - 20: h // 2 - 10, 5:15].max() == 0


def test_clay_panel_ignores_the_texture_and_the_textured_panel_shows_it():
    """The clay panel is grey whatever the baked texture (a check of the shape, not of the photo);
    the optional textured panel is albedo × fitted light."""
    albedo = np.array([200, 140, 110])
    res = _result(albedo=tuple(albedo), light=0.2)  # white light, stronger than the default
    np.testing.assert_allclose(res.sh_coeffs[[0, 9, 18]], 0.2, rtol=1e-6)  # float32 views of coeffs
    out = render_overlay(np.zeros((300, 400, 3), np.uint8), res, alpha=1.0, output_size=256,
                         panels=("clay", "textured"))
    w = out.shape[1] // 2
    h = out.shape[0]
    clay = out[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5].reshape(-1, 3).mean(0)
    textured = out[h // 2 - 5: h // 2 + 5, w + w // 2 - 5: w + w // 2 + 5].reshape(-1, 3).mean(0)
    assert np.ptp(clay) < 2 and clay.mean() > 60, clay
    assert np.abs(textured / textured.sum() - albedo / albedo.sum()).max() < 0.01, textured
    with pytest.raises(ValueError, match="panels"):
        render_overlay(np.zeros((300, 400, 3), np.uint8), res, panels=("wireframe",))


def test_clay_views_show_the_head_from_three_sides():
    res = _result()
    views = clay_views(res, size=64)
    assert views.shape == (64, 192, 3)
    for k in range(3):
        v = views[:, 64 * k: 64 * (k + 1)]
        assert (v[28:36, 28:36] > 60).all() and (v[:2, :2] < 60).all()


def test_overlay_size_mismatch():
    with pytest.raises(ShapeError, match="does not match"):
        render_overlay(np.zeros((10, 10, 3), np.uint8), _result())
    with pytest.raises(ShapeError, match="uint8"):
        render_overlay(np.zeros((300, 400), np.float32), _result())


def _jaw_landmarks(y_jaw: float) -> np.ndarray:
    """68 photo points: a U-shaped jaw line (0-16) across the sphere, lowest (8) at ``y_jaw``;
    the nose bridge (27) above the centre; the rest at the centre."""
    lm = np.tile([200.0, 150.0], (68, 1))
    k = np.arange(17)
    lm[:17] = np.stack([120.0 + 10.0 * k, y_jaw - 60.0 + 60.0 * np.sin(np.pi * k / 16)], axis=1)
    lm[27] = (200.0, 100.0)
    return lm


def test_clay_stops_at_the_jaw_line_and_leaves_the_collar_to_the_photo():
    """The neck below the fitted jaw line is not painted over the photo (the collar spill)."""
    from msma_engine.overlay import _window

    res = dataclasses.replace(_result(albedo=(200, 200, 200)), landmarks_2d=_jaw_landmarks(190.0))
    photo = np.zeros((300, 400, 3), np.uint8)
    out = render_overlay(photo, res, alpha=1.0, output_size=256, panels=("clay",))
    x0, y0, x1, y1 = _window(res, photo.shape[:2], margin=0.35)
    factor = 256 / max(x1 - x0, y1 - y0)

    def at(x, y):  # photo pixel -> panel value
        return out[int((y - y0) * factor), int((x - x0) * factor)]

    # The sphere (radius ~135 px about (200, 150)) covers both points; only the upper one is face.
    assert at(200, 120).min() > 40 and at(160, 160).min() > 40
    assert at(200, 240).max() == 0 and at(150, 260).max() == 0 and at(300, 230).max() == 0
    # Beside the ends of the jaw line the cut runs straight out sideways.
    assert at(100, 150).max() == 0 and at(100, 120).min() > 40


def test_below_jaw_mask_follows_the_face_roll():
    from msma_engine.overlay import below_jaw_mask

    lm = _jaw_landmarks(190.0)
    upright = below_jaw_mask(lm, (300, 400))
    assert upright[240, 200] == 1 and upright[120, 200] == 0 and upright[175, 200] == 0
    # Rolled 90 degrees (chin to the left in the image): the cut is left of the jaw now.
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    rolled = (lm - (200, 150)) @ rot.T + (200, 150)
    m = below_jaw_mask(rolled, (300, 400))
    assert m[150, 100] == 1 and m[150, 200] == 0 and m[150, 250] == 0 and m[240, 240] == 0 and m[240, 200] == 1
    with pytest.raises(ShapeError):
        below_jaw_mask(lm[:20], (300, 400))
