"""ce_jax.export: the generator alone, which evaluate and inpaint take like a workdir."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image

from ce_jax import checkpointing, evaluate, export, inpaint, run_config, train_state, trained
from ce_jax.errors import UserError
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(ema_decay=0.0):
  c = test_config.get_config()
  c.train.ema_decay = ema_decay
  return c


def du(path):
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def save_run(path, ema_decay=0.0):
  """A saved state (with EMA weights unlike the live ones when `ema_decay` > 0), config.json."""
  c = config(ema_decay)
  state = train_state.create(c, jax.random.PRNGKey(0))
  if c.train.ema_decay > 0:
    state = state.replace(g_ema=jax.tree.map(lambda x: x * 0.5, state.g_ema))
  with checkpointing.create_manager(str(path), 1) as manager:
    checkpointing.save(manager, state.replace(step=np.int32(3)))
  run_config.save(c, path)
  return str(path)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return save_run(tmp_path_factory.mktemp('run'))


@pytest.fixture
def photo(tmp_path):
  path = tmp_path / 'photo.png'
  Image.fromarray(skimage.data.astronaut()[100:300, 150:400]).save(path)
  return str(path)


@pytest.mark.parametrize('ema_decay', [0.0, 0.9], ids=['live', 'ema'])
def test_export_inpaints_the_same_pixels_as_the_workdir(ema_decay, photo, tmp_path):
  workdir = save_run(tmp_path / 'run', ema_decay)
  out = export.export(None, workdir, str(tmp_path / 'export'))
  assert sorted(os.listdir(out)) == ['config.json', 'generator']
  assert du(out) < du(os.path.join(workdir, 'checkpoints'))
  from_run, from_export = tmp_path / 'run.png', tmp_path / 'export.png'
  inpaint.run(None, workdir, 'latest', photo, 'center', str(from_run))
  inpaint.run(None, out, 'latest', photo, 'center', str(from_export))
  a, b = np.asarray(Image.open(from_run)), np.asarray(Image.open(from_export))
  np.testing.assert_array_equal(a, b)
  assert (a != np.asarray(Image.open(photo))).any()
  exported, restored = trained.load(None, out), trained.load(None, workdir)
  assert exported.step == restored.step == 3
  same = jax.tree.map(lambda x, y: np.array_equal(x, y), exported.variables, restored.variables)
  assert all(jax.tree.leaves(same))


def test_bfloat16_export_is_smaller_and_loads_as_float32(workdir, photo, tmp_path):
  f32 = export.export(None, workdir, str(tmp_path / 'f32'))
  bf16 = export.export(None, workdir, str(tmp_path / 'bf16'), dtype='bfloat16')
  assert du(bf16) < du(f32)
  loaded, full = trained.load(None, bf16), trained.load(None, workdir)
  for x, y in zip(jax.tree.leaves(loaded.variables), jax.tree.leaves(full.variables),
                  strict=True):
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-2, atol=1e-6)
  inpaint.run(None, bf16, 'latest', photo, 'center', str(tmp_path / 'bf16.png'))


def test_evaluate_takes_an_export(workdir, tmp_path):
  out = export.export(None, workdir, str(tmp_path / 'export'))
  summary = evaluate.run(None, out)
  assert summary['step'] == 3 and summary['checkpoint'] == os.path.join(out, 'generator')
  assert os.path.exists(os.path.join(out, 'eval_3.json'))


def test_export_mistakes_are_clear(workdir, tmp_path):
  out = export.export(None, workdir, str(tmp_path / 'export'))
  with pytest.raises(UserError, match='already holds an export'):
    export.export(None, workdir, out)
  with pytest.raises(UserError, match='is already an export'):
    export.export(None, out, str(tmp_path / 'again'))
  with pytest.raises(UserError, match='an export, which holds one generator'):
    trained.load(None, out, 'best')
  wide = test_config.get_config()
  wide.model.gen_features = 16
  with pytest.raises(UserError, match='does not fit --config'):
    trained.load(wide, out)


def test_command_line(workdir, tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'ce_jax.export', f'--workdir={workdir}',
       f'--output={tmp_path / "e"}', '--dtype=bfloat16'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == [str(tmp_path / 'e')]
  assert run_config.load(tmp_path / 'e').model.gen_features == 8
