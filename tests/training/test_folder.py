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
