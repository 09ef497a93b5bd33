"""A folder of face photos as training data, with a one-off resumable preprocessing step.

:func:`preprocess_folder` detects the largest face of every image, finds its 68 landmarks,
aligns it to the 224 crop exactly as the engine does (Deep3DFaceRecon's 5-point alignment
against the face model's landmark template) and caches, per image, the crop (PNG), the
crop landmarks and a skin mask (convex hull of the 68 points minus eyes and inner mouth)
in ``<cache>/<stem>.npz``. Images that cannot be used are listed with their reason in
``<cache>/skipped.tsv``. A second run only processes what is in neither list, so an
interrupted run continues where it stopped.

:class:`FaceFolder` then reads the cache: ``image (3, 224, 224)``, ``landmarks (68, 2)``,
``mask (1, 224, 224)`` (skin ∩ inside the photo).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from msma_engine.errors import MSMAError

__all__ = ["preprocess_folder", "FaceFolder", "default_cache", "CACHE_VERSION"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def default_cache(folder: str | Path) -> Path:
    """``<folder>/.msma_cache``."""
    return Path(folder) / ".msma_cache"


def _template(model_path: str | None) -> np.ndarray:
    from msma_engine.align import template_from_landmarks68
    from msma_engine.face_model import load_face_model

    model = load_face_model(model_path)
    return template_from_landmarks68(model.mean_shape[model.landmark_indices].numpy())


def _check_meta(cache: Path, template: np.ndarray) -> None:
    meta_path = cache / "meta.json"
    meta = {"version": CACHE_VERSION, "template": np.round(template, 7).tolist()}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("version") != CACHE_VERSION or not np.allclose(old.get("template"), meta["template"], atol=1e-6):
            raise MSMAError(f"{cache} was made with another cache version or face-model template; "
                            "delete it or give another --cache folder")
    else:
        meta_path.write_text(json.dumps(meta))


def preprocess_folder(folder: str | Path, cache: str | Path | None = None, model_path: str | None = None,
                      detector: str = "auto", landmarker: str = "auto", template: np.ndarray | None = None,
                      progress: bool = True) -> dict[str, int]:
    """Detect, align and cache every image of ``folder`` (resumable).

    Args:
        folder: photos (searched recursively for common image suffixes).
        cache: cache folder; None = :func:`default_cache`.
        model_path: face model whose mean landmarks give the alignment template (None = shipped head).
        detector, landmarker: :mod:`msma_engine.detect` backends.
        template: ``(5, 3)`` alignment template instead of the model's.
        progress: show a tqdm progress bar.

    Returns:
        Counts: ``processed`` (this run), ``skipped`` (this run), ``cached`` (done before).
    """
    from tqdm import tqdm

    from msma_engine.align import align_crop
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.image_io import load_image
    from training.evaluate import skin_hull_mask

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder not found: {folder}")
    cache = Path(cache) if cache is not None else default_cache(folder)
    cache.mkdir(parents=True, exist_ok=True)
    template = _template(model_path) if template is None else np.asarray(template, np.float64)
    _check_meta(cache, template)
    skipped_path = cache / "skipped.tsv"
    skipped = set()
    if skipped_path.exists():
        skipped = {line.split("\t", 1)[0] for line in skipped_path.read_text().splitlines() if line}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES and cache not in p.parents)
    counts = {"processed": 0, "skipped": 0, "cached": 0}
    for path in tqdm(files, desc="preprocess", disable=not progress, dynamic_ncols=True):
        rel = path.relative_to(folder).as_posix()
        out = cache / (rel.replace("/", "__") + ".npz")
        if out.exists() or rel in skipped:
            counts["cached"] += 1
            continue
        try:
            pixels = load_image(path).pixels
            det = pick_face(detect_faces(pixels, detector), "largest", image_name=str(path))[0]
            lm = landmarks68(pixels, det, landmarker).points
            crop = align_crop(five_from_68(lm), template)
        except (MSMAError, ValueError) as exc:
            reason = str(exc).replace("\t", " ").replace("\n", " ")
            logger.warning("skipping %s: %s", path, reason)
            with skipped_path.open("a") as f:
                f.write(f"{rel}\t{reason}\n")
            counts["skipped"] += 1
            continue
        img = crop.warp(pixels)
        lm_crop = crop.apply(lm).astype(np.float32)
        valid = crop.warp(np.ones(pixels.shape[:2], np.float32)) > 0.5
        skin = skin_hull_mask(lm_crop, crop.size) * valid
        ok, png = cv2.imencode(".png", img[..., ::-1])
        assert ok, "PNG encoding of a uint8 image cannot fail"
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(tmp, crop_png=np.frombuffer(png.tobytes(), np.uint8), landmarks=lm_crop,
                 mask=np.packbits(skin.astype(bool)), size=np.int32(crop.size), source=rel)
        tmp.replace(out)
        counts["processed"] += 1
    logger.info("preprocessed %s: %s", folder, counts)
    return counts


class FaceFolder(Dataset):
    """Preprocessed photos (see :func:`preprocess_folder`) as a dataset.

    Args:
        folder: the photo folder.
        cache: its cache; None = :func:`default_cache`.

    Raises:
        FileNotFoundError: the cache holds no preprocessed image (run ``preprocess`` first).
    """

    def __init__(self, folder: str | Path, cache: str | Path | None = None) -> None:
        self.cache = Path(cache) if cache is not None else default_cache(folder)
        self.files = sorted(self.cache.glob("*.npz")) if self.cache.is_dir() else []
        self.files = [f for f in self.files if not f.name.endswith(".tmp.npz")]
        if not self.files:
            raise FileNotFoundError(
                f"no preprocessed images in {self.cache}; run `python -m training preprocess --folder {folder}` first")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        with np.load(self.files[index]) as z:
            img = cv2.imdecode(z["crop_png"], cv2.IMREAD_COLOR)[..., ::-1]
            size = int(z["size"])
            mask = np.unpackbits(z["mask"])[: size * size].reshape(size, size).astype(np.float32)
            lm = z["landmarks"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0,
            "landmarks": torch.from_numpy(lm).float(),
            "mask": torch.from_numpy(mask)[None],
        }
