"""torchrun + DistributedDataParallel with gloo: two CPU processes train a couple of steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.model_file import save_face_model_data

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    model_path = save_face_model_data(make_sphere_model(n_lat=12, n_lon=16), tmp_path / "sphere.npz")
    config = {
        "model": {"arch": "msma_light", "input_size": 32, "face_model": str(model_path)},
        "optim": {"batch_size": 2, "max_steps": 2},
        "data": {"epoch_size": 16},
        "loss": {"coeff": 1.0, "photometric": 0.0},
        "run": {"device": "cpu", "threads": 1, "checkpoint_every": 2, "log_every": 1},
    }
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "training", "train", "--config", str(tmp_path / "tiny.json"), "--out", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert state["step"] == 2
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per step, written by rank 0 only
    # Two processes × batch 2 per step: the schedule counts global batches of 4.
    assert float(rows[-1].split(",")[1]) == pytest.approx(2 * 4 / 16)
    assert (out / "final.pt").exists()
