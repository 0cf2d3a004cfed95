"""FID: the Fréchet distance against SciPy, and a small random Inception through the loader."""

import os

import fid_fixture
import jax
import numpy as np
import pytest
import scipy.linalg

from ce_jax import fid
from ce_jax.errors import UserError


def random_gaussian(rng, d):
  a = rng.normal(size=(d, d))
  return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


def scipy_frechet(mu1, s1, mu2, s2):
  """The formula as pytorch-fid writes it, with SciPy's general matrix square root."""
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  for d in (1, 5, 32):
    (mu1, s1), (mu2, s2) = random_gaussian(rng, d), random_gaussian(rng, d)
    np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2),
                               scipy_frechet(mu1, s1, mu2, s2), rtol=1e-8)


def test_frechet_distance_edge_cases():
  # One dimension: (μ₁ − μ₂)² + (σ₁ − σ₂)².
  np.testing.assert_allclose(fid.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]), 9 + 1)
  mu, s = random_gaussian(np.random.default_rng(1), 16)
  np.testing.assert_allclose(fid.frechet_distance(mu, s, mu, s), 0.0, atol=1e-9)
  # Rank-deficient covariances (fewer images than dimensions) stay finite and ≥ 0.
  feats = np.random.default_rng(2).normal(size=(2, 10, 64))
  value = fid.fid(feats[0], feats[1])
  assert np.isfinite(value) and value > 0


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('fid') / 'inception.npz')
  return path, fid_fixture.write_random_weights(path)


def test_loaded_weights_compute_the_saved_network(weights):
  path, variables = weights
  model, loaded = fid.load(path)
  assert model.width == 1 / 8
  images = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  got = jax.jit(fid.features, static_argnums=0)(model, loaded, images)
  x = jax.image.resize(images, (2, fid.SIZE, fid.SIZE, 3), 'linear', antialias=False)
  np.testing.assert_allclose(got, jax.jit(model.apply)(variables, x), rtol=1e-4, atol=1e-5)
  assert got.shape == (2, 256)


def test_fid_of_image_sets(weights):
  model, variables = fid.load(weights[0])
  rng = np.random.default_rng(4)
  real = np.tanh(rng.normal(size=(10, 32, 32, 3))).astype(np.float32)
  feats = fid.all_features(model, variables, real, batch_size=4)  # 4 + 4 + 2 (padded)
  assert feats.shape == (10, 256) and feats.dtype == np.float64
  np.testing.assert_allclose(feats[:4], fid.all_features(model, variables, real[:4]), rtol=1e-5)
  np.testing.assert_allclose(fid.fid(feats, feats), 0.0, atol=1e-6)
  near = fid.fid(feats, fid.all_features(model, variables, np.clip(real + 0.1, -1, 1), 4))
  far = fid.fid(feats, fid.all_features(model, variables, np.clip(real + 0.5, -1, 1), 4))
  assert 0 < near < far


def test_bad_weight_files_fail_with_one_line(weights, tmp_path):
  with pytest.raises(UserError, match='not found'):
    fid.load(str(tmp_path / 'missing.npz'))
  (tmp_path / 'text.npz').write_text('not an npz')
  with pytest.raises(UserError, match='is not an .npz file'):
    fid.load(str(tmp_path / 'text.npz'))
  np.savez(tmp_path / 'other.npz', weights=np.zeros(3))
  with pytest.raises(UserError, match='holds no Conv2d_1a_3x3.conv.weight'):
    fid.load(str(tmp_path / 'other.npz'))
  with np.load(weights[0]) as f:
    arrays = dict(f)
  del arrays['Mixed_6b.branch1x1.bn.running_var']
  np.savez(tmp_path / 'partial.npz', **arrays)
  with pytest.raises(UserError, match=r"Mixed_6b.branch1x1'\]\['bn'\]\['var'\] is missing") as e:
    fid.load(str(tmp_path / 'partial.npz'))
  assert '\n' not in str(e.value) and os.fspath(tmp_path) in str(e.value)
