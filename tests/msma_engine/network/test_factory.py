"""Tests for msma_engine.network.factory.build_network and the three regressors it builds."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.network import ARCHS, BaselineNet, MSMANet, build_network
from msma_engine.network.heads import TRANS_UNIT


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    return {arch: build_network(arch, 80, 64, 80) for arch in ARCHS}


class TestBuildNetwork:
    @pytest.mark.parametrize("arch", ARCHS)
    def test_bfm_layout_and_zero_start(self, networks, arch):
        net = networks[arch].eval()
        assert net.arch == arch and net.n_coeffs == 257
        with torch.no_grad():
            out = net(torch.rand(2, 3, 32, 32))
        assert out.shape == (2, 257)
        assert torch.count_nonzero(out) == 0  # mean face, frontal, default light, at the origin

    @pytest.mark.parametrize("arch", ARCHS)
    def test_other_face_model_sizes(self, arch):
        net = build_network(arch, 40, 52, 10).eval()
        with torch.no_grad():
            out = net(torch.rand(1, 3, 32, 32))
        assert out.shape == (1, 40 + 52 + 10 + 33) and torch.count_nonzero(out) == 0

    def test_full_size_input(self, networks):
        with torch.no_grad():
            assert networks["msma_light"].eval()(torch.rand(1, 3, 224, 224)).shape == (1, 257)

    def test_types_and_backbones(self, networks):
        assert isinstance(networks["msma"], MSMANet) and networks["msma"].backbone.channels[-1] == 2048
        assert isinstance(networks["msma_light"], MSMANet) and networks["msma_light"].backbone.channels[-1] == 512
        assert isinstance(networks["baseline"], BaselineNet) and networks["baseline"].backbone.channels[-1] == 2048

    def test_unknown_arch(self):
        with pytest.raises(ValueError, match="unknown network architecture 'resnet'"):
            build_network("resnet", 80, 64, 80)

    @pytest.mark.parametrize(
        ("shape", "dtype", "match"),
        [((3, 64, 64), torch.float32, r"\(B, 3, H, W\), got \(3, 64, 64\)"),
         ((1, 4, 64, 64), torch.float32, r"got \(1, 4, 64, 64\)"),
         ((1, 3, 16, 64), torch.float32, "at least 32"),
         ((1, 3, 64, 64), torch.uint8, "float images")],
    )
    def test_bad_images(self, networks, shape, dtype, match):
        with pytest.raises(ShapeError, match=match):
            networks["msma_light"](torch.zeros(shape, dtype=dtype))


class TestTraining:
    def test_gradients_reach_backbone_after_one_step(self):
        torch.manual_seed(0)
        net = build_network("msma_light", 4, 3, 2).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        images = torch.rand(2, 3, 32, 32)
        target = torch.randn(2, net.n_coeffs)
        for _ in range(2):
            opt.zero_grad()
            loss = ((net(images) - target) ** 2).mean()
            loss.backward()
            opt.step()
        assert net.backbone.conv1.weight.grad.abs().sum() > 0
        assert net.msf.branches[0][0][0].weight.grad.abs().sum() > 0
        assert net.attention[2].mlka.lka[2][1].weight.grad.abs().sum() > 0
        assert torch.count_nonzero(net.eval()(images)) > 0

    def test_baseline_translation_in_metres(self):
        net = build_network("baseline", 2, 2, 2).eval()
        with torch.no_grad():
            net.fc.bias.fill_(1.0)
            out = net(torch.rand(1, 3, 32, 32))
        torch.testing.assert_close(out[0, -3:], torch.full((3,), TRANS_UNIT))
        torch.testing.assert_close(out[0, :-3], torch.ones(net.n_coeffs - 3))

    def test_imagenet_normalisation_inside(self):
        net = build_network("msma_light", 2, 2, 2).eval()
        seen = {}
        def grab(module, inputs):
            seen["x"] = inputs[0]

        net.backbone.conv1.register_forward_pre_hook(grab)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
        with torch.no_grad():
            net(mean.clone())
        assert seen["x"].abs().max() < 1e-6
