"""A folder of face photos as training data, with a one-off resumable preprocessing step.

:func:`preprocess_folder` detects the largest face of every image, finds its 68 landmarks,
aligns it to the 224 crop exactly as the engine does (Deep3DFaceRecon's 5-point alignment
against the face model's landmark template) and caches, per image, the crop (JPEG), the
crop landmarks and a skin mask (convex hull of the 68 points minus eyes and inner mouth)
and the dense 478 MediaPipe Face Mesh points (crop pixels), the detection (box, score,
five points) and the photo → crop matrix, in ``<cache>/<relative path with / → __>.npz``.
Images that cannot be used are listed with their reason in ``<cache>/skipped.tsv``. A
second run only processes what is in neither list, so an interrupted run continues where
it stopped; ``files`` restricts a run to a list (e.g. :func:`training.data.split.holdout_files`),
``limit`` to a number of new photos, ``workers`` spreads it over processes.

:class:`FaceFolder` then reads the cache (training or evaluation split, optional
distillation pseudo-labels).
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
from msma_engine.fileio import atomic_write, is_temporary

__all__ = ["preprocess_folder", "process_photo", "FaceFolder", "default_cache", "CACHE_VERSION"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
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


def _dense_landmarker():
    """MediaPipe Face Mesh for the dense 478 points, or None when mediapipe is missing (logged once)."""
    global _DENSE
    if _DENSE is None:
        from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker
        from msma_engine.errors import BackendUnavailableError

        try:
            _DENSE = MediaPipeLandmarker()
        except BackendUnavailableError as exc:
            logger.warning("dense 478 points not cached: %s", exc)
            _DENSE = False
    return _DENSE or None


_DENSE = None


def process_photo(path: str | Path, template: np.ndarray, detector: str = "auto",
                  landmarker: str = "auto", jpeg_quality: int = 95, min_face_size: float | None = None
                  ) -> dict[str, np.ndarray]:
    """Detect, landmark, align and mask one photo: the arrays of its cache entry.

    Args:
        path: the photo.
        template: ``(5, 3)`` alignment template (:func:`msma_engine.align.template_from_landmarks68`).
        detector, landmarker: :mod:`msma_engine.detect` backends.
        jpeg_quality: of the cached crop (95: ~20 KB per entry; 85: ~16 KB).
        min_face_size: smallest face (shorter box side, pixels); None = the engine's
            :data:`~msma_engine.detect.MIN_FACE_SIZE` (CelebA's half-size photos need ~24).

    Returns:
        ``crop_jpg`` (JPEG bytes of the 224 crop), ``landmarks (68, 2)`` and ``dense (478, 3)``
        float32 in crop pixels (``dense`` z in the same pixel scale, smaller = nearer; NaN when
        Face Mesh found no face or is not installed), ``mask`` (packed bits of the skin mask),
        ``valid`` (packed bits: crop pixels that show the photo), ``size``, ``box (4,)`` /
        ``score`` / ``points5 (5, 2)`` of the detection in photo pixels, ``crop_matrix (2, 3)``
        (photo → crop pixels).

    Raises:
        MSMAError, ValueError: no usable face or an unreadable image.
    """
    from msma_engine.align import align_crop
    from msma_engine.detect import MIN_FACE_SIZE, detect_faces, five_from_68, get_landmarker, pick_face
    from msma_engine.detect.mediapipe_mesh import mesh_to_ibug68
    from msma_engine.image_io import load_image
    from training.evaluate import skin_hull_mask

    pixels = load_image(path).pixels
    det = pick_face(detect_faces(pixels, detector), "largest", image_name=str(path),
                    min_size=MIN_FACE_SIZE if min_face_size is None else min_face_size)[0]
    dense_lm = _dense_landmarker()
    mesh = None
    if dense_lm is not None:
        try:
            mesh = dense_lm.mesh(pixels, det)
        except MSMAError as exc:
            logger.debug("no dense points for %s: %s", path, exc)
    lm68 = get_landmarker(landmarker)
    if lm68.name == "mediapipe" and mesh is not None:
        lm = mesh_to_ibug68(mesh[:, :2])  # the same points landmarks68() would compute, without a second mesh pass
    else:
        lm = lm68.landmarks(pixels, det)
    crop = align_crop(five_from_68(lm), template)
    img = crop.warp(pixels)
    lm_crop = crop.apply(lm).astype(np.float32)
    dense = np.full((478, 3), np.nan, np.float32)
    if mesh is not None:
        dense[:, :2] = crop.apply(mesh[:, :2])
        dense[:, 2] = mesh[:, 2] * crop.scale
    valid = crop.warp(np.ones(pixels.shape[:2], np.float32)) > 0.5
    skin = skin_hull_mask(lm_crop, crop.size) * valid
    ok, jpg = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    assert ok, "JPEG encoding of a uint8 image cannot fail"
    return {"crop_jpg": np.frombuffer(jpg.tobytes(), np.uint8), "landmarks": lm_crop, "dense": dense,
            "mask": np.packbits(skin.astype(bool)), "valid": np.packbits(valid), "size": np.int32(crop.size),
            "box": det.box.astype(np.float32), "score": np.float32(det.score),
            "points5": det.points5.astype(np.float32), "crop_matrix": crop.matrix.astype(np.float64)}


def _entry_name(rel: str) -> str:
    return rel.replace("/", "__") + ".npz"


def _work(job: tuple) -> tuple[str, dict | str]:
    """Worker: one photo → its arrays, or the reason it is skipped."""
    rel, path, template, detector, landmarker, quality, min_face = job
    try:
        return rel, process_photo(path, template, detector, landmarker, quality, min_face)
    except (MSMAError, ValueError) as exc:
        return rel, str(exc).replace("\t", " ").replace("\n", " ")


def preprocess_folder(folder: str | Path, cache: str | Path | None = None, model_path: str | None = None,
                      detector: str = "auto", landmarker: str = "auto", template: np.ndarray | None = None,
                      progress: bool = True, files: list[str] | None = None, limit: int | None = None,
                      workers: int = 1, jpeg_quality: int = 95, min_face_size: float | None = None) -> dict[str, int]:
    """Detect, align and cache every image of ``folder`` (resumable).

    Args:
        folder: photos (searched recursively for common image suffixes).
        cache: cache folder; None = :func:`default_cache`.
        model_path: face model whose mean landmarks give the alignment template (None = shipped head).
        detector, landmarker: :mod:`msma_engine.detect` backends.
        template: ``(5, 3)`` alignment template instead of the model's.
        progress: show a tqdm progress bar.
        files: only these photos (paths relative to ``folder``, ``/``-separated), e.g. a
            split of :mod:`training.data.split`; None = every image of the folder.
        limit: process at most this many new photos in this run (the rest next time).
        workers: processes (each loads its own detectors; 1 = in this process).
        jpeg_quality, min_face_size: see :func:`process_photo`.

    Returns:
        Counts: ``processed`` (this run), ``skipped`` (this run), ``cached`` (done before).
    """
    from tqdm import tqdm

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
    if files is None:
        rels = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                      if p.suffix.lower() in _SUFFIXES and cache not in p.parents)
    else:
        rels = list(files)
    counts = {"processed": 0, "skipped": 0, "cached": 0}
    todo = []
    for rel in rels:
        if (cache / _entry_name(rel)).exists() or rel in skipped:
            counts["cached"] += 1
        else:
            todo.append(rel)
    if limit is not None:
        todo = todo[:limit]
    jobs = [(rel, str(folder / rel), template, detector, landmarker, jpeg_quality, min_face_size) for rel in todo]
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_work, jobs, chunksize=8)
    else:
        pool, results = None, map(_work, jobs)
    try:
        for rel, res in tqdm(results, total=len(jobs), desc="preprocess", disable=not progress, dynamic_ncols=True):
            if isinstance(res, str):
                logger.warning("skipping %s: %s", rel, res)
                with skipped_path.open("a") as f:
                    f.write(f"{rel}\t{res}\n")
                counts["skipped"] += 1
                continue
            out = cache / _entry_name(rel)
            atomic_write(out, lambda fh: np.savez_compressed(fh, source=rel, **res))
            counts["processed"] += 1
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    logger.info("preprocessed %s: %s", folder, counts)
    return counts


def _rel_of(entry: Path) -> str:
    """The photo path a cache entry was made from (inverse of :func:`_entry_name`)."""
    return entry.name[: -len(".npz")].replace("__", "/")


class FaceFolder(Dataset):
    """Preprocessed photos (see :func:`preprocess_folder`) as a dataset.

    Args:
        folder: the photo folder.
        cache: its cache; None = :func:`default_cache`.
        split: ``"train"`` leaves out the evaluation photos of :mod:`training.data.split`,
            ``"holdout"`` keeps only them, ``"all"`` keeps everything. Paths are relative to
            ``folder``, so the split only applies when ``folder`` is the collection root
            (``lfw/``, ``utkface*/`` inside); a folder of your own photos is all training.
        labels: folder of distillation pseudo-labels (:mod:`training.pseudo_labels`); items
            then carry ``pseudo_coeffs (n,)`` and ``pseudo_valid`` (0 where the photo has no label).

    Items: ``image (3, 224, 224)`` in [0, 1], ``landmarks (68, 2)`` and ``dense (478, 2)`` crop
    pixels, ``dense_valid`` (0/1), ``mask (1, 224, 224)`` (skin ∩ inside the photo),
    ``valid (1, 224, 224)`` (inside the photo), ``person`` (an LFW identity number, -1 for
    photos of unknown identity) and, with ``labels``, the pseudo-label fields.

    Raises:
        FileNotFoundError: the cache holds no preprocessed image (run ``preprocess`` first).
    """

    def __init__(self, folder: str | Path, cache: str | Path | None = None, split: str = "train",
                 labels: str | Path | None = None) -> None:
        from training.data.split import is_holdout, person_of

        if split not in ("train", "holdout", "all"):
            raise ValueError(f"split must be 'train', 'holdout' or 'all', got {split!r}")
        self.cache = Path(cache) if cache is not None else default_cache(folder)
        files = sorted(self.cache.glob("*.npz")) if self.cache.is_dir() else []
        # an interrupted preprocess may leave a temporary (older versions named it *.tmp.npz)
        files = [f for f in files if not (is_temporary(f) or f.name.endswith(".tmp.npz"))]
        if split != "all":
            files = [f for f in files if is_holdout(_rel_of(f)) == (split == "holdout")]
        self.files = files
        if not self.files:
            raise FileNotFoundError(
                f"no preprocessed {split} images in {self.cache}; "
                f"run `python -m training preprocess --folder {folder}` first")
        self.rels = [_rel_of(f) for f in self.files]
        people = sorted({p for p in map(person_of, self.rels) if p is not None})
        index = {p: i for i, p in enumerate(people)}
        self.person = np.array([index.get(person_of(r), -1) for r in self.rels], np.int64)
        self.labels = Path(labels) if labels is not None else None
        self.n_coeffs = None
        if self.labels is not None:
            meta = self.labels / "meta.json"
            if not meta.exists():
                raise FileNotFoundError(f"{meta} missing: run `python -m training pseudo-label` first")
            self.n_coeffs = int(json.loads(meta.read_text())["n_coeffs"])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        with np.load(self.files[index]) as z:
            img = cv2.imdecode(z["crop_jpg"], cv2.IMREAD_COLOR)[..., ::-1]
            size = int(z["size"])
            mask = np.unpackbits(z["mask"])[: size * size].reshape(size, size).astype(np.float32)
            valid = np.unpackbits(z["valid"])[: size * size].reshape(size, size).astype(np.float32)
            lm = z["landmarks"]
            dense = z["dense"][:, :2]
        dense_ok = bool(np.isfinite(dense).all())
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0,
            "landmarks": torch.from_numpy(lm).float(),
            "dense": torch.from_numpy(np.nan_to_num(dense)).float(),
            "dense_valid": torch.tensor(float(dense_ok)),
            "mask": torch.from_numpy(mask)[None],
            "valid": torch.from_numpy(valid)[None],
            "person": torch.tensor(int(self.person[index])),
        }
        if self.labels is not None:
            path = self.labels / self.files[index].name
            coeffs, ok = np.zeros(self.n_coeffs, np.float32), 0.0
            if path.exists():
                with np.load(path) as z:
                    coeffs, ok = z["coeffs"].astype(np.float32), 1.0
            item["pseudo_coeffs"] = torch.from_numpy(coeffs)
            item["pseudo_valid"] = torch.tensor(ok)
        return item
