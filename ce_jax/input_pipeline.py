"""tf.data input: the embedded photos and image folders.

Every example is `{'image': [H, W, 3] float32 in [-1, 1]}`. Training streams
are random-access: global example `i` depends only on `(seed, i)`, so a run
resumed at step `s`, on any number of processes, continues with exactly the
batches it would have seen.
Each JAX process reads only its rows of every global batch (see `train_dataset`).
"""

import concurrent.futures
import dataclasses
import importlib.util
import os
import zlib
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from ce_jax import parallel
from ce_jax.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

# Photographs that ship inside installed packages, as (importable package,
# file under the package's folder). Grey ones are used as RGB. The eval split
# holds different photos, not just different crops.
EMBEDDED_TRAIN = (
    ('skimage', 'data/astronaut.png'), ('skimage', 'data/chelsea.png'),
    ('skimage', 'data/hubble_deep_field.jpg'), ('skimage', 'data/ihc.png'),
    ('skimage', 'data/motorcycle_left.png'), ('skimage', 'data/motorcycle_right.png'),
    ('skimage', 'data/retina.jpg'), ('sklearn', 'datasets/images/china.jpg'),
    ('matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'),
    ('skimage', 'data/camera.png'), ('skimage', 'data/brick.png'), ('skimage', 'data/grass.png'),
    ('skimage', 'data/gravel.png'), ('skimage', 'data/moon.png'), ('skimage', 'data/coins.png'),
    ('skimage', 'data/clock_motion.png'))
EMBEDDED_EVAL = (
    ('skimage', 'data/coffee.png'), ('skimage', 'data/rocket.jpg'),
    ('sklearn', 'datasets/images/flower.jpg'))
# What `pip install` calls each package of the tables.
DISTRIBUTIONS = {'skimage': 'scikit-image', 'sklearn': 'scikit-learn',
                 'matplotlib': 'matplotlib'}


@dataclasses.dataclass(frozen=True)
class Source:
  """Where images come from: decoded photos in memory, or files read on the fly."""

  name: str
  photos: tuple[np.ndarray, ...] = ()  # each [h, w, 3] uint8
  files: tuple[str, ...] = ()


# ----------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------


def _load_rgb(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('RGB'))


def embedded_path(package: str, file: str) -> str:
  """The path of `file` inside the installed `package`, without importing it."""
  spec = importlib.util.find_spec(package)
  install = f'pip install {DISTRIBUTIONS.get(package, package)}'
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"data.source='embedded' needs the photos of the package '{package}', which "
                    f'is not installed ({install}).')
  path = os.path.join(spec.submodule_search_locations[0], file)
  if not os.path.isfile(path):
    raise UserError(f"data.source='embedded': {path} is missing: the installed '{package}' does "
                    f"not ship '{file}' (expected {DISTRIBUTIONS.get(package, package)} as "
                    'pinned in pyproject.toml).')
  return path


def embedded_photos(split: str) -> Source:
  """The bundled photographs of `split` ('train' or 'eval'), each `[h, w, 3]` uint8."""
  table = EMBEDDED_TRAIN if split == 'train' else EMBEDDED_EVAL
  return Source(f'embedded:{split}', photos=tuple(_load_rgb(embedded_path(package, file))
                                                  for package, file in table))


def _readable(path: str) -> bool:
  try:
    with Image.open(path) as im:
      im.verify()
    return True
  except Exception:  # noqa: BLE001 (any decoder error means skip the file)
    return False


def list_images(folder: str, field: str) -> list[str]:
  """Image files under `folder` (recursive, sorted); unreadable ones skipped with a warning."""
  if not folder:
    raise UserError(f'{field} is empty: expected a folder of images.')
  if not os.path.isdir(folder):
    raise UserError(f"{field}='{folder}' is not a folder: expected a folder of images "
                    f'({", ".join(IMAGE_EXTENSIONS)}).')
  found = sorted(
      os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
      if f.lower().endswith(IMAGE_EXTENSIONS))
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    ok = list(pool.map(_readable, found))
  for path, good in zip(found, ok, strict=True):
    if not good:
      logging.warning('Skipping unreadable image file %s', path)
  files = [p for p, good in zip(found, ok, strict=True) if good]
  if not files:
    raise UserError(f"{field}='{folder}' holds no readable images "
                    f'({", ".join(IMAGE_EXTENSIONS)}, searched recursively).')
  return files


def _in_eval_split(path: str, fraction: float) -> bool:
  return zlib.crc32(os.path.basename(path).encode()) % 10_000 < fraction * 10_000


def folder_source(config: ml_collections.ConfigDict, split: str) -> Source:
  """Files of `data.folder`; eval from `data.eval_folder` or a stable by-name fraction."""
  data = config.data
  if data.eval_folder:
    files = list_images(data.folder if split == 'train' else data.eval_folder,
                        'data.folder' if split == 'train' else 'data.eval_folder')
    return Source(f'folder:{split}', files=tuple(files))
  files = list_images(data.folder, 'data.folder')
  evals = [f for f in files if _in_eval_split(f, data.eval_fraction)]
  if not evals and data.eval_fraction > 0:
    evals = files[-1:]
  chosen = evals if split == 'eval' else [f for f in files if f not in set(evals)] or files
  return Source(f'folder:{split}', files=tuple(chosen))


def make_source(config: ml_collections.ConfigDict, split: str) -> Source:
  if config.data.source == 'embedded':
    return embedded_photos(split)
  if config.data.source == 'folder':
    return folder_source(config, split)
  raise UserError(f"data.source='{config.data.source}': expected 'embedded', 'folder' or "
                  "'celeba'.")


# ----------------------------------------------------------------------------
# Per-example transforms (graph mode)
# ----------------------------------------------------------------------------


def resize_shorter(image: tf.Tensor, shorter: int) -> tf.Tensor:
  """Resizes `[h, w, 3]` so that min(h, w) = `shorter` (area-preserving aspect)."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = tf.cast(shorter, tf.float32) / tf.reduce_min(shape)
  size = tf.cast(tf.round(shape * scale), tf.int32)
  return tf.image.resize(image, tf.maximum(size, shorter), antialias=True)


def random_crop_flip(image: tf.Tensor, size: int, seed: tf.Tensor, flip: bool) -> tf.Tensor:
  """A `[size, size, 3]` crop at a position (and flip) drawn from the stateless `seed`."""
  image = tf.image.stateless_random_crop(image, (size, size, 3), seed=seed)
  if flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
  return image


def random_scale_crop(image: tf.Tensor, size: int, scale_range: tuple[float, float],
                      seed: tf.Tensor) -> tf.Tensor:
  """A square crop of `[h, w, 3]`, resized to `[size, size, 3]` float32 (same value range).

  Its side is a fraction of min(h, w) drawn uniformly from `scale_range`, its
  position drawn too; both from the stateless `seed` (`[2]` int64). Crops larger
  than `size` are shrunk by area averaging (as fast as plain bilinear, and
  without its aliasing), smaller ones enlarged bilinearly.
  """
  lo, hi = scale_range
  fraction_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  shorter = tf.reduce_min(tf.shape(image)[:2])
  fraction = tf.random.stateless_uniform([], fraction_seed, minval=lo, maxval=hi)
  side = tf.cast(tf.round(fraction * tf.cast(shorter, tf.float32)), tf.int32)
  side = tf.clip_by_value(side, 1, shorter)
  crop = tf.image.stateless_random_crop(image, tf.stack([side, side, 3]), seed=crop_seed)
  return tf.cond(side >= size,
                 lambda: tf.image.resize(crop, (size, size), method='area'),
                 lambda: tf.image.resize(crop, (size, size)))


# RGB → YIQ (NTSC): rows give luma Y and the chroma axes I, Q.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                       [0.211, -0.523, 0.312]], np.float32)


def colour_matrix(hue: tf.Tensor, saturation: tf.Tensor) -> tf.Tensor:
  """`[3, 3]` float32 acting on RGB: chroma rotated by `hue` radians, scaled by `saturation`.

  Luma (Y of YIQ) is kept; this is the hue/saturation jitter of TensorFlow
  Addons' `adjust_hsv_in_yiq`, one matrix instead of an HSV round trip.
  """
  cos, sin = saturation * tf.cos(hue), saturation * tf.sin(hue)
  one, zero = tf.ones_like(cos), tf.zeros_like(cos)
  rotate = tf.stack([tf.stack([one, zero, zero]), tf.stack([zero, cos, -sin]),
                     tf.stack([zero, sin, cos])])
  return tf.linalg.inv(RGB_TO_YIQ) @ rotate @ RGB_TO_YIQ


def colour_augment(image: tf.Tensor, data: ml_collections.ConfigDict,
                   seed: tf.Tensor) -> tf.Tensor:
  """Random brightness, contrast, saturation and hue of `[h, w, 3]` float32 in [0, 1].

  As `data` sets them: an added brightness in ±`brightness_delta`, contrast
  (as `tf.image.adjust_contrast`: about each channel's mean) and saturation
  factors drawn from `contrast_range` and `saturation_range`, and with
  `hue_augment` a hue rotation drawn from the whole circle; all one affine
  colour map whose draws come from the stateless `seed` (`[2]` int64). The
  result is clipped to [0, 1].
  """
  keys = tf.unstack(tf.random.experimental.stateless_split(seed, 4))

  def draw(key, lo, hi):
    return tf.random.stateless_uniform([], key, minval=lo, maxval=hi)

  brightness = draw(keys[0], -data.brightness_delta, data.brightness_delta)
  contrast = draw(keys[1], *data.contrast_range) if _active(data.contrast_range) else 1.0
  saturation = (draw(keys[2], *data.saturation_range) if _active(data.saturation_range)
                else tf.constant(1.0))
  hue = draw(keys[3], -np.pi, np.pi) if data.hue_augment else tf.constant(0.0)
  matrix = colour_matrix(hue, saturation)
  mean = tf.reduce_mean(image, axis=(0, 1))
  # contrast·(M x + b − mean(M x + b)) + mean(M x + b), with the mean linear in x.
  offset = (1.0 - contrast) * tf.linalg.matvec(matrix, mean) + brightness
  out = tf.einsum('hwc,dc->hwd', image, contrast * matrix) + offset
  return tf.clip_by_value(out, 0.0, 1.0)


def _active(factor_range: tuple[float, float] | None) -> bool:
  """Whether a multiplicative factor range does anything ((1, 1) and None do not)."""
  return bool(factor_range) and tuple(factor_range) != (1.0, 1.0)


def _colour_augmented(data: ml_collections.ConfigDict) -> bool:
  return bool(data.brightness_delta or _active(data.contrast_range)
              or _active(data.saturation_range) or data.hue_augment)


def check_augment(data: ml_collections.ConfigDict) -> None:
  """Raises UserError for an augmentation field of `config.data` out of range."""
  if data.scale_range and tuple(data.scale_range) != (0, 0):
    lo, hi = data.scale_range
    if not 0 < lo <= hi <= 1:
      raise UserError(f'data.scale_range={tuple(data.scale_range)}: expected (lo, hi) with '
                      '0 < lo <= hi <= 1 (fractions of the shorter side), or (0, 0) for '
                      'fixed-size crops.')
  for field in ('saturation_range', 'contrast_range'):
    value = data[field]
    if value and not 0 <= value[0] <= value[1]:
      raise UserError(f'data.{field}={tuple(value)}: expected factors (lo, hi) with '
                      '0 <= lo <= hi; (1, 1) leaves images as they are.')
  if not 0 <= data.brightness_delta <= 1:
    raise UserError(f'data.brightness_delta={data.brightness_delta}: expected a value in '
                    '[0, 1] (0 turns it off).')


def augment(image: tf.Tensor, data: ml_collections.ConfigDict, seed: tf.Tensor) -> tf.Tensor:
  """The train example of a `[h, w, 3]` photo (uint8 or float in [0, 255]).

  A crop (multi-scale with `data.scale_range`, else `data.image_size` pixels
  of the photo), a flip with `data.random_flip`, then `colour_augment`; all
  drawn from the stateless `seed` (`[2]` int64).
  Returns `[S, S, 3]` float32 in [-1, 1], S = `data.image_size`.
  """
  size = data.image_size
  if data.scale_range and tuple(data.scale_range) != (0, 0):
    image = random_scale_crop(image, size, data.scale_range, seed)
    if data.random_flip:
      image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
  else:
    image = random_crop_flip(image, size, seed, data.random_flip)
  if _colour_augmented(data):
    colour_seed = tf.random.experimental.stateless_split(seed + 2, 1)[0]
    image = colour_augment(tf.cast(image, tf.float32) / 255.0, data, colour_seed) * 255.0
  return tf.clip_by_value(to_signed(image), -1.0, 1.0)


def to_signed(image: tf.Tensor) -> tf.Tensor:
  """[0, 255] → [-1, 1] float32."""
  return tf.cast(image, tf.float32) / 127.5 - 1.0


def _decode_file(path: tf.Tensor) -> tf.Tensor:
  image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  return tf.ensure_shape(image, (None, None, 3))


def _prepared_photos(source: Source, shorter: int) -> list[np.ndarray]:
  """Photos resized once, up front, so only cropping happens per example."""
  out = []
  for photo in source.photos:
    resized = resize_shorter(tf.constant(photo), shorter)
    out.append(tf.cast(tf.round(resized), tf.uint8).numpy())
  return out


def _photo_stack(photos: list[np.ndarray]) -> tuple[tf.Tensor, tf.Tensor]:
  """Pads photos into one `[N, Hmax, Wmax, 3]` uint8 tensor plus their `[N, 2]` sizes."""
  hmax = max(p.shape[0] for p in photos)
  wmax = max(p.shape[1] for p in photos)
  stack = np.zeros((len(photos), hmax, wmax, 3), np.uint8)
  for i, p in enumerate(photos):
    stack[i, :p.shape[0], :p.shape[1]] = p
  sizes = np.array([p.shape[:2] for p in photos], np.int64)
  return tf.constant(stack), tf.constant(sizes)


def _item_at(source: Source, shorter: int):
  """A graph function: item number → `[h, w, 3]` image (uint8 or float) of the source."""
  if source.photos:
    stack, sizes = _photo_stack(_prepared_photos(source, shorter))

    def photo(i):
      return stack[i, :sizes[i, 0], :sizes[i, 1]]
    return photo

  files = tf.constant(list(source.files))

  def file(i):
    return resize_shorter(_decode_file(files[i]), shorter)
  return file


# ----------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------


def train_dataset(source: Source, config: ml_collections.ConfigDict, batch_size: int,
                  seed: int, start_index: int = 0, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Endless batches `{'image': [batch_size, S, S, 3] float32 in [-1, 1]}`.

  Global example `i` (counted from 0 at step 0) is the `i mod N`-th item of the
  pass `i div N` through a fresh permutation of the N items, cropped, flipped
  and colour-jittered (`augment`) with the stateless seed `(seed, i)`. Process `p` of `P` yields its
  rows of each global batch of `B = batch_size·P`: the examples
  `[s·B + p·batch_size, s·B + (p + 1)·batch_size)` at step `s`, so the global
  batches do not depend on `P`. `start_index` counts this process's examples.
  """
  data = config.data
  check_augment(data)
  count = len(source.photos or source.files)
  item_at = _item_at(source, max(data.resize_shorter, data.image_size))

  def example(k):
    i = (k // batch_size * process_count + process_index) * batch_size + k % batch_size
    epoch, pos = i // count, i % count
    j = tf.random.experimental.index_shuffle(
        pos, tf.stack([tf.cast(seed, tf.int64) + 7919, epoch]), count - 1)
    image = item_at(j)
    return {'image': augment(image, data, tf.stack([tf.cast(seed, tf.int64), i]))}

  ds = tf.data.Dataset.range(start_index, np.iinfo(np.int64).max)
  ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.ignore_errors(log_warning=True)
  return ds.batch(batch_size, drop_remainder=True).prefetch(data.prefetch)


def eval_examples(source: Source, config: ml_collections.ConfigDict, num: int,
                  seed: int) -> dict[str, np.ndarray]:
  """`num` fixed crops of the eval items: `{'image': [num, S, S, 3] float32 in [-1, 1]}`."""
  data = config.data
  size = data.image_size
  count = len(source.photos or source.files)
  item_at = _item_at(source, max(data.resize_shorter, size))

  def example(i):
    crop_seed = tf.stack([tf.cast(seed, tf.int64), i])
    image = random_crop_flip(item_at(i % count), size, crop_seed, flip=False)
    return {'image': to_signed(image)}

  ds = tf.data.Dataset.range(num).map(example, num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=True)
  ds = ds.ignore_errors(log_warning=True).batch(max(num, 1))
  return next(ds.as_numpy_iterator())


@dataclasses.dataclass
class Input:
  """What training needs: the process-local train iterator and eval images."""

  train: Iterator[dict[str, np.ndarray]]
  # This process's share of the fixed eval examples, e.g.
  # {'image': [N_local, S, S, 3] float32 in [-1, 1]}.
  eval_batch: dict[str, np.ndarray]
  num_train_items: int


def create_input(config: ml_collections.ConfigDict, local_batch_size: int,
                 start_step: int = 0) -> Input:
  """Train batches for this process from `start_step` on, and its eval images."""
  if config.data.source == 'celeba':
    from ce_jax import celeba  # noqa: PLC0415 (celeba builds on this module)

    return celeba.create_input(config, local_batch_size, start_step)
  # Every process sees every item but reads only its rows of each global batch.
  index, count = jax.process_index(), jax.process_count()
  train = make_source(config, 'train')
  evals = make_source(config, 'eval')
  ds = train_dataset(train, config, local_batch_size, seed=config.seed,
                     start_index=start_step * local_batch_size, process_index=index,
                     process_count=count)
  n_eval = config.data.num_eval_examples
  eval_batch = eval_examples(evals, config, n_eval, seed=config.mask.eval_seed)
  rows = parallel.process_rows(len(eval_batch['image']), local_batch_size, index, count)
  eval_batch = {k: v[rows] for k, v in eval_batch.items()}
  logging.info('Input: %d train %s, %d eval crops (this process).',
               len(train.photos or train.files), 'photos' if train.photos else 'files',
               len(eval_batch['image']))
  return Input(ds.as_numpy_iterator(), eval_batch, len(train.photos or train.files))
