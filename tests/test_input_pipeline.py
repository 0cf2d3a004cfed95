"""The tf.data input on real image files the tests write, and on the embedded photos."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ce_jax import config_checks, input_pipeline
from ce_jax.errors import UserError
from configs import default as default_config
from configs import test as test_config


def write_folder(root):
  rng = np.random.default_rng(0)
  (root / 'sub').mkdir(parents=True)
  Image.fromarray(rng.integers(0, 255, (60, 80, 3), np.uint8)).save(root / 'rgb.png')
  Image.fromarray(rng.integers(0, 255, (70, 50, 3), np.uint8)).save(root / 'sub' / 'photo.jpg')
  Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8), 'L').save(root / 'grey.png')
  Image.fromarray(rng.integers(0, 255, (50, 90, 4), np.uint8), 'RGBA').save(root / 'alpha.png')
  (root / 'broken.jpg').write_bytes(b'\xff\xd8 this is not a jpeg at all')
  (root / 'notes.txt').write_text('not an image')


def folder_config(root):
  config = test_config.get_config()
  config.data.source = 'folder'
  config.data.folder = str(root)
  config.data.image_size = 128
  config.data.resize_shorter = 128
  return config


AUGMENT_FIELDS = ('scale_range', 'hue_augment', 'saturation_range', 'contrast_range',
                  'brightness_delta')


def default_augment(config):
  """`config` with the augmentation of `configs/default.py` (`configs/test.py` has none)."""
  defaults = default_config.get_config().data
  for field in AUGMENT_FIELDS:
    config.data[field] = defaults[field]
  return config


def test_folder_skips_corrupt_file_with_warning_and_converts_to_rgb(tmp_path, caplog):
  write_folder(tmp_path)
  with caplog.at_level(logging.WARNING):
    files = input_pipeline.list_images(str(tmp_path), 'data.folder')
  assert sorted(p.split('/')[-1] for p in files) == ['alpha.png', 'grey.png', 'photo.jpg',
                                                    'rgb.png']
  warnings = [r.getMessage() for r in caplog.records if 'cannot be decoded' in r.getMessage()]
  assert len(warnings) == 1 and '1 of 5' in warnings[0] and 'broken.jpg' in warnings[0]

  config = folder_config(tmp_path)
  ds = input_pipeline.train_dataset(input_pipeline.file_source('folder', files, config), config,
                                    batch_size=4, seed=0)
  batch = next(ds.as_numpy_iterator())
  assert batch['image'].shape == (4, 128, 128, 3) and batch['image'].dtype == np.float32
  assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
  # One batch is one pass over the 4 files: the grey one arrives with equal channels.
  greys = [im for im in batch['image'] if np.allclose(im[..., 0], im[..., 1], atol=1e-6)
           and np.allclose(im[..., 1], im[..., 2], atol=1e-6)]
  assert len(greys) == 1


def test_train_stream_is_deterministic_and_resumable():
  config = default_augment(test_config.get_config())
  source = input_pipeline.embedded_source(config, 'train')
  first = input_pipeline.train_dataset(source, config, batch_size=4, seed=3).take(3)
  first = [b['image'] for b in first.as_numpy_iterator()]
  again = input_pipeline.train_dataset(source, config, batch_size=4, seed=3).take(3)
  np.testing.assert_array_equal(first[2], list(again.as_numpy_iterator())[2]['image'])
  resumed = input_pipeline.train_dataset(source, config, batch_size=4, seed=3, start_index=8)
  np.testing.assert_array_equal(first[2], next(resumed.as_numpy_iterator())['image'])
  other = input_pipeline.train_dataset(source, config, batch_size=4, seed=4).take(1)
  assert not np.array_equal(first[0], next(other.as_numpy_iterator())['image'])


def test_embedded_eval_uses_other_photos():
  assert len(input_pipeline.EMBEDDED_TRAIN) > 2 and len(input_pipeline.EMBEDDED_EVAL) > 2
  assert not set(input_pipeline.EMBEDDED_TRAIN) & set(input_pipeline.EMBEDDED_EVAL)
  train = input_pipeline.embedded_photos('train')
  evals = input_pipeline.embedded_photos('eval')
  assert len(train) == len(input_pipeline.EMBEDDED_TRAIN)
  assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in train)
  train_sums = {int(p.astype(np.int64).sum()) for p in train}
  assert len(evals) > 2 and all(int(p.astype(np.int64).sum()) not in train_sums for p in evals)
  config = default_augment(test_config.get_config())
  source = input_pipeline.embedded_source(config, 'eval')
  a = input_pipeline.eval_crops(source, 6, seed=1)['image']
  b = input_pipeline.eval_crops(source, 6, seed=1)['image']
  assert a.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(a, b)


def test_missing_embedded_photo_names_package_and_file():
  with pytest.raises(UserError, match=r"'skimage' does not ship 'data/no_such_photo.png'"):
    input_pipeline.embedded_path('skimage', 'data/no_such_photo.png')
  with pytest.raises(UserError, match=r"package 'no_such_package_ce', which is not installed"):
    input_pipeline.embedded_path('no_such_package_ce', 'photo.png')


def first_batch(config, **kw):
  source = input_pipeline.embedded_source(config, 'train')
  ds = input_pipeline.train_dataset(source, config, batch_size=8, seed=2, **kw)
  return next(ds.as_numpy_iterator())['image']


def test_colour_augmentation_changes_colours_not_shape_or_range():
  plain = first_batch(test_config.get_config())
  config = test_config.get_config()
  config.data.hue_augment = True
  config.data.saturation_range = (0.5, 1.5)
  config.data.brightness_delta = 0.2
  jittered = first_batch(config)
  assert jittered.shape == plain.shape == (8, 32, 32, 3) and jittered.dtype == np.float32
  assert jittered.min() >= -1.0 and jittered.max() <= 1.0
  # The same crops (the crop draws do not depend on the colour fields), other colours.
  assert np.abs(jittered - plain).mean(axis=(1, 2, 3)).min() > 1e-3
  plain_again = first_batch(test_config.get_config())
  np.testing.assert_array_equal(plain, plain_again)


def test_augmented_example_depends_only_on_seed_and_index():
  config = default_augment(test_config.get_config())
  assert config.data.hue_augment and config.data.scale_range[0] > 0
  source = input_pipeline.embedded_source(config, 'train')
  batch = first_batch(config)
  single = input_pipeline.train_dataset(source, config, batch_size=1, seed=2, start_index=5)
  np.testing.assert_array_equal(batch[5], next(single.as_numpy_iterator())['image'][0])


def colour_data(**fields):
  data = test_config.get_config().data
  for k, v in fields.items():
    data[k] = v
  return data


def test_colour_augment_against_independent_formulas():
  x = np.random.default_rng(1).uniform(0.1, 0.9, (6, 5, 3)).astype(np.float32)
  seed = tf.constant([0, 7], tf.int64)
  same = input_pipeline.colour_augment(tf.constant(x), colour_data(), seed)
  np.testing.assert_allclose(same, x, atol=1e-5)
  grey = input_pipeline.colour_augment(tf.constant(x), colour_data(saturation_range=(0.0, 0.0),
                                                                   hue_augment=True), seed)
  luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
  np.testing.assert_allclose(grey, np.repeat(luma[..., None], 3, -1), atol=1e-5)
  contrast = input_pipeline.colour_augment(tf.constant(x), colour_data(contrast_range=(1.5, 1.5)),
                                           seed)
  expected = np.clip((x - x.mean(axis=(0, 1))) * 1.5 + x.mean(axis=(0, 1)), 0, 1)
  np.testing.assert_allclose(contrast, expected, atol=1e-5)
  shifted = input_pipeline.colour_augment(tf.constant(x), colour_data(brightness_delta=0.2), seed)
  shift = np.asarray(shifted) - x
  assert np.ptp(shift) < 1e-5 and 0 < abs(shift.mean()) <= 0.2


@pytest.mark.parametrize('scale_range', [(0.05, 0.1), (0.5, 1.0), (1.0, 1.0)])
def test_scale_crops_have_image_size(scale_range):
  image = tf.constant(np.random.default_rng(0).integers(0, 255, (48, 70, 3), np.uint8))
  for i in range(4):
    crop = input_pipeline.random_scale_crop(image, 32, scale_range,
                                            tf.constant([3, i], tf.int64))
    assert crop.shape == (32, 32, 3) and crop.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(crop)) and float(tf.reduce_max(crop)) <= 255.0


def test_bad_augmentation_field_is_named():
  config = test_config.get_config()
  config.data.scale_range = (0.5, 1.5)
  with pytest.raises(UserError, match=r'data.scale_range=\(0.5, 1.5\)'):
    config_checks.check(config)


def test_stream_never_drops_an_example(tmp_path):
  """A file that breaks after listing stops the stream; no batch silently lacks it."""
  write_folder(tmp_path)
  config = folder_config(tmp_path)
  files = input_pipeline.list_images(str(tmp_path), 'data.folder')
  source = input_pipeline.file_source('folder', files, config)
  (tmp_path / 'rgb.png').write_bytes(b'truncated')
  with pytest.raises(tf.errors.InvalidArgumentError):
    list(input_pipeline.train_dataset(source, config, batch_size=4, seed=0)
         .take(1).as_numpy_iterator())


def test_folder_of_only_undecodable_images_is_an_error(tmp_path):
  (tmp_path / 'a.jpg').write_bytes(b'\xff\xd8 no')
  (tmp_path / 'b.png').write_bytes(b'\x89PNG no')
  with pytest.raises(UserError, match=r"data.folder='.*': none of its 2 images can be decoded"):
    input_pipeline.list_images(str(tmp_path), 'data.folder')


def test_folder_eval_split_is_disjoint(tmp_path):
  rng = np.random.default_rng(1)
  for i in range(30):
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / f'{i:02d}.png')
  config = folder_config(tmp_path)
  config.data.eval_fraction = 0.2
  train = input_pipeline.folder_files(config, 'train')
  evals = input_pipeline.folder_files(config, 'eval')
  assert evals and not set(train) & set(evals) and len(train) + len(evals) == 30


def test_missing_and_empty_folder_errors_name_the_field(tmp_path):
  with pytest.raises(UserError, match=r"data.folder='.*nope' is not a folder"):
    input_pipeline.list_images(str(tmp_path / 'nope'), 'data.folder')
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('x')
  with pytest.raises(UserError, match=r"data.folder='.*empty' holds no readable images"):
    input_pipeline.list_images(str(tmp_path / 'empty'), 'data.folder')
