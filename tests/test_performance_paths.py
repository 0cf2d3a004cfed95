"""The fast paths: same math as the plain forms, bf16 compute, and no retracing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ce_jax import models, parallel, train, train_state
from configs import test as test_config

TOL = {'rtol': 1e-5, 'atol': 1e-5}
NHWC = ('NHWC', 'HWIO', 'NHWC')


def plain_conv(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=NHWC)


def fast_conv(x, kernel, stride, padding):
  dims = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
  return models.conv_general_dilated(x, kernel, (stride, stride), padding,
                                     dimension_numbers=dims)


@pytest.mark.parametrize('name,x_shape,k_shape,stride,padding', [
    ('whole-input matmul', (3, 4, 4, 6), (4, 4, 6, 5), 1, 'VALID'),
    ('stride-2 downsample', (3, 8, 6, 5), (4, 4, 5, 7), 2, ((1, 1), (1, 1))),
    ('other convolutions', (3, 7, 7, 5), (3, 3, 5, 4), 1, ((1, 1), (1, 1))),
])
def test_fast_conv_matches_lax_in_value_and_gradient(name, x_shape, k_shape, stride, padding):
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, x_shape)
  kernel = jax.random.normal(kk, k_shape) / np.sqrt(np.prod(k_shape[:3]))
  expected, plain_vjp = jax.vjp(functools.partial(plain_conv, stride=stride, padding=padding),
                                x, kernel)
  got, fast_vjp = jax.vjp(functools.partial(fast_conv, stride=stride, padding=padding),
                          x, kernel)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), err_msg=name, **TOL)
  cotangent = jax.random.normal(kc, expected.shape)
  for a, b in zip(fast_vjp(cotangent), plain_vjp(cotangent), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), err_msg=name, **TOL)


def test_whole_input_convolution_becomes_a_matmul():
  x, kernel = jnp.ones((2, 4, 4, 3)), jnp.ones((4, 4, 3, 5))
  hlo = jax.jit(fast_conv, static_argnums=(2, 3)).lower(x, kernel, 1, 'VALID').as_text()
  assert 'dot_general' in hlo and 'convolution' not in hlo


def test_project_up_is_the_transposed_convolution_of_a_pixel():
  # ConvTranspose2d(k=n, s=1, p=0) of a 1×1 map: output pixel (h, w) is x · kernel[h, w].
  x = jax.random.normal(jax.random.key(0), (3, 6))
  layer = models.ProjectUp(features=5, size=4)
  variables = layer.init(jax.random.key(1), x)
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  expected = np.einsum('bc,hwcd->bhwd', np.asarray(x, np.float64), kernel)
  np.testing.assert_allclose(np.asarray(layer.apply(variables, x)), expected, **TOL)


def _setup(config):
  """State and compiled step exactly as `train.train_and_evaluate` builds them."""
  mesh = parallel.create_mesh()
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  gen, disc = models.create_models(config)
  state = jax.jit(functools.partial(train_state.create, config),
                  out_shardings=repl)(jax.random.PRNGKey(0))
  return state, gen, disc, repl, data


def _batches(config, data, num):
  size, b = config.data.image_size, config.train.batch_size
  for i in range(num):
    image = np.random.default_rng(i).uniform(-1, 1, (b, size, size, 3)).astype(np.float32)
    yield parallel.global_batch({'image': image}, data)


def test_bfloat16_step_keeps_float32_params_and_finite_losses():
  config = test_config.get_config()
  config.model.dtype = 'bfloat16'
  state, gen, disc, repl, data = _setup(config)
  step = jax.jit(functools.partial(train.train_step, config=config, gen=gen, disc=disc),
                 in_shardings=(repl, data), out_shardings=(repl, repl))
  batches = list(_batches(config, data, 2))
  assert 'bf16' in step.lower(state, batches[0]).as_text()  # the compute is bf16
  for batch in batches:
    state, metrics = step(state, batch)
  for name, value in metrics.items():
    assert value.dtype == jnp.float32, name
    assert np.isfinite(float(value)), name
  for part in ('g_params', 'g_batch_stats', 'g_opt_state', 'd_params', 'd_batch_stats',
               'd_opt_state'):
    for leaf in jax.tree.leaves(getattr(state, part)):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32, part
  assert int(state.step) == 2


def test_no_retracing_over_three_steps():
  config = test_config.get_config()
  state, gen, disc, repl, data = _setup(config)
  chex.clear_trace_counter()

  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return train.train_step(state, batch, config=config, gen=gen, disc=disc)

  step_fn = jax.jit(step, in_shardings=(repl, data), out_shardings=(repl, repl),
                    donate_argnums=0)
  # Through `parallel.prefetch`, as the training loop feeds it.
  for batch in parallel.prefetch(iter(
      {'image': np.asarray(b['image'])} for b in _batches(config, data, 3)), data):
    state, _ = step_fn(state, batch)
  assert int(state.step) == 3
  assert step_fn._cache_size() == 1


def test_global_norm_matches_optax_tree_norm():
  tree = {'a': jax.random.normal(jax.random.key(1), (4, 4, 3, 5)),
          'b': [jnp.arange(7.0) - 3.0, jnp.full((2, 3), -0.5)]}
  np.testing.assert_allclose(train.global_norm(tree), optax.tree.norm(tree), rtol=1e-6)
  np.testing.assert_allclose(train.global_norm(tree), np.sqrt(sum(
      np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))), rtol=1e-6)


def test_apply_gradients_is_optax_on_finite_steps_and_keeps_state_on_nan():
  tx = optax.adam(1e-2, b1=0.5)
  keys = jax.random.split(jax.random.key(2), 4)
  params = {'w': jax.random.normal(keys[0], (3, 4)), 'b': jnp.zeros(4)}
  ours, ref = (params, tx.init(params)), (params, tx.init(params))
  step = jax.jit(functools.partial(train.apply_gradients, tx))

  @jax.jit
  def reference(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for key in keys[1:]:
    grads = {name: jax.random.normal(key, p.shape) for name, p in params.items()}
    new_params, new_state, grad_norm, param_norm = step(*ours, grads)
    ref = reference(*ref, grads)
    chex.assert_trees_all_close((new_params, new_state), ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad_norm, optax.tree.norm(grads), rtol=1e-6)
    np.testing.assert_allclose(param_norm, optax.tree.norm(new_params), rtol=1e-6)
    ours = (new_params, new_state)

  nan_grads = {'w': jnp.full((3, 4), jnp.nan), 'b': jnp.ones(4)}
  new_params, new_state, grad_norm, _ = step(*ours, nan_grads)
  assert not np.isfinite(grad_norm)
  chex.assert_trees_all_equal(new_params, ours[0])
  chex.assert_trees_all_equal(optax.tree.get(new_state, 'mu'), optax.tree.get(ours[1], 'mu'))
