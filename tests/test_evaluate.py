"""ce_jax.evaluate on a model trained for two steps of configs/test.py."""

import json
import os
import re
import subprocess
import sys

import fid_fixture
import jax
import numpy as np
import pytest

from ce_jax import (
  checkpointing,
  cli,
  completion,
  evaluate,
  metrics,
  perceptual,
  run_config,
  train,
  train_state,
  trained,
)
from ce_jax.errors import UserError
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ('model', 'telea', 'navier_stokes', 'smooth_fill', 'mean_fill')


def tiny_config():
  config = test_config.get_config()
  config.train.num_steps = 2
  config.train.eval_every = 2
  config.train.checkpoint_every = 2
  config.train.sample_every = 2
  return config


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('trained'))
  train.train_and_evaluate(tiny_config(), path)
  return path


@pytest.fixture(scope='module')
def summary(workdir):
  return evaluate.run(tiny_config(), workdir)


def parse_table(lines):
  """Rows of a Markdown table as lists of cell strings; checks the separator row."""
  rows = [[c.strip() for c in line.strip().strip('|').split('|')] for line in lines]
  header, sep, body = rows[0], rows[1], rows[2:]
  assert all(set(c) <= set('-:') and c for c in sep) and len(sep) == len(header)
  assert all(len(r) == len(header) for r in body)
  return header, body


def test_json_has_every_metric_for_model_and_baselines(workdir, summary):
  with open(os.path.join(workdir, 'eval_2.json')) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(summary))
  assert saved['step'] == 2 and saved['num_images'] == 8
  assert tuple(saved['methods']) == METHODS
  for values in saved['methods'].values():
    assert set(values) == set(metrics.NAMES + metrics.LPIPS_NAMES)
    assert all(np.isfinite(v) for v in values.values())
    assert values['hole_lpips'] >= 0 and values['image_lpips'] >= 0
  # Telea keeps the known pixels, so its whole-image error is the hole error diluted.
  telea = saved['methods']['telea']
  assert telea['image_psnr'] > telea['hole_psnr']
  assert 'area_bins' not in saved  # center masks all have the same area


def test_model_scores_match_training_eval(workdir, summary):
  with checkpointing.create_best_manager(workdir) as best:
    logged = best.metrics(best.best_step())[checkpointing.BEST_METRIC]
  np.testing.assert_allclose(summary['methods'][evaluate.MODEL]['hole_psnr'], logged,
                             rtol=1e-4)


def test_deterministic(workdir, summary, tmp_path):
  again = evaluate.run(tiny_config(), workdir, checkpoint='best', output_dir=str(tmp_path))
  assert again['methods'] == summary['methods']


def test_markdown_table_parses(workdir, summary):
  with open(os.path.join(workdir, 'eval_2.md')) as f:
    lines = [line for line in f.read().splitlines() if line.startswith('|')]
  header, body = parse_table(lines)
  assert header[0] == 'method'
  assert len(header) == 1 + len(metrics.NAMES) + len(metrics.LPIPS_NAMES)
  assert header[-2:] == ['hole LPIPS ↓', 'image LPIPS ↓']
  assert [r[0] for r in body] == ['Context Encoder (step 2)', 'OpenCV Telea',
                                  'OpenCV Navier–Stokes', 'smooth fill (no network)',
                                  'mean-pixel fill']
  telea = [float(c) for c in body[1][1:]]
  np.testing.assert_allclose(telea[0], summary['methods']['telea']['hole_psnr'], atol=0.005)
  np.testing.assert_allclose(telea[-2], summary['methods']['telea']['hole_lpips'], atol=0.0005)


def test_without_lpips(workdir, summary, tmp_path):
  plain = evaluate.run(tiny_config(), workdir, output_dir=str(tmp_path), lpips=False)
  for method, values in plain['methods'].items():
    assert set(values) == set(metrics.NAMES)
    assert values == {k: summary['methods'][method][k] for k in metrics.NAMES}
  assert 'LPIPS' not in evaluate.markdown(plain)


def test_fid_with_a_small_random_inception(workdir, summary, tmp_path):
  weights = str(tmp_path / 'inception.npz')
  fid_fixture.write_random_weights(weights)
  out = evaluate.run(tiny_config(), workdir, output_dir=str(tmp_path), fid_weights=weights)
  for method in METHODS:
    values = out['methods'][method]
    assert np.isfinite(values['image_fid']) and values['image_fid'] > 0
    assert {k: v for k, v in values.items() if k != 'image_fid'} == summary['methods'][method]
  assert out['fid_weights'] == weights
  header, _ = parse_table([line for line in evaluate.markdown(out).splitlines()
                           if line.startswith('|')][:6])
  assert header[-1] == 'image FID ↓'
  with pytest.raises(UserError, match='--fid_weights=.*not found'):
    evaluate.run(tiny_config(), workdir, fid_weights=str(tmp_path / 'missing.npz'))


def test_sample_png(workdir, summary):
  from PIL import Image

  with Image.open(os.path.join(workdir, 'eval_2.png')) as im:
    assert im.size == (5 * 32 + 4 * 2, 4 * 32 + 3 * 2)


def test_complete_all_hands_over_each_method_as_it_is_ready(workdir):
  generator = trained.load(None, workdir)
  seen = []
  done = evaluate.complete_all(generator.variables, generator.config,
                               evaluate.eval_examples(generator.config),
                               on_method=lambda method, d: seen.append((method, set(d))))
  assert [method for method, _ in seen] == list(METHODS)
  for i, (method, keys) in enumerate(seen):
    # The method's completions are there, the later methods' not yet.
    assert method in keys and not keys & set(METHODS[i + 1:])
  assert set(done) == {'image', 'mask', 'masked', *METHODS}


def test_lpips_scores_in_chunks_match_the_per_image_metrics():
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (5, 64, 64, 3)).astype(np.float32)
  mask = np.zeros((5, 64, 64, 1), np.float32)
  mask[:4, 16:48, 16:48] = 1  # the last image has no hole
  done = {'image': image, 'mask': mask}
  for j, method in enumerate(METHODS):
    noise = rng.normal(0, 0.1 * (j + 1), image.shape).astype(np.float32)
    done[method] = np.where(mask > 0, np.clip(image + noise, -1, 1), image)
  params = perceptual.load('alexnet')
  scores = evaluate.LpipsScores(params, batch_size=2)  # chunks of 2, 2 and 1
  for method in METHODS:
    scores.add(method, done)
  got = scores.result()
  for method in METHODS:
    want = jax.jit(metrics.all_metrics)(metrics.to_unit(done[method]), metrics.to_unit(image),
                                        mask, params)
    for name in metrics.LPIPS_NAMES:
      np.testing.assert_allclose(got[method][name], want[name], rtol=1e-5, atol=1e-7)
  assert np.isnan(got['telea']['hole_lpips'][4]) and got['telea']['image_lpips'][4] < 1e-9
  # More noise, further away.
  assert np.all(np.diff([np.mean(got[m]['hole_lpips'][:4]) for m in METHODS]) > 0)


def test_missing_and_incompatible_checkpoints(workdir, tmp_path):
  with pytest.raises(UserError, match='holds no checkpoints/'):
    trained.load(tiny_config(), str(tmp_path))
  with pytest.raises(UserError, match=r'available steps: \[2\]'):
    trained.load(None, workdir, '7')
  wide = tiny_config()
  wide.model.gen_features = 16
  with pytest.raises(UserError, match="config.json fits it: leave out --config") as e:
    trained.load(wide, workdir)
  assert 'g_params/' in str(e.value)


def test_a_run_without_saved_config_needs_one_and_names_the_match(tmp_path):
  state = train_state.create(tiny_config(), jax.random.PRNGKey(0))
  with checkpointing.create_manager(str(tmp_path), 1) as manager:
    checkpointing.save(manager, state)
  with pytest.raises(UserError, match='holds no config.json'):
    trained.load(None, str(tmp_path))
  wide = tiny_config()
  wide.model.gen_features = 16
  with pytest.raises(UserError, match='trained with configs/test.py'):
    trained.load(wide, str(tmp_path))


def test_restores_only_the_generator_inference_weights(workdir):
  generator = trained.load(None, workdir)
  assert set(generator.variables) == {'params', 'batch_stats'}
  assert generator.step == 2 and run_config.differences(generator.config, tiny_config()) == {}
  full = checkpointing.restore_or_init(
      checkpointing.create_manager(workdir, 2), train_state.create(tiny_config(),
                                                                   jax.random.PRNGKey(0)))
  expected = completion.generator_variables(full, tiny_config())  # EMA weights if kept
  for a, b in zip(jax.tree.leaves(generator.variables), jax.tree.leaves(expected), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_area_bins_for_freeform_masks(tmp_path):
  config = tiny_config()
  config.mask.kind = 'freeform'
  config.model.output = 'full'
  state = train_state.create(config, jax.random.PRNGKey(0))
  with checkpointing.create_manager(str(tmp_path), 1) as manager:
    checkpointing.save(manager, state)
  run_config.save(config, tmp_path)
  summary = evaluate.run(None, str(tmp_path))
  bins = summary['area_bins']
  assert sum(b['num_images'] for b in bins) == summary['num_images']
  assert all(tuple(b['methods']) == METHODS for b in bins)
  assert all('hole_lpips' in v for b in bins for v in b['methods'].values())
  with open(tmp_path / 'eval_0.md') as f:
    assert 'Hole area' in f.read()


@pytest.fixture
def no_compilation_cache():
  """JAX's cache setting cleared for one test (conftest.py sets one for the run)."""
  saved = jax.config.jax_compilation_cache_dir
  jax.config.update('jax_compilation_cache_dir', None)
  yield
  jax.config.update('jax_compilation_cache_dir', saved)


def test_an_unusable_compilation_cache_is_an_error_only_when_asked_for(tmp_path, caplog,
                                                                       no_compilation_cache):
  blocked = tmp_path / 'a_file'
  blocked.write_text('')
  assert jax.config.jax_compilation_cache_dir is None  # nothing set for this test
  with pytest.raises(UserError, match=f'--compilation_cache={blocked}/xla: cannot create'):
    cli.use_compilation_cache(str(blocked / 'xla'))
  cli.use_compilation_cache(str(blocked / 'xla'), required=False)  # the default place
  assert 'Running without the cache' in caplog.text
  assert jax.config.jax_compilation_cache_dir is None


def test_command_line_needs_only_the_workdir_and_is_quiet(workdir, tmp_path):
  cache = tmp_path / 'xla'
  proc = subprocess.run(
      [sys.executable, '-m', 'ce_jax.evaluate', f'--workdir={workdir}', '--checkpoint=2',
       f'--output_dir={tmp_path}', f'--compilation_cache={cache}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**{k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'},
           'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0'})
  assert proc.returncode == 0, proc.stderr[-2000:]
  # Compiled programs are kept for the next run (every one, at a 0 s threshold).
  kept = {name.split('-')[0] for name in os.listdir(cache)}
  assert {'jit_eval_step', 'jit_all_metrics', 'jit_lpips_features'} <= kept, kept
  assert '| OpenCV Telea |' in proc.stdout
  # No framework banners (TensorFlow's oneDNN notice, absl's pre-init warning) or INFO lines.
  assert 'oneDNN' not in proc.stderr and 'InitializeLog' not in proc.stderr, proc.stderr
  sources = set(re.findall(r'^I\d{4} [\d:.]+ +\d+ (\w+\.py):', proc.stderr, re.M))
  assert sources <= set(os.listdir(os.path.join(ROOT, 'ce_jax'))), proc.stderr
