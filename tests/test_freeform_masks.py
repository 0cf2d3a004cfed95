"""Free-form masks: binary, coverage bounds, determinism by key, stroke rasterisation."""

import jax
import numpy as np
import pytest

from ce_jax import masks
from ce_jax.errors import UserError
from configs import default

SIZE = (48, 64)
ARGS = dict(num_strokes=(1, 3), num_vertices=(4, 12), width=(0.05, 0.15),
            mean_angle=2 * np.pi / 5, angle_range=2 * np.pi / 15, box=(0.2, 0.4),
            max_coverage=0.4, overlap=2, overlap_weight=10.0)


def generate(key, batch=32, **kw):
  return masks.freeform(key, batch, SIZE, **{**ARGS, **kw})


def test_binary_per_sample_with_band():
  m = generate(jax.random.key(0))
  mask, weight = np.asarray(m.mask), np.asarray(m.weight)
  assert mask.shape == weight.shape == (32, *SIZE, 1) and mask.dtype == np.float32
  assert set(np.unique(mask)) <= {0.0, 1.0}
  np.testing.assert_array_equal(weight[mask == 1], 1.0)
  assert set(np.unique(weight[mask == 0])) == {0.0, 10.0}
  assert len({m.tobytes() for m in mask}) == 32  # a different mask per sample


@pytest.mark.parametrize('width,max_coverage', [((0.05, 0.15), 0.4), ((0.3, 0.5), 0.2)])
def test_coverage_bounds(width, max_coverage):
  m = generate(jax.random.key(1), batch=64, width=width, box=(0.2, 0.4),
               max_coverage=max_coverage)
  coverage = np.asarray(m.mask).mean(axis=(1, 2, 3))
  smallest_box = np.floor(0.2 * SIZE[0]) * np.floor(0.2 * SIZE[1]) / (SIZE[0] * SIZE[1])
  assert coverage.min() >= smallest_box
  assert coverage.max() <= max_coverage


def test_strokes_are_drawn_beyond_the_box():
  m = generate(jax.random.key(2), batch=64, box=(0.2, 0.2), num_strokes=(2, 3))
  coverage = np.asarray(m.mask).mean(axis=(1, 2, 3))
  box = np.floor(0.2 * SIZE[0]) * np.floor(0.2 * SIZE[1]) / (SIZE[0] * SIZE[1])
  assert (coverage > box).mean() > 0.9


def test_deterministic_by_key():
  a, b = generate(jax.random.key(3)), generate(jax.random.key(3))
  c = generate(jax.random.key(4))
  np.testing.assert_array_equal(a.mask, b.mask)
  assert not np.array_equal(a.mask, c.mask)


def test_rasterised_segment_is_a_capsule():
  vertices = np.array([[[[10.0, 10.0], [10.0, 40.0], [30.0, 40.0]]]], np.float32)
  drawn = masks._rasterise_strokes(vertices, np.array([[1]]), np.array([[6.0]], np.float32),
                                   SIZE)
  yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
  dist = np.where(xx < 10, np.hypot(yy - 10, xx - 10),
                  np.where(xx > 40, np.hypot(yy - 10, xx - 40), np.abs(yy - 10)))
  np.testing.assert_array_equal(np.asarray(drawn)[0, 0], dist <= 3.0)


def test_from_config_and_kinds():
  config = default.get_config('mask_kinds').mask
  config.kind = 'freeform'
  assert 'freeform' in masks.KINDS
  m = masks.from_config(config, jax.random.key(5), {'image': np.zeros((4, 64, 64, 3))})
  coverage = np.asarray(m.mask).mean(axis=(1, 2, 3))
  assert m.mask.shape == (4, 64, 64, 1)
  assert (coverage > 0).all() and (coverage <= config.freeform_max_coverage).all()


def test_box_larger_than_the_bound_is_refused():
  with pytest.raises(UserError, match='mask.freeform_box'):
    generate(jax.random.key(0), box=(0.5, 0.9), max_coverage=0.5)
