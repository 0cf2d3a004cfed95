"""The data layer: one random-access tf.data stream and the sources it reads.

A `Source` is a split as a list of N items plus two graph functions: how to
read item `j` (`read`) and how to make it an example (`transform`). The
embedded photos, the photo corpus (`ce_jax.corpus`), image folders and CelebA
are sources; `train_dataset` and
`eval_crops` turn any source into batches. Training streams are random-access:
global example `i` depends only on `(seed, i)`, so a run resumed at step `s`,
on any number of processes, continues with exactly the batches it would have
seen. Each JAX process reads only its rows of every global batch (see
`train_dataset`). Files that cannot be decoded are found when a source is
listed, before training starts, so none is dropped mid-run.

Photo examples are `{'image': [S, S, 3] float32 in [-1, 1]}`; CelebA adds
`'landmarks': [5, 2] float32` (see `ce_jax.celeba`).
"""

import concurrent.futures
import dataclasses
import importlib.util
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from ce_jax import celeba, corpus, parallel
from ce_jax.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
# What tf.io.decode_image reads, as PIL names the formats.
DECODABLE = ('JPEG', 'PNG', 'BMP', 'WEBP', 'GIF')

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


Example = dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Source:
  """One split as a random-access list of `count` items.

  `read(j)` maps an item number (int64 scalar tensor) to its `[h, w, 3]` image;
  `transform(image, j, seed, train)` maps it to an example, drawing any
  randomness from the stateless `seed` (`[2]` int64) and augmenting only when
  `train` (a Python bool). Both run in graph mode inside tf.data.
  """

  name: str
  count: int
  read: Callable[[tf.Tensor], tf.Tensor]
  transform: Callable[[tf.Tensor, tf.Tensor, tf.Tensor, bool], Example]


# ----------------------------------------------------------------------------
# The stream
# ----------------------------------------------------------------------------


def train_dataset(source: Source, config: ml_collections.ConfigDict, batch_size: int,
                  seed: int, start_index: int = 0, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Endless batches of `source`'s train examples, e.g. `{'image': [batch_size, S, S, 3]}`.

  Global example `i` (counted from 0 at step 0) is the `i mod N`-th item of the
  pass `i div N` through a fresh permutation of the N items, transformed with
  the stateless seed `(seed, i)`. Process `p` of `P` yields its rows of each
  global batch of `B = batch_size·P`: the examples
  `[s·B + p·batch_size, s·B + (p + 1)·batch_size)` at step `s`, so the global
  batches do not depend on `P`. `start_index` counts this process's examples.
  """
  count = source.count

  def example(k):
    i = (k // batch_size * process_count + process_index) * batch_size + k % batch_size
    epoch, pos = i // count, i % count
    j = tf.random.experimental.index_shuffle(
        pos, tf.stack([tf.cast(seed, tf.int64) + 7919, epoch]), count - 1)
    return source.transform(source.read(j), j, tf.stack([tf.cast(seed, tf.int64), i]), True)

  ds = tf.data.Dataset.range(start_index, np.iinfo(np.int64).max)
  ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size, drop_remainder=True).prefetch(config.data.prefetch)


def eval_crops(source: Source, num: int, seed: int) -> dict[str, np.ndarray]:
  """`num` fixed, unaugmented examples: item `i mod N` with the seed `(seed, i)`.

  Returns arrays with a leading `[num]` axis, e.g. `{'image': [num, S, S, 3]
  float32 in [-1, 1]}`.
  """
  def example(i):
    j = i % source.count
    return source.transform(source.read(j), j, tf.stack([tf.cast(seed, tf.int64), i]), False)

  ds = tf.data.Dataset.range(num).map(example, num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=True)
  return next(ds.batch(max(num, 1)).as_numpy_iterator())


# ----------------------------------------------------------------------------
# Reading and checking encoded images
# ----------------------------------------------------------------------------


def decode(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG/PNG/BMP/GIF/WebP bytes → `[h, w, 3]` uint8 (grey and alpha → RGB)."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  return tf.ensure_shape(image, (None, None, 3))


def encoded_reader(files: Sequence[str] = (),
                   encoded: np.ndarray | None = None) -> Callable[[tf.Tensor], tf.Tensor]:
  """`read` of a source of image `files`, or of `encoded` bytes held in memory ([N] object)."""
  if encoded is not None:
    table = tf.constant(encoded, tf.string)
    return lambda j: decode(table[j])
  paths = tf.constant(list(files))
  return lambda j: decode(tf.io.read_file(paths[j]))


def _decodes(item: str | bytes) -> bool:
  """Whether a file (path) or encoded bytes hold a whole image tf.io.decode_image reads."""
  try:
    with Image.open(item if isinstance(item, str) else io.BytesIO(item)) as im:
      if im.format not in DECODABLE:
        return False
      # Decoding at reduced size still reads every byte of a JPEG.
      im.draft('RGB', (max(im.width // 8, 1), max(im.height // 8, 1)))
      im.load()
    return True
  except Exception:  # noqa: BLE001 (any decoder error means the item is unreadable)
    return False


def readable(items: Sequence[str | bytes], what: str) -> np.ndarray:
  """`[N]` bool: which of the image files (paths) or encoded images decode.

  Decodes each once (in threads). The unreadable ones are named once in a
  single warning with their count; none readable is a UserError naming `what`.
  """
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    ok = np.fromiter(pool.map(_decodes, items), bool, len(items))
  bad = [str(items[i]) if isinstance(items[i], str) else f'#{i}' for i in np.flatnonzero(~ok)]
  if not ok.any():
    raise UserError(f'{what}: none of its {len(items)} images can be decoded (expected '
                    f'{", ".join(DECODABLE)}; e.g. {", ".join(bad[:3])}).')
  if bad:
    logging.warning('%s: %d of %d images cannot be decoded and are left out: %s', what, len(bad),
                    len(items), ', '.join(bad))
  return ok


# ----------------------------------------------------------------------------
# Per-example photo transforms (graph mode)
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


def _photo_stack(photos: list[np.ndarray]) -> tuple[tf.Tensor, tf.Tensor]:
  """Pads photos into one `[N, Hmax, Wmax, 3]` uint8 tensor plus their `[N, 2]` sizes."""
  hmax = max(p.shape[0] for p in photos)
  wmax = max(p.shape[1] for p in photos)
  stack = np.zeros((len(photos), hmax, wmax, 3), np.uint8)
  for i, p in enumerate(photos):
    stack[i, :p.shape[0], :p.shape[1]] = p
  sizes = np.array([p.shape[:2] for p in photos], np.int64)
  return tf.constant(stack), tf.constant(sizes)


def _resized_once(photo: np.ndarray, shorter: int) -> np.ndarray:
  """`[h, w, 3]` uint8 → the same with min(h, w) = `shorter`, so examples only crop it."""
  return tf.cast(tf.round(resize_shorter(tf.constant(photo), shorter)), tf.uint8).numpy()


def photo_transform(data: ml_collections.ConfigDict):
  """`transform` of the photo sources: `augment` for training, a fixed crop for eval."""

  def transform(image, j, seed, train):
    del j
    if train:
      return {'image': augment(image, data, seed)}
    crop = random_crop_flip(image, data.image_size, seed, flip=False)
    return {'image': to_signed(crop)}
  return transform


# ----------------------------------------------------------------------------
# Sources: listing the items of a split
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


def embedded_photos(split: str) -> tuple[np.ndarray, ...]:
  """The bundled photographs of `split` ('train' or 'eval'), each `[h, w, 3]` uint8."""
  table = EMBEDDED_TRAIN if split == 'train' else EMBEDDED_EVAL
  return tuple(_load_rgb(embedded_path(package, file)) for package, file in table)


def _shorter_side(data: ml_collections.ConfigDict) -> int:
  """The shorter side every photo source resizes its photos to."""
  return max(data.resize_shorter, data.image_size)


def _embedded_resized(data: ml_collections.ConfigDict, split: str) -> list[np.ndarray]:
  return [_resized_once(p, _shorter_side(data)) for p in embedded_photos(split)]


def embedded_source(config: ml_collections.ConfigDict, split: str) -> Source:
  """The bundled photos of `split`, resized once (shorter side `data.resize_shorter`)."""
  data = config.data
  photos = _embedded_resized(data, split)
  stack, sizes = _photo_stack(photos)
  return Source(f'embedded:{split}', len(photos),
                read=lambda j: stack[j, :sizes[j, 0], :sizes[j, 1]],
                transform=photo_transform(data))


def _load_shorter(path: str, shorter: int) -> np.ndarray | None:
  """A photo file → `[h, w, 3]` uint8 with min(h, w) = `shorter`; None if it does not decode.

  JPEGs are decoded straight at the smallest reduced size (1/2, 1/4, 1/8)
  still at least that large, then resized like the other sources.
  """
  try:
    with Image.open(path) as im:
      scale = shorter / min(im.size)
      im.draft('RGB', (math.ceil(im.width * scale), math.ceil(im.height * scale)))
      photo = np.asarray(im.convert('RGB'))
  except Exception:  # noqa: BLE001 (any decoder error means the file is unreadable)
    return None
  return _resized_once(photo, shorter)


def corpus_source(config: ml_collections.ConfigDict,
                  manifest: corpus.Manifest | None = None) -> Source:
  """The photo corpus prepared in `data.photo_cache` (`python -m ce_jax.corpus`).

  The photos of `manifest` (default: the shipped one) that the cache holds
  intact, with `data.add_embedded` the embedded training photos too, each
  resized once to shorter side `data.resize_shorter` and kept in memory. A
  missing, altered or undecodable one is named in a warning and left out; a
  missing or empty cache is a UserError saying how to prepare it.
  """
  data = config.data
  files = corpus.prepared_files(data.photo_cache, manifest)
  shorter = _shorter_side(data)
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    loaded = list(pool.map(lambda f: _load_shorter(f, shorter), files))
  bad = [f for f, photo in zip(files, loaded, strict=True) if photo is None]
  photos = [photo for photo in loaded if photo is not None]
  what = f"data.photo_cache='{data.photo_cache}'"
  if not photos:
    raise UserError(f'{what}: none of its {len(files)} photos can be decoded (e.g. '
                    f'{", ".join(bad[:3])}); run `python -m ce_jax.corpus` again.')
  if bad:
    logging.warning('%s: %d of %d photos cannot be decoded and are left out: %s', what,
                    len(bad), len(files), ', '.join(bad))
  if data.add_embedded:
    photos += _embedded_resized(data, 'train')
  stack, sizes = _photo_stack(photos)
  return Source('photos:train', len(photos),
                read=lambda j: stack[j, :sizes[j, 0], :sizes[j, 1]],
                transform=photo_transform(data))


def list_images(folder: str, field: str) -> list[str]:
  """Image files under `folder` (recursive, sorted) that decode; see `readable`."""
  if not folder:
    raise UserError(f'{field} is empty: expected a folder of images.')
  if not os.path.isdir(folder):
    raise UserError(f"{field}='{folder}' is not a folder: expected a folder of images "
                    f'({", ".join(IMAGE_EXTENSIONS)}).')
  found = sorted(
      os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
      if f.lower().endswith(IMAGE_EXTENSIONS))
  if not found:
    raise UserError(f"{field}='{folder}' holds no readable images "
                    f'({", ".join(IMAGE_EXTENSIONS)}, searched recursively).')
  ok = readable(found, f"{field}='{folder}'")
  return [p for p, good in zip(found, ok, strict=True) if good]


def _in_eval_split(path: str, fraction: float) -> bool:
  return zlib.crc32(os.path.basename(path).encode()) % 10_000 < fraction * 10_000


def folder_files(config: ml_collections.ConfigDict, split: str) -> list[str]:
  """Files of `data.folder`; eval from `data.eval_folder` or a stable by-name fraction."""
  data = config.data
  if data.eval_folder:
    return list_images(data.folder if split == 'train' else data.eval_folder,
                       'data.folder' if split == 'train' else 'data.eval_folder')
  files = list_images(data.folder, 'data.folder')
  evals = [f for f in files if _in_eval_split(f, data.eval_fraction)]
  if not evals and data.eval_fraction > 0:
    evals = files[-1:]
  return evals if split == 'eval' else [f for f in files if f not in set(evals)] or files


def file_source(name: str, files: Sequence[str], config: ml_collections.ConfigDict) -> Source:
  """Image `files` (that decode), each resized to shorter side `data.resize_shorter` when read."""
  data = config.data
  shorter = _shorter_side(data)
  read = encoded_reader(files)
  return Source(name, len(files), read=lambda j: resize_shorter(read(j), shorter),
                transform=photo_transform(data))


def folder_source(config: ml_collections.ConfigDict, split: str) -> Source:
  return file_source(f'folder:{split}', folder_files(config, split), config)


def celeba_source(items: celeba.Items, config: ml_collections.ConfigDict) -> Source:
  """CelebA `items` as a source: faces with landmarks, flipped at random when training."""
  data = config.data
  landmarks = tf.constant(items.landmarks)

  def transform(image, j, seed, train):
    flip = False
    if train and data.random_flip:
      flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    image, points = celeba.transform(image, landmarks[j], size=data.image_size,
                                     crop_offset=data.crop_offset, flip=flip)
    return {'image': image, 'landmarks': points}
  return Source(f'celeba:{items.name}', len(items),
                read=encoded_reader(items.files, items.encoded), transform=transform)


def celeba_sources(config: ml_collections.ConfigDict) -> tuple[Source, Source]:
  """(train, eval) CelebA sources as `config.data` says; faces whose image fails to decode
  are left out (named once)."""
  sources = []
  for items in celeba.load(config):
    ok = readable(items.files or list(items.encoded), f'CelebA {items.name}')
    sources.append(celeba_source(items.subset(np.flatnonzero(ok)), config))
  return sources[0], sources[1]


def make_sources(config: ml_collections.ConfigDict) -> tuple[Source, Source]:
  """(train, eval) sources of `data.source`."""
  kind = config.data.source
  if kind == 'embedded':
    return embedded_source(config, 'train'), embedded_source(config, 'eval')
  if kind == 'photos':
    # Held out: the embedded eval photos, so scores compare with the default's.
    return corpus_source(config), embedded_source(config, 'eval')
  if kind == 'folder':
    return folder_source(config, 'train'), folder_source(config, 'eval')
  if kind == 'celeba':
    return celeba_sources(config)
  raise ValueError(f"data.source='{kind}' (config_checks names the choices).")


# ----------------------------------------------------------------------------
# What training reads
# ----------------------------------------------------------------------------


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
  """Train batches for this process from `start_step` on, and its eval examples."""
  # Every process sees every item but reads only its rows of each global batch.
  index, count = jax.process_index(), jax.process_count()
  train, evals = make_sources(config)
  ds = train_dataset(train, config, local_batch_size, seed=config.seed,
                     start_index=start_step * local_batch_size, process_index=index,
                     process_count=count)
  eval_batch = eval_crops(evals, config.data.num_eval_examples, seed=config.mask.eval_seed)
  rows = parallel.process_rows(len(eval_batch['image']), local_batch_size, index, count)
  eval_batch = {k: v[rows] for k, v in eval_batch.items()}
  logging.info('Input: %d train items (%s), %d eval examples (this process).', train.count,
               train.name, len(eval_batch['image']))
  return Input(ds.as_numpy_iterator(), eval_batch, train.count)
