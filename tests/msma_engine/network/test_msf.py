"""Tests for msma_engine.network.msf.MultiScaleFusion."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.network.msf import MultiScaleFusion


def _pyramid(channels, sizes, batch=1, **kw):
    return [torch.randn(batch, c, s, s, **kw) for c, s in zip(channels, sizes)]


class TestMultiScaleFusion:
    def test_keeps_f2_f3_f4_shapes_resnet18_widths(self):
        channels = (64, 128, 256, 512)
        msf = MultiScaleFusion(channels).eval()
        feats = _pyramid(channels, (56, 28, 14, 7))
        with torch.no_grad():
            out = msf(feats)
        assert [tuple(o.shape) for o in out] == [tuple(f.shape) for f in feats[1:]]
        assert all((o >= 0).all() for o in out)  # final ReLU

    def test_keeps_shapes_resnet50_widths_small_maps(self):
        channels = (256, 512, 1024, 2048)
        msf = MultiScaleFusion(channels).eval()
        feats = _pyramid(channels, (8, 4, 2, 1))
        with torch.no_grad():
            out = msf(feats)
        assert [tuple(o.shape) for o in out] == [(1, 512, 4, 4), (1, 1024, 2, 2), (1, 2048, 1, 1)]

    def test_branch_structure_follows_hrnet(self):
        msf = MultiScaleFusion((4, 8, 16, 32))
        to_f4_from_f1 = msf.branches[2][0]  # three stride-2 convs, BN+ReLU between
        convs = [m for m in to_f4_from_f1 if isinstance(m, torch.nn.Conv2d)]
        assert [c.stride for c in convs] == [(2, 2)] * 3
        assert [c.out_channels for c in convs] == [4, 4, 32]
        assert sum(isinstance(m, torch.nn.ReLU) for m in to_f4_from_f1) == 2

    def test_every_level_contributes(self):
        channels = (4, 8, 16, 32)
        msf = MultiScaleFusion(channels).train()
        feats = _pyramid(channels, (16, 8, 4, 2), batch=2, dtype=torch.float64, requires_grad=True)
        msf = msf.double()
        for o in msf(feats):
            grads = torch.autograd.grad(o.sum(), feats, retain_graph=True)
            assert all(g.abs().sum() > 0 for g in grads)

    def test_gradcheck(self):
        channels = (2, 3, 4, 5)
        msf = MultiScaleFusion(channels).double().eval()
        feats = _pyramid(channels, (4, 2, 1, 1), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda *f: msf(list(f)), tuple(feats))

    def test_wrong_channels_raise(self):
        msf = MultiScaleFusion((4, 8, 16, 32))
        feats = _pyramid((4, 8, 15, 32), (16, 8, 4, 2))
        with pytest.raises(ShapeError, match=r"F3 must be \(B, 16, H, W\), got \(1, 15, 4, 4\)"):
            msf(feats)

    def test_non_halving_sizes_raise(self):
        msf = MultiScaleFusion((4, 8, 16, 32))
        with pytest.raises(ShapeError, match="halve"):
            msf(_pyramid((4, 8, 16, 32), (16, 8, 5, 2)))

    def test_wrong_level_count_raises(self):
        with pytest.raises(ShapeError, match="expects 4 feature maps, got 3"):
            MultiScaleFusion((4, 8, 16, 32))(_pyramid((4, 8, 16), (8, 4, 2)))
