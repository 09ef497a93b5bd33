"""Tests of msma_engine.render.rasterize (pure PyTorch backend) against a brute-force reference."""

from __future__ import annotations

import pytest
import torch
from render_reference import brute_force_raster, random_clip_mesh

from msma_engine.errors import ShapeError
from msma_engine.render import RenderContext, rasterize

CTX = RenderContext("torch")


class TestAgainstBruteForce:
    @pytest.mark.parametrize("seed,cull", [(0, False), (1, False), (2, True), (3, False)])
    def test_ids_barycentrics_depth(self, seed, cull):
        pos, tris = random_clip_mesh(seed)
        h, w = 24, 32
        frags = rasterize(CTX, pos, tris, (h, w), cull_backfaces=cull)
        ids, bary, depth, tie = brute_force_raster(pos.numpy(), tris.numpy(), h, w, cull)
        got = frags.triangle_id.numpy()
        assert (got >= 0).sum() > 0.3 * got.size  # the meshes really cover the image
        assert ((ids != got) & ~tie).sum() == 0
        agree = (ids == got) & (ids >= 0)
        assert agree.sum() > 0.9 * (ids >= 0).sum()
        torch.testing.assert_close(frags.barycentrics.numpy()[agree], bary[agree], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(frags.depth.numpy()[agree], depth[agree], rtol=1e-9, atol=1e-9)
        assert (frags.depth[frags.triangle_id < 0] == 0).all()  # the one background value
        assert (frags.barycentrics[frags.triangle_id < 0] == 0).all()

    def test_float32_matches_float64(self):
        pos, tris = random_clip_mesh(4)
        f64 = rasterize(CTX, pos, tris, (24, 32))
        f32 = rasterize(CTX, pos.float(), tris, (24, 32))
        assert (f64.triangle_id != f32.triangle_id).float().mean() < 0.01

    def test_float32_fine_mesh_is_watertight(self):
        # A tilted, finely tessellated plane at 512²: no pixel inside it may fall through cracks.
        n = 120
        s = torch.linspace(-0.95, 0.95, n)
        yy, xx = torch.meshgrid(s, s, indexing="ij")
        w = 2.0 + 0.7 * xx + 0.3 * yy
        pos = torch.stack([xx * w, yy * w, torch.zeros_like(w), w], -1).view(1, -1, 4)
        idx = torch.arange(n * n).view(n, n)
        a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
        tris = torch.cat([torch.stack([a, b, d], -1).view(-1, 3), torch.stack([a, d, c], -1).view(-1, 3)])
        frags = rasterize(CTX, pos, tris, (512, 512), cull_backfaces=True)
        centres = (torch.arange(512) + 0.5) / 256 - 1.0
        inside = (centres.abs() < 0.949)[:, None] & (centres.abs() < 0.949)[None, :]
        assert frags.mask[0][inside].all()
        assert not frags.mask[0][~((centres.abs() < 0.951)[:, None] & (centres.abs() < 0.951)[None, :])].any()


class TestConventions:
    def test_row_zero_is_top_and_centres_at_half(self):
        # A triangle in the upper-left quadrant of NDC lands in the top-left image corner.
        pos = torch.tensor([[[-1.0, 1.0, 0, 1], [-1.0, 0.0, 0, 1], [0.0, 1.0, 0, 1]]])
        frags = rasterize(CTX, pos, torch.tensor([[0, 1, 2]]), (4, 4))
        expected = torch.tensor([[0, 0, -1, -1], [0, -1, -1, -1], [-1] * 4, [-1] * 4])
        assert torch.equal(frags.triangle_id[0], expected)

    def test_backface_culling(self):
        pos = torch.tensor([[[-1.0, -1.0, 0, 1], [1.0, -1.0, 0, 1], [-1.0, 1.0, 0, 1]]])
        ccw, cw = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
        assert rasterize(CTX, pos, ccw, (8, 8), cull_backfaces=True).mask.any()
        assert not rasterize(CTX, pos, cw, (8, 8), cull_backfaces=True).mask.any()
        assert rasterize(CTX, pos, cw, (8, 8), cull_backfaces=False).mask.any()

    def test_near_far_and_behind_camera(self):
        tri = torch.tensor([[0, 1, 2]])
        quad = torch.tensor([[-1.0, -1.0], [3.0, -1.0], [-1.0, 3.0]])
        for z_ndc, w, visible in [(0.0, 2.0, True), (1.5, 2.0, False), (-1.5, 2.0, False), (0.0, -2.0, False)]:
            pos = torch.cat([quad * w, torch.full((3, 1), z_ndc * w), torch.full((3, 1), w)], 1)[None]
            assert rasterize(CTX, pos, tri, (4, 4)).mask.all().item() is visible

    def test_nearest_wins_and_depth_is_w(self):
        big = torch.tensor([[-1.0, -1.0], [3.0, -1.0], [-1.0, 3.0]])
        pos = torch.cat([torch.cat([big * 2, torch.zeros(3, 1), torch.full((3, 1), 2.0)], 1),
                         torch.cat([big * 3, torch.zeros(3, 1), torch.full((3, 1), 3.0)], 1)])[None]
        frags = rasterize(CTX, pos, torch.tensor([[3, 4, 5], [0, 1, 2]]), (5, 6))
        assert (frags.triangle_id == 1).all()
        torch.testing.assert_close(frags.depth, torch.full((1, 5, 6), 2.0))


class TestGradients:
    def test_gradcheck_positions(self):
        pos, tris = random_clip_mesh(5, batch=1, nv=6, nf=3)
        base = rasterize(CTX, pos, tris, (8, 10))
        assert base.mask.sum() > 10

        def fn(p):
            frags = rasterize(CTX, p, tris, (8, 10))
            assert torch.equal(frags.triangle_id, base.triangle_id)  # coverage unchanged
            return frags.barycentrics, frags.depth

        assert torch.autograd.gradcheck(fn, (pos.clone().requires_grad_(True),), eps=1e-7, atol=1e-6)


class TestErrors:
    def test_bad_shapes(self):
        pos, tris = random_clip_mesh(0, batch=1)
        with pytest.raises(ShapeError, match=r"\(1, 30, 3\)"):
            rasterize(CTX, pos[..., :3], tris, (4, 4))
        with pytest.raises(ShapeError, match="outside the 30 vertices"):
            rasterize(CTX, pos, tris + 30, (4, 4))
        with pytest.raises(ShapeError, match="integer"):
            rasterize(CTX, pos, tris.double(), (4, 4))
        with pytest.raises(ShapeError, match="resolution"):
            rasterize(CTX, pos, tris, (0, 4))


def test_cuda_matches_cpu(cuda_device):
    pos, tris = random_clip_mesh(6, dtype=torch.float32)
    cpu = rasterize(CTX, pos, tris, (48, 64))
    gpu = rasterize(CTX, pos.to(cuda_device), tris.to(cuda_device), (48, 64))
    assert (cpu.triangle_id != gpu.triangle_id.cpu()).float().mean() < 1e-3
    same = cpu.triangle_id == gpu.triangle_id.cpu()
    torch.testing.assert_close(gpu.barycentrics.cpu()[same], cpu.barycentrics[same], rtol=1e-4, atol=1e-4)


def test_chunked_zbuffer_matches_single_pass(monkeypatch):
    import msma_engine.render._torch_raster as raster

    pos, tris = random_clip_mesh(8, batch=3, nv=60, nf=80)
    whole = rasterize(CTX, pos, tris, (40, 48))
    monkeypatch.setattr(raster, "_CHUNK", 97)
    chunked = rasterize(CTX, pos, tris, (40, 48))
    assert torch.equal(whole.triangle_id, chunked.triangle_id)
    torch.testing.assert_close(whole.depth, chunked.depth)
