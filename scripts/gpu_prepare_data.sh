#!/usr/bin/env bash
# Prepare the real-photo data a GPU session carries (runs/gpu_data, git-ignored; never commit it:
# the photo sets are research / non-commercial, see ../shared/data/README.md). Runs on a CPU
# machine that has the photos, resumable (run it again after an interruption):
#   1. a balanced training subset (LFW same-person photos, UTKFace, CelebA) → runs/gpu_data/cache
#   2. distillation pseudo-labels of those photos (the project's own fit)  → runs/gpu_data/labels
#   3. part of the fixed evaluation hold-out                               → runs/gpu_data/holdout
#
#   FACES=/work/shared/data/faces N_TRAIN=1300 WORKERS=2 bash scripts/gpu_prepare_data.sh
#
# Size: the working tree and the carried paths together may be 64 MiB; the tracked files are
# ~40 MB, so keep runs/gpu_data under ~22 MB (quality-85 entries are ~16 KB: ~1,300 photos).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FACES=${FACES:-../shared/data/faces}
DATA=${DATA:-runs/gpu_data}
N_TRAIN=${N_TRAIN:-1300}
HOLDOUT_PEOPLE=${HOLDOUT_PEOPLE:-25}
HOLDOUT_UTK=${HOLDOUT_UTK:-25}
WORKERS=${WORKERS:-2}
FIT=${FIT:-default}
QUALITY=${QUALITY:-85}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_WAIT_POLICY=PASSIVE
mkdir -p "$DATA"
$PY -m training preprocess --folder "$FACES" --cache "$DATA/cache" --split train --subset "$N_TRAIN" \
    --workers "$WORKERS" --jpeg-quality "$QUALITY" --min-face-size "${MIN_FACE:-24}"
$PY -m training pseudo-label --folder "$FACES" --cache "$DATA/cache" --out "$DATA/labels" --fit "$FIT"
$PY -m training preprocess --folder "$FACES" --cache "$DATA/holdout" --split holdout \
    --lfw-people "$HOLDOUT_PEOPLE" --utk-photos "$HOLDOUT_UTK" --workers "$WORKERS" --jpeg-quality "$QUALITY"
du -sh "$DATA"
