"""A small CelebA-format directory of drawn 178×218 faces with known landmarks.

Each landmark is a coloured disc (`COLORS`), so tests can check that image and
landmarks move together. `python tests/celeba_fixture.py docs/mustache_masks.png`
draws the mustache masks of the first faces as a PNG grid.
"""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw

ATTRIBUTES = ('Male', 'Mustache', 'Smiling')
COLORS = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 0, 255), (0, 255, 255))
BASE = np.array([[69, 111], [107, 111], [88, 135], [72, 152], [105, 152]], np.int64)
# (name, partition, Mustache): 6 train, 3 validation, 1 test; 000011 is listed
# but has no file.
FACES = (('000001.jpg', 0, 1), ('000002.jpg', 0, 0), ('000003.jpg', 0, 1), ('000004.jpg', 0, 1),
         ('000005.jpg', 0, 0), ('000006.jpg', 0, 1), ('000007.jpg', 1, 1), ('000008.jpg', 1, 0),
         ('000009.jpg', 1, 1), ('000010.jpg', 2, 0), ('000011.jpg', 0, 1))
MISSING = '000011.jpg'


def landmarks(i: int) -> np.ndarray:
  """`[5, 2]` int (x, y) of face `i`: the CelebA mean face, shifted and widened."""
  rng = np.random.default_rng(i)
  shift = rng.integers(-6, 7, 2)
  out = BASE + shift
  out[3, 0] -= i % 4  # wider or narrower mouths
  out[4, 0] += i % 3
  return out


def draw(i: int) -> np.ndarray:
  """`[218, 178, 3]` uint8: a face with a disc of `COLORS[k]` at landmark k."""
  rng = np.random.default_rng(100 + i)
  y = np.linspace(0, 1, 218)[:, None, None]
  image = Image.fromarray((60 + 120 * y * np.ones((218, 178, 3))).astype(np.uint8))
  pen = ImageDraw.Draw(image)
  skin = tuple(int(v) for v in rng.integers(150, 230, 3))
  pts = landmarks(i)
  cx, cy = pts[2]
  pen.ellipse((cx - 58, cy - 85, cx + 58, cy + 45), fill=skin)
  pen.line([tuple(pts[3]), tuple(pts[4])], fill=(90, 20, 30), width=4)
  for (x, y), color in zip(pts, COLORS, strict=True):
    pen.ellipse((x - 6, y - 6, x + 6, y + 6), fill=color)
  return np.asarray(image)


def write(root: str, fmt: str = 'txt') -> str:
  """Writes the faces and lists under `root`.

  'txt': the official release layout (`img_align_celeba/`, `Anno/`, `Eval/`);
  'csv': the common mirror layout (`img_align_celeba/img_align_celeba/`, CSVs).
  Returns `root`.
  """
  images = os.path.join(root, 'img_align_celeba')
  if fmt == 'csv':
    images = os.path.join(images, 'img_align_celeba')
  os.makedirs(images, exist_ok=True)
  for i, (name, _, _) in enumerate(FACES):
    if name != MISSING:
      Image.fromarray(draw(i)).save(os.path.join(images, name), quality=95)
  columns = [f'{n}_{c}' for n in ('lefteye', 'righteye', 'nose', 'leftmouth', 'rightmouth')
             for c in 'xy']
  attrs = [[name, 1 - 2 * (i % 2), 2 * must - 1, -1] for i, (name, _, must) in enumerate(FACES)]
  points = [[name, *landmarks(i).reshape(-1)] for i, (name, _, _) in enumerate(FACES)]
  parts = [[name, part] for name, part, _ in FACES]
  tables = (('list_attr_celeba', ATTRIBUTES, attrs),
            ('list_landmarks_align_celeba', columns, points),
            ('list_eval_partition', None, parts))
  for stem, header, rows in tables:
    if fmt == 'csv':
      lines = [','.join(['image_id', *(header or ['partition'])])]
      lines += [','.join(str(v) for v in r) for r in rows]
      path = os.path.join(root, stem + '.csv')
    else:
      lines = ([str(len(rows)), ' '.join(header)] if header else [])
      lines += [r[0] + ' ' + ' '.join(f'{v:>3}' for v in r[1:]) for r in rows]
      path = os.path.join(root, 'Eval' if stem == 'list_eval_partition' else 'Anno',
                          stem + '.txt')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      f.write('\r\n'.join(lines) + '\r\n')
  return root


def mask_grid(num: int = 4, size: int = 128) -> np.ndarray:
  """Rows of (hole red, band yellow | generator input | face) for the first faces.

  Uses the default mustache margins and overlap band; every other face is flipped.
  """
  import tensorflow as tf  # noqa: PLC0415

  from ce_jax import celeba, masks, visualize  # noqa: PLC0415
  from configs import default  # noqa: PLC0415

  config = default.get_config()
  faces, points = [], []
  for i in range(num):
    image, pts = celeba.transform(tf.constant(draw(i)), tf.constant(landmarks(i), tf.float32),
                                  size=size, flip=i % 2 == 1)
    faces.append(image.numpy())
    points.append(pts.numpy())
  faces = np.stack(faces)
  c = config.mask
  m = masks.mustache(np.stack(points), (size, size), margin_x=c.mustache_margin_x,
                     margin_y=c.mustache_margin_y, overlap=c.overlap,
                     overlap_weight=c.overlap_weight)
  hole = np.asarray(m.mask)
  band = (np.asarray(m.weight) > 0) & (hole == 0)
  tint = np.where(hole > 0, [1.0, -1.0, -1.0], np.where(band, [1.0, 1.0, -1.0], faces))
  overlay = 0.5 * faces + 0.5 * tint
  fill = np.asarray(config.data.mean_pixel, np.float32) / 127.5 - 1.0
  masked = (1 - hole) * faces + hole * fill
  return visualize.grid(overlay, masked, faces)


if __name__ == '__main__':
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.path.insert(0, root)
  from ce_jax import visualize

  out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, 'docs', 'mustache_masks.png')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  visualize.save_png(mask_grid(), out)
  print(f'wrote {out}')
