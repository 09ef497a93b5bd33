"""Tests for msma_engine.network.complexity."""

from __future__ import annotations

from torch import nn

from msma_engine.network.complexity import count_macs, count_parameters, macs_by_child
from msma_engine.network.resnet import resnet50


def test_single_conv_and_linear():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    assert count_parameters(net) == 3 * 8 * 9 + 8 + 200 * 10 + 10
    assert count_macs(net, (2, 3, 5, 5)) == 2 * (8 * 3 * 9 * 25 + 200 * 10)


def test_depthwise_conv():
    net = nn.Conv2d(6, 6, 5, padding=2, groups=6)
    assert count_macs(net, (1, 6, 7, 7)) == 6 * 25 * 49


def test_resnet50_matches_published_figures():
    net = resnet50()
    assert 23_500_000 < count_parameters(net) < 23_520_000  # 25.557 M with the 1000-class fc
    assert abs(count_macs(net) / 1e9 - 4.09) < 0.01  # the usual "4.1 GFLOPs" (multiply-adds)
    assert net.training  # count_macs restores the mode


def test_macs_by_child_adds_up():
    from msma_engine.network import build_network

    net = build_network("msma_light", 4, 3, 2)
    parts = macs_by_child(net, (1, 3, 64, 64))
    assert set(parts) == {"backbone", "msf", "attention", "heads"}
    assert sum(parts.values()) == count_macs(net, (1, 3, 64, 64))
