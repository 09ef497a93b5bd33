"""Tests for msma_engine.network.resnet: pyramid shapes and torchvision parameter names."""

from __future__ import annotations

import pytest
import torch

from msma_engine.network.resnet import resnet18, resnet34, resnet50


class TestPyramid:
    @pytest.mark.parametrize(
        ("factory", "channels"),
        [(resnet18, (64, 128, 256, 512)), (resnet50, (256, 512, 1024, 2048))],
    )
    def test_shapes_at_224(self, factory, channels):
        net = factory().eval()
        assert net.channels == channels
        with torch.no_grad():
            feats = net(torch.rand(1, 3, 224, 224))
        assert [tuple(f.shape) for f in feats] == [(1, c, s, s) for c, s in zip(channels, (56, 28, 14, 7))]

    def test_odd_input_size_halves_with_ceil(self):
        net = resnet18().eval()
        with torch.no_grad():
            feats = net(torch.rand(1, 3, 200, 200))
        assert [f.shape[-1] for f in feats] == [50, 25, 13, 7]


class TestTorchvisionNames:
    # torchvision's resnet*.state_dict() minus fc.weight / fc.bias.
    @pytest.mark.parametrize(("factory", "n_entries"), [(resnet18, 120), (resnet34, 216), (resnet50, 318)])
    def test_entry_count(self, factory, n_entries):
        assert len(factory().state_dict()) == n_entries

    def test_bottleneck_keys(self):
        keys = resnet50().state_dict()
        expected = {
            "conv1.weight": (64, 3, 7, 7),
            "bn1.running_mean": (64,),
            "layer1.0.conv1.weight": (64, 64, 1, 1),
            "layer1.0.conv3.weight": (256, 64, 1, 1),
            "layer1.0.downsample.0.weight": (256, 64, 1, 1),
            "layer1.0.downsample.1.running_var": (256,),
            "layer2.0.conv2.weight": (128, 128, 3, 3),  # stride on the 3×3 (torchvision v1.5)
            "layer3.5.bn3.weight": (1024,),
            "layer4.2.conv3.weight": (2048, 512, 1, 1),
        }
        for k, shape in expected.items():
            assert tuple(keys[k].shape) == shape, k
        assert not any(k.startswith("fc.") for k in keys)

    def test_stride_is_on_the_3x3(self):
        block = resnet50().layer2[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
