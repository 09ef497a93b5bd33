"""Photo-folder preprocessing: detect, align, cache; skips bad images with a reason; resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from msma_engine.face_model import DEFAULT_MODEL_PATH
from training.data.folder import FaceFolder, preprocess_folder

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")


def test_preprocess_and_read(tmp_path):
    from skimage.data import astronaut

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(astronaut()).save(photos / "sub" / "astronaut.jpg")
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(photos / "grey.png")  # no face
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache"

    counts = preprocess_folder(photos, cache, progress=False)
    assert counts == {"processed": 1, "skipped": 2, "cached": 0}
    reasons = dict(line.split("\t", 1) for line in (cache / "skipped.tsv").read_text().splitlines())
    assert set(reasons) == {"grey.png", "broken.jpg"}
    assert "no face" in reasons["grey.png"].lower()

    # A second run finds everything done (resumable), including the skipped files.
    assert preprocess_folder(photos, cache, progress=False) == {"processed": 0, "skipped": 0, "cached": 3}

    ds = FaceFolder(photos, cache)
    assert len(ds) == 1
    item = ds[0]
    assert item["image"].shape == (3, 224, 224) and item["mask"].shape == (1, 224, 224)
    lm = item["landmarks"]
    assert lm.shape == (68, 2)
    # The aligned face sits in the middle of the crop; the skin mask covers its centre.
    # Deep3DFaceRecon's framing is tight: brows, eyes and nose sit well inside the crop, the
    # jaw of an open mouth (the astronaut's) reaches the bottom edge.
    assert ((lm[17:48] > 20) & (lm[17:48] < 204)).all()
    assert ((lm > -10) & (lm < 234)).all()
    nose = lm[30].round().long()
    assert item["mask"][0, nose[1], nose[0]] == 1
    assert 0.05 < float(item["mask"].mean()) < 0.6
    assert torch.isfinite(item["image"]).all()


def test_empty_cache_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="preprocess"):
        FaceFolder(tmp_path)


def test_dense_points_split_and_labels(tmp_path):
    """Dense Face Mesh points are cached in crop pixels (their iBUG subset is the 68 points when
    MediaPipe is the landmarker); the split and pseudo-labels show up in the items."""
    import json

    from skimage.data import astronaut

    from msma_engine.detect.mediapipe_mesh import mesh_to_ibug68
    from training.data.split import is_holdout

    root = tmp_path / "faces"
    names = [f"lfw/P_{i}/P_{i}_0001.jpg" for i in range(40)]
    held = next(n for n in names if is_holdout(n))
    train = next(n for n in names if not is_holdout(n))
    for rel in (held, train):
        (root / rel).parent.mkdir(parents=True)
        Image.fromarray(astronaut()).save(root / rel)
    cache = tmp_path / "cache"
    assert preprocess_folder(root, cache, landmarker="mediapipe", progress=False, limit=1)["processed"] == 1
    assert preprocess_folder(root, cache, landmarker="mediapipe", progress=False) == {
        "processed": 1, "skipped": 0, "cached": 1}
    ds = FaceFolder(root, cache, split="train")
    assert ds.rels == [train]
    item = ds[0]
    assert item["dense"].shape == (478, 2) and item["dense_valid"] == 1
    assert np.allclose(mesh_to_ibug68(item["dense"].numpy()), item["landmarks"].numpy(), atol=1e-3)
    assert FaceFolder(root, cache, split="holdout").rels == [held]
    assert len(FaceFolder(root, cache, split="all")) == 2

    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "meta.json").write_text(json.dumps({"n_coeffs": 5}))
    np.savez(labels / ds.files[0].name, coeffs=np.arange(5, dtype=np.float32))
    with_labels = FaceFolder(root, cache, split="all", labels=labels)
    by_rel = {r: with_labels[i] for i, r in enumerate(with_labels.rels)}
    assert by_rel[train]["pseudo_valid"] == 1 and by_rel[train]["pseudo_coeffs"].tolist() == [0, 1, 2, 3, 4]
    assert by_rel[held]["pseudo_valid"] == 0 and by_rel[held]["pseudo_coeffs"].abs().sum() == 0
