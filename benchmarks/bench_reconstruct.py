"""Benchmark of the photo → face pipeline on real photos; prints a Markdown table.

Stages: detection + 68 landmarks, network regression (an untrained ``msma_light`` unless
``--weights`` is given: the cost is the same), test-time fitting per quality, baking at
1024², and the whole ``reconstruct`` with default fitting and without fitting. Also the
landmark error (fraction of the inter-ocular distance, versus the 68-point detector) and the
photometric error (mean RGB L2 per skin pixel) before and after fitting.

Usage::

    python benchmarks/bench_reconstruct.py [--repeat 2] [--weights PT] [PHOTO ...]

Defaults to scikit-image's astronaut and ../shared/data/photos/*.jpg.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_model
from sample_photos import SHARED_PHOTOS



def _best(fn, repeat: int):
    """Best wall-clock time of ``repeat`` runs and the last output."""
    t, _, out = _best_with_cpu(fn, repeat)
    return t, out


def _best_with_cpu(fn, repeat: int):
    """Best wall-clock and best process CPU time (all threads) of ``repeat`` runs, last output.

    On a shared machine the CPU time shows what the work costs without the other load.
    """
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), out


def _machine() -> str:
    cpu = cpu_model()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__} with {torch.get_num_threads()} threads; "
            f"Python {platform.python_version()}; load average at start {load}")


def main() -> None:
    from msma_engine.align import align_crop
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.fitting import FaceFitter, FitTarget
    from msma_engine.image_io import load_image, load_image_array
    from msma_engine.network import build_network, load_weights
    from msma_engine.pipeline import Reconstructor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing; the best is reported")
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args()
    photos = args.photos or sorted(SHARED_PHOTOS.glob("*.jpg"))

    rec = Reconstructor()
    lay = rec.model.layout
    net = (load_weights(args.weights, n_id=lay.n_id, n_exp=lay.n_exp, n_tex=lay.n_tex) if args.weights
           else build_network("msma_light", lay.n_id, lay.n_exp, lay.n_tex).eval())
    from skimage import data

    inputs = [("astronaut", load_image_array(data.astronaut()))] + [(p.stem, load_image(p)) for p in photos]
    rows, quality_rows = [], []
    for name, img in inputs:
        px = img.pixels
        rec.reconstruct(img, fit="fast", texture_size=256)  # warm-up: backends, caches

        def detect():
            det = pick_face(detect_faces(px))[0]
            return det, landmarks68(px, det).points

        t_det, (det, lm) = _best(detect, args.repeat)
        crop = align_crop(five_from_68(lm), rec.template)
        crop_img = crop.warp(px)
        x = torch.as_tensor(crop_img, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        with torch.no_grad():
            t_reg, _ = _best(lambda: net(x), args.repeat)
        target = FitTarget(x, torch.as_tensor(crop.apply(lm), dtype=torch.float32)[None],
                           torch.as_tensor(crop.warp(np.ones(px.shape[:2], np.float32)))[None, None])
        fit_times = {}
        coeffs = None
        for q in ("fast", "default"):
            t_fit, out = _best(lambda: FaceFitter(rec.model, q, ctx=rec.ctx).fit(target), args.repeat)
            fit_times[q] = t_fit
            m = out.scores
            quality_rows.append(f"| {name} | {q} | {m.landmark_nme_start:.4f} | {m.landmark_nme_fit:.4f} | "
                                f"{m.photometric_start:.4f} | {m.photometric_fit:.4f} |")
            if q == "default":
                coeffs = out.coeffs
        t_bake, _ = _best(lambda: rec.baker.bake(coeffs, px, crop, 1024), args.repeat)
        t_full, c_full, _ = _best_with_cpu(lambda: rec.reconstruct(img, fit="default", texture_size=1024), args.repeat)
        t_nofit, c_nofit, _ = _best_with_cpu(lambda: rec.reconstruct(img, fit=None, texture_size=1024), args.repeat)
        h, w = px.shape[:2]
        rows.append(f"| {name} ({w}×{h}) | {t_det * 1e3:.0f} | {t_reg * 1e3:.0f} | {fit_times['fast']:.2f} | "
                    f"{fit_times['default']:.2f} | {t_bake:.2f} | {t_full:.2f} ({c_full:.2f}) | "
                    f"{t_nofit:.2f} ({c_nofit:.2f}) |")

    print(f"Machine: {_machine()}\n")
    print(f"Best of {args.repeat} runs, wall clock; in brackets the process CPU time of the whole reconstruct.\n")
    print("| photo | detect+lm68 ms | regress ms | fit fast s | fit default s | bake 1024² s "
          "| total default s (CPU s) | total no-fit s (CPU s) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nLandmark error (fraction of inter-ocular distance, vs the 68-point detector) and photometric "
          "error (mean RGB L2 per skin pixel), start → fitted:\n")
    print("| photo | quality | NME start | NME fit | photo start | photo fit |")
    print("|---|---|---|---|---|---|")
    print("\n".join(quality_rows))


if __name__ == "__main__":
    main()
