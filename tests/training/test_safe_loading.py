"""Training files are loaded without running pickled code; ordinary mistakes give one line, not a traceback.

Each crafted file holds an object whose unpickling creates a marker file (what an attacker's
code would do); the loaders must refuse it before that happens.
"""

from __future__ import annotations

import builtins
import json
import pickle

import numpy as np
import pytest
import torch

from msma_engine.errors import CheckpointError
from training.__main__ import main
from training.now import NowDataError, load_face_box
from training.trainer import read_checkpoint


class _Payload:
    """Unpickling this opens (creates) ``marker`` for writing."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _crafted_checkpoint(run, marker):
    path = run / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save({"step": 1, "arch": "msma_light", "model": {}, "optimizer": {}, "scheduler": {}, "scaler": {},
                "config": {}, "rng": _Payload(marker)}, path)
    return path


def test_export_refuses_a_crafted_checkpoint(tmp_path, capsys):
    """Issue 14.1: `export --run` loaded last.pt with weights_only=False and ran the payload."""
    marker = tmp_path / "pwned"
    _crafted_checkpoint(tmp_path / "run", marker)
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "x.pt")]) == 2
    assert not marker.exists() and not (tmp_path / "x.pt").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "loads safely" in err[0]


@pytest.mark.slow  # builds a Trainer (~4 s on the shared machine)
def test_resume_refuses_a_crafted_checkpoint(tmp_path, capsys):
    """Issue 14.1: `train --resume` ran the payload too."""
    from sphere_model import make_sphere_model
    from msma_engine.model_file import save_face_model_data

    model_path = save_face_model_data(make_sphere_model(n_lat=8, n_lon=8), tmp_path / "s.npz")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": {"arch": "msma_light", "input_size": 32, "face_model": str(model_path)},
                               "optim": {"batch_size": 2, "max_steps": 1}, "loss": {"photometric": 0.0},
                               "run": {"device": "cpu", "threads": 1}}))
    marker = tmp_path / "pwned"
    _crafted_checkpoint(tmp_path / "run", marker)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 2
    assert not marker.exists()
    assert "loads safely" in capsys.readouterr().err


def test_legacy_checkpoint_with_numpy_rng_state_still_loads(tmp_path):
    """Checkpoints written before this change stored np.random.get_state() (an array) as is."""
    path = tmp_path / "last.pt"
    state = {"step": 3, "arch": "msma_light", "model": {}, "optimizer": {}, "scheduler": {}, "scaler": {},
             "config": {}, "rng": {"numpy": np.random.get_state(), "python": (3, (1, 2), None)}}
    torch.save(state, path)
    loaded = read_checkpoint(path)
    assert loaded["step"] == 3 and np.array_equal(loaded["rng"]["numpy"][1], np.random.get_state()[1])


def test_truncated_and_missing_checkpoints(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"step": 1, "model": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("argv, expected", [
    (["train", "--config", "{tmp}/missing.toml", "--out", "{tmp}/run"], "missing.toml"),
    (["export", "--run", "{tmp}/no_run", "--out", "{tmp}/w.pt"], "no checkpoint"),
    (["evaluate", "--weights", "{tmp}/none.pt"], "none.pt"),
])
def test_ordinary_mistakes_give_one_line(tmp_path, capsys, argv, expected):
    """Issue 14.11: the training CLI printed tracebacks for a missing config or run folder."""
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_now_box_refuses_pickled_code(tmp_path):
    """Issue 14.1: NoW box files were read with np.load(allow_pickle=True)."""
    marker = tmp_path / "pwned"
    crafted = np.empty((), dtype=object)
    crafted[()] = _Payload(marker)
    np.save(tmp_path / "crafted.npy", crafted, allow_pickle=True)
    with pytest.raises(NowDataError, match="refusing to load"):
        load_face_box(tmp_path / "crafted.npy")
    assert not marker.exists()


def test_now_box_reads_the_data_sets_format(tmp_path):
    """The genuine files: a pickled dict (NumPy float values) in an object array, protocol 2 (Python 2)."""
    box = np.empty((), dtype=object)
    box[()] = {"left": np.float64(10.5), "top": 20.0, "right": 110.0, "bottom": np.float32(140.0)}
    with open(tmp_path / "box.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(box))
        pickle.dump(box, fh, protocol=2)
    assert load_face_box(tmp_path / "box.npy").tolist() == [10.5, 20.0, 110.0, 140.0]
    np.save(tmp_path / "plain.npy", np.array([1.0, 2.0, 3.0, 4.0]))
    assert load_face_box(tmp_path / "plain.npy").tolist() == [1.0, 2.0, 3.0, 4.0]
