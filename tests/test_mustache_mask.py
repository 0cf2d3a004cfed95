"""The mustache mask: a box from landmarks, its band, clipping, per-sample boxes."""

import jax
import numpy as np
import pytest

from ce_jax import masks
from ce_jax.errors import UserError
from configs import default

# Two faces in a 64×64 image: (x, y) of left eye, right eye, nose, mouth corners.
FACES = np.array([
    [[20, 20], [44, 20], [32, 30], [22, 40], [42, 42]],
    [[10, 5], [30, 6], [21.5, 15.2], [12.3, 24.8], [30.1, 23.2]],
], np.float32)


def box(face, size, mx, my):
  """The expected hole, written out pixel by pixel."""
  nose_y = face[2, 1]
  mouth_y = (face[3, 1] + face[4, 1]) / 2
  left, right = min(face[3, 0], face[4, 0]), max(face[3, 0], face[4, 0])
  top, bottom = nose_y - my * (mouth_y - nose_y), mouth_y + my * (mouth_y - nose_y)
  left, right = left - mx * (right - left), right + mx * (right - left)
  out = np.zeros((size, size), np.float32)
  for y in range(size):
    for x in range(size):
      out[y, x] = top <= y <= bottom and left <= x <= right
  return out


@pytest.mark.parametrize('jit', [False, True])
def test_box_matches_hand_computation(jit):
  fn = lambda lm: masks.mustache(lm, (64, 64), margin_x=0.25, margin_y=0.1,  # noqa: E731
                                 overlap=0, overlap_weight=1.0)
  m = (jax.jit(fn) if jit else fn)(FACES)
  assert m.mask.shape == m.weight.shape == (2, 64, 64, 1) and m.mask.dtype == np.float32
  for i in range(2):
    np.testing.assert_array_equal(np.asarray(m.mask)[i, ..., 0], box(FACES[i], 64, 0.25, 0.1))
  # Face 0: rows 29..42 (nose 30 to mouth 41, ± 1.1), columns 17..47 (22..42 ± 5).
  rows, cols = np.nonzero(np.asarray(m.mask)[0, ..., 0])
  assert (rows.min(), rows.max(), cols.min(), cols.max()) == (29, 42, 17, 47)


def test_band_weights():
  m = masks.mustache(FACES[:1], (64, 64), margin_x=0.0, margin_y=0.0, overlap=2,
                     overlap_weight=10.0)
  hole = box(FACES[0], 64, 0.0, 0.0)
  grown = np.zeros_like(hole)
  rows, cols = np.nonzero(hole)
  grown[rows.min() - 2:rows.max() + 3, cols.min() - 2:cols.max() + 3] = 1
  np.testing.assert_array_equal(np.asarray(m.weight)[0, ..., 0], hole + 10.0 * (grown - hole))


def test_clipped_to_the_image():
  face = FACES[:1] + np.array([25.0, 28.0], np.float32)  # mouth past the bottom right
  m = masks.mustache(face, (64, 64), margin_x=0.2, margin_y=0.2, overlap=4,
                     overlap_weight=10.0)
  mask = np.asarray(m.mask)[0, ..., 0]
  np.testing.assert_array_equal(mask, box(face[0], 64, 0.2, 0.2))
  assert mask[63, 63] == 1 and mask.sum() > 0 and np.isfinite(np.asarray(m.weight)).all()


def test_from_config_reads_landmarks_and_needs_them():
  config = default.get_config('mask_kinds').mask
  config.kind = 'mustache'
  image = np.zeros((2, 64, 64, 3), np.float32)
  m = masks.from_config(config, jax.random.key(0), {'image': image, 'landmarks': FACES})
  want = masks.mustache(FACES, (64, 64), margin_x=config.mustache_margin_x,
                        margin_y=config.mustache_margin_y, overlap=config.overlap,
                        overlap_weight=config.overlap_weight)
  np.testing.assert_array_equal(m.weight, want.weight)
  assert not np.array_equal(m.mask[0], m.mask[1])  # one box per face
  with pytest.raises(UserError, match="mask.kind='mustache' needs face landmarks"):
    masks.from_config(config, jax.random.key(0), {'image': image})
