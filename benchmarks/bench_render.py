"""Benchmark of the differentiable renderer (msma_engine.render), printed as a Markdown table.

Rows: forward+backward (rasterize → interpolate vertex colours → L2 loss → backward to
vertex positions and colours) at 224², 512² and 1024² for a fabricated BFM-sized mesh
(35,709 vertices / 70,789 triangles, a deformed sphere cap filling most of the image) and a
~19k-vertex mesh (the default head's size), plus UV rasterisation at 1024². CUDA rows are
added when a CUDA device is present (torch backend, and nvdiffrast when it imports).

Usage:
    python benchmarks/bench_render.py [--repeats 10] [--threads N]

On a shared, oversubscribed CPU run it with ``OMP_WAIT_POLICY=PASSIVE`` (set before Python
starts): OpenMP's default spin-waiting made 2-thread runs 5-7× slower on a 2-core machine
with other jobs running. The header prints the policy in effect.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch

from msma_engine.camera import PerspectiveCamera
from msma_engine.render import RenderContext, interpolate, nvdiffrast_available, rasterize, rasterize_uv
from machine import cpu_model

BFM_VERTICES, BFM_TRIANGLES = 35_709, 70_789


def grid_cap(rows: int, cols: int, radius: float = 0.09, extent: float = 1.1) -> tuple[torch.Tensor, ...]:
    """A face-like surface: a bumpy sphere cap in metres facing +z, with grid UVs.

    Returns:
        vertices ``(rows·cols, 3)``, triangles ``(2(rows−1)(cols−1), 3)`` CCW from +z,
        uv ``(rows·cols, 2)``.
    """
    s = torch.linspace(-1.0, 1.0, cols, dtype=torch.float64)
    t = torch.linspace(-1.0, 1.0, rows, dtype=torch.float64)
    tt, ss = torch.meshgrid(t, s, indexing="ij")
    theta, phi = ss * extent * 0.5 * math.pi * 0.55, tt * extent * 0.5 * math.pi * 0.7
    bump = 1.0 + 0.04 * torch.sin(5 * ss) * torch.cos(4 * tt) + 0.08 * torch.exp(-(ss**2 + (tt + 0.1) ** 2) / 0.02)
    r = radius * bump
    verts = torch.stack([r * torch.sin(theta) * torch.cos(phi), r * torch.sin(phi) * 1.15,
                         r * torch.cos(theta) * torch.cos(phi)], -1)
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    # Row index grows with y (up), column with x: (a, b, d) and (a, d, c) are CCW from +z.
    tris = torch.cat([torch.stack([a, b, d], -1).view(-1, 3), torch.stack([a, d, c], -1).view(-1, 3)])
    uv = torch.stack([(ss + 1) / 2, (tt + 1) / 2], -1).view(-1, 2)
    return verts.view(-1, 3).float(), tris, uv.float()


def bfm_sized_mesh() -> tuple[torch.Tensor, ...]:
    """Exactly 35,709 vertices / 70,789 triangles: a 189×189 cap (35,721 / 70,688) minus its
    last 12 vertices, plus 'inner' triangles bridging rows (as BFM's mouth/eye geometry)."""
    verts, tris, uv = grid_cap(189, 189)
    verts, uv = verts[:BFM_VERTICES], uv[:BFM_VERTICES]
    tris = tris[(tris < BFM_VERTICES).all(1)]
    need = BFM_TRIANGLES - tris.shape[0]
    start = 94 * 189 + 60  # middle row, left of centre
    a = torch.arange(start, start + need)
    extra = torch.stack([a, a + 2 * 189 + 1, a + 2 * 189], -1)
    return verts, torch.cat([tris, extra]), uv


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of ``fn()`` in ms (the minimum is the least disturbed by
    other processes on a shared machine)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def fwd_bwd(ctx, verts, tris, colors, res, device) -> callable:
    cam = PerspectiveCamera().scaled(res / 224)
    v = verts.to(device).unsqueeze(0)
    c = colors.to(device).unsqueeze(0)
    t = tris.to(device)
    target = torch.rand(1, res, res, 3, device=device)

    def step():
        vv = v.clone().requires_grad_(True)
        cc = c.clone().requires_grad_(True)
        frags = rasterize(ctx, cam.world_to_clip(vv), t, (res, res), cull_backfaces=True)
        img = interpolate(cc, frags, t)
        loss = ((img - target) ** 2).mean()
        loss.backward()

    return step


def uv_raster(ctx, uv, tris, res, device) -> callable:
    u, t = uv.to(device), tris.to(device)
    return lambda: rasterize_uv(ctx, u, t, (res, res))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    meshes = {"BFM-sized": bfm_sized_mesh(), "19k-vertex": grid_cap(138, 138)}
    devices = [("cpu", "torch")]
    if torch.cuda.is_available():
        devices.append(("cuda", "torch"))
        if nvdiffrast_available():
            devices.append(("cuda", "nvdiffrast"))

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = ", load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    omp = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY {omp}{load}; "
          f"GPU: {gpu}; torch {torch.__version__}; Python {platform.python_version()}\n")
    print("| task | mesh (V / F) | resolution | device | backend | median ms | min ms |")
    print("|---|---|---|---|---|---|---|")
    for device, backend in devices:
        ctx = RenderContext(backend)
        for name, (verts, tris, _) in meshes.items():
            colors = torch.rand(verts.shape[0], 3)
            for res in (224, 512, 1024):
                med, low = timed(fwd_bwd(ctx, verts, tris, colors, res, device), args.repeats)
                print(f"| forward+backward | {name} ({verts.shape[0]:,} / {tris.shape[0]:,}) | {res}² "
                      f"| {device} | {backend} | {med:.1f} | {low:.1f} |")
        verts, tris, uv = meshes["BFM-sized"]
        med, low = timed(uv_raster(ctx, uv, tris, 1024, device), args.repeats)
        print(f"| UV rasterisation | BFM-sized ({uv.shape[0]:,} / {tris.shape[0]:,}) | 1024² | {device} | {backend} "
              f"| {med:.1f} | {low:.1f} |")


if __name__ == "__main__":
    main()
