"""Backend selection, and the nvdiffrast backend against the pure-PyTorch one (CUDA only)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from render_reference import random_clip_mesh

from msma_engine.errors import BackendUnavailableError
from msma_engine.render import (NvdiffrastFragments, RenderContext, TorchFragments, interpolate, nvdiffrast_available,
                                rasterize, rasterize_uv, texture)


def _why_no_nvdiffrast() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device: torch.cuda.is_available() is False"
    if importlib.util.find_spec("nvdiffrast") is None:
        return "nvdiffrast is not installed (import nvdiffrast.torch fails)"
    if not nvdiffrast_available():
        return "nvdiffrast is installed but 'import nvdiffrast.torch' fails"
    return None


def test_auto_uses_torch_for_cpu_tensors():
    assert RenderContext("auto").backend_for(torch.device("cpu")) == "torch"
    assert RenderContext("torch").backend_for(torch.device("cuda")) == "torch"


def test_missing_nvdiffrast_is_reported():
    if _why_no_nvdiffrast() is None:
        pytest.skip("nvdiffrast and CUDA are present, so the backend is available")
    with pytest.raises(BackendUnavailableError, match="nvdiffrast"):
        RenderContext("nvdiffrast")


def test_unknown_backend():
    with pytest.raises(ValueError, match="opengl"):
        RenderContext("opengl")


@pytest.mark.gpu
@pytest.mark.skipif(_why_no_nvdiffrast() is not None, reason=str(_why_no_nvdiffrast()))
class TestAgainstTorchBackend:
    def setup_method(self):
        self.nv, self.pt = RenderContext("nvdiffrast"), RenderContext("torch")
        pos, self.tris = random_clip_mesh(11, batch=2, nv=40, nf=30, dtype=torch.float32)
        self.pos = pos.cuda()
        self.tris = self.tris.cuda()

    @pytest.mark.parametrize("cull", [False, True])
    def test_rasterize(self, cull):
        a = rasterize(self.nv, self.pos, self.tris, (96, 128), cull_backfaces=cull)
        b = rasterize(self.pt, self.pos, self.tris, (96, 128), cull_backfaces=cull)
        assert isinstance(a, NvdiffrastFragments) and isinstance(b, TorchFragments)
        assert (a.depth[~a.mask] == 0).all() and (a.barycentrics[~a.mask] == 0).all()  # one background value
        same = a.triangle_id == b.triangle_id
        assert same.float().mean() > 0.99  # edges and depth ties may differ
        torch.testing.assert_close(a.barycentrics[same], b.barycentrics[same], atol=1e-4, rtol=1e-4)
        cov = same & b.mask
        torch.testing.assert_close(a.depth[cov], b.depth[cov], atol=1e-4, rtol=1e-4)

    def test_interpolate_and_position_gradients(self):
        attr = torch.rand(2, 40, 3, device="cuda")
        grads, images = [], []
        for ctx in (self.nv, self.pt):
            pos = self.pos.clone().requires_grad_(True)
            frags = rasterize(ctx, pos, self.tris, (96, 128))
            img = interpolate(attr, frags, self.tris)
            img.square().sum().backward()
            grads.append(pos.grad)
            images.append(img)
        same = (images[0] - images[1]).abs().amax(-1) < 1e-4
        assert same.float().mean() > 0.99
        torch.testing.assert_close(grads[0], grads[1], atol=2e-2, rtol=5e-2)

    @pytest.mark.parametrize("boundary", ["wrap", "clamp"])
    def test_texture(self, boundary):
        tex = torch.rand(2, 16, 24, 3, device="cuda")
        uv = torch.rand(2, 20, 20, 2, device="cuda") * 1.4 - 0.2
        torch.testing.assert_close(texture(self.nv, tex, uv, boundary), texture(self.pt, tex, uv, boundary),
                                   atol=1e-4, rtol=1e-4)

    def test_rasterize_uv(self):
        uv = torch.rand(40, 2, device="cuda")
        a = rasterize_uv(self.nv, uv, self.tris, (64, 64))
        b = rasterize_uv(self.pt, uv, self.tris, (64, 64))
        assert (a.mask == b.mask).float().mean() > 0.99
