"""scripts/gpu_train.sh runs end to end on the CPU with the miniature config (slow: ~1-3 min)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from msma_engine.face_model import DEFAULT_MODEL_PATH

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")
def test_gpu_script_smoke_on_cpu(tmp_path):
    env = dict(os.environ, CONFIG="configs/gpu_smoke.toml", PYTHON=sys.executable, RUN=str(tmp_path / "run"),
               DATA=str(tmp_path / "no_data"), OUT=str(tmp_path / "results"), SKIP_CHECKS="1", EVAL_N="4")
    proc = subprocess.run(["bash", "scripts/gpu_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "synthetic batches only" in proc.stdout
    weights = tmp_path / "results" / "final.pt"
    assert weights.exists() and weights.stat().st_size <= 60_000_000
    assert "| new | synthetic hold-out | 4 |" in (tmp_path / "results" / "eval_synthetic.md").read_text()
