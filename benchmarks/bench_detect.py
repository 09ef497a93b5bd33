"""Benchmark of face detection and landmarks, and parity with mediapipe 0.10.21, as Markdown tables.

Timing rows per photo (the public-domain astronaut and portraits, at their own
sizes, resized to about one megapixel, and the astronaut upscaled to 16
megapixels): MTCNN detection, full-range BlazeFace detection (boxes only), the
478-point Face Mesh (``MediaPipeLandmarker.mesh``, which runs short-range
BlazeFace on its crop), and the two ways to get a detection with landmarks:
MTCNN + mesh (the default) and BlazeFace + mesh (the ``mediapipe`` detector,
which meshes every face for its five points, then the landmarker meshes the
chosen one). Target: detection + landmarks ≤ 150 ms for a 1-megapixel photo on
the 2-core CPU. Also the 224² Deep3DFaceRecon crop.

Parity table (only when ``mediapipe`` 0.10.21 with ``mp.solutions`` is
importable): the ported Face Mesh against ``mediapipe.solutions.face_mesh``
(``refine_landmarks=True``) on the same crop, mean and max point distance in
photo pixels over all 478 points; the ported full-range BlazeFace against
``mediapipe.solutions.face_detection`` (``model_selection=1``), largest box
corner difference in pixels.

Usage (from the repository root; ``PYTHONPATH=.`` lets it import ``tools.mediapipe_reference``):
    PYTHONPATH=. python benchmarks/bench_detect.py [--repeats 10] [--threads N]

On a machine shared with other jobs, ``--threads 1`` makes the CPU-time
column a fair estimate of the unloaded single-core latency.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from machine import cpu_model
from msma_engine.align import align_crop, template_from_landmarks68
from msma_engine.detect import pick_face
from msma_engine.detect.blazeface import BlazeFace
from msma_engine.detect.mediapipe_mesh import MediaPipeDetector, MediaPipeLandmarker, forget_meshes
from msma_engine.detect.mtcnn import MTCNNDetector
from msma_engine.face_model import load_face_model
from msma_engine.errors import BackendUnavailableError
from msma_engine.image_io import load_image
from sample_photos import SHARED_PHOTOS

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
        forget_meshes()  # time the work, not the memo of the previous call's meshes
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


def parity_table(named: list[tuple[str, np.ndarray]], mtcnn: MTCNNDetector, landmarker: MediaPipeLandmarker) -> None:
    try:
        from tools import mediapipe_reference  # the repository root must be on PYTHONPATH

        mediapipe_reference.solutions()
    except (ImportError, BackendUnavailableError) as exc:
        print(f"\n(parity with mediapipe skipped: {exc})")
        return
    blaze = BlazeFace("full", min_score=0.5)
    print("\nParity with mediapipe 0.10.21 (photo pixels)\n")
    print("| photo | size (W×H) | mesh mean px | mesh max px | iris mean px "
          "| BlazeFace boxes (ours / mediapipe) | max box corner diff px |")
    print("|---|---|---|---|---|---|---|")
    for name, img in named:
        if "16 MP" in name:
            continue  # mediapipe's detector input is the same 192² either way
        h, w = img.shape[:2]
        face = pick_face(mtcnn.detect(img), image_name=name)[0]
        ours = landmarker.mesh(img, face)[:, :2]
        ref = mediapipe_reference.reference_mesh(img, face)[:, :2]
        d = np.linalg.norm(ours - ref, axis=1)
        mine = np.array([b.box for b in blaze.detect(img)])
        theirs = mediapipe_reference.reference_boxes(img)
        box_diff = float(np.abs(mine - theirs).max()) if mine.shape == theirs.shape and len(mine) else float("nan")
        print(f"| {name} | {w}×{h} | {d.mean():.4f} | {d.max():.4f} | {d[468:].mean():.4f} "
              f"| {len(mine)} / {len(theirs)} | {box_diff:.4f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    mtcnn = MTCNNDetector()
    blaze = BlazeFace("full", min_score=0.5)
    mp_detector = MediaPipeDetector()
    landmarker = MediaPipeLandmarker()
    template = default_template()
    named = photos()

    load = ", load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}{load}; "
          f"torch {torch.__version__}; Python {platform.python_version()}\n")
    print("| photo | size (W×H) | MP | stage | median ms | min ms | min CPU ms |")
    print("|---|---|---|---|---|---|---|")
    for name, img in named:
        h, w = img.shape[:2]
        face = pick_face(mtcnn.detect(img), image_name=name)[0]
        rows = [
            ("MTCNN detection", lambda: mtcnn.detect(img)),
            ("BlazeFace full-range detection (boxes)", lambda: blaze.detect(img)),
            ("478-point Face Mesh (mesh())", lambda: landmarker.mesh(img, face)),
            ("MTCNN + Face Mesh (default)", lambda: landmarker.mesh(img, pick_face(mtcnn.detect(img))[0])),
            ("BlazeFace detector (+ mesh per face) + Face Mesh",
             lambda: landmarker.mesh(img, pick_face(mp_detector.detect(img))[0])),
            ("align + 224² crop", lambda: align_crop(face.points5, template).warp(img)),
        ]
        for stage, fn in rows:
            med, low, cpu = timed(fn, args.repeats)
            print(f"| {name} | {w}×{h} | {w * h / 1e6:.2f} | {stage} | {med:.1f} | {low:.1f} | {cpu:.1f} |", flush=True)
    parity_table(named, mtcnn, landmarker)


if __name__ == "__main__":
    main()
