"""The perceptual loss in the train step, hole LPIPS in training's eval, `train.best_metric`."""

import functools

import jax
import numpy as np
import pytest
from events import scalars

from ce_jax import checkpointing, config_checks, models, perceptual, train, train_state
from ce_jax.errors import UserError
from configs import test as test_config


def config(**fields):
  c = test_config.get_config()
  for k, v in fields.items():
    section, name = k.split('__')
    setattr(c[section], name, v)
  return c


@pytest.fixture(scope='module')
def vgg():
  return perceptual.load('vgg16')


def step_once(c, phase, vgg):
  gen, disc = models.create_models(c)
  state = train_state.create(c, jax.random.PRNGKey(0))
  batch = {'image': jax.random.uniform(jax.random.PRNGKey(1), (8, 32, 32, 3), minval=-1, maxval=1)}
  fn = jax.jit(functools.partial(train.train_step, config=c, gen=gen, disc=disc, phase=phase))
  return fn(state, batch, vgg if c.loss.perceptual_weight > 0 else None)


@pytest.mark.parametrize('phase', ['rec', 'joint'])
def test_perceptual_weight_adds_the_feature_distance_to_g_loss(phase, vgg):
  c = config(loss__perceptual_weight=0.5)
  new, m = step_once(c, phase, vgg)
  assert float(m['perceptual_loss']) > 0
  expected = 0.5 * m['perceptual_loss'] + (
      m['rec_loss'] if phase == 'rec' else
      c.loss.rec_weight * m['rec_loss'] + c.loss.adv_weight * m['adv_loss'])
  np.testing.assert_allclose(m['g_loss'], expected, rtol=1e-5)
  plain, m0 = step_once(config(), phase, None)
  assert 'perceptual_loss' not in m0
  np.testing.assert_allclose(m0['rec_loss'], m['rec_loss'], rtol=1e-6)  # Same masks and G.
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new.g_params),
                                                    jax.tree.leaves(plain.g_params), strict=True))


def test_eval_logs_hole_lpips_and_best_follows_the_chosen_metric(tmp_path):
  c = config(train__num_steps=4, train__eval_every=1, train__best_metric='eval_hole_lpips')
  train.train_and_evaluate(c, str(tmp_path))
  logged = scalars(str(tmp_path))
  assert sorted(logged['eval_hole_lpips']) == sorted(logged['eval_hole_psnr']) == [1, 2, 3, 4]
  lpips = logged['eval_hole_lpips']
  with checkpointing.create_best_manager(str(tmp_path), 'eval_hole_lpips') as best:
    step = best.best_step()
    kept = best.metrics(step)
  assert step == min(lpips, key=lambda s: (lpips[s], s))
  np.testing.assert_allclose(kept['eval_hole_lpips'], lpips[step], rtol=1e-5)
  np.testing.assert_allclose(kept['eval_hole_psnr'], logged['eval_hole_psnr'][step], rtol=1e-5)


@pytest.mark.parametrize('metric,values,kept', [
    ('eval_hole_psnr', [12.0, 11.0, 13.0, float('nan')], 3),
    ('eval_hole_lpips', [0.5, 0.6, 0.4, 0.45], 3)])
def test_save_if_best_keeps_the_best_by_its_mode(tmp_path, metric, values, kept):
  state = train_state.create(config(), jax.random.PRNGKey(0))
  with checkpointing.create_best_manager(str(tmp_path), metric) as manager:
    saved = [checkpointing.save_if_best(manager, state.replace(step=i + 1), {metric: v}, metric)
             for i, v in enumerate(values)]
    manager.wait_until_finished()
    assert manager.best_step() == kept
  assert saved == [True, False, True, False]


def test_best_by_lpips_replaces_a_checkpoint_kept_by_psnr(tmp_path):
  state = train_state.create(config(), jax.random.PRNGKey(0))
  with checkpointing.create_best_manager(str(tmp_path)) as manager:
    assert checkpointing.save_if_best(manager, state.replace(step=1), {'eval_hole_psnr': 20.0})
  with checkpointing.create_best_manager(str(tmp_path), 'eval_hole_lpips') as manager:
    assert checkpointing.save_if_best(manager, state.replace(step=2), {'eval_hole_lpips': 0.9},
                                      'eval_hole_lpips')
    manager.wait_until_finished()
    assert manager.all_steps() == [2]


def test_bad_fields_are_named():
  with pytest.raises(UserError, match='train.best_metric'):
    config_checks.check(config(train__best_metric='hole_psnr'))
  with pytest.raises(UserError, match='loss.perceptual_weight'):
    config_checks.check(config(loss__perceptual_weight=-1.0))
