#!/usr/bin/env bash
# Install and train ce_jax on one GPU host, or on one node of a multi-node GPU job.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/gpu.sh [--dry-run] COMMAND [FLAGS...]

Commands (run in the repository root, with the Python that PYTHON names):
  setup              pip install "jax[cuda12]" and this checkout (editable)
  train [FLAGS...]   train on all local GPUs; FLAGS go to ce_jax.main,
                     e.g. --config.train.batch_size=256
  multinode [FLAGS...]
                     like train, as process PROCESS_ID of NUM_PROCESSES hosts that
                     meet at COORDINATOR; run it on every node

Options:
  --dry-run          print the commands ("+ ..." lines) instead of running them (or DRY_RUN=1)
  -h, --help         show this help

Environment (defaults in brackets):
  PYTHON             [python3]
  JAX_EXTRA          jax extra for the CUDA wheels [cuda12]
  CONFIG             config file, relative to the repository [configs/mustache.py]
  RUN_NAME           [basename of CONFIG without .py]
  WORKDIR            checkpoints and logs [workdir/$RUN_NAME]; shared storage for multinode
  COORDINATOR        multinode: HOST:PORT of process 0, reachable from every node
  NUM_PROCESSES      multinode: number of nodes (one process per node)
  PROCESS_ID         multinode: this node's index, 0 .. NUM_PROCESSES-1
  CUDA_VISIBLE_DEVICES  restricts the GPUs used, as usual
EOF
}

# shellcheck source=launch/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The trainer replaces this shell, so signals such as SIGTERM reach it directly.
run_exec() {
  if [[ $DRY_RUN == 1 ]]; then show "$@"; else show "$@" >&2; exec "$@"; fi
}

parse_args "$@"
cmd=$COMMAND
set -- "${ARGS[@]+"${ARGS[@]}"}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
JAX_EXTRA=${JAX_EXTRA:-cuda12}
CONFIG=${CONFIG:-configs/mustache.py}
RUN_NAME=${RUN_NAME:-$(basename "$CONFIG" .py)}
WORKDIR=${WORKDIR:-workdir/$RUN_NAME}
main=("$PYTHON" -m ce_jax.main --config="$CONFIG" --workdir="$WORKDIR")

case $cmd in
  setup)
    run "$PYTHON" -m pip install -U pip
    run "$PYTHON" -m pip install -e . "jax[$JAX_EXTRA]"
    ;;
  train)
    run_exec "${main[@]}" "$@"
    ;;
  multinode)
    [[ -n ${COORDINATOR:-} && -n ${NUM_PROCESSES:-} && -n ${PROCESS_ID:-} ]] ||
      die "multinode needs COORDINATOR=HOST:PORT, NUM_PROCESSES and PROCESS_ID"
    run_exec "${main[@]}" --coordinator_address="$COORDINATOR" \
      --num_processes="$NUM_PROCESSES" --process_id="$PROCESS_ID" "$@"
    ;;
  *)
    die "unknown command '$cmd' (expected setup, train or multinode)"
    ;;
esac
