"""CelebA input on a CelebA-format directory the tests write, and on tfds mock data."""

import logging
import os

import celeba_fixture as fx
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ce_jax import celeba, config_checks, input_pipeline, masks, train
from ce_jax.errors import UserError
from configs import test as test_config


@pytest.fixture(scope='module')
def celeba_dir(tmp_path_factory):
  return fx.write(str(tmp_path_factory.mktemp('celeba')), 'txt')


def celeba_config(root, size=64, keep='true'):
  config = test_config.get_config()
  config.data.source = 'celeba'
  config.data.celeba_dir = root
  config.data.celeba_keep = keep
  config.data.image_size = size
  config.data.num_eval_examples = 4
  config.mask.kind = 'mustache'
  config.model.output = 'full'
  return config


def expected_points(i, size, flip=False, top=20):
  """Face `i`'s landmarks after the 178×178 crop at row `top` and the resize."""
  pts = fx.landmarks(i).astype(np.float64)
  scale = size / 178
  x, y = (pts[:, 0] + 0.5) * scale - 0.5, (pts[:, 1] - top + 0.5) * scale - 0.5
  if flip:
    x = size - 1 - x
    x, y = x[[1, 0, 2, 4, 3]], y[[1, 0, 2, 4, 3]]
  return np.stack([x, y], -1)


def marker_colors(image, points):
  """Index into `fx.COLORS` of the colour nearest the pixel at each landmark."""
  rgb = (image + 1) * 127.5
  picks = [rgb[int(round(y)), int(round(x))] for x, y in points]
  return [int(np.argmin(np.abs(np.array(fx.COLORS) - p).sum(-1))) for p in picks]


def face(i, size, flip=False):
  """Fixture face `i` through `celeba.transform`, as NumPy arrays."""
  image, points = celeba.transform(tf.constant(fx.draw(i)),
                                   tf.constant(fx.landmarks(i), tf.float32), size=size, flip=flip)
  return image.numpy(), points.numpy()


# ----------------------------------------------------------------------------
# Directory source: lists, filter, geometry
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['txt', 'csv'])
def test_directory_filter_keeps_exactly_the_right_files(tmp_path, fmt, caplog):
  with caplog.at_level(logging.WARNING):
    directory = celeba.read_directory(fx.write(str(tmp_path), fmt))
  assert any(fx.MISSING in r.getMessage() for r in caplog.records)
  expected = {
      ('train', 'true'): ['000001', '000003', '000004', '000006'],
      ('train', 'false'): ['000002', '000005'],
      ('validation', 'true'): ['000007', '000009'],
      ('validation', 'all'): ['000007', '000008', '000009'],
      ('test', 'false'): ['000010'],
      ('test', 'true'): [],
  }
  for (split, keep), names in expected.items():
    items = celeba.directory_items(directory, split, 'Mustache', keep)
    assert [os.path.basename(f)[:6] for f in items.files] == names, (split, keep)
    want = np.array([fx.landmarks(int(n) - 1) for n in names]).reshape(-1, 5, 2)
    np.testing.assert_array_equal(items.landmarks, want)
  assert celeba.directory_items(directory, 'train', 'Mustache', 'all').total == 6


def test_unknown_attribute_and_bad_keep_are_user_errors(celeba_dir):
  directory = celeba.read_directory(celeba_dir)
  with pytest.raises(UserError, match="data.celeba_attribute='Moustache'.*Mustache"):
    celeba.directory_items(directory, 'train', 'Moustache', 'true')
  config = celeba_config(celeba_dir, keep='yes')
  with pytest.raises(UserError, match="data.celeba_keep='yes'"):
    config_checks.check(config)


@pytest.mark.parametrize('flip', [False, True])
def test_crop_resize_flip_moves_landmarks_with_the_pixels(flip):
  image, points = face(3, 64, flip)
  assert image.shape == (64, 64, 3) and image.dtype == np.float32
  assert -1 <= image.min() and image.max() <= 1
  np.testing.assert_allclose(points, expected_points(3, 64, flip), atol=1e-4)
  order = [1, 0, 2, 4, 3] if flip else [0, 1, 2, 3, 4]
  assert marker_colors(image, points) == order
  assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # left is left


def test_crop_offset_moves_the_square_and_is_clipped():
  image, pts = tf.constant(fx.draw(0)), tf.constant(fx.landmarks(0), tf.float32)
  _, down = celeba.transform(image, pts, size=178, crop_offset=10)
  _, clipped = celeba.transform(image, pts, size=178, crop_offset=500)
  np.testing.assert_allclose(down.numpy(), expected_points(0, 178, top=30), atol=1e-4)
  np.testing.assert_allclose(clipped.numpy(), expected_points(0, 178, top=40), atol=1e-4)


@pytest.mark.parametrize('flip', [False, True])
def test_mustache_mask_covers_the_upper_lip_of_the_transformed_face(flip):
  size = 64
  _, points = face(5, size, flip)
  m = masks.mustache(points[None], (size, size), margin_x=0.2, margin_y=0.2, overlap=0,
                     overlap_weight=1.0)
  hole = np.asarray(m.mask)[0, ..., 0].astype(bool)
  # By hand: nose y and mouth y, mouth-corner x, widened by 20 %.
  p = expected_points(5, size, flip)
  nose_y, mouth_y = p[2, 1], (p[3, 1] + p[4, 1]) / 2
  x0, x1 = min(p[3, 0], p[4, 0]), max(p[3, 0], p[4, 0])
  dy, dx = 0.2 * (mouth_y - nose_y), 0.2 * (x1 - x0)
  rows = (np.arange(size) >= nose_y - dy) & (np.arange(size) <= mouth_y + dy)
  cols = (np.arange(size) >= x0 - dx) & (np.arange(size) <= x1 + dx)
  np.testing.assert_array_equal(hole, rows[:, None] & cols[None, :])
  # The pixels between nose and mouth are hidden; the eyes are not.
  ys, xs = np.nonzero(hole)
  assert ys.min() <= round(nose_y) and ys.max() >= round(mouth_y)
  assert xs.min() <= round(x0) and xs.max() >= round(x1)
  for x, y in p[:2]:
    assert not hole[int(round(y)), int(round(x))]
  assert hole.sum() < 0.1 * size * size


# ----------------------------------------------------------------------------
# The pipeline: batches, determinism, eval examples, masks
# ----------------------------------------------------------------------------


def test_directory_pipeline_yields_faces_landmarks_and_masks(celeba_dir):
  config = celeba_config(celeba_dir)
  inputs = input_pipeline.create_input(config, local_batch_size=4)
  assert inputs.num_train_items == 4
  flips = set()
  for _ in range(3):
    batch = next(inputs.train)
    assert batch['image'].shape == (4, 64, 64, 3) and batch['image'].dtype == np.float32
    assert batch['landmarks'].shape == (4, 5, 2) and batch['landmarks'].dtype == np.float32
    for image, points in zip(batch['image'], batch['landmarks'], strict=True):
      colors = marker_colors(image, points)
      assert colors in ([0, 1, 2, 3, 4], [1, 0, 2, 4, 3])
      flips.add(colors[0] == 1)
      assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
  assert flips == {False, True}

  ev = inputs.eval_batch
  assert ev['image'].shape == (4, 64, 64, 3) and ev['landmarks'].shape == (4, 5, 2)
  # Validation faces with a mustache, in name order, cycled, unflipped.
  for points, i in zip(ev['landmarks'], [6, 8, 6, 8], strict=True):
    np.testing.assert_allclose(points, expected_points(i, 64), atol=1e-4)

  m = masks.from_config(config.mask, None, ev)
  assert m.mask.shape == (4, 64, 64, 1)
  assert 0 < float(m.mask.mean()) < 0.1
  assert float(m.weight.max()) == config.mask.overlap_weight


def test_train_stream_is_deterministic_and_resumes_exactly(celeba_dir):
  config = celeba_config(celeba_dir, size=32)
  train, _ = input_pipeline.celeba_sources(config)
  full = input_pipeline.train_dataset(train, config, batch_size=3, seed=5).take(3)
  full = list(full.as_numpy_iterator())
  resumed = input_pipeline.train_dataset(train, config, batch_size=3, seed=5, start_index=6)
  resumed = next(resumed.as_numpy_iterator())
  for key in ('image', 'landmarks'):
    np.testing.assert_array_equal(resumed[key], full[2][key])
  other = input_pipeline.train_dataset(train, config, batch_size=3, seed=6)
  other = next(other.as_numpy_iterator())
  assert not np.array_equal(other['landmarks'], full[0]['landmarks'])


def test_undecodable_face_is_left_out_before_training_with_one_warning(tmp_path, caplog):
  root = fx.write(str(tmp_path), 'txt')
  broken = os.path.join(root, 'img_align_celeba', '000003.jpg')
  with open(broken, 'wb') as f:
    f.write(b'\xff\xd8 not a face')
  config = celeba_config(root, size=32)
  with caplog.at_level(logging.WARNING):
    train, evals = input_pipeline.celeba_sources(config)
  warnings = [r.getMessage() for r in caplog.records if 'cannot be decoded' in r.getMessage()]
  assert len(warnings) == 1 and '1 of 4' in warnings[0] and broken in warnings[0]
  assert (train.count, evals.count) == (3, 2)
  # Every kept face now decodes: a pass over all of them raises nothing.
  batch = next(input_pipeline.train_dataset(train, config, batch_size=3, seed=0)
               .as_numpy_iterator())
  assert batch['image'].shape == (3, 32, 32, 3)
  # One pass over the three faces left (000001, 000004, 000006), each flipped or not.
  seen = {i for points in batch['landmarks'] for i in (0, 3, 5) for flip in (False, True)
          if np.allclose(points, expected_points(i, 32, flip), atol=1e-3)}
  assert seen == {0, 3, 5}


def test_two_processes_read_the_rows_of_the_one_process_batches(celeba_dir):
  config = celeba_config(celeba_dir, size=32, keep='all')
  train, _ = input_pipeline.celeba_sources(config)
  one = input_pipeline.train_dataset(train, config, batch_size=4, seed=1).take(2)
  one = [b['landmarks'] for b in one.as_numpy_iterator()]
  parts = [input_pipeline.train_dataset(train, config, batch_size=2, seed=1, process_index=p,
                                        process_count=2).take(2) for p in range(2)]
  parts = [[b['landmarks'] for b in part.as_numpy_iterator()] for part in parts]
  for step in range(2):
    np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), one[step])


# ----------------------------------------------------------------------------
# tfds source
# ----------------------------------------------------------------------------


def test_tfds_source_under_mock_data(tmp_path):
  builder = tfds.builder('celeb_a', data_dir=str(tmp_path))
  builder.data_path.mkdir(parents=True)
  builder.info.write_to_directory(builder.data_path)  # the metadata mock_data reads
  config = celeba_config('', size=32, keep='all')
  config.data.tfds_data_dir = str(tmp_path)
  with tfds.testing.mock_data(num_examples=6, data_dir=str(tmp_path)):
    inputs = input_pipeline.create_input(config, local_batch_size=4)
    held = celeba.tfds_items(config, 'validation', limit=2)
  assert inputs.num_train_items == 6
  batch = next(inputs.train)
  assert batch['image'].shape == (4, 32, 32, 3) and batch['landmarks'].shape == (4, 5, 2)
  assert -1 <= batch['image'].min() and batch['image'].max() <= 1
  assert inputs.eval_batch['image'].shape == (4, 32, 32, 3)
  assert inputs.eval_batch['landmarks'].shape == (4, 5, 2)
  assert (held.total, held.kept, len(held), held.encoded.shape) == (6, 6, 2, (2,))
  m = masks.from_config(config.mask, None, batch)
  assert m.mask.shape == (4, 32, 32, 1) and m.weight.shape == (4, 32, 32, 1)


def test_missing_data_fails_at_once_naming_both_ways(tmp_path, monkeypatch):
  def no_download(*args, **kwargs):
    raise AssertionError('a download was attempted')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', no_download)
  config = celeba_config('')
  config.data.tfds_data_dir = str(tmp_path / 'tfds')
  with pytest.raises(UserError) as e:
    input_pipeline.create_input(config, local_batch_size=4)
  message = str(e.value)
  assert str(tmp_path / 'tfds' / 'celeb_a') in message
  assert 'tfds build celeb_a' in message and '--config.data.celeba_dir=' in message

  config.data.celeba_dir = str(tmp_path / 'nowhere')
  with pytest.raises(UserError, match="data.celeba_dir='.*nowhere' is not a folder.*tfds build"):
    input_pipeline.create_input(config, local_batch_size=4)
  (tmp_path / 'half').mkdir()
  (tmp_path / 'half' / 'list_eval_partition.txt').write_text('000001.jpg 0\n')
  config.data.celeba_dir = str(tmp_path / 'half')
  with pytest.raises(UserError, match='lacks list_attr_celeba, list_landmarks_align_celeba'):
    input_pipeline.create_input(config, local_batch_size=4)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------


def test_tiny_mustache_training_on_the_directory(celeba_dir, tmp_path):
  config = celeba_config(celeba_dir, size=32)
  config.train.num_steps = config.train.checkpoint_every = 2
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == config.train.num_steps
  assert (tmp_path / 'samples' / f'step_{config.train.num_steps:06d}.png').exists()
