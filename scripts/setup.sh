#!/usr/bin/env bash
# One-command set-up: a local virtual environment (.venv) with everything the engine,
# the training package, the Blender-module tests and the benchmarks need, from the registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "error: Python 3.11 is required (the bpy 5.0.1 wheel is built for it)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
# The repository's own packages (msma_engine, training, msma_blender), editable.
.venv/bin/python -m pip install -q --no-deps -e .
.venv/bin/python -c "import torch, bpy, numpy; print('set-up ok: torch', torch.__version__, '| bpy', bpy.app.version_string, '| numpy', numpy.__version__)"
