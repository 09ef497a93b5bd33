"""Tests for msma_engine.fitting and msma_engine.losses on a synthetic 'sphere face' with known answers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.losses import (
    coefficient_regularisation,
    gamma_regularisation,
    inter_ocular_distance,
    landmark_loss,
    landmark_nme,
    landmark_weights,
    photometric_loss,
)
from msma_engine.fitting import (
    QUALITY_PRESETS,
    FaceFitter,
    FitConfig,
    FitTarget,
    rigid_pose_from_landmarks,
    solve_albedo,
    solve_lighting,
)
from msma_engine.render import RenderContext
from msma_engine.shading import sh_basis


def sphere_face_model() -> FaceModel:
    """A sphere whose 68 landmark vertices are spread over the front (+z) cap."""
    data = make_sphere_model(n_lat=24, n_lon=32, n_id=4, n_exp=3, n_tex=2)
    v = data.mean_shape
    front = np.flatnonzero((v[:, 2] > 0.045) & (np.abs(v[:, 1]) < 0.07))
    rng = np.random.default_rng(1)
    lm = rng.choice(front, 68, replace=len(front) < 68)
    # Eye corners 36/45 must be apart for the inter-ocular normalisation.
    lm[36], lm[45] = front[np.argmin(v[front, 0])], front[np.argmax(v[front, 0])]
    data.landmark_indices = lm.astype(np.int32)
    data.skin_mask = (v[:, 2] > 0.0).astype(np.float32)
    return FaceModel(data)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return sphere_face_model()


def _truth(model: FaceModel) -> torch.Tensor:
    c = model.layout.zeros(1)
    s = model.layout.slices()
    c[0, s["id"]] = torch.tensor([2.0, -1.5, 1.0, 1.0])
    c[0, s["angles"]] = torch.tensor([0.1, -0.2, 0.05])
    c[0, s["trans"]] = torch.tensor([0.004, -0.006, 0.02])
    c[0, s["gamma"]] = torch.tensor([0.1, 0.05, 0.2, 0.0, 0, 0, 0, 0, 0] * 3)
    c[0, s["tex"]] = torch.tensor([0.5, -0.5])
    return c


def _target(model: FaceModel, coeffs: torch.Tensor) -> FitTarget:
    fitter = FaceFitter(model, "fast")
    with torch.no_grad():
        r = fitter.render(coeffs, 224)
        out, image, skin = r.output, r.image, r.skin
        background = torch.full_like(image, 0.3)
        image = image + (1 - (skin > 0).float()) * background
    return FitTarget(image=image, landmarks=out.landmarks_2d, valid=torch.ones(1, 1, 224, 224))


class TestLosses:
    def test_landmark_loss_zero_and_scale(self):
        p = torch.rand(2, 68, 2) * 100
        iod = inter_ocular_distance(p)
        w = landmark_weights()
        assert float(landmark_loss(p, p, w, normalise="iod", iod=iod)) == 0.0
        shifted = p + torch.tensor([3.0, 4.0])  # 5 px everywhere
        expected = (25.0 / iod**2).mean()
        assert torch.allclose(landmark_loss(shifted, p, w, normalise="iod", iod=iod), expected)
        assert torch.allclose(landmark_nme(shifted, p), 5.0 / iod)

    def test_weights(self):
        w = landmark_weights(1.0, 20.0)
        assert w.shape == (68,) and float(w[60:].min()) == 20.0 and float(w[:60].max()) == 1.0

    def test_shape_errors(self):
        with pytest.raises(ShapeError, match=r"\(B, 68, 2\)"):
            inter_ocular_distance(torch.zeros(1, 5, 2))
        with pytest.raises(ShapeError):
            photometric_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
        with pytest.raises(ShapeError, match="27"):
            gamma_regularisation(torch.zeros(1, 9))

    def test_photometric_masked_mean(self):
        a = torch.zeros(1, 3, 2, 2)
        b = torch.zeros(1, 3, 2, 2)
        b[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # L2 norm 5
        mask = torch.zeros(1, 1, 2, 2)
        mask[0, 0, 0, :] = 1.0
        assert abs(float(photometric_loss(a, b, mask)) - 2.5) < 1e-3

    def test_gradcheck_float64(self):
        r = torch.rand(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
        i = torch.rand(1, 3, 3, 3, dtype=torch.float64)
        m = torch.rand(1, 1, 3, 3, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda x: photometric_loss(x, i, m), (r,))
        p = torch.rand(1, 68, 2, dtype=torch.float64, requires_grad=True)
        q = torch.rand(1, 68, 2, dtype=torch.float64) * 50
        w = landmark_weights(dtype=torch.float64)
        iod = inter_ocular_distance(q)
        assert torch.autograd.gradcheck(lambda x: landmark_loss(x, q, w, normalise="iod", iod=iod), (p,))
        g = torch.rand(1, 27, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(gamma_regularisation, (g,))

    def test_regularisation_and_gamma(self):
        assert float(coefficient_regularisation(torch.ones(1, 2), torch.ones(1, 3), torch.ones(1, 4))) == \
            pytest.approx(2 + 0.8 * 3 + 1.7e-2 * 4)
        assert float(gamma_regularisation(torch.ones(2, 27))) == 0.0  # white light is free


class TestClosedForm:
    def test_rigid_pose_recovers_known_pose(self, model):
        c = model.layout.zeros(1)
        s = model.layout.slices()
        c[0, s["angles"]] = torch.tensor([0.15, -0.25, 0.1])
        c[0, s["trans"]] = torch.tensor([0.01, -0.02, 0.05])
        lm = model(c).landmarks_2d[0].numpy()
        angles, trans = rigid_pose_from_landmarks(model, lm, points=slice(0, 68))
        assert np.allclose(angles, [0.15, -0.25, 0.1], atol=1e-3)
        assert np.allclose(trans, [0.01, -0.02, 0.05], atol=1e-4)

    def test_rigid_pose_bad_shape(self, model):
        with pytest.raises(ShapeError, match=r"\(68, 2\)"):
            rigid_pose_from_landmarks(model, np.zeros((5, 2)))

    def test_solve_lighting_exact(self):
        n = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
        alb = torch.rand(500, 3) * 0.5 + 0.3
        g = torch.randn(1, 27) * 0.1
        from msma_engine.shading import sh_irradiance

        target = alb * sh_irradiance(n[None], g)[0]
        got = solve_lighting(alb, n, target, torch.ones(500), ridge=0.0)
        assert torch.allclose(got, g, atol=1e-4)
        assert sh_basis(n).shape == (500, 9)

    def test_solve_albedo_exact(self):
        mean, basis = torch.rand(400, 3), torch.randn(400, 3, 5) * 0.1
        irr = torch.rand(400, 3) + 0.5
        tex = torch.randn(1, 5)
        target = irr * (mean + (basis * tex[0]).sum(-1))
        got = solve_albedo(mean, basis, irr, target, torch.ones(400), prior_weight=0.0)
        assert torch.allclose(got, tex, atol=1e-4)


class TestFaceFitter:
    def test_fit_recovers_synthetic_face(self, model):
        truth = _truth(model)
        target = _target(model, truth)
        cfg = replace(QUALITY_PRESETS["default"], reg_scale=0.01, render_size=112)
        out = FaceFitter(model, cfg, ctx=RenderContext("torch")).fit(target)
        m = out.scores
        assert m.landmark_nme_fit < min(0.003, 0.3 * m.landmark_nme_start), m
        assert m.photometric_fit < 0.5 * m.photometric_start
        s = model.layout.slices()
        assert torch.allclose(out.coeffs[0, s["angles"]], truth[0, s["angles"]], atol=0.02)
        assert set(out.timings) >= {"fit_rigid", "fit_shape", "fit_light", "fit_photo", "fit"}

    def test_photo_geometry_stage_and_identity_hook(self, model):
        truth = _truth(model)
        target = _target(model, truth)
        calls = []

        def identity_loss(rendered, image, mask):
            calls.append(rendered.shape)
            return ((rendered - image) ** 2 * mask).mean()

        cfg = FitConfig(rigid_iters=3, shape_iters=4, light_rounds=1, photo_steps=3, render_size=64,
                        photo_geometry=True)
        out = FaceFitter(model, cfg, identity_loss=identity_loss).fit(target)
        assert len(calls) == 3 and calls[0] == (1, 3, 64, 64)
        assert out.scores.landmark_nme_fit < out.scores.landmark_nme_start

    def test_expression_range_is_respected(self, model):
        out = FaceFitter(model, "fast").fit(_target(model, _truth(model)))
        exp = out.coeffs[0, model.layout.slices()["exp"]]
        assert float(exp.min()) >= 0.0 and float(exp.max()) <= 1.0  # the fixture's range is [0, 1]

    def test_bad_arguments(self, model):
        with pytest.raises(ValueError, match="quality"):
            FaceFitter(model, "ultra")
        with pytest.raises(ValueError, match="photo_steps"):
            FitConfig(photo_steps=-1)
        with pytest.raises(ShapeError, match="landmarks"):
            FitTarget(torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, 2), torch.zeros(1, 1, 8, 8))
        target = _target(model, model.layout.zeros(1))
        with pytest.raises(ShapeError, match="init"):
            FaceFitter(model, "fast").fit(target, init=torch.zeros(1, 3))
