"""Training throughput (images/s) of the trainer, printed as a Markdown table.

For each architecture: synthetic-data generation rate (renders of the face model with
augmentations, one process) and the optimiser-step rate on a fixed batch (forward,
losses, backward, Adam), with and without the photometric term (which renders the
prediction). On the CPU by default; also on CUDA when a CUDA device is present. The load
average is printed because the build machine's cores are shared.

Usage:
    python benchmarks/bench_training.py [--archs msma_light baseline msma] [--batch 8]
        [--steps 3] [--threads 1] [--input-size 224] [--model PATH]

The perceptual term is off in both columns (its embedder is optional); the shipped CPU
recipe (configs/cpu_msma_light.toml) corresponds to ``--archs msma_light --batch 16
--input-size 112``, first column.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch


from msma_engine.face_model import load_face_model  # noqa: E402
from training.config import config_from_dict  # noqa: E402
from training.data.synthetic import SyntheticFaces  # noqa: E402
from training.trainer import Trainer  # noqa: E402
from machine import cpu_model  # noqa: E402



def data_rate(model, n: int) -> float:
    """Synthetic samples per second (one process)."""
    ds = SyntheticFaces(model, seed=123, length=n)
    ds[0]
    start = time.perf_counter()
    for i in range(1, n):
        ds[i]
    return (n - 1) / (time.perf_counter() - start)


def step_rate(model, arch: str, batch: dict, device: str, photometric: float, steps: int, out: Path,
              input_size: int = 224) -> float:
    """Training images per second of :meth:`Trainer.train_step` on a fixed batch."""
    cfg = config_from_dict({
        "model": {"arch": arch, "input_size": input_size},
        "optim": {"batch_size": batch["image"].shape[0], "max_steps": steps + 1},
        "loss": {"coeff": 1.0, "vertex": 0.05, "shape": 1.0, "photometric": photometric, "perceptual": 0.0},
        "run": {"device": device, "checkpoint_every": 10_000},
    })
    tr = Trainer(cfg, out, face_model=model, dataset=SyntheticFaces(model, length=1))
    tr.train_step(batch)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        tr.train_step(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch["image"].shape[0] / statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["msma_light", "baseline", "msma"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--input-size", type=int, default=224, help="network input side (the crop is resized)")
    parser.add_argument("--data-samples", type=int, default=9)
    parser.add_argument("--model", default=None, help="face model .npz (default: the shipped head)")
    parser.add_argument("--out", default="/tmp/bench_training", help="scratch run folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_face_model(args.model)
    ds = SyntheticFaces(model, seed=0, length=args.batch)
    items = [ds[i] for i in range(args.batch)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"CPU: {cpu_model()}, torch threads {args.threads}, load average {os.getloadavg()[0]:.1f}"
          + (f"; GPU: {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    print(f"face model {model.name}: {model.n_vertices} vertices, {model.layout.total} coefficients; "
          f"batch {args.batch}, network input {args.input_size} px, median of {args.steps} steps\n")
    print(f"synthetic data generation: {data_rate(model, args.data_samples):.2f} images/s (one process)\n")
    print("| arch | device | step images/s (no photometric) | step images/s (with photometric) |")
    print("|---|---|---|---|")
    for arch in args.archs:
        for device in devices:
            m = model.to(device) if device != "cpu" else model
            b = {k: v.to(device) for k, v in batch.items()}
            plain = step_rate(m, arch, b, device, 0.0, args.steps, Path(args.out), args.input_size)
            photo = step_rate(m, arch, b, device, 1.92, args.steps, Path(args.out), args.input_size)
            print(f"| {arch} | {device} | {plain:.2f} | {photo:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
