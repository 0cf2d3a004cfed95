"""Photos of any size filled at their own resolution: a square of context around each hole."""

import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import test_inpaint
from PIL import Image

from ce_jax import completion, inpaint, models
from ce_jax.errors import UserError
from configs import test as test_config

# The test models: 32×32 input; the Context Encoder predicts its central 16×16.


def inpainter(family: str = 'context_encoder', **kwargs) -> inpaint.Inpainter:
  """An untrained generator of the test config (initialised alone, without D)."""
  config = test_config.get_config(family)
  gen, _ = models.create_models(config)
  s = config.data.image_size
  init = jax.jit(lambda key: gen.init(key, jnp.zeros((1, s, s, 4)), train=False))
  variables = init(jax.random.PRNGKey(0))
  return inpaint.Inpainter(config, {'batch_stats': {}, **variables}, **kwargs)


@pytest.fixture(scope='module')
def center():
  return inpainter()


@pytest.fixture(scope='module')
def large_photo() -> np.ndarray:
  """A 1024×768 (width×height) photo with texture, `[768, 1024, 3]` uint8."""
  return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1024, 768), Image.LANCZOS))


def square_hole(shape, top, left, side) -> np.ndarray:
  hole = np.zeros(shape, bool)
  hole[top:top + side, left:left + side] = True
  return hole


def covers(crop: completion.Crop, box) -> bool:
  y0, y1, x0, x1 = box
  return (crop.top <= y0 and y1 <= crop.top + crop.height and crop.left <= x0
          and x1 <= crop.left + crop.width)


# ----------------------------------------------------------------------------
# The plan (pure)
# ----------------------------------------------------------------------------


def test_plan_puts_each_hole_in_the_square_the_model_predicts():
  config = test_config.get_config()
  hole = square_hole((768, 1024), 300, 500, 40)
  (crop,) = completion.plan_fills(config, hole).crops
  # 2 × 40 = 80 px of context, resized to 32: the hole shrinks to 16, the predicted square.
  assert (crop.path, crop.height, crop.width, crop.size) == ('crop', 80, 80, (32, 32))
  x, m = completion.model_input(config, np.zeros((768, 1024, 3), np.uint8), hole, crop)
  assert x.shape == (1, 32, 32, 3) and m.shape == (1, 32, 32, 1)
  rows, cols = np.nonzero(m[0, ..., 0])
  assert rows.min() >= 8 and rows.max() < 24 and cols.min() >= 8 and cols.max() < 24
  # A larger factor: more context around the same hole.
  (wide,) = completion.plan_fills(config, hole, context_factor=3).crops
  assert wide.height == 120 and covers(wide, (300, 340, 500, 540))
  # A small hole keeps at least the model's input of the photo's own pixels: nothing resized.
  (small,) = completion.plan_fills(config, square_hole((768, 1024), 300, 500, 6)).crops
  assert small.height == 32 and not small.resized
  (upsampled,) = completion.plan_fills(config, square_hole((768, 1024), 300, 500, 6),
                                       min_side=0).crops
  assert upsampled.height == 12 and upsampled.size == (32, 32)


def test_plan_far_apart_holes_get_their_own_squares_and_near_ones_share_one():
  config = test_config.get_config()
  far = square_hole((768, 1024), 100, 100, 40) | square_hole((768, 1024), 600, 900, 40)
  plan = completion.plan_fills(config, far)
  assert plan.boxes == ((100, 140, 100, 140), (600, 640, 900, 940))
  assert [c.holes for c in plan.crops] == [(1,), (2,)]
  for crop, other in zip(plan.crops, plan.boxes[::-1], strict=True):
    assert covers(crop, plan.boxes[crop.holes[0] - 1]) and not covers(crop, other)
  near = square_hole((768, 1024), 100, 100, 40) | square_hole((768, 1024), 100, 150, 40)
  (shared,) = completion.plan_fills(config, near).crops
  assert shared.holes == (1, 2) and covers(shared, (100, 140, 100, 190))


def test_plan_near_a_border_and_for_large_holes():
  config = test_config.get_config()
  corner = square_hole((768, 1024), 0, 0, 40)
  (crop,) = completion.plan_fills(config, corner).crops
  # Center-output: the hole must land in the central square, so the square reaches past
  # the photo's edge (filled by reflection).
  assert crop.top < 0 and crop.left < 0 and covers(crop, (0, 40, 0, 40))
  # A full-output model's square stays inside the photo.
  (full,) = completion.plan_fills(test_inpaint.full_config(), corner).crops
  assert (full.top, full.left, full.height) == (0, 0, 80)
  # A hole whose square would not fit in the photo: the whole photo, resized.
  (whole,) = completion.plan_fills(config, square_hole((768, 1024), 100, 100, 400)).crops
  assert (whole.path, whole.height, whole.width, whole.size) == ('whole', 768, 1024, (32, 32))
  (forced,) = completion.plan_fills(config, corner, fill='whole').crops
  assert forced.path == 'whole'


@pytest.mark.parametrize('family', ['glcic', 'deepfill2'])
def test_plan_fully_convolutional_families_take_the_square_as_it_is(family):
  config = test_config.get_config(family)
  (crop,) = completion.plan_fills(config, square_hole((768, 1024), 300, 500, 40)).crops
  assert crop.size == (crop.height, crop.width) == (96, 96)  # 80 rounded up to NATIVE_STEP
  big = square_hole((768, 1024), 100, 100, 300)  # 600 px of context: above NATIVE_LIMIT
  (crop,) = completion.plan_fills(config, big).crops
  assert crop.height > completion.NATIVE_LIMIT and crop.size == (32, 32)
  (whole,) = completion.plan_fills(config, square_hole((300, 200), 10, 10, 150)).crops
  assert (whole.path, whole.size) == ('whole', (300, 200))  # the whole photo as it is


def test_region_reflects_past_the_edges_and_resize_hole_is_exact():
  x = np.arange(7 * 9).reshape(7, 9)
  crop = completion.Crop('crop', -3, -2, 12, 14, (12, 14), (1,))
  np.testing.assert_array_equal(completion.region(x, crop),
                                np.pad(x, ((3, 2), (2, 3)), mode='reflect'))
  rng = np.random.default_rng(0)
  hole = rng.random((37, 23)) > 0.97
  for size in ((8, 5), (37, 23), (50, 31)):
    small = completion.resize_hole(hole, size)
    expected = np.zeros(size, bool)
    (h, w), (n, m) = hole.shape, size
    for r, c in zip(*np.nonzero(hole), strict=True):  # each pixel [r, r + 1) × [c, c + 1)
      rows = [i for i in range(n) if r * n < (i + 1) * h and (r + 1) * n > i * h]
      cols = [j for j in range(m) if c * m < (j + 1) * w and (c + 1) * m > j * w]
      expected[np.ix_(rows, cols)] = True
    np.testing.assert_array_equal(small, expected)


# ----------------------------------------------------------------------------
# Filling
# ----------------------------------------------------------------------------


def test_large_photo_keeps_every_pixel_outside_the_hole(center, large_photo):
  hole = square_hole(large_photo.shape[:2], 300, 500, 40)
  out = center(large_photo, hole)
  np.testing.assert_array_equal(out[~hole], large_photo[~hole])
  assert (out[hole] != large_photo[hole]).any(-1).mean() > 0.5


def test_hole_touching_the_border(center, large_photo):
  for hole in (square_hole(large_photo.shape[:2], 0, 0, 40),
               square_hole(large_photo.shape[:2], 740, 1000, 40)):  # clipped by the edges
    out = center(large_photo, hole)
    np.testing.assert_array_equal(out[~hole], large_photo[~hole])
    assert (out[hole] != large_photo[hole]).any(-1).mean() > 0.5


def test_two_far_apart_holes_are_each_filled_from_their_own_square(center, large_photo):
  a = square_hole(large_photo.shape[:2], 100, 100, 40)
  b = square_hole(large_photo.shape[:2], 600, 900, 30)
  both = center(large_photo, a | b)
  np.testing.assert_array_equal(both[a], center(large_photo, a)[a])
  np.testing.assert_array_equal(both[b], center(large_photo, b)[b])


def laplacian_variance(image: np.ndarray, hole: np.ndarray) -> float:
  """Variance of the Laplacian of the grey image inside the hole, 3 pixels in from its edge."""
  grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
  inner = cv2.erode(hole.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
  return float(cv2.Laplacian(grey, cv2.CV_32F)[inner].var())


def oracle_fill(config, image, hole, plan) -> np.ndarray:
  """`fill_photo` with a perfect generator: each crop's own pixels, hole and all, as the
  model's input size holds them (what the path can give back at best)."""
  truths = iter([completion.model_input(config, image, np.zeros_like(hole), crop)[0]
                 for crop in plan.crops])
  return completion.fill_photo(lambda x, m: next(truths), config, image, hole, plan)


def test_crop_path_gives_back_the_detail_the_whole_path_loses(center, large_photo):
  # On the whole path the 40-px hole is 1.25 × 1.7 of the model's 32×32 pixels; on the crop
  # path it is the model's 16×16 predicted square, 2.5 photo pixels each.
  hole = square_hole(large_photo.shape[:2], 300, 500, 40)
  config = center.config
  crop = oracle_fill(config, large_photo, hole, completion.plan_fills(config, hole))
  whole = oracle_fill(config, large_photo, hole, completion.plan_fills(config, hole,
                                                                       fill='whole'))
  for out in (crop, whole):
    np.testing.assert_array_equal(out[~hole], large_photo[~hole])
  detail = laplacian_variance(large_photo, hole)
  assert laplacian_variance(crop, hole) > 0.1 * detail  # 0.20 measured
  assert laplacian_variance(whole, hole) < 0.03 * detail  # 0.018

  def error(out):
    return np.abs(out[hole].astype(float) - large_photo[hole]).mean()

  assert error(crop) < 0.5 * error(whole)  # 1.1 and 5.2 grey levels


def test_crop_fill_has_more_detail_than_the_whole_photo_path(center, large_photo):
  # The same with the (untrained) generator: whatever it predicts, the whole path spreads
  # two or so of its pixels over the hole.
  hole = square_hole(large_photo.shape[:2], 300, 500, 40)
  whole = inpainter(fill='whole')(large_photo, hole)
  crop = center(large_photo, hole)
  np.testing.assert_array_equal(whole[~hole], large_photo[~hole])
  assert laplacian_variance(crop, hole) > 2 * laplacian_variance(whole, hole)


@pytest.mark.parametrize('family', ['glcic', 'deepfill2'])
def test_fully_convolutional_families_fill_the_square_unresized(family, large_photo):
  model = inpainter(family)
  hole = square_hole(large_photo.shape[:2], 300, 500, 20)
  plan = model.plan(hole)
  (crop,) = plan.crops
  out = model(large_photo, hole, plan=plan)
  np.testing.assert_array_equal(out[~hole], large_photo[~hole])
  # The fill is G's output on the 64×64 square (40 rounded up to NATIVE_STEP) of the photo's
  # own pixels, pixel for pixel.
  x, m = completion.model_input(model.config, large_photo, hole, crop)
  assert x.shape == (1, 64, 64, 3)
  known = m[0, ..., 0] == 0
  own = large_photo[crop.top:crop.top + 64, crop.left:crop.left + 64] / 127.5 - 1.0
  np.testing.assert_allclose(x[0][known], own[known], atol=1e-6)
  pred = np.asarray(model._predict(model.variables, x, m))[0]
  expected = np.round((np.clip(pred, -1, 1) + 1) * 127.5).astype(np.uint8)
  region = out[crop.top:crop.top + 64, crop.left:crop.left + 64]
  inside = hole[crop.top:crop.top + 64, crop.left:crop.left + 64]
  np.testing.assert_array_equal(region[inside], expected[inside])


def test_bad_masks_are_one_clear_line(center, large_photo):
  shape = large_photo.shape[:2]
  cases = ((np.zeros((768, 1000), bool), r'The mask is 1000×768 .width×height. but its image is '
            r'1024×768: expected the same size\.'),
           (np.zeros(shape, bool), 'The mask is empty: nothing to fill.'),
           (np.ones(shape, bool), 'The mask covers the whole image: nothing is left to fill it '
            'from.'))
  for hole, message in cases:
    with pytest.raises(UserError, match=message) as e:
      completion.fill_photo(None, center.config, large_photo, hole,
                            completion.plan_fills(center.config, np.eye(4, dtype=bool)))
    assert '\n' not in str(e.value)
  with pytest.raises(UserError, match="--fill='tiles': expected one of"):
    inpaint.Inpainter(center.config, center.variables, fill='tiles')
  with pytest.raises(UserError, match='--context_factor=0.5: expected a number ≥ 1'):
    inpaint.Inpainter(center.config, center.variables, context_factor=0.5)


@pytest.fixture(scope='module')
def center_workdir(tmp_path_factory):
  return test_inpaint.save_initial_state(test_config.get_config(),
                                         tmp_path_factory.mktemp('center'))


def test_command_line_says_how_each_hole_was_filled(center_workdir, large_photo, tmp_path):
  Image.fromarray(large_photo).save(tmp_path / 'photo.png')
  mask = square_hole(large_photo.shape[:2], 300, 500, 40) | square_hole(large_photo.shape[:2],
                                                                       600, 900, 30)
  Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / 'mask.png')
  white = tmp_path / 'white.png'
  Image.new('L', (1024, 768), 255).save(white)
  command = [sys.executable, '-m', 'ce_jax.inpaint', f'--workdir={center_workdir}',
             f'--image={tmp_path / "photo.png"}', f'--output={tmp_path / "out.png"}']
  proc = subprocess.run([*command, f'--mask={tmp_path / "mask.png"}', '--verbosity=1'],
                        cwd=test_inpaint.ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [line.split('] ', 1)[1] for line in proc.stderr.splitlines() if '] hole ' in line]
  assert lines == [
      'hole 1 at rows 300–340, columns 500–540 (40×40 px): crop path, 80×80 crop at '
      '(280, 480), resized to 32×32',
      'hole 2 at rows 600–630, columns 900–930 (30×30 px): crop path, 60×60 crop at '
      '(585, 885), resized to 32×32']
  proc = subprocess.run([*command, f'--mask={white}'], cwd=test_inpaint.ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.splitlines()[-1] == (f"error: --mask file '{white}' is white everywhere: "
                                          'nothing is left to fill the image from (white = '
                                          'fill, black = keep).')
