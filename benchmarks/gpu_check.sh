#!/usr/bin/env bash
# GPU figures: ce_jax against PyTorch eager at batch 64 and 256, float32 and bfloat16.
#
#   benchmarks/gpu_check.sh [RESULTS_DIR]          (default: $OUT if set, else /tmp/ce_gpu_check)
#
# Needs one CUDA GPU and the project installed with a CUDA JAX and PyTorch
# (pip install -e '.[bench]' 'jax[cuda12]' and a CUDA build of torch). Each
# configuration runs benchmarks/compare.py (side by side, alternating rounds,
# median) and writes its JSON line to RESULTS_DIR/compare_b<batch>_<dtype>.json;
# the summary lines (images/s of each, the ratio, the JAX MFU) go to
# RESULTS_DIR/summary.txt. Targets: ≥ 1.5× PyTorch eager, and ≥ 35 % MFU in
# bfloat16 at batch 256. MODE=both also times torch.compile (slow to compile).
# Budget: about 1 minute per configuration on an H100 after the first compile.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RESULTS=${1:-${OUT:-/tmp/ce_gpu_check}}
MODE=${MODE:-eager}
PY=${PYTHON:-python3}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" - <<'PY'
import jax, torch
print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')
PY
} 2>&1 | tee "$RESULTS/summary.txt"

if ! "$PY" -c 'import ce_jax.train' 2>"$RESULTS/import_error.txt"; then
  echo "ce_jax does not import here (missing dependencies, see import_error.txt):" \
       "pip install -e '.[bench]' with a CUDA jax first." | tee -a "$RESULTS/summary.txt"
  tail -n 3 "$RESULTS/import_error.txt"
  exit 1
fi

status=0
for batch in 64 256; do
  for dtype in float32 bfloat16; do
    name="compare_b${batch}_${dtype}"
    echo "== batch $batch, $dtype" | tee -a "$RESULTS/summary.txt"
    if "$PY" benchmarks/compare.py --device cuda --batch-size "$batch" --dtype "$dtype" \
        --mode "$MODE" --steps 10 --warmup 5 --repeats 5 --json \
        >"$RESULTS/$name.json" 2>"$RESULTS/$name.log"; then
      grep -E 'img/s  \(spread|jax /|MFU' "$RESULTS/$name.log" | tee -a "$RESULTS/summary.txt"
    else
      status=1
      echo "failed: see $name.log" | tee -a "$RESULTS/summary.txt"
      tail -n 5 "$RESULTS/$name.log"
    fi
  done
done
exit $status
