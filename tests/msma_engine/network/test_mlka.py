"""Tests for msma_engine.network.mlka: ChannelLayerNorm, MLKA, GSAU, MAMA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msma_engine.errors import ShapeError
from msma_engine.network.mlka import GSAU, MAMA, MLKA, MLKA_KERNELS, ChannelLayerNorm


class TestChannelLayerNorm:
    def test_matches_layer_norm_on_channels_last(self):
        norm = ChannelLayerNorm(6)
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
        x = torch.randn(2, 6, 5, 4)
        ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(norm(x), ref)


class TestMLKA:
    @pytest.mark.parametrize("channels", [12, 14])
    def test_keeps_shape(self, channels):
        x = torch.randn(2, channels, 9, 7)
        assert MLKA(channels)(x).shape == x.shape

    def test_groups_and_kernels(self):
        mlka = MLKA(14)
        assert mlka.groups == (6, 4, 4)
        for lka, gate, (k, k_dil, dil) in zip(mlka.lka, mlka.gate, MLKA_KERNELS):
            first, dilated, point = lka
            assert first.kernel_size == (k, k) and first.groups == first.in_channels
            assert dilated.kernel_size == (k_dil, k_dil) and dilated.dilation == (dil, dil)
            assert dilated.groups == dilated.in_channels
            assert point.kernel_size == (1, 1) and point.groups == 1
            assert gate.kernel_size == (k, k) and gate.groups == gate.in_channels

    def test_groups_are_independent(self):
        mlka = MLKA(9).double()
        x = torch.randn(1, 9, 6, 6, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(mlka(x)[:, :3].sum(), x)
        assert g[:, :3].abs().sum() > 0 and g[:, 3:].abs().sum() == 0

    def test_gradcheck(self):
        mlka = MLKA(3).double()
        x = torch.randn(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(mlka, (x,))

    def test_wrong_channels_raise(self):
        with pytest.raises(ShapeError, match=r"\(B, 12, H, W\), got \(1, 10, 4, 4\)"):
            MLKA(12)(torch.randn(1, 10, 4, 4))

    def test_too_few_channels(self):
        with pytest.raises(ValueError, match="at least 3"):
            MLKA(2)


class TestMAMA:
    @pytest.mark.parametrize("feedforward", [True, False])
    def test_keeps_shape_and_every_parameter_gets_a_gradient(self, feedforward):
        block = MAMA(12, feedforward=feedforward)
        x = torch.randn(2, 12, 7, 7, requires_grad=True)
        y = block(x)
        assert y.shape == x.shape
        (y**2).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for name, p in block.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name

    def test_identity_when_scales_are_zero(self):
        block = MAMA(6, layer_scale_init=0.0)
        x = torch.randn(1, 6, 5, 5)
        torch.testing.assert_close(block(x), x)

    def test_gradcheck(self):
        block = MAMA(3, layer_scale_init=0.5).double()
        x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(block, (x,))

    def test_gsau_gradcheck(self):
        unit = GSAU(2, layer_scale_init=0.5).double()
        x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(unit, (x,))

    def test_wrong_channels_raise(self):
        with pytest.raises(ShapeError, match="MAMA expects"):
            MAMA(6)(torch.randn(1, 5, 4, 4))
