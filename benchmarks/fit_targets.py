"""Shared by the fit benchmarks: photo → fit target (detection, Face Mesh, 224 crop), cached.

Nothing here is timed. The pipeline's own steps are used (detector, Face Mesh, 5-point
alignment), so the targets are the ones :func:`msma_engine.reconstruct` fits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from msma_engine.align import CropTransform, align_crop, template_from_landmarks68
from msma_engine.detect import detect_faces, five_from_68, get_landmarker
from msma_engine.detect.mediapipe_mesh import mesh_to_ibug68
from msma_engine.errors import MSMAError
from msma_engine.face_model import FaceModel
from msma_engine.fitting import FitTarget
from msma_engine.image_io import load_image, load_image_array

__all__ = ["PhotoTarget", "prepare", "faces_dir", "list_photos"]

log = logging.getLogger(__name__)


@dataclass
class PhotoTarget:
    """One photo ready to fit.

    Attributes:
        name: file stem (or the given name).
        pixels: (H, W, 3) uint8.
        crop: photo → crop transform.
        target: the fit target with dense points.
    """

    name: str
    pixels: np.ndarray
    crop: CropTransform
    target: FitTarget


def prepare(model: FaceModel, image: str | Path | np.ndarray, name: str | None = None) -> PhotoTarget | None:
    """Detect the largest face, run Face Mesh and build the crop target (None when no face)."""
    try:
        loaded = load_image(image) if isinstance(image, (str, Path)) else load_image_array(image)
        pixels = loaded.pixels
        faces = detect_faces(pixels)
        if not faces:
            return None
        det = max(faces, key=lambda f: f.area)
        mesh = get_landmarker("mediapipe").mesh(pixels, det)[:, :2]
    except MSMAError as exc:
        log.info("%s: skipped (%s)", name or image, exc)
        return None
    lm = mesh_to_ibug68(mesh)
    with torch.no_grad():
        template = template_from_landmarks68(model.mean_shape[model.landmark_indices].double().numpy())
    crop = align_crop(five_from_68(lm), template)
    size = model.camera.image_size[0]
    img = crop.warp(pixels, size)
    valid = crop.warp(np.ones(pixels.shape[:2], np.float32), size)
    target = FitTarget(
        image=torch.as_tensor(img, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0,
        landmarks=torch.as_tensor(crop.apply(lm), dtype=torch.float32)[None],
        valid=torch.as_tensor(valid, dtype=torch.float32)[None, None],
        dense=torch.as_tensor(crop.apply(mesh), dtype=torch.float32)[None],
    )
    return PhotoTarget(name or (Path(image).stem if isinstance(image, (str, Path)) else "array"), pixels, crop, target)


def faces_dir() -> Path:
    """The shared face photo folder (``MSMA_SHARED_DATA``/faces, else ../shared/data/faces)."""
    from sample_photos import SHARED_PHOTOS

    return SHARED_PHOTOS.parent / "faces"


def list_photos(n: int, seed: int = 0) -> list[Path]:
    """``n`` photos, half LFW (one per person) and half UTKFace, chosen at random with ``seed``."""
    root = faces_dir()
    rng = np.random.default_rng(seed)
    lfw = sorted(p for d in sorted((root / "lfw").iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg"))[:1])
    utk = sorted((root / "utkface10k").glob("*.jpg"))
    n_lfw = (n + 1) // 2
    pick = lambda xs, k: [xs[i] for i in sorted(rng.choice(len(xs), min(k, len(xs)), replace=False))]  # noqa: E731
    return pick(lfw, n_lfw) + pick(utk, n - n_lfw)
