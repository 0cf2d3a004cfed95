"""Small holes in large photos: filled from a crop around each hole, or from the whole photo.

  python benchmarks/native_resolution.py --workdir=runs/default

Held-out photos at their own size (the 14 sample photos of OpenCV's
documentation, Debian package `opencv-doc`, 342 to 1282 pixels a side,
fetched once with `apt-get download` and `dpkg-deb -x` into `--cache`; and
the bundled held-out photos `input_pipeline.EMBEDDED_EVAL`, 400 to 640
pixels) get square holes of 24, 48 and 96 pixels, `--per_photo` of each at
seeded positions, one hole at a time. Each is filled by

- whole: the whole photo resized to the model's input, the fill resized back
  (`--fill=whole`; the only way before the crop strategy);
- crop: a square of context around the hole (`--fill=crop`, the default;
  `completion.plan_fills`), with each `--factors` context factor and each
  `--min_sides` least side (default the model's input; a square below it is
  enlarged to it);
- OpenCV Telea and the unlearned smooth fill (the known pixels' normalised
  Gaussian blur), at the photo's own resolution.

Prints, per hole size, the mean hole PSNR (dB), hole L1 (% of the range),
hole LPIPS (AlexNet, on a square around the hole: `metrics.hole_lpips`) and
the fill's detail (the variance of the grey Laplacian inside the hole, 3 px
in from its edge, over the original's: the median over holes), all on a window of 4× the hole's
side around it (at most the shortest photo's side). Writes `--picture`
(default docs/native_resolution.png): one 48-pixel hole of the largest photo,
zoomed: masked | whole | crop | Telea | original.
"""

import glob
import os
import subprocess
import tempfile
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from PIL import Image, ImageDraw, ImageFont

from ce_jax import baselines, cli, completion, inpaint, metrics, perceptual, trained

FLAGS = flags.FLAGS
# The README's outside held-out set (the .deb's examples/data/).
OPENCV_PHOTOS = ('aero1.jpg', 'aloeL.jpg', 'apple.jpg', 'baboon.jpg', 'board.jpg', 'building.jpg',
                 'butterfly.jpg', 'fruits.jpg', 'home.jpg', 'leuvenA.jpg', 'messi5.jpg',
                 'orange.jpg', 'chicky_512.png', 'graf1.png')
OPENCV_DATA = 'usr/share/doc/opencv-doc/examples/data'
WINDOW = 4  # metrics on a window of this many hole sides around each hole
ZOOM = 2  # the picture's magnification of its window
_hole_lpips = jax.jit(metrics.hole_lpips)


def opencv_photos(cache: str) -> dict[str, np.ndarray]:
  """The OpenCV documentation photos `{name: [H, W, 3] uint8}`, fetched into `cache` once."""
  data = os.path.join(cache, OPENCV_DATA)
  if not all(os.path.exists(os.path.join(data, f)) for f in OPENCV_PHOTOS):
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
      subprocess.run(['apt-get', 'download', 'opencv-doc'], cwd=tmp, check=True,
                     capture_output=True)
      (deb,) = glob.glob(os.path.join(tmp, 'opencv-doc_*.deb'))
      subprocess.run(['dpkg-deb', '-x', deb, cache], check=True)
  return {os.path.splitext(f)[0]: read(os.path.join(data, f)) for f in OPENCV_PHOTOS}


def read(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('RGB'))


def embedded_photos() -> dict[str, np.ndarray]:
  """The bundled held-out photos at their own size."""
  cli.import_tensorflow()  # quietly
  from ce_jax import input_pipeline  # noqa: PLC0415 (TensorFlow: only when needed)

  return {os.path.splitext(os.path.basename(f))[0]: read(input_pipeline.embedded_path(p, f))
          for p, f in input_pipeline.EMBEDDED_EVAL}


def hole_positions(shape: tuple[int, int], side: int, count: int,
                   rng: np.random.Generator) -> list[tuple[int, int]]:
  """`count` (top, left) corners of `side`² holes, uniform over the photo."""
  h, w = shape
  return [(int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)))
          for _ in range(count)]


def window(shape: tuple[int, int], top: int, left: int, side: int,
           n: int) -> tuple[slice, slice]:
  """The `n`² square around a `side`² hole at (`top`, `left`), moved inside the photo."""
  h, w = shape
  y = min(max(top + side // 2 - n // 2, 0), h - n)
  x = min(max(left + side // 2 - n // 2, 0), w - n)
  return slice(y, y + n), slice(x, x + n)


def laplacian_variance(image: np.ndarray, hole: np.ndarray) -> float:
  """Variance of the grey Laplacian inside `hole`, 3 pixels in from its edge."""
  grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
  inner = cv2.erode(hole.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
  return float(cv2.Laplacian(grey, cv2.CV_32F)[inner].var())


def scores(filled: list[np.ndarray], originals: list[np.ndarray], holes: list[np.ndarray],
           lpips_params) -> dict[str, float]:
  """Means over windows of one size: hole PSNR, L1 (%), LPIPS; the detail ratio's median."""
  a = jnp.asarray(np.stack(filled), jnp.float32) / 255.0
  b = jnp.asarray(np.stack(originals), jnp.float32) / 255.0
  m = jnp.asarray(np.stack(holes), jnp.float32)[..., None]
  detail = np.median([laplacian_variance(f, h) / max(laplacian_variance(o, h), 1e-6)
                      for f, o, h in zip(filled, originals, holes, strict=True)])
  out = {'hole_psnr': float(jnp.mean(metrics.hole_psnr(a, b, m))),
         'hole_l1': 100 * float(jnp.mean(metrics.hole_l1(a, b, m))),
         'detail': 100 * float(detail)}
  if lpips_params is not None:
    out['hole_lpips'] = float(jnp.mean(_hole_lpips(lpips_params, a, b, m)))
  return out


def picture(photo: np.ndarray, top: int, left: int, side: int,
            fills: dict[str, np.ndarray], mean_pixel) -> np.ndarray:
  """masked | fills... | original, zoomed on the hole's window, labelled, `[h, w, 3]` uint8."""
  rows, cols = window(photo.shape[:2], top, left, side, WINDOW * side)
  hole = np.zeros(photo.shape[:2], bool)
  hole[top:top + side, left:left + side] = True
  masked = np.where(hole[..., None], np.round(mean_pixel).astype(np.uint8), photo)
  tiles = {'masked': masked, **fills, 'original': photo}
  n = rows.stop - rows.start
  size, gap, label = n * ZOOM, 6, 28
  out = Image.new('RGB', (len(tiles) * (size + gap) - gap, size + label), 'white')
  draw = ImageDraw.Draw(out)
  font = ImageFont.load_default(size=18)
  for i, (name, image) in enumerate(tiles.items()):
    tile = Image.fromarray(image[rows, cols]).resize((size, size), Image.NEAREST)
    out.paste(tile, (i * (size + gap), label))
    draw.text((i * (size + gap) + 4, 4), name, fill='black', font=font)
  return np.asarray(out)


def main(argv: list[str]) -> None:
  del argv
  run = cli.call(lambda: trained.load(cli.load_config(required=False), FLAGS.workdir,
                                      FLAGS.checkpoint))
  config = run.config
  photos = {**opencv_photos(os.path.expanduser(FLAGS.cache)), **embedded_photos()}
  sizes = [int(s) for s in FLAGS.holes]
  factors = [float(f) for f in FLAGS.factors]
  s = config.data.image_size
  methods = {'whole': inpaint.Inpainter(config, run.variables, fill='whole')}
  for m in [int(m) for m in FLAGS.min_sides] or [s]:
    for f in factors:
      label = f'crop ×{f:g}' + (f', squares ≥ {m} px' if m != s else '')
      methods[label] = inpaint.Inpainter(config, run.variables, context_factor=f, min_side=m)
  classical = {'telea': baselines.telea, 'smooth fill': baselines.smooth_fill}
  lpips_params = perceptual.load('alexnet') if FLAGS.lpips else None
  print(f'{run.home}, step {run.step}: {s}×{s} {config.model.output}-output '
        f'{config.model.family}; {len(photos)} photos '
        f'({min(min(p.shape[:2]) for p in photos.values())}–'
        f'{max(max(p.shape[:2]) for p in photos.values())} px a side), '
        f'{FLAGS.per_photo} holes of each size per photo, seed {FLAGS.seed}.')
  rng = np.random.default_rng(FLAGS.seed)
  names = [*methods, *classical]
  table = {}
  largest = max(photos, key=lambda k: photos[k].size)
  shown = None
  timer = dict.fromkeys(names, 0.0)
  shortest = min(min(p.shape[:2]) for p in photos.values())
  for side in sizes:
    n = min(WINDOW * side, shortest)
    windows = {k: [] for k in [*names, 'original', 'hole']}
    for name, photo in photos.items():
      for top, left in hole_positions(photo.shape[:2], side, FLAGS.per_photo, rng):
        hole = np.zeros(photo.shape[:2], bool)
        hole[top:top + side, left:left + side] = True
        rows, cols = window(photo.shape[:2], top, left, side, n)
        fills = {}
        for method in names:
          # The classical fills see only the window (at least 1.5 hole sides of context on
          # every side, where the photo allows): all that Telea and a σ = 8 px blur reach.
          start = time.perf_counter()
          if method in methods:
            fills[method] = methods[method](photo, hole)[rows, cols]
          else:
            fills[method] = classical[method](photo[rows, cols], hole[rows, cols])
          timer[method] += time.perf_counter() - start
          assert (fills[method][~hole[rows, cols]] == photo[rows, cols][~hole[rows, cols]]).all()
          windows[method].append(fills[method])
        windows['original'].append(photo[rows, cols])
        windows['hole'].append(hole[rows, cols])
        if name == largest and side == FLAGS.picture_hole and shown is None:
          crop = methods[next(k for k in methods if k.startswith('crop'))]
          shown = picture(photo, top, left, side,
                          {'whole': methods['whole'](photo, hole), 'crop': crop(photo, hole),
                           'telea': baselines.telea(photo, hole)}, config.data.mean_pixel)
    for method in names:
      table[side, method] = scores(windows[method], windows['original'], windows['hole'],
                                   lpips_params)
  count = len(photos) * FLAGS.per_photo
  header = 'hole PSNR dB ↑ / hole L1 % ↓' + (' / hole LPIPS ↓' if FLAGS.lpips else '')
  print(f'\n{header} / detail % (median fill Laplacian variance over the original\'s); '
        f'{count} holes of each size\n')
  print('| method | ' + ' | '.join(f'{side} px' for side in sizes) + ' |')
  print('| --- |' + ' --- |' * len(sizes))
  for method in names:
    cells = []
    for side in sizes:
      v = table[side, method]
      cell = f'{v["hole_psnr"]:.2f} / {v["hole_l1"]:.2f}'
      if FLAGS.lpips:
        cell += f' / {v["hole_lpips"]:.3f}'
      cells.append(cell + f' / {v["detail"]:.1f}')
    print(f'| {method} | ' + ' | '.join(cells) + ' |')
  total = count * len(sizes)
  print('\nSeconds per hole: ' + ', '.join(f'{m} {timer[m] / total:.3f}' for m in names))
  if shown is not None and FLAGS.picture:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.picture)), exist_ok=True)
    Image.fromarray(shown).save(FLAGS.picture)
    print(f'Wrote {FLAGS.picture} ({largest}, a {FLAGS.picture_hole}-px hole).')


if __name__ == '__main__':
  cli.define_checkpoint_flags()
  flags.DEFINE_string('cache', os.path.join(os.environ.get('XDG_CACHE_HOME', '~/.cache'),
                                            'ce_jax', 'opencv-doc'),
                      'Where the opencv-doc package is unpacked.')
  flags.DEFINE_list('holes', ['24', '48', '96'], 'Hole sides, in pixels.')
  flags.DEFINE_integer('per_photo', 4, 'Holes of each size per photo.')
  flags.DEFINE_integer('seed', 0, 'Seed of the hole positions.')
  flags.DEFINE_list('factors', [str(completion.CONTEXT_FACTOR)], 'Context factors of the crop '
                    'rows (the first is the picture\'s).')
  flags.DEFINE_list('min_sides', [], "Least sides of the crop rows' squares (default: the "
                    "model's input; smaller ones are enlarged to it).")
  flags.DEFINE_bool('lpips', True, 'Also hole LPIPS.')
  flags.DEFINE_integer('picture_hole', 48, 'Hole side of the picture.')
  flags.DEFINE_string('picture', 'docs/native_resolution.png', 'Where the picture goes '
                      "('': none).")
  cli.run(main)
