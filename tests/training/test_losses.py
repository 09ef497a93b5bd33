"""Each loss on tiny tensors with values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.losses import (
    coefficient_loss,
    coefficient_regularisation,
    gamma_regularisation,
    landmark_loss,
    landmark_weights,
    perceptual_loss,
    photometric_loss,
    reflectance_loss,
    vertex_loss,
)
from training.losses import LossWeights


class TestPhotometric:
    def test_known_value(self):
        pred = torch.zeros(1, 3, 1, 2)
        target = torch.zeros(1, 3, 1, 2)
        target[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # |d| = 5
        target[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # |d| = 1, masked out below
        mask = torch.tensor([[[[1.0, 0.0]]]])
        assert photometric_loss(pred, target, mask, eps=0.0).item() == pytest.approx(5.0)
        mask = torch.ones(1, 1, 1, 2)
        assert photometric_loss(pred, target, mask, eps=0.0).item() == pytest.approx(3.0)

    def test_empty_mask_is_zero_not_nan(self):
        x = torch.rand(2, 3, 4, 4)
        assert photometric_loss(x, x + 1, torch.zeros(2, 1, 4, 4)).item() == 0.0

    def test_gradient_finite_at_zero_error(self):
        x = torch.rand(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
        photometric_loss(x, x.detach(), torch.ones(1, 1, 2, 2, dtype=torch.float64)).backward()
        assert torch.isfinite(x.grad).all()

    def test_gradcheck(self):
        x = torch.rand(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
        y = torch.rand(1, 3, 2, 2, dtype=torch.float64)
        m = torch.rand(1, 1, 2, 2, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda a: photometric_loss(a, y, m), (x,))

    def test_bad_mask_shape(self):
        with pytest.raises(ShapeError, match=r"\(2, 1, H, W\)"):
            photometric_loss(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.ones(2, 3, 4, 4))


class TestPerceptual:
    def test_known_values(self):
        a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # cos 1 and cos 0
        assert perceptual_loss(a, b).item() == pytest.approx(0.5)
        assert perceptual_loss(a, -a).item() == pytest.approx(2.0)


class TestLandmark:
    def test_weights_follow_deep3dfacerecon(self):
        w = landmark_weights()
        assert w.shape == (68,)
        assert (w[28:31] == 20).all() and (w[60:68] == 20).all()
        assert w.sum().item() == pytest.approx(68 - 11 + 11 * 20)

    def test_known_value(self):
        pred = torch.zeros(1, 68, 2)
        target = torch.zeros(1, 68, 2)
        target[0, 0] = torch.tensor([3.0, 4.0])  # weight 1, squared distance 25
        target[0, 62] = torch.tensor([1.0, 0.0])  # inner mouth: weight 20, squared distance 1
        assert landmark_loss(pred, target).item() == pytest.approx((25 + 20) / 68)
        vis = torch.ones(1, 68)
        vis[0, 0] = 0
        assert landmark_loss(pred, target, visibility=vis).item() == pytest.approx(20 / 68)

    def test_iod_normalisation(self):
        p = torch.rand(2, 68, 2) * 100
        shifted = p + torch.tensor([3.0, 4.0])  # 5 px everywhere
        iod = (p[:, 45] - p[:, 36]).norm(dim=-1)
        w = landmark_weights(1.0, 20.0)
        assert torch.allclose(landmark_loss(shifted, p, w, normalise="iod"), (25.0 / iod ** 2).mean())
        with pytest.raises(ValueError, match="normalise"):
            landmark_loss(p, p, w, normalise="mm")

    def test_other_point_count_needs_weights(self):
        with pytest.raises(ShapeError, match="68-point"):
            landmark_loss(torch.zeros(1, 5, 2), torch.zeros(1, 5, 2))
        assert landmark_loss(torch.zeros(1, 5, 2), torch.ones(1, 5, 2), torch.ones(5)).item() == pytest.approx(2.0)


class TestRegularisers:
    def test_coefficient_regularisation(self):
        ids = torch.tensor([[1.0, 2.0], [0.0, 0.0]])  # Σ = 5
        exp = torch.tensor([[1.0], [1.0]])  # Σ = 2
        tex = torch.tensor([[10.0], [0.0]])  # Σ = 100
        value = coefficient_regularisation(ids, exp, tex, 1.0, 0.8, 1.7e-2).item()
        assert value == pytest.approx((5 + 0.8 * 2 + 1.7e-2 * 100) / 2)

    def test_gamma_loss_zero_for_white_light(self):
        g = torch.randn(2, 9).repeat(1, 3)
        assert gamma_regularisation(g).item() == pytest.approx(0.0, abs=1e-12)
        g = torch.zeros(1, 27)
        g[0, 0] = 3.0  # R DC differs: channel mean 1, deviations (2, -1, -1) → 6 / 27
        assert gamma_regularisation(g).item() == pytest.approx(6 / 27)

    def test_reflectance(self):
        albedo = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]]])
        skin = torch.tensor([1.0, 1.0, 0.0])  # mean over skin 0.5 → deviations 0.5 each, 6 values
        assert reflectance_loss(albedo, skin).item() == pytest.approx(6 * 0.25 / 2)

    def test_reflectance_gradcheck(self):
        a = torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True)
        skin = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5], dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda x: reflectance_loss(x, skin), (a,))


class TestSupervised:
    def test_coefficient_loss_groups(self):
        slices = {"id": slice(0, 2), "exp": slice(2, 3), "tex": slice(3, 3), "angles": slice(3, 4),
                  "gamma": slice(4, 4), "trans": slice(4, 5)}
        pred = torch.tensor([[1.0, 1.0, 2.0, 0.1, 0.01]])
        target = torch.zeros(1, 5)
        value = coefficient_loss(pred, target, slices, (1.0, 1.0, 1.0, 10.0, 1.0, 10.0), trans_scale=10.0)
        assert value.item() == pytest.approx(1.0 + 4.0 + 10 * 0.01 + 10 * (0.1 ** 2))

    def test_vertex_loss_mm(self):
        a = torch.zeros(1, 2, 3)
        b = torch.tensor([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.001]]])  # 5 mm and 1 mm
        assert vertex_loss(a, b).item() == pytest.approx(3.0, rel=1e-4)
        assert vertex_loss(a, b, torch.tensor([False, True])).item() == pytest.approx(1.0, rel=1e-4)


class TestWeights:
    def test_paper_defaults(self):
        w = LossWeights()
        assert (w.reg_id, w.reg_exp, w.reg_tex, w.regularization, w.reflectance) == (1.0, 0.8, 1.7e-2, 3e-4, 5.0)
        assert w.landmark_mouth == 20

    def test_negative_rejected(self):
        with pytest.raises(ValueError, match="photometric"):
            LossWeights(photometric=-1.0)
        with pytest.raises(ValueError, match="coeff_groups"):
            LossWeights(coeff_groups=(1.0, 1.0))
