"""Tests of msma_engine.render.channels_first, the renderer → network image layout conversion."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.render import channels_first


def test_moves_the_last_axis_to_the_second():
    img = torch.arange(2 * 3 * 4 * 5).view(2, 3, 4, 5)  # (B, H, W, C)
    out = channels_first(img)
    assert out.shape == (2, 5, 3, 4)
    assert out[1, 4, 2, 3] == img[1, 2, 3, 4]


def test_rejects_other_ranks():
    with pytest.raises(ShapeError, match=r"\(3, 4, 5\)"):
        channels_first(torch.zeros(3, 4, 5))
