"""The tf.data input on real image files the tests write, and on the embedded photos."""

import logging

import numpy as np
import pytest
from PIL import Image

from ce_jax import input_pipeline
from ce_jax.errors import UserError
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


def test_folder_skips_corrupt_file_with_warning_and_converts_to_rgb(tmp_path, caplog):
  write_folder(tmp_path)
  with caplog.at_level(logging.WARNING):
    files = input_pipeline.list_images(str(tmp_path), 'data.folder')
  assert sorted(p.split('/')[-1] for p in files) == ['alpha.png', 'grey.png', 'photo.jpg',
                                                    'rgb.png']
  assert any('broken.jpg' in r.getMessage() for r in caplog.records)

  source = input_pipeline.Source('folder', files=tuple(files))
  ds = input_pipeline.train_dataset(source, folder_config(tmp_path), batch_size=4, seed=0)
  batch = next(ds.as_numpy_iterator())
  assert batch['image'].shape == (4, 128, 128, 3) and batch['image'].dtype == np.float32
  assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
  # One batch is one pass over the 4 files: the grey one arrives with equal channels.
  greys = [im for im in batch['image'] if np.allclose(im[..., 0], im[..., 1], atol=1e-6)
           and np.allclose(im[..., 1], im[..., 2], atol=1e-6)]
  assert len(greys) == 1


def test_train_stream_is_deterministic_and_resumable():
  config = test_config.get_config()
  source = input_pipeline.embedded_photos('train')
  first = input_pipeline.train_dataset(source, config, batch_size=4, seed=3).take(3)
  first = [b['image'] for b in first.as_numpy_iterator()]
  again = input_pipeline.train_dataset(source, config, batch_size=4, seed=3).take(3)
  np.testing.assert_array_equal(first[2], list(again.as_numpy_iterator())[2]['image'])
  resumed = input_pipeline.train_dataset(source, config, batch_size=4, seed=3, start_index=8)
  np.testing.assert_array_equal(first[2], next(resumed.as_numpy_iterator())['image'])
  other = input_pipeline.train_dataset(source, config, batch_size=4, seed=4).take(1)
  assert not np.array_equal(first[0], next(other.as_numpy_iterator())['image'])


def test_embedded_eval_uses_other_photos():
  train = input_pipeline.embedded_photos('train')
  evals = input_pipeline.embedded_photos('eval')
  train_sums = {int(p.astype(np.int64).sum()) for p in train.photos}
  assert evals.photos and all(int(p.astype(np.int64).sum()) not in train_sums
                              for p in evals.photos)
  config = test_config.get_config()
  a = input_pipeline.eval_examples(evals, config, 6, seed=1)['image']
  b = input_pipeline.eval_examples(evals, config, 6, seed=1)['image']
  assert a.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(a, b)


def test_folder_eval_split_is_disjoint(tmp_path):
  rng = np.random.default_rng(1)
  for i in range(30):
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / f'{i:02d}.png')
  config = folder_config(tmp_path)
  config.data.eval_fraction = 0.2
  train = input_pipeline.folder_source(config, 'train').files
  evals = input_pipeline.folder_source(config, 'eval').files
  assert evals and not set(train) & set(evals) and len(train) + len(evals) == 30


def test_missing_and_empty_folder_errors_name_the_field(tmp_path):
  with pytest.raises(UserError, match=r"data.folder='.*nope' is not a folder"):
    input_pipeline.list_images(str(tmp_path / 'nope'), 'data.folder')
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('x')
  with pytest.raises(UserError, match=r"data.folder='.*empty' holds no readable images"):
    input_pipeline.list_images(str(tmp_path / 'empty'), 'data.folder')
