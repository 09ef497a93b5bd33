"""Tests for msma_engine.baking: known albedo comes back out of a synthetic photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.align import CropTransform
from msma_engine.baking import (BakeSettings, TextureBaker, _fill_from_nearest, _skin_statistics_texels,
                                mirror_vertex_map)
from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.fitting import FaceFitter


@pytest.fixture(scope="module")
def model() -> FaceModel:
    d = make_sphere_model(n_lat=24, n_lon=32)
    d.albedo_basis[:] = 0.0
    d.albedo_mean[:] = np.array([0.7, 0.5, 0.4], np.float32)
    return FaceModel(d)


def _coeffs(model: FaceModel) -> torch.Tensor:
    c = model.layout.zeros(1)
    s = model.layout.slices()
    c[0, s["gamma"]] = torch.tensor([0.0, 0.05, 0.3, 0.1, 0, 0, 0, 0, 0] * 3)
    c[0, s["angles"]] = torch.tensor([0.0, 0.3, 0.0])
    return c


def test_mirror_map_of_symmetric_shape(model):
    v = model.mean_shape.numpy()
    mirror = mirror_vertex_map(v)
    assert np.allclose(v[mirror][:, 0], -v[:, 0], atol=1e-6)
    assert np.allclose(v[mirror[mirror]], v, atol=1e-6)  # an involution (up to coincident pole vertices)
    with pytest.raises(ShapeError):
        mirror_vertex_map(np.zeros((4, 2)))


def test_fill_from_nearest():
    tex = np.zeros((4, 4, 3), np.float32)
    covered = np.zeros((4, 4), bool)
    covered[0, 0], covered[3, 3] = True, True
    tex[0, 0], tex[3, 3] = 1.0, 0.5
    out = _fill_from_nearest(tex, covered)
    assert np.all(out[0, 1] == 1.0) and np.all(out[3, 2] == 0.5) and np.all(out[0, 0] == 1.0)


def test_bake_recovers_known_albedo(model):
    """Render the model as the 'photo' (identity crop), bake, and compare with its albedo."""
    coeffs = _coeffs(model)
    with torch.no_grad():
        image = FaceFitter(model, "fast").render(coeffs, 224).image
    photo = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    crop = CropTransform(matrix=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), size=224)
    baker = TextureBaker(model, BakeSettings(photo_mask=False))  # the sphere has no face landmarks
    out = baker.bake(coeffs, photo, crop, size=128)
    tex = out.texture
    assert tex.shape == (128, 128, 3) and tex.dtype == np.uint8
    expected = np.array([0.7, 0.5, 0.4]) * 255
    # Texels of points facing the camera straight on: the front of the sphere (u ≈ 0.5 + yaw).
    lay = baker._layout(128)
    direct_rows = lay.index.numpy() // 128
    direct_cols = lay.index.numpy() % 128
    pts = baker._interp(lay, model(coeffs).vertices[0]).numpy()
    front = pts[:, 2] > 0.085
    front_texels = tex[direct_rows[front], direct_cols[front]].astype(float)
    assert front.sum() > 20
    assert np.abs(front_texels.mean(0) - expected).max() < 8.0, front_texels.mean(0)
    assert 0.2 < out.coverage < 0.7
    # Invisible side (back of the sphere) is filled from the colour-matched model albedo.
    back = pts[:, 2] < -0.06
    assert np.abs(tex[direct_rows[back], direct_cols[back]].astype(float).mean(0) - expected).max() < 15.0
    assert {"bake_uv", "bake_sample", "bake_fill", "bake"} <= set(out.timings)
    # Uniform albedo, colour-matched fill: no step where the photo region meets the fill.
    assert np.isfinite(out.seam) and out.seam < 6.0, out.seam


def test_seam_measures_a_colour_step(model):
    baker = TextureBaker(model)
    lay = baker._layout(128)
    pts = baker._interp(lay, model(_coeffs(model)).vertices[0]).numpy()
    photo_weight = (pts[:, 2] > 0.0).astype(np.float32)
    everywhere = np.ones(len(photo_weight), bool)
    tex = np.full((128 * 128, 3), 100, np.uint8)
    tex[lay.index.numpy()[photo_weight > 0]] = (130, 110, 100)
    seam = baker._seam(lay, tex.reshape(128, 128, 3), photo_weight, photo_weight > 0, everywhere, 128)
    assert seam == pytest.approx(np.hypot(30.0, 10.0), abs=0.5)
    flat = np.full((128, 128, 3), 100, np.uint8)
    assert baker._seam(lay, flat, photo_weight, photo_weight > 0, everywhere, 128) == 0.0


def test_bake_bad_arguments(model):
    baker = TextureBaker(model)
    crop = CropTransform(matrix=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="texture size"):
        baker.bake(model.layout.zeros(1), np.zeros((224, 224, 3), np.uint8), crop, size=8)
    with pytest.raises(ShapeError, match="uint8"):
        baker.bake(model.layout.zeros(1), np.zeros((224, 224), np.float32), crop, size=64)


def test_skin_statistics_reject_hair_and_highlights():
    rng = np.random.default_rng(0)
    n = 1000
    albedo = np.clip(np.array([0.6, 0.45, 0.38]) * rng.normal(1.0, 0.03, (n, 1)), 0, 1).astype(np.float32)
    albedo[:150] = (0.15, 0.1, 0.08)  # hair / brows on the skin mask
    albedo[150:200] = (0.95, 0.95, 0.95)  # specular highlights
    weight, skin = np.ones(n, np.float32), np.ones(n, bool)
    skin[-100:] = False
    keep = _skin_statistics_texels(albedo, weight, skin)
    assert not keep[:200].any() and not keep[-100:].any()
    assert keep[200:-100].mean() > 0.95


def test_fill_continues_the_local_skin_colour(model):
    """Next to the photo region the fill takes the photo skin's colour even where the model albedo drifts."""
    # A long fall-off (64 texels at this size) so the test sees the match, not its fading.
    baker = TextureBaker(model, BakeSettings(match_falloff=512.0))
    size = 128
    lay = baker._layout(size)
    col = lay.index.numpy() % size
    stats = col < size // 2
    direct = np.tile(np.float32([0.6, 0.45, 0.38]), (len(col), 1))
    # The model albedo darkens from left to right: a face-wide gain would leave a step at the boundary.
    prior = (np.float32([0.6, 0.45, 0.38]) * (1.2 - 0.4 * col / size)[:, None]).astype(np.float32)
    gain = baker._colour_match(lay, direct, prior, stats, stats, size)
    fill = prior * gain
    next_to = (col >= size // 2) & (col < size // 2 + 3)
    assert next_to.sum() > 10
    assert np.abs(np.median(fill[next_to], axis=0) - direct[0]).max() * 255 < 4.0
    assert np.abs(fill[stats] - direct[stats]).max() * 255 < 2.0
