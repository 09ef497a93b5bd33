"""Benchmark of the video path: frames/s and jitter at rest, printed as a Markdown table.

The clip is a still: the public-domain astronaut portrait repeated ``--frames`` times with
independent sensor noise (σ = ``--noise`` grey levels) per frame, written to an MP4 and read
back through :func:`msma_engine.video.open_frames` (so decoding is included). The face does
not move, so every change of the coefficients between frames is jitter. Rows: the start
without weights (mean face posed by PnP), the network's regression (``--weights``), and
the network + the ``fast`` test-time fit. Columns: processing frames/s (tracking,
landmarks, crop, regression / fit; decoding excluded) and end-to-end frames/s, and the RMS
frame-to-frame change of expression weights, head angles (degrees) and translation (mm),
raw and after :func:`msma_engine.video.smooth_sequence` (σ = ``--sigma`` frames).

Usage:
    python benchmarks/bench_video.py [--frames 60] [--weights W] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import cpu_model  # noqa: E402
from msma_engine.pipeline import Reconstructor  # noqa: E402
from msma_engine.video import frame_to_frame_rms, open_frames, smooth_sequence, track_sequence  # noqa: E402

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "weights" / "msma_light_default_head.pt"


def still_clip(path: Path, frames: int, noise: float, seed: int = 0) -> Path:
    """Write the astronaut as a still MP4 with per-frame noise."""
    from skimage.data import astronaut

    img = astronaut()
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, img.shape[1::-1])
    if not writer.isOpened():
        sys.exit("this OpenCV build cannot write mp4v")
    for _ in range(frames):
        f = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        writer.write(f[..., ::-1])
    writer.release()
    return path


def _jitter(c: np.ndarray, layout) -> str:
    r = frame_to_frame_rms(c, layout)
    return f"{r['exp']:.4f} / {np.degrees(r['angles']):.3f}° / {r['trans'] * 1000:.3f} mm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--noise", type=float, default=3.0, help="per-frame sensor noise, grey levels")
    ap.add_argument("--sigma", type=float, default=1.5, help="smoothing, frames")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = still_clip(Path(tmp) / "still.mp4", args.frames, args.noise)
        variants = [("no weights: posed mean face", None, None)]
        if args.weights and Path(args.weights).exists():
            variants += [(f"{Path(args.weights).name}: regression only", args.weights, None),
                         (f"{Path(args.weights).name} + fit (fast)", args.weights, "fast")]
        for label, weights, fit in variants:
            rec = Reconstructor(weights=weights)
            track_sequence(open_frames(clip), rec, fit=fit, max_frames=3)  # warm-up (first-call costs)
            t0 = time.perf_counter()
            seq = track_sequence(open_frames(clip), rec, fit=fit)
            wall = time.perf_counter() - t0
            lay = rec.model.layout
            smooth = smooth_sequence(seq, lay, args.sigma)
            n = len(seq.seconds)
            rows.append((label, n, n / seq.seconds.sum(), n / wall, _jitter(seq.coeffs, lay), _jitter(smooth, lay),
                         int(seq.tracked.sum())))
    print(f"Machine: {cpu_model()}, {platform.system()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; still clip {args.frames} frames 512², noise σ={args.noise}, "
          f"smoothing σ={args.sigma} frames\n")
    print("| start | frames (tracked) | frames/s processing | frames/s with decoding | "
          "jitter raw: exp / angles / trans | jitter smoothed |")
    print("|---|---|---|---|---|---|")
    for label, n, fps, fps_all, raw, smooth, tracked in rows:
        print(f"| {label} | {n} ({tracked}) | {fps:.1f} | {fps_all:.1f} | {raw} | {smooth} |")


if __name__ == "__main__":
    main()
