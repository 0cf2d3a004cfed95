#!/usr/bin/env bash
# Create, set up, train on and delete a Cloud TPU VM slice (single host or pod).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu_vm.sh [--dry-run] COMMAND [ARGS...]

Commands:
  create [--spot|--preemptible] [GCLOUD_FLAGS...]
                                 create the TPU VM slice; GCLOUD_FLAGS go to
                                 `gcloud compute tpus tpu-vm create`
  setup                          copy the code to every worker, install jax[tpu] and ce_jax
  sync                           copy the code to every worker (no install)
  train [FLAGS...]               start ce_jax.main on all workers, then follow worker 0's log;
                                 FLAGS go to ce_jax.main, e.g. --config.train.batch_size=256
  stop                           send SIGTERM to the trainer on every worker (it checkpoints)
  status                         describe the TPU and show the end of worker 0's log
  delete                         delete the TPU VM slice

Options:
  --dry-run        print the commands ("+ ..." lines) instead of running them (or DRY_RUN=1)
  -h, --help       show this help

Environment (defaults in brackets):
  PROJECT          GCP project [gcloud's configured project]
  ZONE             [us-central2-b]
  TPU_NAME         [ce-jax]
  ACCELERATOR_TYPE [v4-8]; e.g. v4-32 for a 4-host pod
  RUNTIME_VERSION  TPU VM image [tpu-ubuntu2204-base]
  BUCKET           gs://bucket holding the run directories
  CONFIG           config file, relative to the repository [configs/mustache.py]
  RUN_NAME         [basename of CONFIG without .py]
  WORKDIR          checkpoints and logs [$BUCKET/ce_jax/$RUN_NAME]
  REPO_URL         git URL to clone on the workers [copy this checkout with scp]
  PYTHON           Python (>= 3.11) installed on the workers with apt [python3.11]
  FOLLOW           1: `train` follows worker 0's log afterwards, 0: it returns [1]
  TAIL_LINES       lines of the log `status` shows [50]
EOF
}

# shellcheck source=launch/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
cmd=$COMMAND
set -- "${ARGS[@]+"${ARGS[@]}"}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZONE=${ZONE:-us-central2-b}
TPU_NAME=${TPU_NAME:-ce-jax}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v4-8}
RUNTIME_VERSION=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
CONFIG=${CONFIG:-configs/mustache.py}
RUN_NAME=${RUN_NAME:-$(basename "$CONFIG" .py)}
PYTHON=${PYTHON:-python3.11}
FOLLOW=${FOLLOW:-1}
TAIL_LINES=${TAIL_LINES:-50}

# Paths on the workers, relative to the home directory the ssh session starts in.
REPO=ce_jax
VENV="\$HOME/ce_jax_venv"
LOG="\$HOME/ce_jax_train.log"
PID="\$HOME/ce_jax_train.pid"

gcloud_flags=(--zone="$ZONE")
[[ -z ${PROJECT:-} ]] || gcloud_flags+=(--project="$PROJECT")

on_workers() {  # WORKER REMOTE_COMMAND
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_flags[@]}" --worker="$1" \
    --command="$2"
}

workdir() {
  if [[ -z ${WORKDIR:-} ]]; then
    [[ -n ${BUCKET:-} ]] || die "set BUCKET=gs://... (or WORKDIR) for the run directory"
    [[ $BUCKET == gs://* ]] || BUCKET=gs://$BUCKET
    WORKDIR=${BUCKET%/}/ce_jax/$RUN_NAME
  fi
  [[ $WORKDIR == gs://* ]] ||
    echo "tpu_vm.sh: warning: WORKDIR=$WORKDIR is local to each worker; pods need gs://" >&2
  echo "$WORKDIR"
}

sync_code() {
  if [[ -n ${REPO_URL:-} ]]; then
    on_workers all "rm -rf $REPO && git clone --depth=1 $(quote "$REPO_URL") $REPO"
  else
    local tarball=${TMPDIR:-/tmp}/ce_jax_src.tar.gz
    run tar -czf "$tarball" -C "$ROOT" --exclude=./.git --exclude=./.venv \
      --exclude='./workdir*' --exclude=./runs --exclude=__pycache__ --exclude='*.egg-info' \
      --exclude=.pytest_cache --exclude=.ruff_cache .
    run gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:ce_jax_src.tar.gz" \
      "${gcloud_flags[@]}" --worker=all
    on_workers all "rm -rf $REPO && mkdir $REPO && tar -xzf ce_jax_src.tar.gz -C $REPO"
  fi
}

case $cmd in
  create)
    run gcloud compute tpus tpu-vm create "$TPU_NAME" "${gcloud_flags[@]}" \
      --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" "$@"
    ;;
  sync)
    sync_code
    ;;
  setup)
    sync_code
    apt="sudo apt-get -o DPkg::Lock::Timeout=600 -qq"
    on_workers all "$apt update && $apt install -y $PYTHON $PYTHON-venv \
&& $PYTHON -m venv $VENV && $VENV/bin/pip install -q -U pip \
&& $VENV/bin/pip install -q -e ./$REPO 'jax[tpu]'"
    ;;
  train)
    WORKDIR=$(workdir)
    main_args=$(quote_all --config="$CONFIG" --workdir="$WORKDIR" "$@")
    on_workers all "if [ -f $PID ] && kill -0 \"\$(cat $PID)\" 2>/dev/null; \
then echo \"ce_jax.main is already running\" >&2; exit 1; fi; \
cd $REPO && . $VENV/bin/activate \
&& { nohup python -m ce_jax.main $main_args > $LOG 2>&1 < /dev/null & echo \$! > $PID; }"
    [[ $FOLLOW == 0 ]] || on_workers 0 "tail -n +1 -F $LOG"
    ;;
  stop)
    on_workers all "if [ -f $PID ]; then kill -TERM \"\$(cat $PID)\" 2>/dev/null || true; fi"
    ;;
  status)
    run gcloud compute tpus tpu-vm describe "$TPU_NAME" "${gcloud_flags[@]}"
    on_workers 0 "tail -n $TAIL_LINES $LOG"
    ;;
  delete)
    run gcloud compute tpus tpu-vm delete "$TPU_NAME" "${gcloud_flags[@]}"
    ;;
  *)
    die "unknown command '$cmd' (expected create, setup, sync, train, stop, status or delete)"
    ;;
esac
