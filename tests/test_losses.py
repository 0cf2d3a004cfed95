"""Losses against NumPy references, under jit and without."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from ce_jax import losses, masks


def np_bce(logits, labels):
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


class ReconstructionLossTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.target = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    self.prediction = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    m = masks.center(3, (16, 16), hole_size=8, overlap=2, overlap_weight=10.0)
    self.weight = np.asarray(m.weight)

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_numpy(self):
    fn = self.variant(losses.reconstruction_loss)
    got = fn(target=self.target, prediction=self.prediction, weight=self.weight)
    w = self.weight.astype(np.float64)
    sq = (self.target.astype(np.float64) - self.prediction) ** 2
    expected = (w * sq).sum() / (w.sum() * 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_gradient_zero_outside_mask_and_band_weighs_ten(self):
    grad_fn = self.variant(jax.grad(
        lambda p: losses.reconstruction_loss(target=self.target, prediction=p,
                                             weight=self.weight)))
    g = np.asarray(grad_fn(self.prediction))
    outside = np.broadcast_to(self.weight == 0, g.shape)
    self.assertTrue(np.all(g[outside] == 0.0))
    # d/dp of w·(x − p)² is −2w(x − p): divided by (x − p), band pixels give 10× hole pixels.
    ratio = np.abs(g / (self.target - self.prediction))
    hole = np.broadcast_to(self.weight == 1, g.shape)
    band = np.broadcast_to(self.weight == 10, g.shape)
    self.assertTrue(hole.any() and band.any())
    np.testing.assert_allclose(ratio[band] / ratio[hole].mean(), 10.0, rtol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_independent_of_batch_and_hole_size(self):
    fn = self.variant(losses.reconstruction_loss)
    t, p = self.target[:1], self.prediction[:1]
    err = np.ones_like(t) * 0.5
    small = masks.center(1, (16, 16), hole_size=6, overlap=0, overlap_weight=1.0).weight
    large = masks.center(1, (16, 16), hole_size=12, overlap=0, overlap_weight=1.0).weight
    for w in (small, large):
      np.testing.assert_allclose(fn(target=t, prediction=t + err, weight=w), 0.25, rtol=1e-6)
    tiled = np.concatenate([t, t, t, t])
    np.testing.assert_allclose(
        fn(target=tiled, prediction=np.concatenate([p] * 4), weight=np.concatenate([small] * 4)),
        fn(target=t, prediction=p, weight=small), rtol=1e-6)


class AdversarialLossTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_discriminator_loss_matches_numpy(self):
    real = np.array([2.0, -1.0, 0.5], np.float32)
    fake = np.array([-3.0, 0.1, 1.5], np.float32)
    got = self.variant(losses.discriminator_loss)(real_logit=real, fake_logit=fake)
    expected = np_bce(real, 1).mean() + np_bce(fake, 0).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_generator_loss_matches_numpy(self):
    fake = np.array([-3.0, 0.1, 1.5], np.float32)
    got = self.variant(losses.generator_adversarial_loss)(fake_logit=fake)
    np.testing.assert_allclose(got, np_bce(fake, 1).mean(), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1e4, -1e4, 1e30, -1e30)
  def test_finite_for_extreme_logits(self, logit):
    logits = jnp.full((4,), logit, jnp.float32)
    d = self.variant(losses.discriminator_loss)(real_logit=logits, fake_logit=logits)
    g = self.variant(losses.generator_adversarial_loss)(fake_logit=logits)
    grad = jax.grad(lambda x: losses.discriminator_loss(real_logit=x, fake_logit=x))(logits)
    self.assertTrue(np.isfinite(d) and np.isfinite(g) and np.all(np.isfinite(grad)))
    # A confident wrong answer costs about |logit|, not inf.
    np.testing.assert_allclose(d, abs(logit), rtol=1e-3)

  @chex.variants(with_jit=True, without_jit=True)
  def test_joint_loss_weights(self):
    got = self.variant(losses.joint_loss, static_argnames=('rec_weight', 'adv_weight'))(
        rec=jnp.float32(2.0), adv=jnp.float32(3.0), rec_weight=0.999, adv_weight=0.001)
    np.testing.assert_allclose(got, 0.999 * 2 + 0.001 * 3, rtol=1e-6)


class FamilyLossTest(chex.TestCase, parameterized.TestCase):
  """Hinge (SN-PatchGAN) and L1 (DeepFill v2), on patch logits `[B, h, w]`."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(1)
    self.real = rng.normal(0, 2, (2, 3, 3)).astype(np.float32)
    self.fake = rng.normal(0, 2, (2, 3, 3)).astype(np.float32)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hinge_discriminator_loss_matches_numpy(self):
    fn = self.variant(losses.discriminator_loss, static_argnames=('kind',))
    got = fn(real_logit=self.real, fake_logit=self.fake, kind='hinge')
    r, f = self.real.astype(np.float64), self.fake.astype(np.float64)
    expected = np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hinge_generator_loss_is_minus_mean_logit(self):
    fn = self.variant(losses.generator_adversarial_loss, static_argnames=('kind',))
    np.testing.assert_allclose(fn(fake_logit=self.fake, kind='hinge'),
                               -self.fake.astype(np.float64).mean(), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hinge_is_zero_beyond_the_margin(self):
    fn = self.variant(losses.discriminator_loss, static_argnames=('kind',))
    got = fn(real_logit=np.full((2, 4), 1.5, np.float32),
             fake_logit=np.full((2, 4), -2.0, np.float32), kind='hinge')
    np.testing.assert_allclose(got, 0.0, atol=0)

  @chex.variants(with_jit=True, without_jit=True)
  def test_bce_on_patch_logits_averages_every_logit(self):
    fn = self.variant(losses.discriminator_loss, static_argnames=('kind',))
    got = fn(real_logit=self.real, fake_logit=self.fake, kind='bce')
    expected = np_bce(self.real, 1).mean() + np_bce(self.fake, 0).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters('l1', 'log_l2')
  def test_other_reconstruction_kinds_match_numpy(self, kind):
    rng = np.random.default_rng(2)
    t, p = (rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32) for _ in range(2))
    w = masks.center(3, (8, 8), hole_size=4, overlap=1, overlap_weight=10.0).weight
    fn = self.variant(losses.reconstruction_loss, static_argnames=('kind',))
    got = fn(target=t, prediction=p, weight=w, kind=kind)
    w64, diff = np.asarray(w, np.float64), t.astype(np.float64) - p
    if kind == 'l1':
      expected = (w64 * np.abs(diff)).sum() / (w64.sum() * 3)
    else:  # Each image's weighted L2, then the mean of their logs.
      per_image = (w64 * diff ** 2).sum(axis=(1, 2, 3)) / (w64.sum(axis=(1, 2, 3)) * 3)
      expected = np.mean(np.log(per_image + losses.LOG_L2_EPS))
    np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_log_l2_weighs_each_image_by_its_own_error(self):
    # Two images, errors 0.01 and 0.5: plain L2's gradient follows the large
    # error; log L2's gradient per unit of error is 1 / (own MSE), so the
    # nearly right image gets the larger push.
    t = np.zeros((2, 4, 4, 3), np.float32)
    p = np.concatenate([np.full((1, 4, 4, 3), 0.01), np.full((1, 4, 4, 3), 0.5)]).astype(
        np.float32)
    w = np.ones((2, 4, 4, 1), np.float32)
    for kind, small_wins in (('l2', False), ('log_l2', True)):
      g = jax.grad(lambda q, kind=kind: losses.reconstruction_loss(
          target=t, prediction=q, weight=w, kind=kind))(p)
      small, large = float(np.abs(g[0]).sum()), float(np.abs(g[1]).sum())
      self.assertEqual(small > large, small_wins, kind)

  @parameterized.parameters(('reconstruction_loss', 'l3'), ('discriminator_loss', 'wgan'))
  def test_unknown_kind_is_named(self, name, kind):
    args = ({'target': np.zeros((1, 2, 2, 3)), 'prediction': np.zeros((1, 2, 2, 3)),
             'weight': np.ones((1, 2, 2, 1))} if name == 'reconstruction_loss'
            else {'real_logit': np.zeros(2), 'fake_logit': np.zeros(2)})
    with self.assertRaisesRegex(ValueError, f"kind='{kind}'"):
      getattr(losses, name)(**args, kind=kind)
