"""Tests of msma_engine.render.rasterize_uv: texel coverage and position maps for baking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msma_engine.errors import ShapeError
from msma_engine.render import RenderContext, interpolate, rasterize_uv

CTX = RenderContext("torch")


def jittered_layout(rows=3, cols=4, seed=0):
    """A UV atlas of jittered grid cells inside [0.05, 0.95]², two triangles per cell."""
    g = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0.05, 0.95, cols + 1), np.linspace(0.05, 0.95, rows + 1))
    uv = np.stack([u, v], -1)
    uv[1:-1, 1:-1] += g.uniform(-0.05, 0.05, uv[1:-1, 1:-1].shape)
    idx = np.arange((rows + 1) * (cols + 1)).reshape(rows + 1, cols + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tris = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return torch.from_numpy(uv.reshape(-1, 2)), torch.from_numpy(tris)


def containing_triangle(uv: np.ndarray, tris: np.ndarray, h: int, w: int, margin=1e-9):
    """Reference id per texel centre (−1 outside); −2 where a centre is within margin of an edge."""
    ids = -np.ones((h, w), np.int64)
    for i in range(h):
        for j in range(w):
            p = np.array([(j + 0.5) / w, 1.0 - (i + 0.5) / h])
            for f, t in enumerate(tris):
                a, b, c = uv[t]
                m = np.array([b - a, c - a]).T
                s1, s2 = np.linalg.solve(m, p - a)
                s = np.array([1 - s1 - s2, s1, s2])
                if (s > margin).all():
                    ids[i, j] = f
                elif (s > -margin).all():
                    ids[i, j] = -2
    return ids


def test_every_texel_inside_gets_its_triangle():
    uv, tris = jittered_layout()
    frags = rasterize_uv(CTX, uv, tris, (40, 48))
    ref = containing_triangle(uv.numpy(), tris.numpy(), 40, 48)
    got = frags.triangle_id[0].numpy()
    clear = ref != -2
    assert (got[clear] == ref[clear]).all()
    assert (ref >= 0).sum() > 0.7 * ref.size


def test_position_map_over_position_triangles():
    uv, uv_tris = jittered_layout(seed=1)
    # Positions live on another vertex list (as across UV seams) with the same face order.
    perm = torch.randperm(uv.shape[0], generator=torch.Generator().manual_seed(0))
    inv = torch.argsort(perm)
    affine = torch.tensor([[0.3, -0.1, 0.02], [0.05, 0.2, -0.01], [-0.1, 0.1, 0.5]], dtype=torch.float64)
    uv1 = torch.cat([uv, torch.ones(uv.shape[0], 1, dtype=torch.float64)], 1)
    positions = (uv1 @ affine.T)[perm]
    pos_tris = inv[uv_tris]
    frags = rasterize_uv(CTX, uv, uv_tris, (32, 32))
    pmap = interpolate(positions, frags, pos_tris)[0]
    c = (torch.arange(32, dtype=torch.float64) + 0.5) / 32
    vv, uu = torch.meshgrid(1.0 - c, c, indexing="ij")
    expected = torch.stack([uu, vv, torch.ones_like(uu)], -1) @ affine.T
    m = frags.mask[0]
    torch.testing.assert_close(pmap[m], expected[m])
    assert (pmap[~m] == 0).all()


def test_bad_uv_shape():
    with pytest.raises(ShapeError, match=r"\(5, 3\)"):
        rasterize_uv(CTX, torch.rand(5, 3), torch.tensor([[0, 1, 2]]), (8, 8))
