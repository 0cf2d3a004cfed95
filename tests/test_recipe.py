"""The training recipe's parts: phases, G's EMA, random-size center holes, the I/O module."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ce_jax import completion, config_checks, evaluate, held_out, masks, models, train, train_state
from ce_jax.errors import UserError
from configs import test as test_config


def small_config(**loss):
  c = test_config.get_config()
  for k, v in loss.items():
    setattr(c.loss, k, v)
  return c


def step_once(config, phase):
  gen, disc = models.create_models(config)
  state = train_state.create(config, jax.random.PRNGKey(0))
  batch = {'image': jax.random.uniform(jax.random.PRNGKey(1), (8, 32, 32, 3), minval=-1, maxval=1)}
  fn = jax.jit(functools.partial(train.train_step, config=config, gen=gen, disc=disc, phase=phase))
  new, metrics = fn(state, batch)
  return state, new, metrics


def changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                        strict=True))


def test_phase_schedule():
  c = small_config(rec_only_steps=3, d_only_steps=2)
  assert [train_state.phase_at(c, s) for s in range(7)] == ['rec'] * 3 + ['d'] * 2 + ['joint'] * 2


@pytest.mark.parametrize('phase,g_moves,d_moves', [('rec', True, False), ('d', False, True),
                                                   ('joint', True, True)])
def test_each_phase_updates_only_its_networks(phase, g_moves, d_moves):
  old, new, metrics = step_once(small_config(), phase)
  assert int(new.step) == 1
  assert changed(old.g_params, new.g_params) == g_moves
  assert changed(old.g_opt_state, new.g_opt_state) == g_moves
  assert changed(old.g_ema, new.g_ema) == g_moves
  assert changed(old.d_params, new.d_params) == d_moves
  assert changed(old.d_opt_state, new.d_opt_state) == d_moves
  assert ('d_loss' in metrics) == d_moves and ('rec_loss' in metrics) == g_moves
  assert ('adv_loss' in metrics) == (phase == 'joint')


def test_rec_phase_g_update_ignores_the_adversarial_weight():
  _, a, _ = step_once(small_config(adv_weight=0.001), 'rec')
  _, b, _ = step_once(small_config(adv_weight=0.5), 'rec')
  for x, y in zip(jax.tree.leaves(a.g_params), jax.tree.leaves(b.g_params), strict=True):
    np.testing.assert_array_equal(x, y)


def test_ema_update_matches_numpy_with_its_ramp():
  c = small_config()
  c.train.ema_decay = 0.99
  ema = {'w': jnp.array([0.0, 1.0])}
  new = {'w': jnp.array([1.0, 3.0])}
  for t, expected_decay in ((0, 0.1), (5, 6 / 15), (1000, 0.99)):
    out = train.ema_update(c, ema, new, jnp.asarray(t))
    np.testing.assert_allclose(out['w'], expected_decay * np.array([0.0, 1.0])
                               + (1 - expected_decay) * np.array([1.0, 3.0]), rtol=1e-6)


def test_ema_off_keeps_no_copy_and_eval_uses_live_weights():
  c = small_config()
  c.train.ema_decay = 0.0
  state = train_state.create(c, jax.random.PRNGKey(0))
  assert state.g_ema == {}
  variables = completion.generator_variables(state, c)
  assert variables['params'] is state.g_params


def test_eval_uses_the_ema_weights():
  c = small_config()
  _, state, _ = step_once(c, 'rec')
  gen, _ = models.create_models(c)
  batch = {'image': jax.random.uniform(jax.random.PRNGKey(2), (4, 32, 32, 3), minval=-1,
                                       maxval=1)}
  out = held_out.eval_step(completion.generator_variables(state, c), batch,
                           jax.random.PRNGKey(0), config=c, gen=gen)
  hole = np.asarray(out['mask']) > 0
  live = state.replace(g_ema={'params': state.g_params, 'batch_stats': state.g_batch_stats})
  out_live = held_out.eval_step(completion.generator_variables(live, c), batch,
                                jax.random.PRNGKey(0), config=c, gen=gen)
  # Same known pixels, different fills: eval reads g_ema, not g_params.
  np.testing.assert_array_equal(np.asarray(out['completion'])[~hole.repeat(3, -1)],
                                np.asarray(batch['image'])[~hole.repeat(3, -1)])
  assert not np.allclose(np.asarray(out['completion']), np.asarray(out_live['completion']))


def test_bad_recipe_fields_are_named():
  c = small_config()
  c.train.ema_decay = 1.0
  with pytest.raises(UserError, match='train.ema_decay'):
    config_checks.check(c)
  c = small_config(rec_only_steps=-1)
  with pytest.raises(UserError, match='loss.rec_only_steps'):
    config_checks.check(c)
  c = small_config()
  c.optim.lr_schedule = 'linear'
  with pytest.raises(UserError, match="optim.lr_schedule='linear'"):
    config_checks.check(c)
  c.optim.lr_schedule, c.optim.final_lr_fraction = 'cosine', 1.5
  with pytest.raises(UserError, match='optim.final_lr_fraction=1.5'):
    config_checks.check(c)


@pytest.mark.parametrize('schedule', ['constant', 'cosine'])
def test_learning_rate_schedule_sets_each_adam_step(schedule):
  c = small_config()
  c.train.num_steps, c.optim.d_lr, c.optim.g_lr = 10, 1e-3, 2e-3
  c.optim.lr_schedule, c.optim.final_lr_fraction = schedule, 0.1
  g_tx, d_tx = train_state.optimizer(c, 'g_lr'), train_state.optimizer(c, 'd_lr')
  steps = np.arange(c.train.num_steps + 1)
  shape = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * steps / c.train.num_steps))
  for tx, lr in ((g_tx, 2e-3), (d_tx, 1e-3)):
    params = jnp.zeros(3)
    state = tx.init(params)
    sizes = []
    for _ in steps:
      # A constant gradient: each Adam step moves every weight by the learning rate.
      updates, state = tx.update(jnp.full(3, 0.5), state, params)
      sizes.append(-float(updates[0]))
    want = lr * (shape if schedule == 'cosine' else np.ones_like(shape))
    np.testing.assert_allclose(sizes, want, rtol=1e-4)


def test_random_center_holes_stay_inside_the_square():
  m = masks.center_random(jax.random.PRNGKey(0), 256, (64, 64), hole_size=32,
                          hole_range=(4, 32), overlap=2, overlap_weight=10.0)
  mask, weight = np.asarray(m.mask[..., 0]), np.asarray(m.weight[..., 0])
  inside = np.zeros((64, 64), bool)
  inside[16:48, 16:48] = True
  assert not mask[:, ~inside].any() and not weight[:, ~inside].any()
  rows, cols = mask.any(axis=2).sum(axis=1), mask.any(axis=1).sum(axis=1)
  assert rows.min() >= 4 and cols.min() >= 4
  assert rows.max() == 32 and cols.max() == 32
  assert len(np.unique(rows)) > 10  # Sizes vary across the batch.
  # Every hole is one filled rectangle, and its band weighs overlap_weight.
  np.testing.assert_array_equal(mask.sum(axis=(1, 2)), rows * cols)
  assert set(np.unique(weight)) <= {0.0, 1.0, 10.0}
  np.testing.assert_array_equal(weight == 1.0, mask == 1.0)


def test_random_center_holes_only_in_training():
  c = small_config().mask
  batch = {'image': jnp.zeros((4, 32, 32, 3))}
  fixed = masks.center(4, (32, 32), hole_size=16, overlap=2, overlap_weight=c.overlap_weight)
  for key in (0, 1):
    chex.assert_trees_all_equal(masks.from_config(c, jax.random.PRNGKey(key), batch), fixed)
  drawn = masks.from_config(c, jax.random.PRNGKey(0), batch, training=True)
  assert not np.array_equal(drawn.mask, fixed.mask)


def test_random_center_hole_range_is_checked():
  with pytest.raises(UserError, match='mask.hole_range'):
    masks.center_random(jax.random.PRNGKey(0), 2, (64, 64), hole_size=32, hole_range=(4, 40),
                        overlap=2, overlap_weight=10.0)


@pytest.mark.parametrize('output', ['center', 'full'])
def test_complete_keeps_known_pixels_and_fills_the_hole(output):
  c = small_config()
  c.model.output = output
  if output == 'full':
    c.mask.kind = 'random_blocks'
  gen, _ = models.create_models(c)
  state = train_state.create(c, jax.random.PRNGKey(0))
  image = jax.random.uniform(jax.random.PRNGKey(3), (2, 32, 32, 3), minval=-1, maxval=1)
  mask = masks.center(2, (32, 32), hole_size=16, overlap=2, overlap_weight=1.0).mask
  filled, x_in = completion.complete(gen, completion.generator_variables(state, c), image, mask,
                                     config=c)
  hole = np.asarray(mask[..., 0]) > 0
  np.testing.assert_array_equal(np.asarray(filled)[~hole], np.asarray(image)[~hole])
  assert not np.allclose(np.asarray(filled)[hole], np.asarray(image)[hole])
  np.testing.assert_allclose(np.asarray(x_in)[..., :3][hole],
                             np.broadcast_to(completion.fill_value(c), (hole.sum(), 3)))
  np.testing.assert_array_equal(np.asarray(x_in)[..., 3], hole.astype(np.float32))


def test_tiny_model_learns_to_inpaint_held_out_photos(tmp_path):
  """200 seeded steps of a narrow model on the embedded photos, judged on the held-out ones.

  Measured (3 seeds): 16.5–16.8 dB hole PSNR against 12.7 dB for the mean-pixel
  fill (an untrained generator: 11.5 dB), so a 2 dB margin has room to spare.
  """
  c = test_config.get_config()
  c.train.num_steps = c.train.eval_every = c.train.sample_every = 200
  c.train.checkpoint_every, c.train.log_every = 200, 50
  c.optim.d_lr = c.optim.g_lr = 1e-3
  c.loss.rec_only_steps = 200
  c.data.num_eval_examples = 32
  state = train.train_and_evaluate(c, str(tmp_path))
  done = evaluate.complete_all(completion.generator_variables(state, c), c,
                              evaluate.eval_examples(c))
  psnr = {m: v['hole_psnr'] for m, v in
          evaluate.summarise(evaluate.score(done), by_area=False)['methods'].items()}
  assert psnr[evaluate.MODEL] > psnr['mean_fill'] + 2.0, psnr


@pytest.mark.parametrize('offset', ['context_mean', 'smooth'])
def test_colour_offset_makes_completion_follow_a_colour_shift(offset):
  c = small_config()
  c.model.color_offset = offset
  gen, _ = models.create_models(c)
  state = train_state.create(c, jax.random.PRNGKey(0))
  image = jax.random.uniform(jax.random.PRNGKey(3), (2, 32, 32, 3), minval=-0.3, maxval=0.3)
  mask = masks.center(2, (32, 32), hole_size=16, overlap=2, overlap_weight=1.0).mask
  variables = completion.generator_variables(state, c)
  shift = jnp.asarray([0.2, -0.1, 0.05])
  filled, x_in = completion.complete(gen, variables, image, mask, config=c)
  shifted, x_in_shifted = completion.complete(gen, variables, image + shift, mask, config=c)
  hole = np.asarray(mask[..., 0]) > 0
  # G sees the same input, so the fill moves with the known pixels' colour...
  np.testing.assert_allclose(x_in_shifted, x_in, atol=1e-6)
  np.testing.assert_allclose(np.asarray(shifted)[hole], (np.asarray(filled) + shift)[hole],
                             atol=1e-5)
  # ...which the hole of G's input holds, as 0.
  if offset == 'context_mean':
    known_mean = np.asarray(image)[~hole].reshape(2, -1, 3).mean(axis=1)
    np.testing.assert_allclose(completion.color_offset(c, image, mask)[:, 0, 0], known_mean,
                               atol=1e-6)
  np.testing.assert_array_equal(np.asarray(x_in)[..., :3][hole], 0.0)
  np.testing.assert_array_equal(np.asarray(filled)[~hole], np.asarray(image)[~hole])
  c.model.color_offset = 'none'
  plain, _ = completion.complete(gen, variables, image, mask, config=c)
  assert not np.allclose(np.asarray(plain)[hole], np.asarray(filled)[hole], atol=1e-3)


@pytest.mark.parametrize('offset', ['context_mean', 'smooth'])
def test_colour_offset_in_training_makes_the_loss_shift_invariant(offset):
  c = small_config()
  c.model.color_offset = offset
  gen, disc = models.create_models(c)
  state = train_state.create(c, jax.random.PRNGKey(0))
  image = jax.random.uniform(jax.random.PRNGKey(1), (8, 32, 32, 3), minval=-0.3, maxval=0.3)
  fn = jax.jit(functools.partial(train.train_step, config=c, gen=gen, disc=disc, phase='rec'))
  losses = [float(fn(state, {'image': x})[1]['rec_loss']) for x in (image, image + 0.25)]
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
  c.model.color_offset = 'none'
  fn = jax.jit(functools.partial(train.train_step, config=c, gen=gen, disc=disc, phase='rec'))
  plain = [float(fn(state, {'image': x})[1]['rec_loss']) for x in (image, image + 0.25)]
  assert abs(plain[0] - plain[1]) > 1e-3 * plain[0]
  c.model.color_offset = 'mean'
  with pytest.raises(UserError, match="model.color_offset='mean'"):
    config_checks.check(c)


def test_smooth_offset_carries_the_border_colours_into_the_hole():
  c = small_config()
  c.model.color_offset, c.model.offset_sigma = 'smooth', 2.0
  mask = masks.center(1, (32, 32), hole_size=16, overlap=2, overlap_weight=1.0).mask
  # Left half red, right half blue: the hole's left side should stay red, its right side blue.
  image = jnp.zeros((1, 32, 32, 3)).at[:, :, :16, 0].set(1.0).at[:, :, 16:, 2].set(1.0)
  offset = np.asarray(completion.color_offset(c, image, mask))[0]
  np.testing.assert_allclose(offset[16, 10], [1.0, 0.0, 0.0], atol=0.02)
  np.testing.assert_allclose(offset[16, 21], [0.0, 0.0, 1.0], atol=0.02)
  # A constant image gives that constant everywhere, hole and border included.
  flat = jnp.full((1, 32, 32, 3), 0.3)
  np.testing.assert_allclose(completion.color_offset(c, flat, mask), 0.3, atol=1e-5)
  c.model.offset_sigma = 0.0
  with pytest.raises(UserError, match='model.offset_sigma=0.0'):
    config_checks.check(c)
