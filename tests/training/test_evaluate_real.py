"""Real hold-out evaluation: ROC AUC, identity pairs, and the table on a few photos."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from msma_engine.face_model import DEFAULT_MODEL_PATH
from training.data.split import is_holdout
from training.evaluate_real import identity_auc, roc_auc


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 40).round(1), rng.normal(0.0, 1.0, 60).round(1)  # rounding makes ties
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    assert roc_auc(pos, neg) == pytest.approx(wins / (len(pos) * len(neg)))
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0]), np.array([2.0])) == 0.0


def test_identity_auc_separates_clustered_people():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 8))
    photos = [(centres[p] + 0.05 * rng.normal(size=8), p) for p in range(5) for _ in range(3)]
    auc, n_same, n_diff = identity_auc(photos + [(rng.normal(size=8), -1)])
    assert n_same == 5 * 3 and n_diff == 15 * 14 // 2 - 15 and auc > 0.95
    shuffled = [(c, p) for (c, _), p in zip(photos, rng.permutation([p for _, p in photos]))]
    assert identity_auc(shuffled)[0] < 0.8
    assert identity_auc([(np.zeros(8), 0), (np.zeros(8), 0), (np.zeros(8), 1)])[0] == 0.5  # mean face: chance


@pytest.mark.slow
def test_table_on_held_out_photos(tmp_path):
    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip(f"{DEFAULT_MODEL_PATH} not built")
    from skimage.data import astronaut

    from msma_engine.face_model import load_face_model
    from msma_engine.network import build_network
    from training.data.folder import preprocess_folder
    from training.evaluate_real import evaluate_real, real_table

    names = [n for n in (f"Held_Person_{i}" for i in range(200)) if is_holdout(f"lfw/{n}/{n}_0001.jpg")][:2]
    img = astronaut()
    for k, name in enumerate(names):
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for j in range(2):
            photo = Image.fromarray(img[:, ::-1] if (j + k) % 2 else img)
            photo.save(tmp_path / "lfw" / name / f"{name}_{j + 1:04d}.jpg")
    assert preprocess_folder(tmp_path, tmp_path / "cache", progress=False)["processed"] == 4
    model = load_face_model(None)
    lay = model.layout
    torch.manual_seed(0)
    net = build_network("msma_light", lay.n_id, lay.n_exp, lay.n_tex).eval()
    rows = evaluate_real(tmp_path, tmp_path / "cache", {"untrained": net}, model, fit="fast", progress=False)
    by = {r.name: r for r in rows}
    mean, fit = by["posed mean face"], by["fit (fast) from the mean face"]
    assert len(mean.nme68) == 4 and len(fit.seconds) == 4 and len(fit.iterations) == 4
    # The fit moves the posed mean face onto the detector's points; an untrained network does not.
    assert np.mean(fit.nme68) < 0.7 * np.mean(mean.nme68)
    assert np.mean(by["untrained: regression only"].nme68) > np.mean(mean.nme68)
    table = real_table(rows)
    assert table.count("\n") == 1 + len(rows) and "identity ROC AUC" in table


def test_commands_say_what_is_missing(tmp_path, capsys):
    from training.__main__ import main

    assert main(["evaluate-real", "--folder", str(tmp_path), "--cache", str(tmp_path / "nothing")]) == 2
    assert "preprocess" in capsys.readouterr().err
    assert main(["pseudo-label", "--folder", str(tmp_path), "--cache", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "labels")]) == 2
    assert "preprocess" in capsys.readouterr().err
