"""Reference rasterizer and random meshes for the renderer tests (float64 numpy)."""

from __future__ import annotations

import numpy as np
import torch


def random_clip_mesh(seed: int, batch: int = 2, nv: int = 30, nf: int = 24, dtype=torch.float64):
    """Random overlapping triangles in clip space, all in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    w = 1.0 + 2.0 * torch.rand(batch, nv, generator=g, dtype=dtype)
    xy = (torch.rand(batch, nv, 2, generator=g, dtype=dtype) * 2.4 - 1.2) * w[..., None]
    z = (torch.rand(batch, nv, generator=g, dtype=dtype) * 1.8 - 0.9) * w
    pos = torch.cat([xy, z[..., None], w[..., None]], dim=-1)
    tris = torch.stack([torch.randperm(nv, generator=g)[:3] for _ in range(nf)])
    return pos, tris


def brute_force_raster(pos: np.ndarray, tris: np.ndarray, h: int, w: int, cull: bool):
    """Per-pixel loop over triangles in float64: ids, perspective barycentrics, depth, ties."""
    bsz = pos.shape[0]
    ids = -np.ones((bsz, h, w), np.int64)
    bary = np.zeros((bsz, h, w, 3))
    depth = np.full((bsz, h, w), np.inf)
    tie = np.zeros((bsz, h, w), bool)
    for b in range(bsz):
        p = pos[b][tris]  # (F, 3, 4)
        xn, yn, zn, ww = p[..., 0] / p[..., 3], p[..., 1] / p[..., 3], p[..., 2] / p[..., 3], p[..., 3]
        area = (xn[:, 1] - xn[:, 0]) * (yn[:, 2] - yn[:, 0]) - (xn[:, 2] - xn[:, 0]) * (yn[:, 1] - yn[:, 0])
        for i in range(h):
            cy = 1.0 - (2 * i + 1) / h
            for j in range(w):
                cx = (2 * j + 1) / w - 1.0
                best = []
                for f in range(len(tris)):
                    if area[f] == 0 or (cull and area[f] < 0):
                        continue
                    e = np.empty(3)
                    for k in range(3):
                        a, c = (k + 1) % 3, (k + 2) % 3
                        e[k] = (xn[f, a] - cx) * (yn[f, c] - cy) - (xn[f, c] - cx) * (yn[f, a] - cy)
                    s = e / area[f]
                    if (s < 0).any():
                        continue
                    if not -1 <= s @ zn[f] <= 1:
                        continue
                    pb = s / ww[f]
                    best.append((1.0 / pb.sum(), f, pb / pb.sum()))
                if best:
                    best.sort(key=lambda t: (t[0], t[1]))
                    depth[b, i, j], ids[b, i, j], bary[b, i, j] = best[0]
                    tie[b, i, j] = len(best) > 1 and best[1][0] - best[0][0] < 1e-9 * best[0][0]
    return ids, bary, depth, tie
