"""Mask generators: shapes, values, coverage, determinism by key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ce_jax import masks
from ce_jax.errors import UserError

SIZE = (64, 64)
BAND = dict(overlap=2, overlap_weight=10.0)


def generate(kind, key, batch=16):
  if kind == 'random_blocks':
    return masks.random_blocks(key, batch, SIZE, num_blocks=4, max_coverage=0.25, **BAND)
  return masks.random_region(key, batch, SIZE, coverage=(0.2, 0.3), noise_size=8, **BAND)


def test_center_hole_and_band():
  m = masks.center(2, SIZE, hole_size=32, overlap=4, overlap_weight=10.0)
  mask, weight = np.asarray(m.mask), np.asarray(m.weight)
  assert mask.shape == weight.shape == (2, 64, 64, 1) and mask.dtype == np.float32
  hole = np.zeros(SIZE, bool)
  hole[20:44, 20:44] = True
  np.testing.assert_array_equal(mask[0, ..., 0], hole)
  band = np.zeros(SIZE, bool)
  band[16:48, 16:48] = True
  band &= ~hole
  np.testing.assert_array_equal(weight[0, ..., 0], hole * 1.0 + band * 10.0)


@pytest.mark.parametrize('image_size,hole_size,overlap', [((64, 64), 32, 4), ((40, 56), 21, 3),
                                                         ((16, 16), 16, 2), ((16, 16), 6, 0)])
def test_center_equals_band_of_drawn_square(image_size, hole_size, overlap):
  m = masks.center(3, image_size, hole_size=hole_size, overlap=overlap, overlap_weight=7.0)
  h, w = image_size
  side = hole_size - 2 * overlap
  square = np.zeros((3, h, w, 1), np.float32)
  square[:, (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side] = 1
  drawn = masks.with_band(jnp.asarray(square), overlap, 7.0)
  np.testing.assert_array_equal(np.asarray(m.mask), np.asarray(drawn.mask))
  np.testing.assert_array_equal(np.asarray(m.weight), np.asarray(drawn.weight))
  assert m.mask.dtype == m.weight.dtype == jnp.float32


def test_center_rejects_hole_that_does_not_fit():
  with pytest.raises(UserError, match='mask.hole_size=80'):
    masks.center(1, SIZE, hole_size=80, overlap=4, overlap_weight=10.0)


@pytest.mark.parametrize('kind', ['random_blocks', 'random_region'])
def test_binary_and_weight_consistent(kind):
  m = generate(kind, jax.random.key(0))
  mask, weight = np.asarray(m.mask), np.asarray(m.weight)
  assert mask.shape == (16, 64, 64, 1) and mask.dtype == np.float32
  assert set(np.unique(mask)) <= {0.0, 1.0}
  assert set(np.unique(weight)) <= {0.0, 1.0, 10.0}
  np.testing.assert_array_equal(weight == 1.0, mask == 1.0)


def test_random_blocks_coverage_bound():
  m = generate('random_blocks', jax.random.key(1), batch=64)
  coverage = np.asarray(m.mask).mean(axis=(1, 2, 3))
  assert coverage.max() <= 0.25 and coverage.min() > 0.0


def test_random_region_coverage_range():
  m = generate('random_region', jax.random.key(2), batch=64)
  coverage = np.asarray(m.mask).mean(axis=(1, 2, 3))
  assert coverage.min() >= 0.2 - 1e-3 and coverage.max() <= 0.3 + 1e-3
  assert coverage.std() > 0.01  # drawn per sample, not one value for the batch


@pytest.mark.parametrize('kind', ['random_blocks', 'random_region'])
def test_same_key_same_mask_different_key_different_mask(kind):
  a = np.asarray(generate(kind, jax.random.key(3)).mask)
  b = np.asarray(generate(kind, jax.random.key(3)).mask)
  c = np.asarray(generate(kind, jax.random.key(4)).mask)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # Per sample: masks within one batch differ from each other.
  assert not np.array_equal(a[0], a[1])


def test_from_config_keeps_a_batch_mask(tmp_path):
  from configs import default
  config = default.get_config()
  given = np.zeros((2, 128, 128, 1), np.float32)
  given[:, 10:20, 30:50] = 1.0
  m = masks.from_config(config.mask, jax.random.key(0),
                        {'image': np.zeros((2, 128, 128, 3), np.float32), 'mask': given})
  np.testing.assert_array_equal(m.mask, given)
  assert float(np.asarray(m.weight).max()) == config.mask.overlap_weight


def test_from_config_unknown_kind():
  from ce_jax import config_checks
  from configs import default
  config = default.get_config()
  config.mask.kind = 'triangle'
  with pytest.raises(UserError, match="mask.kind='triangle'"):
    config_checks.check(config)
