"""The main job runs where ``import mediapipe`` is impossible (Python 3.13 has no usable mediapipe).

The fast suite's guard is tests/test_layering.py (no ``import mediapipe`` anywhere in
msma_engine); this end-to-end check runs the CLI in a subprocess (slow: ~10 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# sys.modules[name] = None makes every later `import name` raise ImportError.
_BLOCK = "import sys; sys.modules['mediapipe'] = None; "


@pytest.mark.slow
def test_reconstruct_cli_without_mediapipe(tmp_path, astronaut):
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    code = _BLOCK + (
        "import runpy; sys.argv = ['msma_engine', 'reconstruct', sys.argv[1], '-o', sys.argv[2], '--fit', 'fast']; "
        "runpy.run_module('msma_engine', run_name='__main__', alter_sys=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    run = subprocess.run([sys.executable, "-c", code, str(photo), str(tmp_path / "out")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert (tmp_path / "out" / "astronaut.glb").stat().st_size > 100_000
    for noise in ("XNNPACK", "TensorFlow Lite", "absl::", "W0000", "I0000"):  # MediaPipe/TFLite log lines
        assert noise not in run.stderr, run.stderr[-2000:]

