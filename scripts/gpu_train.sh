#!/usr/bin/env bash
# One command for a GPU session: CUDA checks, training (≤ 9 min on one H100), export, evaluation.
#
#   bash scripts/gpu_train.sh                      # on the GPU machine (its python3 holds CUDA torch)
#   CONFIG=configs/gpu_smoke.toml PYTHON=.venv/bin/python bash scripts/gpu_train.sh   # CPU smoke test
#
# With the device tool: carry runs/gpu_data (made by scripts/gpu_prepare_data.sh) and, to
# continue a run, runs/gpu_real; results (weights, log, curves, tables) go to $OUT.
# Steps (each prints its wall time):
#   1. the machine and torch's view of it;
#   2. the CUDA checks (tests marked gpu: renderer and nvdiffrast on CUDA, device batches, AMP);
#   3. training with $CONFIG, resuming from $RUN/checkpoints/last.pt; run.max_minutes ends it,
#      with a checkpoint every run.checkpoint_minutes; real batches only when runs/gpu_data/cache
#      holds photos (otherwise the [real] section is dropped and the run is synthetic only);
#   4. the exported weights must be ≤ 60 MB;
#   5. evaluation: synthetic hold-out (+ mean-face reference) and, when runs/gpu_data/holdout
#      exists, the real hold-out table for the shipped and the new weights.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-configs/gpu_real.toml}
RUN=${RUN:-runs/gpu_real}
DATA=${DATA:-runs/gpu_data}
RESULTS=${OUT:-$RUN/results}
EVAL_N=${EVAL_N:-64}
EVAL_REAL_N=${EVAL_REAL_N:-40}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
mkdir -p "$RUN" "$RESULTS"
status=0
step() { echo; echo "== [$(date +%T), ${SECONDS}s] $*"; }

step "1. machine"
$PY - <<'PYEOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs")
else:
    print("no CUDA device: the CUDA checks skip and training runs on the CPU")
PYEOF

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
    step "2. CUDA checks (pytest -m gpu)"
    timeout "${CHECK_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider -m gpu -rs tests 2>&1 | tee "$RESULTS/cuda_checks.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "CUDA checks failed (see above)"; status=1; }
fi

step "3. train ($CONFIG → $RUN)"
cfg=$CONFIG
if ! compgen -G "$DATA/cache/*.npz" >/dev/null; then
    echo "no cached real photos in $DATA/cache: training on synthetic batches only"
    cfg=$RUN/config_synthetic_only.json
    $PY -c "import json, sys, tomllib; c = tomllib.load(open(sys.argv[1], 'rb')); c.pop('real', None); json.dump(c, open(sys.argv[2], 'w'))" "$CONFIG" "$cfg"
fi
$PY -m training train --config "$cfg" --out "$RUN" --resume --no-progress ${MAX_STEPS:+--max-steps "$MAX_STEPS"} || { echo "training failed"; exit 1; }

step "4. exported weights"
size=$(stat -c %s "$RUN/final.pt")
echo "$RUN/final.pt: $size bytes"
[ "$size" -le 60000000 ] || { echo "exported weights exceed 60 MB"; status=1; }
cp "$RUN/final.pt" "$RUN/log.csv" "$RESULTS/" 2>/dev/null
cp "$RUN/curves.png" "$RESULTS/" 2>/dev/null

step "5. evaluation"
$PY -m training evaluate --weights "$RUN/final.pt" --data synthetic --n "$EVAL_N" --reference --label new \
    2>&1 | grep -v "^20..-" | tee "$RESULTS/eval_synthetic.md"
if compgen -G "$DATA/holdout/*.npz" >/dev/null; then
    $PY -m training evaluate-real --folder "$DATA/faces" --cache "$DATA/holdout" --n "$EVAL_REAL_N" --no-progress \
        --no-convergence --weights assets/weights/msma_light_default_head.pt "$RUN/final.pt" \
        2>&1 | grep -v "^20..-" | tee "$RESULTS/eval_real.md"
fi
step "done (status $status)"
exit $status
