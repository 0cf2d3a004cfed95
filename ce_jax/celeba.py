"""CelebA input: tfds `celeb_a` or a directory of the official release files.

Examples are `{'image': [S, S, 3] float32 in [-1, 1], 'landmarks': [5, 2]
float32}`: the aligned 178×218 photo center-cropped to 178×178 (shifted
`data.crop_offset` rows down), resized to S = `data.image_size`, and its five
landmarks (x, y) in that S×S pixel grid (pixel centers at integers), in the
order of `LANDMARKS`. A horizontal flip mirrors x and swaps left and right.

`data.celeba_dir` empty → tensorflow-datasets `celeb_a` in `data.tfds_data_dir`
(the tfds default when empty). When it is not prepared yet and
`data.celeba_download` is on, process 0 downloads and prepares it, but only if
the download host answers within seconds; otherwise absent data fail at once
with a message saying how to get it (never after minutes of retries).
Otherwise the directory holds `img_align_celeba/` and the lists
`list_attr_celeba`, `list_landmarks_align_celeba`, `list_eval_partition`
(`.txt` as released, or the `.csv` variants of common mirrors; at the top or in
`Anno/` and `Eval/`).

This module lists the kept faces of a split (`load` → `Items`) and maps a face
to an example (`transform`); `input_pipeline.celeba_source` plugs them into the
random-access stream, in which each process reads only its rows of every
global batch. The tfds source holds the kept faces' JPEG bytes in memory on
every process for that (the release's JPEGs average about 7 KB: ~50 MB for the
Mustache train faces, ~1.2 GB for the whole train split).
"""

import csv
import dataclasses
import os
import socket
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from ce_jax import config_checks
from ce_jax.errors import UserError

LANDMARKS = ('lefteye', 'righteye', 'nose', 'leftmouth', 'rightmouth')
# Landmark order after a horizontal flip: left and right swap.
FLIP_ORDER = (1, 0, 2, 4, 3)
SPLITS = config_checks.CELEBA_SPLITS  # partition ids 0, 1, 2
LISTS = ('list_attr_celeba', 'list_landmarks_align_celeba', 'list_eval_partition')
IMAGE_DIRS = ('img_align_celeba/img_align_celeba', 'img_align_celeba', 'Img/img_align_celeba',
              'img_align_celeba_png', 'Img/img_align_celeba_png')
LIST_DIRS = ('', 'Anno', 'Eval', 'anno', 'eval')
HELP = ('Provide CelebA either way: (1) tensorflow-datasets: `tfds build celeb_a '
        '--data_dir=DIR` (downloads 1.4 GB from Google Drive, which often refuses when the '
        "files' daily quota is used up), then --config.data.tfds_data_dir=DIR; or (2) the "
        'official release files (img_align_celeba/ with list_attr_celeba, '
        'list_landmarks_align_celeba and list_eval_partition as .txt or .csv) in a folder DIR, '
        'then --config.data.celeba_dir=DIR. See "CelebA and the mustache task" in README.md.')


@dataclasses.dataclass(frozen=True)
class Items:
  """The kept examples of one split."""

  name: str  # e.g. 'train (data.celeba_dir)'
  landmarks: np.ndarray  # [N, 5, 2] float32 (x, y) in the aligned 178×218 photo
  files: tuple[str, ...] = ()  # image paths (directory source)
  encoded: np.ndarray | None = None  # [N] object array of JPEG bytes (tfds source)
  total: int = 0  # examples read before the attribute filter
  kept: int = 0  # examples that passed it (more than N when only the first N are held)

  def __len__(self) -> int:
    return len(self.landmarks)

  def subset(self, rows: np.ndarray) -> 'Items':
    """The items at `rows` (`[K]` int), in that order."""
    files = tuple(self.files[i] for i in rows) if self.files else ()
    encoded = None if self.encoded is None else self.encoded[rows]
    return dataclasses.replace(self, landmarks=self.landmarks[rows], files=files, encoded=encoded)


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------


def _check_attribute(name: str, known: Sequence[str]) -> None:
  if name not in known:
    raise UserError(f"data.celeba_attribute='{name}' is not a CelebA attribute: expected one of "
                    f'{", ".join(known)}.')


def _find_list(root: str, stem: str) -> str | None:
  for sub in LIST_DIRS:
    for ext in ('.txt', '.csv'):
      path = os.path.join(root, sub, stem + ext)
      if os.path.isfile(path):
        return path
  return None


def _image_dir(root: str) -> str | None:
  for sub in IMAGE_DIRS:
    if os.path.isdir(os.path.join(root, sub)):
      return os.path.join(root, sub)
  return None


def _tfds_builder(config: ml_collections.ConfigDict):
  import tensorflow_datasets as tfds  # noqa: PLC0415 (only the tfds source needs it)

  return tfds.builder('celeb_a', data_dir=config.data.tfds_data_dir or None)


DOWNLOAD_HOST = ('drive.google.com', 443)


def _reachable(address: tuple[str, int], timeout: float = 3.0) -> bool:
  try:
    with socket.create_connection(address, timeout=timeout):
      return True
  except OSError:
    return False


def _download(builder, config: ml_collections.ConfigDict) -> bool:
  """Prepares tfds `celeb_a` on process 0 if allowed and the host answers; True if done."""
  if not config.data.celeba_download or not _reachable(DOWNLOAD_HOST):
    return False
  if jax.process_index() == 0:
    logging.info('Downloading and preparing tfds celeb_a into %s (1.4 GB).', builder.data_dir)
    try:
      builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 (any download failure gets the same advice)
      raise UserError(f'Downloading tfds celeb_a into {builder.data_dir} failed '
                      f'({type(e).__name__}: {e}). {HELP}') from e
  return True


def check_available(config: ml_collections.ConfigDict) -> None:
  """Fails at once, naming where it looked and both ways to get CelebA, if data are absent."""
  root = config.data.celeba_dir
  if root:
    if not os.path.isdir(root):
      raise UserError(f"data.celeba_dir='{root}' is not a folder. {HELP}")
    missing = [s for s in LISTS if _find_list(root, s) is None]
    if missing:
      raise UserError(f"data.celeba_dir='{root}' lacks {', '.join(missing)} (.txt or .csv, looked "
                      f"in {', '.join(os.path.join(root, d) for d in LIST_DIRS)}). {HELP}")
    if _image_dir(root) is None:
      raise UserError(f"data.celeba_dir='{root}' has no image folder (looked for "
                      f"{', '.join(IMAGE_DIRS)}; unzip img_align_celeba.zip there). {HELP}")
    return
  builder = _tfds_builder(config)
  prepared = lambda: builder.data_path.exists() and builder.is_prepared()  # noqa: E731
  if not prepared() and not (_download(builder, config) and prepared()):
    where = (f"data.tfds_data_dir='{config.data.tfds_data_dir}'" if config.data.tfds_data_dir
             else 'data.tfds_data_dir is empty: the tfds default')
    tried = ('' if not config.data.celeba_download else
             f' No automatic download: {DOWNLOAD_HOST[0]} did not answer.')
    raise UserError(f'CelebA not found: data.celeba_dir is empty and there is no prepared tfds '
                    f"'celeb_a' at {builder.data_path} ({where}).{tried} {HELP}")


# ----------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------


def _is_image_name(token: str) -> bool:
  return token.lower().endswith(('.jpg', '.jpeg', '.png'))


def read_list(path: str) -> tuple[list[str] | None, list[str], np.ndarray]:
  """A CelebA list as (column names or None, image names, `[N, K]` float64 values).

  `.txt` as released (an optional count line, an optional header of column
  names, then `name v1 v2 ...` rows) or `.csv` with a header row.
  """
  with open(path, newline='') as f:
    if path.endswith('.csv'):
      rows = [r for r in csv.reader(f) if r]
    else:
      rows = [line.split() for line in f if line.strip()]
  if not rows:
    raise UserError(f'{path} is empty: expected a CelebA list.')
  header = None
  if path.endswith('.csv'):
    header, rows = [c.strip() for c in rows[0][1:]], rows[1:]
  else:
    if len(rows[0]) == 1 and rows[0][0].isdigit():
      rows = rows[1:]
    if rows and not _is_image_name(rows[0][0]):
      header, rows = rows[0], rows[1:]
  try:
    values = np.array([r[1:] for r in rows], dtype=str).astype(np.float64)
  except ValueError as e:
    raise UserError(f'{path}: expected rows of an image name and numbers ({e}).') from e
  return header, [r[0].strip() for r in rows], values.reshape(len(rows), -1)


def _keep(values: np.ndarray, keep: str) -> np.ndarray:
  """`[N]` bool: which attribute values (bool or ±1) pass `data.celeba_keep`."""
  positive = np.asarray(values) > 0
  if keep == 'all':
    return np.ones_like(positive)
  return positive if keep == 'true' else ~positive


@dataclasses.dataclass(frozen=True)
class Directory:
  """The parsed lists of a CelebA directory, rows in one order (sorted names)."""

  root: str
  files: tuple[str, ...]  # image paths (listed names without a file are left out)
  partition: np.ndarray  # [N] int
  attributes: np.ndarray  # [N, 40] float64, ±1
  attribute_names: tuple[str, ...]
  landmarks: np.ndarray  # [N, 5, 2] float32


def read_directory(root: str) -> Directory:
  """Parses the three lists of `root` and matches them with the image files."""
  attr_header, attr_names, attrs = read_list(_find_list(root, LISTS[0]))
  lm_header, lm_names, lms = read_list(_find_list(root, LISTS[1]))
  _, part_names, parts = read_list(_find_list(root, LISTS[2]))
  if attr_header is None or len(attr_header) != attrs.shape[1]:
    raise UserError(f'{_find_list(root, LISTS[0])}: expected a header line naming the '
                    f'{attrs.shape[1]} attribute columns.')
  columns = [f'{n}_{c}' for n in LANDMARKS for c in 'xy']
  if lm_header is not None:
    if sorted(lm_header) != sorted(columns):
      raise UserError(f'{_find_list(root, LISTS[1])}: expected the columns {columns}, '
                      f'found {lm_header}.')
    lms = lms[:, [lm_header.index(c) for c in columns]]
  attr_row = {n: i for i, n in enumerate(attr_names)}
  lm_row = {n: i for i, n in enumerate(lm_names)}
  folder = _image_dir(root)
  present = set(os.listdir(folder))
  names, missing = [], []
  for name in sorted(part_names):
    stem = os.path.splitext(name)[0]
    found = next((f for f in (name, stem + '.png', stem + '.jpg') if f in present), None)
    if found is None or name not in attr_row or name not in lm_row:
      missing.append(name)
      continue
    names.append((name, found))
  if missing:
    logging.warning('CelebA: %d of the %d images in %s (e.g. %s) lack a file in %s or a row in '
                    'the attribute or landmark list; skipped.', len(missing), len(part_names),
                    LISTS[2], ', '.join(missing[:3]), folder)
  if not names:
    raise UserError(f"data.celeba_dir='{root}': none of the images listed in {LISTS[2]} was "
                    f'found in {folder} with attributes and landmarks.')
  part_row = {n: i for i, n in enumerate(part_names)}
  listed = [n for n, _ in names]
  return Directory(
      root=root,
      files=tuple(os.path.join(folder, f) for _, f in names),
      partition=parts[[part_row[n] for n in listed], 0].astype(np.int64),
      attributes=attrs[[attr_row[n] for n in listed]],
      attribute_names=tuple(attr_header),
      landmarks=lms[[lm_row[n] for n in listed]].reshape(-1, 5, 2).astype(np.float32))


def directory_items(directory: Directory, split: str, attribute: str, keep: str) -> Items:
  """The examples of `split` whose `attribute` passes `keep`, in name order."""
  _check_attribute(attribute, directory.attribute_names)
  in_split = directory.partition == SPLITS.index(split)
  values = directory.attributes[:, directory.attribute_names.index(attribute)]
  chosen = np.flatnonzero(in_split & _keep(values, keep))
  return Items(f'{split} (data.celeba_dir)', directory.landmarks[chosen],
               files=tuple(directory.files[i] for i in chosen), total=int(in_split.sum()),
               kept=len(chosen))


def tfds_items(config: ml_collections.ConfigDict, split: str,
               limit: int | None = None) -> Items:
  """Kept examples of the tfds `celeb_a` `split`, encoded images held in memory.

  `limit`: hold the images of only the first `limit` kept examples (all are counted).
  """
  import tensorflow_datasets as tfds  # noqa: PLC0415

  data = config.data
  builder = _tfds_builder(config)
  _check_attribute(data.celeba_attribute, list(builder.info.features['attributes'].keys()))
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={'image': tfds.decode.SkipDecoding()})

  def compact(ex):
    points = [[ex['landmarks'][f'{n}_x'], ex['landmarks'][f'{n}_y']] for n in LANDMARKS]
    return {'image': ex['image'], 'landmarks': tf.cast(tf.stack(points), tf.float32),
            'value': ex['attributes'][data.celeba_attribute]}

  ds = ds.map(compact, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
  encoded, landmarks, total, kept = [], [], 0, 0
  for batch in ds.as_numpy_iterator():
    chosen = np.flatnonzero(_keep(batch['value'], data.celeba_keep))
    total, kept = total + len(batch['value']), kept + len(chosen)
    if limit is not None:
      chosen = chosen[:max(limit - len(landmarks), 0)]
    encoded.extend(batch['image'][chosen])
    landmarks.extend(batch['landmarks'][chosen])
  return Items(f'{split} (tfds celeb_a)',
               np.asarray(landmarks, np.float32).reshape(-1, 5, 2),
               encoded=np.array(encoded, dtype=object), total=total, kept=kept)


# ----------------------------------------------------------------------------
# Geometry (graph mode)
# ----------------------------------------------------------------------------


def transform(image: tf.Tensor, landmarks: tf.Tensor, *, size: int, crop_offset: int = 0,
              flip: tf.Tensor | bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Square crop, resize, optional flip of a face and its landmarks.

  Args:
    image: `[h, w, 3]` uint8, the aligned photo (178×218 in CelebA).
    landmarks: `[5, 2]` float32 (x, y) pixel coordinates in `image`.
    size: side S of the output.
    crop_offset: rows to move the min(h, w) square down from the center
      (clipped to the photo).
    flip: mirror left-right (a bool scalar tensor or Python bool).
  Returns:
    `[S, S, 3]` float32 in [-1, 1] and `[5, 2]` float32 (x, y) in that image.
  """
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  side = tf.minimum(h, w)
  top = tf.clip_by_value((h - side) // 2 + crop_offset, 0, h - side)
  left = (w - side) // 2
  square = image[top:top + side, left:left + side]
  resized = tf.image.resize(square, (size, size), antialias=True)
  scale = size / tf.cast(side, tf.float32)
  # tf.image.resize maps pixel centers: (x + 0.5)·scale − 0.5.
  origin = tf.cast(tf.stack([left, top]), tf.float32)
  points = (tf.cast(landmarks, tf.float32) - origin + 0.5) * scale - 0.5
  mirrored = tf.gather(points * [-1.0, 1.0] + [size - 1.0, 0.0], FLIP_ORDER)
  flip = tf.convert_to_tensor(flip)
  image = tf.where(flip, resized[:, ::-1], resized)
  points = tf.where(flip, mirrored, points)
  return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0), points


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------


def load(config: ml_collections.ConfigDict) -> tuple[Items, Items]:
  """(train items, eval items) as `config.data` says.

  Logs how many examples of each split pass the attribute filter.
  """
  check_available(config)
  data = config.data
  if data.celeba_dir:
    directory = read_directory(data.celeba_dir)
    train = directory_items(directory, data.train_split, data.celeba_attribute, data.celeba_keep)
    evals = directory_items(directory, data.eval_split, data.celeba_attribute, data.celeba_keep)
  else:
    train = tfds_items(config, data.train_split)
    evals = tfds_items(config, data.eval_split, limit=data.num_eval_examples)
  for items, field in ((train, 'data.train_split'), (evals, 'data.eval_split')):
    logging.info('CelebA %s: %s of %s examples kept (%s: %s).', items.name, f'{items.kept:,}',
                 f'{items.total:,}', data.celeba_attribute, data.celeba_keep)
    if not len(items):
      raise UserError(f'CelebA {items.name} (from {field}): none of its {items.total} examples '
                      f"passes data.celeba_attribute='{data.celeba_attribute}' with "
                      f"data.celeba_keep='{data.celeba_keep}'.")
  return train, evals
