"""The nvdiffrast adapter's conventions, checked on CPU against a stand-in ``nvdiffrast.torch``.

The stand-in reproduces nvdiffrast's documented output conventions with the torch backend:
``rast_out`` = (u, v, z/w, triangle_id + 1) with row 0 at the bottom, barycentric u, v for
vertices 0 and 1, and texel row 0 at v = 0. The real library is compared in
test_nvdiffrast_backend.py when CUDA and nvdiffrast are present.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from render_reference import random_clip_mesh

from msma_engine.render import RenderContext, _nvdiffrast, interpolate, rasterize, texture
from msma_engine.render.fragments import NvdiffrastFragments

TORCH = RenderContext("torch")


def _fake_module() -> types.ModuleType:
    dr = types.ModuleType("nvdiffrast.torch")

    class RasterizeCudaContext:
        def __init__(self, device=None):
            self.device = device

    def fake_rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
        assert isinstance(glctx, RasterizeCudaContext) and pos.dtype == torch.float32 and tri.dtype == torch.int32
        f = rasterize(TORCH, pos, tri.long(), resolution)
        zw = interpolate(pos[..., 2:3] / pos[..., 3:4], f, tri.long())[..., 0]
        rast = torch.stack([f.barycentrics[..., 0], f.barycentrics[..., 1], zw, (f.triangle_id + 1).float()], -1)
        return rast.flip(1), torch.empty(*rast.shape[:3], 0)

    def fake_interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
        r = rast.flip(1)
        ids = r[..., 3].round().long() - 1
        bary = torch.stack([r[..., 0], r[..., 1], 1 - r[..., 0] - r[..., 1]], -1) * (ids >= 0).unsqueeze(-1)
        batch = torch.arange(r.shape[0]).view(-1, 1, 1, 1)
        corners = attr.expand(r.shape[0], -1, -1)[batch, tri.long()[ids.clamp(min=0)]]
        return (corners * bary.unsqueeze(-1)).sum(-2).flip(1), None

    def fake_texture(tex, uv, filter_mode="auto", boundary_mode="wrap"):
        assert filter_mode == "linear"
        return texture(TORCH, tex, torch.stack([uv[..., 0], 1.0 - uv[..., 1]], -1), boundary_mode)

    dr.RasterizeCudaContext = RasterizeCudaContext
    dr.rasterize, dr.interpolate, dr.texture = fake_rasterize, fake_interpolate, fake_texture
    return dr


@pytest.fixture
def fake_ctx(monkeypatch):
    package = types.ModuleType("nvdiffrast")
    package.torch = _fake_module()
    monkeypatch.setitem(sys.modules, "nvdiffrast", package)
    monkeypatch.setitem(sys.modules, "nvdiffrast.torch", package.torch)
    ctx = RenderContext("torch")  # only its nvdiffrast_context() cache is used here
    return ctx


@pytest.mark.parametrize("cull", [False, True])
def test_adapter_matches_torch_backend(fake_ctx, cull):
    pos, tris = random_clip_mesh(12, batch=2, nv=30, nf=24, dtype=torch.float32)
    pos.requires_grad_(True)
    ref = rasterize(TORCH, pos, tris, (24, 32), cull_backfaces=cull)
    got = _nvdiffrast.rasterize(fake_ctx, pos, tris, (24, 32), cull)
    assert isinstance(got, NvdiffrastFragments)
    assert torch.equal(got.triangle_id, ref.triangle_id)
    torch.testing.assert_close(got.barycentrics, ref.barycentrics)
    torch.testing.assert_close(got.depth, ref.depth)
    attr = torch.rand(2, 30, 3)
    out = interpolate(attr, got, tris)  # dispatches on the fragments' type
    torch.testing.assert_close(out, interpolate(attr, ref, tris))
    out.sum().backward()
    assert pos.grad.abs().sum() > 0


def test_adapter_texture_uv_origin(fake_ctx):
    tex = torch.rand(1, 6, 5, 2)
    uv = torch.rand(1, 4, 4, 2)
    torch.testing.assert_close(_nvdiffrast.texture(tex, uv, "clamp"), texture(TORCH, tex, uv, "clamp"))
