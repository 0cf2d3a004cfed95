"""Metrics: identical images, a known MSE, the hole/image relation, agreement with dm-pix."""

import chex
import dm_pix as pix
import jax
import numpy as np
from absl.testing import absltest

from ce_jax import metrics


def center_mask(batch, size, side):
  mask = np.zeros((batch, size, size, 1), np.float32)
  lo = (size - side) // 2
  mask[:, lo:lo + side, lo:lo + side] = 1.0
  return mask


def random_images(seed, shape):
  return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


class MetricsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_identical_images(self):
    a = random_images(0, (2, 32, 32, 3))
    out = self.variant(metrics.all_metrics)(a, a, center_mask(2, 32, 16))
    for name in ('hole_psnr', 'image_psnr'):
      np.testing.assert_allclose(out[name], metrics.MAX_PSNR)
    for name in ('hole_ssim', 'image_ssim'):
      np.testing.assert_allclose(out[name], 1.0, atol=1e-5)
    for name in ('hole_l1', 'image_l1', 'hole_l2', 'image_l2'):
      np.testing.assert_allclose(out[name], 0.0, atol=1e-7)
    self.assertEqual(set(out), set(metrics.NAMES) | {'hole_fraction'})
    for v in out.values():
      self.assertEqual(v.shape, (2,))

  @chex.variants(with_jit=True, without_jit=True)
  def test_known_error_against_the_formulas(self):
    mask = center_mask(1, 32, 16)  # f = 1/4
    target = np.full((1, 32, 32, 3), 0.5, np.float32)
    pred = target + 0.1 * mask  # hole off by 0.1 in every channel
    out = self.variant(metrics.all_metrics)(pred, target, mask)
    f = 0.25
    np.testing.assert_allclose(out['hole_fraction'], f)
    np.testing.assert_allclose(out['hole_l1'], 0.1, rtol=1e-4)
    np.testing.assert_allclose(out['image_l1'], f * 0.1, rtol=1e-4)
    np.testing.assert_allclose(out['hole_l2'], 0.01, rtol=1e-4)
    np.testing.assert_allclose(out['image_l2'], f * 0.01, rtol=1e-4)
    np.testing.assert_allclose(out['hole_psnr'], 20.0, rtol=1e-4)
    np.testing.assert_allclose(out['image_psnr'], 20.0 + 10 * np.log10(1 / f), rtol=1e-4)

  def test_image_psnr_is_hole_psnr_plus_fraction_term(self):
    target = random_images(1, (3, 32, 32, 3))
    mask = np.zeros((3, 32, 32, 1), np.float32)
    mask[0, 4:12, 4:12] = 1  # f = 1/16
    mask[1, 0:16] = 1  # f = 1/2
    mask[2, 10:13, 3:30] = 1
    pred = np.where(mask > 0, random_images(2, target.shape), target)  # known pixels exact
    out = jax.jit(metrics.all_metrics)(pred, target, mask)
    f = mask.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(out['image_psnr'], out['hole_psnr'] + 10 * np.log10(1 / f),
                               rtol=1e-4)
    np.testing.assert_allclose(out['image_l2'], f * out['hole_l2'], rtol=1e-4)

  def test_agrees_with_dm_pix(self):
    a, b = random_images(3, (2, 24, 24, 3)), random_images(4, (2, 24, 24, 3))
    full = np.ones((2, 24, 24, 1), np.float32)
    np.testing.assert_allclose(metrics.hole_psnr(a, b, full), pix.psnr(a, b), rtol=1e-4)
    np.testing.assert_allclose(metrics.image_psnr(a, b), pix.psnr(a, b), rtol=1e-6)
    np.testing.assert_allclose(metrics.hole_ssim(a, b, full), pix.ssim(a, b), rtol=1e-4)
    np.testing.assert_allclose(metrics.image_ssim(a, b), pix.ssim(a, b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics.hole_mse(a, b, full), pix.mse(a, b), rtol=1e-4)

  def test_ssim_window_matches_dm_pix_convolution(self):
    # Smooth images and a noisy copy: SSIM maps well inside (0, 1) everywhere.
    rng = np.random.default_rng(5)
    a = jax.image.resize(rng.random((2, 8, 10, 3)), (2, 40, 50, 3), 'cubic').clip(0, 1)
    b = (a + 0.05 * rng.standard_normal(a.shape)).clip(0, 1)
    a, b = np.float32(a), np.float32(b)
    ours = metrics._ssim_map(a, b)
    theirs = pix.ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5, return_map=True)
    self.assertEqual(ours.shape, (2, 30, 40, 3))
    self.assertGreater(float(np.min(theirs)), 0.05)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)

  def test_hole_ssim_averages_windows_centred_in_the_hole(self):
    a, b = random_images(5, (1, 32, 32, 3)), random_images(6, (1, 32, 32, 3))
    mask = center_mask(1, 32, 8)  # rows and columns 12..19
    ssim_map = np.asarray(pix.ssim(a, b, return_map=True))  # window (i, j) centred at (i+5, j+5)
    expected = ssim_map[0, 7:15, 7:15].mean()
    np.testing.assert_allclose(metrics.hole_ssim(a, b, mask), [expected], rtol=1e-4)

  def test_empty_hole_is_nan(self):
    a = random_images(7, (1, 16, 16, 3))
    out = metrics.all_metrics(a, a * 0.5, np.zeros((1, 16, 16, 1), np.float32))
    for name in metrics.NAMES:
      self.assertEqual(np.isnan(out[name][0]), name.startswith('hole_'), name)

  def test_to_unit(self):
    np.testing.assert_allclose(metrics.to_unit(np.array([-2.0, -1.0, 0.0, 1.0, 3.0])),
                               [0.0, 0.0, 0.5, 1.0, 1.0])


if __name__ == '__main__':
  absltest.main()
