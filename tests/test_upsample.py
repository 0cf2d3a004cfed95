"""The sub-pixel up-sampling computes exactly the 4×4 stride-2 transposed convolution.

Both methods read the same `[4, 4, Cin, Cout]` kernel, so a checkpoint trained
with one runs with the other; these tests hold them to 1e-5 on random weights,
in value and in gradient, against a NumPy transcription of the definition.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ce_jax import models
from ce_jax.models import layers
from configs import test as test_config

TOL = {'rtol': 1e-5, 'atol': 1e-5}


def transposed_conv_reference(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """Torch's ConvTranspose2d(k=4, s=2, p=1) by its definition, in float64.

  Input pixel i scatters into output pixel o = 2·i + k − 1 through kernel tap k
  (per axis); outputs outside [0, 2H) are cropped (the padding of 1).
  """
  b, h, w, _ = x.shape
  full = np.zeros((b, 2 * h + 2, 2 * w + 2, kernel.shape[-1]))
  x, kernel = x.astype(np.float64), kernel.astype(np.float64)
  for ky in range(4):
    for kx in range(4):
      full[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2] += np.einsum('bhwc,cd->bhwd', x, kernel[ky, kx])
  return full[:, 1:2 * h + 1, 1:2 * w + 1]


def random_case(h: int, w: int, cin: int, cout: int, seed: int = 0):
  kx, kk = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(kx, (2, h, w, cin))
  kernel = jax.random.normal(kk, (4, 4, cin, cout)) / np.sqrt(4 * cin)
  return x, kernel


class UpsampleTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_both_methods_match_the_definition(self):
    x, kernel = random_case(5, 3, 6, 7)
    expected = transposed_conv_reference(np.asarray(x), np.asarray(kernel))
    for fn in (layers.upsample_transpose, layers.upsample_subpixel):
      y = self.variant(fn)(x, kernel)
      chex.assert_shape(y, (2, 10, 6, 7))
      np.testing.assert_allclose(np.asarray(y), expected, err_msg=fn.__name__, **TOL)

  def test_one_pixel_input_places_each_tap(self):
    # A single input pixel of 1 through a kernel whose tap (ky, kx) holds 10·ky + kx: the
    # 2×2 output window is taps 1..2 of each axis (the others fall in the cropped border).
    kernel = (10 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(np.float32)
    kernel = jnp.asarray(kernel)[:, :, None, None]
    y = layers.upsample_subpixel(jnp.ones((1, 1, 1, 1)), kernel)
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], [[11, 12], [21, 22]])

  def test_gradients_match(self):
    x, kernel = random_case(4, 6, 5, 3, seed=1)
    cotangent = jax.random.normal(jax.random.key(2), (2, 8, 12, 3))
    grads = []
    for fn in (layers.upsample_transpose, layers.upsample_subpixel):
      _, vjp = jax.vjp(fn, x, kernel)
      grads.append(vjp(cotangent))
    for a, b in zip(*grads, strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)

  def test_subpixel_kernel_is_a_rearrangement(self):
    # Every tap of the 4×4 kernel appears exactly once in the 2×2×(4·Cout) kernel.
    kernel = jnp.arange(4 * 4 * 2 * 3, dtype=jnp.float32).reshape(4, 4, 2, 3)
    sub = layers.subpixel_kernel(kernel)
    chex.assert_shape(sub, (2, 2, 2, 12))
    np.testing.assert_array_equal(np.sort(np.asarray(sub).ravel()),
                                  np.sort(np.asarray(kernel).ravel()))


@pytest.fixture(scope='module')
def generators():
  """(transpose G, sub-pixel G, fresh variables, variables for eval, input)."""
  config = test_config.get_config()
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 4), minval=-1, maxval=1)
  config.model.upsample = 'transpose'
  gen_t, _ = models.create_models(config)
  config.model.upsample = 'subpixel'
  gen_s, _ = models.create_models(config)
  fresh = variables = gen_t.init(jax.random.key(1), x, train=False)
  # Weights of unit gain (not N(0, 0.02)) and running statistics from a batch, so
  # that eval outputs are far from zero.
  params = jax.tree.map_with_path(
      lambda path, p: p * np.sqrt(p[..., 0].size) / 0.02 / 2 if path[-1].key == 'kernel' else p,
      variables['params'])
  variables = {**variables, 'params': params}
  for _ in range(20):
    _, stats = gen_t.apply(variables, x, train=True, mutable=['batch_stats'])
    variables = {**variables, **stats}
  return gen_t, gen_s, fresh, variables, x


def test_generator_params_fit_both_methods(generators):
  gen_t, gen_s, variables, _, x = generators
  chex.assert_trees_all_equal_shapes_and_dtypes(
      variables, gen_s.init(jax.random.key(1), x, train=False))


@pytest.mark.parametrize('train', [False, True])
def test_generator_same_output_from_the_same_params(generators, train):
  gen_t, gen_s, _, variables, x = generators
  outs = [g.apply(variables, x, train=train, mutable=['batch_stats'] if train else False)
          for g in (gen_t, gen_s)]
  if train:
    (y_t, stats_t), (y_s, stats_s) = outs
    chex.assert_trees_all_close(stats_t, stats_s, **TOL)
  else:
    y_t, y_s = outs
  chex.assert_shape(y_t, (4, 16, 16, 3))
  assert float(jnp.std(y_t)) > 1e-3  # not trivially equal
  np.testing.assert_allclose(np.asarray(y_t), np.asarray(y_s), **TOL)


def test_generator_param_gradients_match(generators):
  gen_t, gen_s, variables, _, x = generators

  def grads(gen):
    def loss(params):
      y, _ = gen.apply({**variables, 'params': params}, x, train=True, mutable=['batch_stats'])
      return jnp.sum(jnp.sin(3.0 * y))
    return jax.grad(loss)(variables['params'])

  # Through BatchNorm and five layers, float32 rounding grows with the gradient's
  # scale: 1e-5 of each leaf's largest entry.
  for a, b in zip(jax.tree.leaves(grads(gen_t)), jax.tree.leaves(grads(gen_s)), strict=True):
    scale = float(jnp.max(jnp.abs(a)))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * scale)
