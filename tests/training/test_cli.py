"""`python -m training` commands end to end on a tiny model: train, export, evaluate."""

from __future__ import annotations

import json

import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.model_file import save_face_model_data
from training.__main__ import main


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_export_evaluate(tmp_path, capsys):
    model_path = save_face_model_data(make_sphere_model(n_lat=12, n_lon=16), tmp_path / "sphere.npz")
    cfg = {
        "model": {"arch": "msma_light", "input_size": 32, "face_model": str(model_path)},
        "optim": {"batch_size": 2, "max_steps": 2},
        "loss": {"coeff": 1.0, "photometric": 0.0},
        "run": {"device": "cpu", "threads": 1, "checkpoint_every": 1, "log_every": 1},
    }
    (tmp_path / "c.toml").write_text(
        "\n".join(f"[{sec}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in vals.items())
                  for sec, vals in cfg.items()))
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(run), "--no-progress"]) == 0
    assert (run / "final.pt").exists() and (run / "curves.png").exists() and (run / "config.json").exists()
    # Resuming a finished run trains nothing more.
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "trained steps 2→2" in capsys.readouterr().out

    assert main(["export", "--run", str(run), "--out", str(tmp_path / "w.pt")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(tmp_path / "w.pt"), "--model", str(model_path), "--n", "2",
                 "--reference", "--threads", "1"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| model | set | n |") and len(table) == 4
    assert table[2].startswith("| w.pt | synthetic hold-out | 2 |")
    assert table[3].startswith("| mean face (reference) | synthetic hold-out | 2 |")


def test_bad_data_argument(tmp_path, capsys):
    model_path = save_face_model_data(make_sphere_model(), tmp_path / "s.npz")
    from msma_engine.face_model import load_face_model
    from msma_engine.network import build_network, save_weights

    lay = load_face_model(model_path).layout
    save_weights(tmp_path / "w.pt", build_network("msma_light", lay.n_id, lay.n_exp, lay.n_tex))
    assert main(["evaluate", "--weights", str(tmp_path / "w.pt"), "--model", str(model_path),
                 "--data", str(tmp_path / "missing")]) == 2
    assert "neither" in capsys.readouterr().err
