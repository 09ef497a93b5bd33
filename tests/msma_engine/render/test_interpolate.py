"""Tests of msma_engine.render.interpolate: values, background, gradients (float64 gradcheck)."""

from __future__ import annotations

import pytest
import torch
from render_reference import random_clip_mesh

from msma_engine.errors import ShapeError
from msma_engine.render import Fragments, RenderContext, interpolate, rasterize

CTX = RenderContext("torch")


@pytest.fixture
def scene():
    pos, tris = random_clip_mesh(7, batch=2, nv=8, nf=5)
    frags = rasterize(CTX, pos, tris, (8, 10))
    assert frags.mask.sum() > 20
    return pos, tris, frags


class TestInterpolate:
    def test_matches_dense_barycentrics(self, scene):
        pos, tris, frags = scene
        attr = torch.rand(2, 8, 4, dtype=torch.float64)
        out = interpolate(attr, frags, tris)
        assert out.shape == (2, 8, 10, 4)
        ids = frags.triangle_id.clamp(min=0)
        b = torch.arange(2).view(2, 1, 1).expand_as(ids)
        corners = attr[b.unsqueeze(-1), tris[ids]]  # (B, H, W, 3, C)
        expected = (corners * frags.barycentrics.unsqueeze(-1)).sum(-2) * frags.mask.unsqueeze(-1)
        torch.testing.assert_close(out, expected)
        assert (out[~frags.mask] == 0).all()

    def test_shared_attributes_broadcast(self, scene):
        _, tris, frags = scene
        attr = torch.rand(8, 3, dtype=torch.float64)
        torch.testing.assert_close(interpolate(attr, frags, tris), interpolate(attr.expand(2, 8, 3), frags, tris))

    def test_interpolating_clip_xy_gives_pixel_centres(self, scene):
        # Perspective-correct barycentrics reproduce NDC = (Σ b x) / (Σ b w) at each pixel centre.
        pos, tris, frags = scene
        out = interpolate(pos, frags, tris)
        ndc = out[..., :2] / out[..., 3:]
        h, w = 8, 10
        cx = (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1
        cy = 1 - (2 * torch.arange(h, dtype=torch.float64) + 1) / h
        grid = torch.stack(torch.meshgrid(cy, cx, indexing="ij")[::-1], -1).expand(2, h, w, 2)
        torch.testing.assert_close(ndc[frags.mask], grid[frags.mask])
        torch.testing.assert_close(out[..., 3][frags.mask], frags.depth[frags.mask])

    def test_gradcheck_attributes(self, scene):
        _, tris, frags = scene
        attr = torch.rand(2, 8, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a: interpolate(a, frags, tris), (attr,))
        shared = torch.rand(8, 2, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a: interpolate(a, frags, tris), (shared,))

    def test_gradcheck_positions(self, scene):
        pos, tris, frags = scene
        attr = torch.rand(2, 8, 2, dtype=torch.float64)

        def fn(p):
            f = rasterize(CTX, p, tris, (8, 10))
            assert torch.equal(f.triangle_id, frags.triangle_id)  # no pixel changes coverage
            return interpolate(attr, f, tris)

        assert torch.autograd.gradcheck(fn, (pos.clone().requires_grad_(True),), eps=1e-7, atol=1e-6)

    def test_bad_shapes(self, scene):
        _, tris, frags = scene
        with pytest.raises(ShapeError, match=r"\(3, 8, 2\)"):
            interpolate(torch.rand(3, 8, 2), frags, tris)
        with pytest.raises(ShapeError, match="out of range"):
            interpolate(torch.rand(4, 2), frags, tris)
        with pytest.raises(ShapeError, match="integer"):
            interpolate(torch.rand(8, 2), frags, tris.float())

    def test_fragments_of_no_known_backend(self, scene):
        _, tris, frags = scene

        class Foreign(Fragments):
            triangle_id = frags.triangle_id

        with pytest.raises(TypeError, match="Foreign"):
            interpolate(torch.rand(8, 2), Foreign(), tris)
