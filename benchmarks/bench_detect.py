"""Benchmark of face detection, 68-point landmarks and alignment, printed as a Markdown table.

Rows per photo (the public-domain astronaut and portraits, at their own sizes,
resized to about one megapixel, and the astronaut upscaled to 16 megapixels):
MTCNN detection, MediaPipe 68 landmarks of the largest face, both together
(the target: ≤ 300 ms for a 1-megapixel photo on the 2-core CPU), and the
224² Deep3DFaceRecon crop. Extra rows: facenet-pytorch's exhaustive search
(``smallest_face=20``) and the MediaPipe fallback detector.

Usage:
    python benchmarks/bench_detect.py [--repeats 10] [--threads N]

On a machine shared with other jobs, ``--threads 1`` makes the CPU-time
column a fair estimate of the unloaded single-core latency.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


from msma_engine.align import align_crop, template_from_landmarks68  # noqa: E402
from msma_engine.detect import get_landmarker, pick_face  # noqa: E402
from msma_engine.detect.mediapipe_mesh import MediaPipeDetector  # noqa: E402
from msma_engine.detect.mtcnn import MTCNNDetector  # noqa: E402
from msma_engine.face_model import load_face_model  # noqa: E402
from msma_engine.image_io import load_image  # noqa: E402
from machine import cpu_model  # noqa: E402
from sample_photos import SHARED_PHOTOS  # noqa: E402

PHOTOS = SHARED_PHOTOS



def default_template() -> np.ndarray:
    """The five-point alignment template of the shipped default head, as the pipeline uses."""
    model = load_face_model()
    return template_from_landmarks68(model.mean_shape[model.landmark_indices].numpy())



def timed(fn, repeats: int) -> tuple[float, float, float]:
    """Median and minimum wall time and minimum CPU time of ``fn()`` in ms.

    On a shared machine the minimum wall time is the least disturbed by other
    processes; CPU time (all threads of this process) does not count time spent
    waiting for a core, so with one thread it estimates the unloaded wall time.
    """
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(times), min(times), min(cpu)


def resize_to(img: np.ndarray, megapixels: float) -> np.ndarray:
    import cv2

    s = (megapixels * 1e6 / (img.shape[0] * img.shape[1])) ** 0.5
    size = (round(img.shape[1] * s), round(img.shape[0] * s))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    astronaut = skimage.data.astronaut()
    out = [("astronaut", astronaut), ("astronaut ~1 MP", resize_to(astronaut, 1.0))]
    for name in ("obama", "biden"):
        path = PHOTOS / f"{name}_official_portrait.jpg"
        if path.exists():
            img = load_image(path).pixels
            out.append((name, img))
            if abs(img.shape[0] * img.shape[1] - 1e6) > 0.1e6:
                out.append((f"{name} ~1 MP", resize_to(img, 1.0)))
    out.append(("astronaut 16 MP", resize_to(astronaut, 16.0)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    detector = MTCNNDetector()
    exhaustive = MTCNNDetector(smallest_face=20)
    fallback = MediaPipeDetector()
    landmarker = get_landmarker("auto")
    template = default_template()

    load = ", load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}{load}; "
          f"torch {torch.__version__}; Python {platform.python_version()}; landmarker: {landmarker.name}\n")
    print("| photo | size (W×H) | MP | stage | median ms | min ms | min CPU ms |")
    print("|---|---|---|---|---|---|---|")
    for name, img in photos():
        h, w = img.shape[:2]
        face = pick_face(detector.detect(img), image_name=name)[0]
        rows = [
            ("MTCNN detection", lambda: detector.detect(img)),
            (f"68 landmarks ({landmarker.name})", lambda: landmarker.landmarks(img, face)),
            ("detection + 68 landmarks", lambda: landmarker.landmarks(img, pick_face(detector.detect(img))[0])),
            ("align + 224² crop", lambda: align_crop(face.points5, template).warp(img)),
        ]
        if "1 MP" in name:
            rows.append(("MTCNN exhaustive (smallest_face=20)", lambda: exhaustive.detect(img)))
            rows.append(("MediaPipe fallback detector (+ mesh)", lambda: fallback.detect(img)))
        for stage, fn in rows:
            med, low, cpu = timed(fn, args.repeats)
            print(f"| {name} | {w}×{h} | {w * h / 1e6:.2f} | {stage} | {med:.1f} | {low:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
