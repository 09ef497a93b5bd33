"""Tests of msma_engine.render.texture and dilate_texture."""

from __future__ import annotations

import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.render import RenderContext, dilate_texture, texture

CTX = RenderContext("torch")


def _uv_of_texel(row, col, h, w):
    return torch.tensor([(col + 0.5) / w, 1.0 - (row + 0.5) / h], dtype=torch.float64)


class TestTexture:
    @pytest.mark.parametrize("boundary", ["wrap", "clamp"])
    def test_texel_centres_are_exact(self, boundary):
        tex = torch.rand(1, 5, 7, 3, dtype=torch.float64)
        rows, cols = torch.meshgrid(torch.arange(5.0).double(), torch.arange(7.0).double(), indexing="ij")
        uv = torch.stack([(cols + 0.5) / 7, 1.0 - (rows + 0.5) / 5], -1)[None]
        torch.testing.assert_close(texture(CTX, tex, uv, boundary), tex)

    def test_uv_origin_bottom_left(self):
        tex = torch.zeros(1, 4, 4, 1, dtype=torch.float64)
        tex[0, 3, 0] = 1.0  # bottom-left texel (last row)
        uv = _uv_of_texel(3, 0, 4, 4).view(1, 1, 1, 2)
        assert texture(CTX, tex, uv).item() == 1.0
        assert texture(CTX, tex, torch.full((1, 1, 1, 2), 0.125, dtype=torch.float64)).item() == 1.0

    def test_bilinear_midpoint_and_boundaries(self):
        tex = torch.arange(4, dtype=torch.float64).view(1, 1, 4, 1)  # one row: 0 1 2 3
        mid = torch.tensor([[[[2 / 4, 0.5]]]], dtype=torch.float64)  # between texels 1 and 2
        assert texture(CTX, tex, mid).item() == pytest.approx(1.5)
        edge = torch.tensor([[[[0.0, 0.5]]]], dtype=torch.float64)  # the left border
        assert texture(CTX, tex, edge, "clamp").item() == pytest.approx(0.0)
        assert texture(CTX, tex, edge, "wrap").item() == pytest.approx(1.5)  # halfway 3 → 0
        shifted = mid + torch.tensor([1.0, -2.0], dtype=torch.float64)
        assert texture(CTX, tex, shifted, "wrap").item() == pytest.approx(1.5)

    @pytest.mark.parametrize("boundary", ["wrap", "clamp"])
    def test_gradcheck(self, boundary):
        g = torch.Generator().manual_seed(0)
        tex = torch.rand(2, 4, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
        uv = (torch.rand(2, 3, 3, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t, u: texture(CTX, t, u, boundary), (tex, uv))

    def test_bad_arguments(self):
        with pytest.raises(ShapeError, match=r"\(4, 4, 3\)"):
            texture(CTX, torch.rand(4, 4, 3), torch.rand(1, 2, 2, 2))
        with pytest.raises(ShapeError, match="batch 2"):
            texture(CTX, torch.rand(2, 4, 4, 3), torch.rand(3, 2, 2, 2))
        with pytest.raises(ValueError, match="mirror"):
            texture(CTX, torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 2), "mirror")


class TestDilate:
    def test_grows_islands_and_keeps_covered(self):
        tex = torch.zeros(7, 7, 3)
        mask = torch.zeros(7, 7, dtype=torch.bool)
        tex[3, 3] = torch.tensor([0.2, 0.4, 0.6])
        mask[3, 3] = True
        one = dilate_texture(tex, mask, iterations=1)
        assert torch.equal(one[3, 3], tex[3, 3])
        torch.testing.assert_close(one[2:5, 2:5], tex[3, 3].expand(3, 3, 3))
        assert (one[0] == 0).all()
        three = dilate_texture(tex, mask, iterations=3)
        torch.testing.assert_close(three, tex[3, 3].expand(7, 7, 3))

    def test_shape_mismatch(self):
        with pytest.raises(ShapeError, match=r"\(4, 4, 3\)"):
            dilate_texture(torch.rand(4, 4, 3), torch.ones(5, 5, dtype=torch.bool))
