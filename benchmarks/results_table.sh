#!/usr/bin/env bash
# The README's results table and docs/samples.png, from a trained workdir.
#
#   benchmarks/results_table.sh [WORKDIR] [CONFIG]      (default: runs/default configs/default.py)
#
# Runs ce_jax.evaluate on the workdir's latest checkpoint (CHECKPOINT=best or a
# step to choose another), prints the Markdown tables, copies the sample grid
# (masked | Context Encoder | Telea | Navier–Stokes | original) to
# docs/samples.png and, when README.md still has the RESULTS_TABLE line,
# replaces that line with the main table.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:-runs/default}
CONFIG=${2:-configs/default.py}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

python -m ce_jax.evaluate --config="$CONFIG" --workdir="$WORKDIR" \
  --checkpoint="${CHECKPOINT:-latest}" --output_dir="$OUT" --num_samples=4
mkdir -p docs
cp "$OUT"/eval_*.png docs/samples.png
python - "$OUT" <<'PY'
import glob, sys
(md,) = glob.glob(f'{sys.argv[1]}/eval_*.md')
caption, main = open(md).read().split('\n\n')[:2]
readme = open('README.md').read()
if '\nRESULTS_TABLE\n' in readme:
  open('README.md', 'w').write(readme.replace('\nRESULTS_TABLE\n', f'\n{caption}\n\n{main}\n', 1))
  print('README.md: RESULTS_TABLE replaced.')
PY
echo "docs/samples.png: $(du -k docs/samples.png | cut -f1) KiB"
