"""Dry runs of the launch scripts: the commands they print, without gcloud or GPUs."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parent.parent / 'launch'
TPU = LAUNCH / 'tpu_vm.sh'
GPU = LAUNCH / 'gpu.sh'
SETTINGS = (
    'PROJECT', 'ZONE', 'TPU_NAME', 'ACCELERATOR_TYPE', 'RUNTIME_VERSION', 'BUCKET', 'CONFIG',
    'RUN_NAME', 'WORKDIR', 'REPO_URL', 'PYTHON', 'FOLLOW', 'TAIL_LINES', 'DRY_RUN',
    'JAX_EXTRA', 'COORDINATOR', 'NUM_PROCESSES', 'PROCESS_ID',
)


@pytest.fixture
def launch(tmp_path):
  """Runs a script; a `gcloud` on PATH records any call so tests can prove there was none."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  called = tmp_path / 'gcloud_called'
  fake = bin_dir / 'gcloud'
  fake.write_text(f'#!/bin/sh\ntouch {called}\nexit 1\n')
  fake.chmod(0o755)

  def run(script, *args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    full_env['PATH'] = f'{bin_dir}{os.pathsep}{full_env["PATH"]}'
    full_env.update(env)
    proc = subprocess.run(
        ['bash', str(script), *args], env=full_env, capture_output=True, text=True,
        timeout=30)
    assert not called.exists(), 'gcloud was called'
    return proc

  return run


def commands(proc):
  """The printed commands, each split into its arguments."""
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines and all(line.startswith('+ ') for line in lines), proc.stdout
  return [shlex.split(line[2:]) for line in lines]


def remote(argv):
  """The --command of a `gcloud ... ssh` line."""
  (command,) = [a.removeprefix('--command=') for a in argv if a.startswith('--command=')]
  return command


def test_scripts_are_executable():
  for script in (TPU, GPU):
    assert os.access(script, os.X_OK), script


@pytest.mark.parametrize('flag', ['--spot', '--preemptible'])
def test_tpu_create_pod(launch, flag):
  proc = launch(TPU, 'create', flag, '--dry-run', ACCELERATOR_TYPE='v4-32', PROJECT='p',
                ZONE='us-central2-b', TPU_NAME='pod')
  (argv,) = commands(proc)
  assert argv[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'pod']
  for arg in ('--accelerator-type=v4-32', '--version=tpu-ubuntu2204-base',
              '--zone=us-central2-b', '--project=p', flag):
    assert arg in argv


def test_tpu_dry_run_from_env_and_position(launch):
  first = launch(TPU, '--dry-run', 'create')
  last = launch(TPU, 'create', '--dry-run')
  env = launch(TPU, 'create', DRY_RUN='1')
  assert first.stdout == last.stdout == env.stdout
  (argv,) = commands(env)
  assert '--accelerator-type=v4-8' in argv
  assert '--spot' not in argv and not any(a.startswith('--project') for a in argv)


def test_tpu_train(launch):
  proc = launch(TPU, 'train', '--config.train.batch_size=256', '--config.data.folder=a b',
                '--dry-run', BUCKET='gs://my-bucket', ACCELERATOR_TYPE='v4-32')
  start, follow = commands(proc)
  assert start[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'ce-jax']
  assert '--worker=all' in start
  command = remote(start)
  assert ('python -m ce_jax.main --config=configs/mustache.py '
          '--workdir=gs://my-bucket/ce_jax/mustache --config.train.batch_size=256') in command
  assert 'nohup' in command and '> $HOME/ce_jax_train.log' in command
  assert "--config.data.folder='a b'" in command
  assert '--worker=0' in follow and 'ce_jax_train.log' in remote(follow)


def test_tpu_train_workdir_and_no_follow(launch):
  proc = launch(TPU, 'train', DRY_RUN='1', FOLLOW='0', BUCKET='my-bucket', RUN_NAME='r1',
                CONFIG='configs/default.py')
  (start,) = commands(proc)
  assert ('--config=configs/default.py --workdir=gs://my-bucket/ce_jax/r1'
          in remote(start))
  proc = launch(TPU, 'train', DRY_RUN='1', WORKDIR='gs://other/run')
  assert '--workdir=gs://other/run' in remote(commands(proc)[0])


def test_tpu_train_needs_a_workdir(launch):
  proc = launch(TPU, 'train', '--dry-run')
  assert proc.returncode == 2
  assert 'BUCKET' in proc.stderr and proc.stdout == ''


def test_tpu_setup_copies_checkout(launch):
  tar, scp, unpack, install = commands(launch(TPU, 'setup', '--dry-run'))
  assert tar[0] == 'tar'
  assert scp[:5] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp'] and '--worker=all' in scp
  assert '--worker=all' in unpack and 'tar -xzf' in remote(unpack)
  assert '--worker=all' in install
  assert "'jax[tpu]'" in remote(install) and 'pip install -q -e ./ce_jax' in remote(install)


def test_tpu_setup_clones_repo_url(launch):
  clone, install = commands(
      launch(TPU, 'setup', '--dry-run', REPO_URL='https://example.com/ce_jax.git'))
  assert 'git clone --depth=1 https://example.com/ce_jax.git ce_jax' in remote(clone)
  assert 'jax[tpu]' in remote(install)


def test_tpu_status_stop_delete(launch):
  describe, tail = commands(launch(TPU, 'status', '--dry-run', TPU_NAME='t'))
  assert describe[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'describe', 't']
  assert '--worker=0' in tail and remote(tail).startswith('tail -n 50 ')
  (stop,) = commands(launch(TPU, 'stop', '--dry-run'))
  assert '--worker=all' in stop and 'kill -TERM' in remote(stop)
  (delete,) = commands(launch(TPU, 'delete', '--dry-run', TPU_NAME='t'))
  assert delete[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 't']


def test_gpu_setup(launch):
  upgrade, install = commands(launch(GPU, 'setup', '--dry-run'))
  assert upgrade == ['python3', '-m', 'pip', 'install', '-U', 'pip']
  assert install == ['python3', '-m', 'pip', 'install', '-e', '.', 'jax[cuda12]']


def test_gpu_train(launch):
  proc = launch(GPU, '--dry-run', 'train', '--config.train.batch_size=64', WORKDIR='/tmp/run')
  assert commands(proc) == [[
      'python3', '-m', 'ce_jax.main', '--config=configs/mustache.py', '--workdir=/tmp/run',
      '--config.train.batch_size=64']]
  proc = launch(GPU, 'train', DRY_RUN='1', PYTHON='python3.11')
  assert commands(proc)[0][:5] == [
      'python3.11', '-m', 'ce_jax.main', '--config=configs/mustache.py',
      '--workdir=workdir/mustache']


def test_gpu_multinode(launch):
  proc = launch(GPU, 'multinode', '--dry-run', '--config.train.batch_size=64',
                COORDINATOR='10.0.0.1:1234', NUM_PROCESSES='2', PROCESS_ID='1',
                WORKDIR='gs://b/run')
  (argv,) = commands(proc)
  assert argv == [
      'python3', '-m', 'ce_jax.main', '--config=configs/mustache.py', '--workdir=gs://b/run',
      '--coordinator_address=10.0.0.1:1234', '--num_processes=2', '--process_id=1',
      '--config.train.batch_size=64']
  proc = launch(GPU, 'multinode', '--dry-run', NUM_PROCESSES='2', PROCESS_ID='1')
  assert proc.returncode == 2 and 'COORDINATOR' in proc.stderr


@pytest.mark.parametrize('script', [TPU, GPU])
def test_unknown_or_missing_command(launch, script):
  proc = launch(script, 'frobnicate', '--dry-run')
  assert proc.returncode == 2
  assert "unknown command 'frobnicate'" in proc.stderr and proc.stdout == ''
  proc = launch(script, '--dry-run')
  assert proc.returncode == 2 and 'Usage:' in proc.stderr


@pytest.mark.parametrize('script', [TPU, GPU])
def test_help(launch, script):
  for flag in ('-h', '--help'):
    proc = launch(script, flag)
    assert proc.returncode == 0 and proc.stdout.startswith('Usage:')


def test_shellcheck():
  shellcheck = shutil.which('shellcheck')
  if shellcheck is None:
    pytest.skip('shellcheck is not installed')
  proc = subprocess.run([shellcheck, str(TPU), str(GPU)], capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode == 0, proc.stdout + proc.stderr
