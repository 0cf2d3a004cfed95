"""End-to-end training on `configs/test.py`: parallelism, resume, CLI, failure paths."""

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import xla_env
from events import scalars
from PIL import Image

from ce_jax import checkpointing, models, parallel, train, train_state
from ce_jax.errors import UserError
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(family='context_encoder', **train_overrides):
  c = test_config.get_config(family)
  for k, v in train_overrides.items():
    setattr(c.train, k, v)
  return c


def restore(workdir, cfg, step=None):
  template = train_state.create(cfg, jax.random.PRNGKey(0))
  manager = checkpointing.create_manager(workdir, 2)
  return checkpointing.restore_or_init(manager, template, step)


def run_python(code, devices, timeout=300):
  env = dict(xla_env.with_devices(devices), PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout)


def assert_trees_close(a, b, **tol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


@pytest.fixture(scope='module', params=[pytest.param(f, marks=pytest.mark.xdist_group(f'train_{f}'))
                                        for f in models.FAMILIES])
def eight_device_run(request, tmp_path_factory):
  """Four steps of each model family on the eight simulated devices, a checkpoint every two."""
  assert jax.device_count() == 8
  workdir = str(tmp_path_factory.mktemp(f'eight_{request.param}'))
  state = train.train_and_evaluate(config(request.param, log_every=1), workdir)
  return request.param, workdir, state


@pytest.fixture(scope='module')
def cli_one_device_run(tmp_path_factory):
  """`python -m ce_jax.main --config=configs/test.py` in a one-device process, logging every step.

  The Context Encoder's one-device reference, and the command-line run whose
  workdir `test_main_leaves_checkpoint_events_and_png_grid` inspects.
  """
  workdir = tmp_path_factory.mktemp('cli') / 'main'
  result = subprocess.run(main_command(workdir, '--config.train.log_every=1'), cwd=ROOT,
                          env=xla_env.with_devices(1), capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert re.search(r'local devices: \[\w+\(id=0\)\]\n', result.stderr), result.stderr[-3000:]
  return workdir


def test_eight_devices_match_one_device(eight_device_run, tmp_path, request):
  family, workdir8, state8 = eight_device_run
  if family == 'context_encoder':
    workdir1 = str(request.getfixturevalue('cli_one_device_run'))
  else:
    workdir1 = str(tmp_path / 'one')
    code = ('import jax; from ce_jax import train; from configs import test; '
            f'c = test.get_config({family!r}); c.train.log_every = 1; '
            'assert jax.device_count() == 1; '
            f'train.train_and_evaluate(c, {workdir1!r})')
    result = run_python(code, devices=1)
    assert result.returncode == 0, result.stderr[-3000:]
  s8, s1 = scalars(workdir8), scalars(workdir1)
  for tag in ('d_loss', 'g_loss', 'rec_loss', 'adv_loss'):
    assert sorted(s8[tag]) == sorted(s1[tag]) == [1, 2, 3, 4]
    for step in s8[tag]:
      # Same math; only the order of the cross-device reductions differs.
      np.testing.assert_allclose(s8[tag][step], s1[tag][step], rtol=2e-4, atol=1e-6)
  state1 = restore(workdir1, config(family))
  assert int(state1.step) == 4
  # Adam turns a near-zero gradient's rounding into a step of up to the learning
  # rate (2e-4) per step: a few of the small families' weights, whose gradients
  # are near zero, differ by up to 4 such steps (measured for GLCIC: 2.9e-4 on
  # 1 of 9,216 weights; the losses above agree to 2e-4).
  atol = 1e-5 if family == 'context_encoder' else 4 * 2e-4
  assert_trees_close(state8.g_params, state1.g_params, rtol=1e-3, atol=atol)
  assert_trees_close(state8.d_params, state1.d_params, rtol=1e-3, atol=atol)
  assert_trees_close(state8.d_batch_stats, state1.d_batch_stats, rtol=1e-3, atol=atol)


def test_interrupted_run_ends_like_uninterrupted(eight_device_run, tmp_path):
  """The four-step run, cut off after its step-2 checkpoint, resumes to the same end."""
  family, workdir8, full = eight_device_run
  workdir = tmp_path / 'resumed'
  # What a kill after step 2 leaves: the checkpoint of step 2, not those of step 4.
  shutil.copytree(workdir8, workdir, ignore=lambda d, names: [
      n for n in names if n == 'best' or (os.path.basename(d) == 'checkpoints' and n != '2')])
  assert os.listdir(workdir / 'checkpoints') == ['2']
  halfway = restore(str(workdir), config(family))
  assert int(halfway.step) == 2
  assert not jax.tree.all(jax.tree.map(lambda a, b: np.array_equal(a, b), halfway.g_params,
                                       full.g_params))
  resumed = train.train_and_evaluate(config(family, log_every=1), str(workdir))
  assert int(resumed.step) == 4
  assert_trees_close(resumed.g_params, full.g_params, rtol=1e-6, atol=1e-7)
  assert_trees_close(resumed.d_params, full.d_params, rtol=1e-6, atol=1e-7)
  # BatchNorm statistics, or SN-PatchGAN's power-iteration state, come back too.
  assert_trees_close(resumed.d_batch_stats, full.d_batch_stats, rtol=1e-6, atol=1e-7)
  assert jax.tree.leaves(full.d_batch_stats)
  assert_trees_close(resumed.g_opt_state, full.g_opt_state, rtol=1e-6, atol=1e-7)


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(config(num_steps=2), workdir)
  bad = config(num_steps=4, log_every=1)
  bad.optim.d_lr = 1e38  # Adam's steps overflow float32 on the next pass.
  with pytest.raises(UserError, match=r'diverged at step 3: .*last good checkpoint is step 2'):
    train.train_and_evaluate(bad, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2']
  good = restore(workdir, config())
  assert int(good.step) == 2
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(good.g_params))


def test_missing_image_folder_names_the_field(tmp_path):
  c = config()
  c.data.source = 'folder'
  c.data.folder = str(tmp_path / 'no_such_dir')
  with pytest.raises(UserError, match=r"data.folder='.*no_such_dir' is not a folder"):
    train.train_and_evaluate(c, str(tmp_path / 'work'))


def test_bad_batch_size_names_the_field(tmp_path):
  with pytest.raises(UserError, match=r'train.batch_size=12 must be a positive multiple of the 8'):
    train.train_and_evaluate(config(batch_size=12), str(tmp_path))


def main_command(workdir, *overrides):
  return [sys.executable, '-m', 'ce_jax.main', '--config=configs/test.py',
          f'--workdir={workdir}', *overrides]


@pytest.mark.xdist_group('train_context_encoder')  # With the fixture's other user.
def test_main_leaves_checkpoint_events_and_png_grid(cli_one_device_run):
  workdir = cli_one_device_run
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  s = scalars(str(workdir))
  assert set(s['d_loss']) == {1, 2, 3, 4} and 4 in s['eval_hole_psnr']
  assert 5 < s['eval_hole_psnr'][4] < 60
  grid = np.asarray(Image.open(workdir / 'samples' / 'step_000004.png'))
  # Four rows of (masked | completion | original) 32×32 tiles with 2-px gaps.
  assert grid.shape == (4 * 34 - 2, 3 * 34 - 2, 3)
  masked, original = grid[:32, :32], grid[:32, 68:100]
  assert np.array_equal(masked[:4], original[:4]) and not np.array_equal(masked, original)


def test_misspelled_config_field_is_one_clear_line(tmp_path):
  result = subprocess.run(main_command(tmp_path, '--config.train.batchsize=8'), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  assert ('error: --config.train.batchsize: no such config field. '
          'Did you mean --config.train.batch_size?') in result.stderr


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  workdir = tmp_path / 'term'
  log = open(tmp_path / 'log.txt', 'w')
  env = xla_env.with_devices(1)
  proc = subprocess.Popen(
      main_command(workdir, '--config.train.num_steps=100000', '--config.train.log_every=1',
                   '--config.train.checkpoint_every=100000', '--config.train.eval_every=100000',
                   '--config.train.sample_every=100000'),
      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.time() + 240
    while '[3] adv_loss=' not in (tmp_path / 'log.txt').read_text():
      assert proc.poll() is None and time.time() < deadline, (tmp_path / 'log.txt').read_text()
      time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
  finally:
    proc.kill()
  steps = [int(s) for s in os.listdir(workdir / 'checkpoints')]
  assert len(steps) == 1 and 3 <= steps[0] < 100000
  assert 'SIGTERM received' in (tmp_path / 'log.txt').read_text()


def test_checkpoint_round_trip_in_a_relative_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  cfg = config()
  state = train_state.create(cfg, jax.random.PRNGKey(1)).replace(step=np.int32(7))
  manager = checkpointing.create_manager('runs/rel', 2)
  checkpointing.save(manager, state)
  manager.wait_until_finished()
  assert (tmp_path / 'runs' / 'rel' / 'checkpoints' / '7').is_dir()
  restored = restore('runs/rel', cfg)
  assert int(restored.step) == 7
  assert_trees_close(restored.g_params, state.g_params, rtol=0, atol=0)


@pytest.mark.parametrize('saved_with_d', [True, False])
def test_a_checkpoint_restores_whether_or_not_it_holds_d(tmp_path, saved_with_d):
  """Runs saved with D (older reconstruction-only runs) resume without it, and the reverse."""
  with_d = config(num_steps=4)
  without_d = config(num_steps=4)
  without_d.loss.rec_only_steps = 4
  assert train_state.uses_discriminator(with_d) and not train_state.uses_discriminator(without_d)
  saved_cfg, restored_cfg = (with_d, without_d) if saved_with_d else (without_d, with_d)
  saved = train_state.create(saved_cfg, jax.random.PRNGKey(1))
  saved = saved.replace(step=saved.step + 3)
  manager = checkpointing.create_manager(str(tmp_path), 2)
  checkpointing.save(manager, saved)
  manager.wait_until_finished()
  template = train_state.create(restored_cfg, jax.random.PRNGKey(0))
  restored = restore(str(tmp_path), restored_cfg)
  assert int(restored.step) == 3
  assert_trees_close(restored.g_params, saved.g_params)
  assert_trees_close(restored.g_opt_state, saved.g_opt_state)
  # D's fields are the template's: none, or a fresh D.
  assert_trees_close(restored.d_params, template.d_params)
  assert bool(jax.tree.leaves(restored.d_params)) == (not saved_with_d)


def test_checkpoints_of_orbaxs_standard_handler_restore_and_the_reverse(tmp_path):
  """Workdirs saved through Orbax's StandardCheckpointHandler (before CPU saves read one copy)."""
  cfg = config()
  state = train_state.create(cfg, jax.random.PRNGKey(1))
  state = state.replace(step=state.step + 5)
  standard = ocp.CheckpointManager(checkpointing.workdir_path(str(tmp_path / 'old')) /
                                   'checkpoints')
  standard.save(5, args=ocp.args.StandardSave(state))
  standard.wait_until_finished()
  restored = restore(str(tmp_path / 'old'), cfg)
  assert int(restored.step) == 5
  assert_trees_close(restored, state, rtol=0, atol=0)
  manager = checkpointing.create_manager(str(tmp_path / 'new'), 2)
  checkpointing.save(manager, state)
  manager.wait_until_finished()
  reader = ocp.CheckpointManager(checkpointing.workdir_path(str(tmp_path / 'new')) /
                                 'checkpoints')
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  assert_trees_close(reader.restore(5, args=ocp.args.StandardRestore(abstract)), state,
                     rtol=0, atol=0)


def test_cpu_saves_replicated_arrays_without_a_slice_per_device(tmp_path, caplog):
  """On CPU each replicated array is written from one copy: no slice is compiled per device."""
  cfg = config()
  cfg.model.gen_features = 5  # shapes no other test saves, so no compiled slice is cached
  mesh = parallel.create_mesh()
  state = jax.jit(functools.partial(train_state.create, cfg),
                  out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(0))
  assert len(state.g_params['Conv_0']['kernel'].sharding.device_set) == 8
  manager = checkpointing.create_manager(str(tmp_path), 2)
  with jax.log_compiles(), caplog.at_level(logging.WARNING):
    checkpointing.save(manager, state)
    manager.wait_until_finished()
  compiled = [r.getMessage() for r in caplog.records if 'Compiling' in r.getMessage()]
  assert not [m for m in compiled if 'slice' in m], compiled
  assert_trees_close(restore(str(tmp_path), cfg), state, rtol=0, atol=0)
