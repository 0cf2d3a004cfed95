"""The fast paths: same math as the plain forms, bf16 compute, and no retracing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ce_jax import models, parallel, train, train_state
from ce_jax.models import layers
from configs import test as test_config

TOL = {'rtol': 1e-5, 'atol': 1e-5}
NHWC = ('NHWC', 'HWIO', 'NHWC')


def plain_conv(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=NHWC)


@pytest.mark.parametrize('name,rewrite,x_shape,k_shape,stride,padding', [
    ('whole-input matmul', layers.whole_input_conv, (3, 4, 4, 6), (4, 4, 6, 5), 1, 'VALID'),
    ('stride-2 downsample', layers.stride2_conv, (3, 8, 6, 5), (4, 4, 5, 7), 2,
     ((1, 1), (1, 1))),
])
def test_conv_rewrites_match_lax_in_value_and_gradient(name, rewrite, x_shape, k_shape, stride,
                                                       padding):
  kx, kk, kc = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, x_shape)
  kernel = jax.random.normal(kk, k_shape) / np.sqrt(np.prod(k_shape[:3]))
  expected, plain_vjp = jax.vjp(functools.partial(plain_conv, stride=stride, padding=padding),
                                x, kernel)
  dims = jax.lax.conv_dimension_numbers(x_shape, k_shape, NHWC)
  got, fast_vjp = jax.vjp(lambda a, b: rewrite(a, b, (stride, stride), padding,
                                               dimension_numbers=dims), x, kernel)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), err_msg=name, **TOL)
  cotangent = jax.random.normal(kc, expected.shape)
  for a, b in zip(fast_vjp(cotangent), plain_vjp(cotangent), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), err_msg=name, **TOL)


def test_conv_rewrites_refuse_other_convolutions():
  x, kernel = jnp.ones((2, 7, 7, 3)), jnp.ones((3, 3, 3, 4))
  for rewrite in (layers.whole_input_conv, layers.stride2_conv):
    with pytest.raises(ValueError, match='not the convolution it rewrites'):
      rewrite(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)


def test_whole_input_convolution_becomes_a_matmul():
  x, kernel = jnp.ones((2, 4, 4, 3)), jnp.ones((4, 4, 3, 5))
  hlo = jax.jit(lambda a, b: layers.whole_input_conv(a, b, (1, 1), 'VALID',
                                                     dimension_numbers=NHWC)).lower(
                                                         x, kernel).as_text()
  assert 'dot_general' in hlo and 'convolution' not in hlo


def test_conv_rewrites_off_gives_the_same_networks():
  """`model.conv_rewrites='off'` (lax throughout) and 'auto': same outputs and gradients."""
  config = test_config.get_config()
  size = config.data.image_size
  x = jax.random.uniform(jax.random.key(1), (4, size, size, 4), minval=-1.0)
  results = {}
  for method in ('auto', 'off'):
    config.model.conv_rewrites = method
    gen, disc = models.create_models(config)
    g_vars = gen.init(jax.random.key(2), x, train=False)
    d_vars = disc.init(jax.random.key(3), x[:, :16, :16, :3], train=False)

    def loss(g_params, d_params, gen=gen, disc=disc, g_vars=g_vars, d_vars=d_vars):
      out, _ = gen.apply({**g_vars, 'params': g_params}, x, train=True, mutable=['batch_stats'])
      logit, _ = disc.apply({**d_vars, 'params': d_params}, out, train=True,
                            mutable=['batch_stats'])
      return jnp.mean(logit ** 2) + jnp.mean(out ** 2), out

    (value, out), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        g_vars['params'], d_vars['params'])
    hlo = jax.jit(loss).lower(g_vars['params'], d_vars['params']).as_text()
    results[method] = (value, out, grads, hlo.count('convolution('))
  auto, off = results['auto'], results['off']
  chex.assert_trees_all_close(auto[:3], off[:3], rtol=1e-5, atol=1e-6)
  assert auto[3] < off[3]  # the rewrites replaced some convolutions


def test_project_up_is_the_transposed_convolution_of_a_pixel():
  # ConvTranspose2d(k=n, s=1, p=0) of a 1×1 map: output pixel (h, w) is x · kernel[h, w].
  x = jax.random.normal(jax.random.key(0), (3, 6))
  layer = layers.ProjectUp(features=5, size=4)
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


def _plain_apply(tx, params, opt_state, grads):
  """`apply_gradients`' result without its write ordering: optax as documented."""
  updates, opt_state = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  return new_params, opt_state, train.global_norm(grads), train.global_norm(new_params)


def test_apply_gradients_updates_donated_buffers_in_place():
  """The claim `apply_gradients` exists for, read off the compiled step's memory statistics.

  A generator step with donated parameters and Adam state: updating in place
  needs no copy of them, where optax's plain update (on XLA:CPU) keeps new
  copies of a good part of them in temporary buffers.
  """
  config = test_config.get_config()
  config.model.bottleneck_dim = 4000  # parameters large enough to dwarf the activations
  gen, _ = models.create_models(config)
  x = jnp.zeros((8, config.data.image_size, config.data.image_size, 4))
  variables = gen.init(jax.random.key(0), x, train=False)
  params, tx = variables['params'], optax.adam(1e-3, b1=0.5)

  def step(params, opt_state, x, apply):
    def loss(p):
      out, _ = gen.apply({**variables, 'params': p}, x, train=True, mutable=['batch_stats'])
      return jnp.mean(out ** 2)
    return apply(tx, params, opt_state, jax.grad(loss)(params))[:2]

  temp = {}
  for name, apply in (('ours', train.apply_gradients), ('plain', _plain_apply)):
    compiled = jax.jit(functools.partial(step, apply=apply), donate_argnums=(0, 1)).lower(
        params, tx.init(params), x).compile()
    temp[name] = compiled.memory_analysis().temp_size_in_bytes
  param_bytes = sum(p.nbytes for p in jax.tree.leaves(params))
  assert temp['ours'] < temp['plain'] - param_bytes / 4, (temp, param_bytes)
