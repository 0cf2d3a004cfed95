"""The real multi-process path on one machine: two processes train like one.

Two `python -m ce_jax.main` processes on localhost, 4 simulated CPU devices
each, joined by `jax.distributed` and gloo CPU collectives, run
`configs/test.py`; one process with 8 devices runs the same in this
interpreter. Each global batch holds the same examples for any number of
processes, so losses and parameters agree up to the order of the cross-device
float32 reductions.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import xla_env
from events import scalars
from PIL import Image

from ce_jax import checkpointing, held_out, input_pipeline, parallel, train
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300
# Losses and eval PSNR: the same float32 math, reduced in another order.
LOSS_TOL = {'rtol': 1e-5, 'atol': 1e-6}
# State: Adam divides by the root of the second moment, so on the few
# gradients that are almost zero the reduction-order noise moves an update by
# a few per cent of one step (G's step is lr = 2e-3).
STATE_TOL = {'rtol': 1e-5, 'atol': 2e-4}


def config(**train_overrides):
  c = test_config.get_config()
  c.train.log_every = 1
  for k, v in train_overrides.items():
    setattr(c.train, k, v)
  return c


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def restore(workdir, step, like):
  """The checkpoint at `step`, restored onto one device in the shapes of state `like`."""
  manager = checkpointing.create_manager(str(workdir), 2)
  return checkpointing.restore_or_init(manager, jax.device_put(like, jax.devices()[0]), step)


def assert_losses_close(got, want, steps):
  for tag in ('d_loss', 'g_loss', 'rec_loss', 'adv_loss'):
    for step in steps:
      np.testing.assert_allclose(got[tag][step], want[tag][step], **LOSS_TOL,
                                 err_msg=f'{tag} at step {step}')


def assert_states_close(got, want):
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **STATE_TOL)


def two_process_command(workdir, port, process_id):
  return [sys.executable, '-m', 'ce_jax.main', '--config=configs/test.py',
          f'--workdir={workdir}', '--config.train.log_every=1',
          f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
          f'--process_id={process_id}', '--cpu_collectives=gloo']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """(root, one-process final state): `root/two` ran 4 steps as 2 processes, `root/one` 6."""
  root = tmp_path_factory.mktemp('multiprocess')
  env = xla_env.with_devices(4)
  port = free_port()
  procs = []
  try:
    for i in range(2):
      with open(root / f'process_{i}.log', 'w') as log:
        procs.append(subprocess.Popen(two_process_command(root / 'two', port, i), cwd=ROOT,
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    # Meanwhile the one-process reference runs here, on this interpreter's 8 devices.
    assert jax.device_count() == 8 and jax.process_count() == 1
    one = train.train_and_evaluate(config(num_steps=6), str(root / 'one'))
    deadline = time.monotonic() + TIMEOUT_S
    for proc in procs:
      try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
      except subprocess.TimeoutExpired:
        break
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  for i, proc in enumerate(procs):
    log = (root / f'process_{i}.log').read_text()
    assert proc.returncode == 0, f'process {i} exited with {proc.returncode}:\n{log[-4000:]}'
  return root, one


def test_two_processes_train_like_one(runs):
  root, one_final = runs
  two, one = scalars(str(root / 'two')), scalars(str(root / 'one'))
  # Only process 0 writes events and sample grids.
  assert len(glob.glob(str(root / 'two' / 'events.out.tfevents.*'))) == 1
  assert sorted(two['d_loss']) == [1, 2, 3, 4]
  assert_losses_close(two, one, steps=[1, 2, 3, 4])
  np.testing.assert_allclose(two['eval_hole_psnr'][4], one['eval_hole_psnr'][4], **LOSS_TOL)
  assert sorted(os.listdir(root / 'two' / 'checkpoints')) == ['2', '4']
  # Saved from 8 devices (by 2 processes and by 1), restored onto 1.
  two_state, one_state = (restore(root / d, 4, one_final) for d in ('two', 'one'))
  assert int(two_state.step) == int(one_state.step) == 4
  assert_states_close(two_state, one_state)
  grids = [np.asarray(Image.open(root / d / 'samples' / 'step_000004.png'), np.int16)
           for d in ('two', 'one')]
  assert grids[0].shape == grids[1].shape == (4 * 34 - 2, 3 * 34 - 2, 3)
  assert np.abs(grids[0] - grids[1]).max() <= 1  # The same images, up to uint8 rounding.


def test_one_process_resumes_two_process_checkpoint(runs):
  root, one_final = runs
  workdir = root / 'resumed'
  shutil.copytree(root / 'two', workdir)
  resumed = train.train_and_evaluate(config(num_steps=6), str(workdir))
  assert int(resumed.step) == 6
  # The data continue where the two processes stopped: steps 5 and 6 match too.
  assert_losses_close(scalars(str(workdir)), scalars(str(root / 'one')), steps=[5, 6])
  assert_states_close(resumed, one_final)


def test_process_shares_tile_the_global_batches():
  c = config()
  source = input_pipeline.embedded_source(c, 'train')
  whole = input_pipeline.train_dataset(source, c, batch_size=8, seed=0).take(3)
  whole = [b['image'] for b in whole.as_numpy_iterator()]
  # Each of two processes yields its half of every global batch, from step 1 on.
  halves = [input_pipeline.train_dataset(source, c, batch_size=4, seed=0, start_index=4,
                                         process_index=p, process_count=2).take(2)
            for p in range(2)]
  halves = [[b['image'] for b in h.as_numpy_iterator()] for h in halves]
  for step in (1, 2):
    np.testing.assert_array_equal(np.concatenate([halves[0][step - 1], halves[1][step - 1]]),
                                  whole[step])
  assert not np.array_equal(halves[0][0], halves[1][0])
  # Eval rows: 10 examples in global batches of 8 over two processes.
  assert parallel.process_rows(10, 4, 0, 2).tolist() == [0, 1, 2, 3, 8, 9]
  assert parallel.process_rows(10, 4, 1, 2).tolist() == [4, 5, 6, 7]
  chunks = list(held_out.eval_chunks({'image': np.ones((4, 2, 2, 3), np.float32)}, 4, 2))
  assert [c['valid'].sum() for c in chunks] == [4, 0] and not chunks[1]['image'].any()


def test_incomplete_coordinator_flags_are_one_clear_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'ce_jax.main', '--config=configs/test.py',
       f'--workdir={tmp_path}', '--num_processes=2', '--process_id=0'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert 'error: --coordinator_address, --num_processes, --process_id:' in result.stderr
