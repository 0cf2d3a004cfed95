"""Trained workdirs on both held-out sets, beside the classical fills, whatever each trained on.

  python benchmarks/outside_photos.py --workdirs=default=runs/default,photos=runs/photos
  python benchmarks/outside_photos.py --workdirs=... \
      --grid=docs/photos_samples.png --grid_rows=opencv:5,default:12

Two fixed sets of 64 crops of 128×128 pixels, each photo first resized to a
shorter side of 350 pixels (the crops' scale, whatever `data.resize_shorter`
a run trained with), under the 56×56 center hole with masks from seed 1234:

- default: the crops of the bundled held-out photos (`coffee.png`,
  `rocket.jpg`, `flower.jpg`) that `eval_hole_psnr` scores during training
  of `configs/default.py` and `configs/photos.py`;
- opencv: crops of the 14 sample photos of OpenCV's documentation (Debian
  package `opencv-doc`, `native_resolution.OPENCV_PHOTOS`, fetched once into
  `--cache`), which no config trains on: the outside held-out set.

Each workdir's generator (`--checkpoint`) and OpenCV Telea, Navier–Stokes,
the unlearned smooth fill and the mean-pixel fill complete the same crops
(`ce_jax.evaluate.complete_all`); prints per set one Markdown table of hole
PSNR, SSIM, L1 and LPIPS (AlexNet), one row per workdir and per baseline,
and the model's hole-PSNR lead over Telea and over the smooth fill with its
spread over crops. Completions and scores are kept in
`<workdir>/held_out/<set>_<step>.{npz,json}` and reused.

`--grid` writes chosen crops (`--grid_rows`, `set:index` in the sets' crop
order) as rows of masked | each workdir's model | Telea | smooth fill |
original; `--sheets=DIR` writes every crop that way, 16 a sheet, to choose from.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import native_resolution  # noqa: E402
from ce_jax import cli, evaluate, run_config, trained, visualize  # noqa: E402
from ce_jax.errors import UserError  # noqa: E402
from configs import default  # noqa: E402

FLAGS = flags.FLAGS
SETS = ('default', 'opencv')
# What fixes the crops and holes of both sets, whatever a run trained with.
EVAL_FIELDS = {'resize_shorter': 350, 'num_eval_examples': 64}
EVAL_SEED = 1234
BASELINES = ('telea', 'navier_stokes', 'smooth_fill', 'mean_fill')
COLUMNS = (('hole_psnr', 'hole PSNR (dB) ↑', 1, 2), ('hole_ssim', 'hole SSIM ↑', 1, 3),
           ('hole_l1', 'hole L1 (%) ↓', 100, 2), ('hole_lpips', 'hole LPIPS ↓', 1, 3))
GRID_COLUMNS = ('masked', 'telea', 'smooth_fill', 'image')
SHEET_ROWS = 16


def opencv_folder(cache: str) -> str:
  """A folder of links to the OpenCV photos (fetched into `cache` once); its path."""
  native_resolution.opencv_photos(cache)
  folder = os.path.join(cache, 'held_out_photos')
  os.makedirs(folder, exist_ok=True)
  for name in native_resolution.OPENCV_PHOTOS:
    link = os.path.join(folder, name)
    if not os.path.lexists(link):
      os.symlink(os.path.join(cache, native_resolution.OPENCV_DATA, name), link)
  return folder


def eval_config(config: ml_collections.ConfigDict, held_out: str,
                folder: str) -> ml_collections.ConfigDict:
  """A run's `config` with the fields that pick `held_out`'s crops and holes set."""
  config = ml_collections.ConfigDict(config.to_dict())
  for field, value in EVAL_FIELDS.items():
    config.data[field] = value
  config.mask.kind = 'center'
  config.mask.eval_seed = EVAL_SEED
  if held_out == 'default':
    config.data.source = 'embedded'
  else:
    if 'eval_folder' not in config.data:
      default.folder(config)
    config.data.source = 'folder'
    config.data.folder = config.data.eval_folder = folder
  return config


def completions(workdir: str, held_out: str, folder: str
                ) -> tuple[dict, dict[str, np.ndarray]]:
  """(summary as `evaluate.summarise` gives it, `{'image', 'mask', 'masked', method: ...}`).

  The completions are `[64, S, S, 3]` float32 in [-1, 1] (`mask` `[64, S, S, 1]`),
  computed once and kept in `<workdir>/held_out/`.
  """
  saved = run_config.load(workdir)
  if saved is None:
    raise UserError(f'{workdir} holds no saved config: expected a training workdir.')
  config = eval_config(saved, held_out, folder)
  generator = trained.load(config, workdir, FLAGS.checkpoint)
  base = os.path.join(generator.home, 'held_out', f'{held_out}_{generator.step}')
  if os.path.exists(base + '.json') and os.path.exists(base + '.npz'):
    with open(base + '.json') as f, np.load(base + '.npz') as kept:
      return json.load(f), {k: to_signed(v) for k, v in kept.items()}
  cli.import_tensorflow()
  lpips = evaluate.LpipsScores(evaluate.load_lpips(config))
  done = evaluate.complete_all(generator.variables, config, evaluate.eval_examples(config),
                               on_method=lpips.add)
  per_image = evaluate.merge(evaluate.score(done), lpips.result())
  summary = {'workdir': workdir, 'step': generator.step, 'set': held_out,
             **evaluate.summarise(per_image, by_area=False),
             'hole_psnr': {m: per_image[m]['hole_psnr'].tolist() for m in per_image}}
  os.makedirs(os.path.dirname(base), exist_ok=True)
  np.savez_compressed(base + '.npz', **{k: visualize.to_uint8(v) if v.shape[-1] == 3 else v
                                        for k, v in done.items()})
  with open(base + '.json', 'w') as f:
    json.dump(summary, f, indent=1)
  return summary, done


def to_signed(x: np.ndarray) -> np.ndarray:
  """Kept completions (uint8 in [0, 255]) → float32 in [-1, 1]; the mask stays as it is."""
  return x / np.float32(127.5) - 1 if x.dtype == np.uint8 else x


def table(held_out: str, summaries: dict[str, dict]) -> str:
  """One Markdown table: a row per workdir's model, then the baselines of the first."""
  first = next(iter(summaries.values()))
  lines = [f'### {held_out}: {first["num_images"]} crops, mean hole '
           f'{100 * first["mean_hole_fraction"]:.1f} % of the image', '',
           '| method | ' + ' | '.join(c[1] for c in COLUMNS) + ' |',
           '| --- |' + ' ---: |' * len(COLUMNS)]

  def row(name, values):
    cells = [f'{values[k] * scale:.{digits}f}' for k, _, scale, digits in COLUMNS]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')

  for name, summary in summaries.items():
    row(f'{name} (step {summary["step"]})', summary['methods'][evaluate.MODEL])
  for method in BASELINES:
    row(evaluate.LABELS[method], first['methods'][method])
  lines.append('')
  for name, summary in summaries.items():
    psnr = {m: np.asarray(v) for m, v in summary['hole_psnr'].items()}
    leads = []
    for method in ('telea', 'smooth_fill'):
      d = psnr[evaluate.MODEL] - psnr[method]
      se = d.std(ddof=1) / np.sqrt(len(d))
      leads.append(f'{d.mean():+.2f} dB over {evaluate.LABELS[method]} (± {se:.2f} s.e., '
                   f'ahead on {int((d > 0).sum())}/{len(d)} crops)')
    lines.append(f'- {name}: ' + '; '.join(leads))
  return '\n'.join(lines)


def grid(runs: dict[str, dict[str, dict[str, np.ndarray]]], rows: list[tuple[str, int]]
         ) -> np.ndarray:
  """Rows of masked | each run's model | Telea | smooth fill | original, `[h, w, 3]` uint8."""
  def column(name, run=None):
    return np.stack([runs[run or next(iter(runs))][s][name][i] for s, i in rows])
  cols = [column('masked')] + [column(evaluate.MODEL, run) for run in runs]
  cols += [column(name) for name in GRID_COLUMNS[1:]]
  return visualize.columns(cols, gap=2)


def parse_workdirs(value: list[str]) -> dict[str, str]:
  """`name=path` (or `path`, named by its folder) → `{name: path}`."""
  out = {}
  for item in value:
    name, _, path = item.rpartition('=')
    out[name or os.path.basename(os.path.normpath(path))] = path
  return out


def main(argv: list[str]) -> None:
  del argv
  runs = parse_workdirs(FLAGS.workdirs)
  folder = opencv_folder(os.path.expanduser(FLAGS.cache))
  summaries: dict[str, dict[str, dict]] = {s: {} for s in FLAGS.sets}
  done: dict[str, dict[str, dict]] = {name: {} for name in runs}
  for name, workdir in runs.items():
    for held_out in FLAGS.sets:
      summaries[held_out][name], done[name][held_out] = cli.call(
          lambda w=workdir, h=held_out: completions(w, h, folder))
  for held_out in FLAGS.sets:
    print('\n' + table(held_out, summaries[held_out]))
  if FLAGS.sheets:
    os.makedirs(FLAGS.sheets, exist_ok=True)
    for held_out in FLAGS.sets:
      n = summaries[held_out][next(iter(runs))]['num_images']
      for start in range(0, n, SHEET_ROWS):
        rows = [(held_out, i) for i in range(start, min(start + SHEET_ROWS, n))]
        path = os.path.join(FLAGS.sheets, f'{held_out}_{start:02d}.png')
        visualize.save_png(grid(done, rows), path)
    print(f'\nWrote {FLAGS.sheets}/<set>_<first crop>.png: rows of masked | '
          f'{" | ".join(runs)} | Telea | smooth fill | original.')
  if FLAGS.grid:
    rows = []
    for item in FLAGS.grid_rows:
      held_out, _, index = item.partition(':')
      if held_out not in FLAGS.sets or not index.isdigit():
        cli.fail(f'--grid_rows={item}: expected set:index with a set among {FLAGS.sets}.')
      rows.append((held_out, int(index)))
    visualize.save_png(grid(done, rows), FLAGS.grid)
    print(f'Wrote {FLAGS.grid}: rows of masked | {" | ".join(runs)} | Telea | smooth fill | '
          'original.')


if __name__ == '__main__':
  flags.DEFINE_list('workdirs', None, 'Training workdirs, each `name=path` or `path`.',
                    required=True)
  flags.DEFINE_string('checkpoint', 'latest', "Each workdir's checkpoint: latest, best or a step.")
  flags.DEFINE_list('sets', list(SETS), f'Held-out sets among {SETS}.')
  flags.DEFINE_string('cache', os.path.join(os.environ.get('XDG_CACHE_HOME', '~/.cache'),
                                            'ce_jax', 'opencv-doc'),
                      'Where the opencv-doc package is unpacked.')
  flags.DEFINE_string('grid', '', 'Where the chosen crops go (a PNG; empty: none).')
  flags.DEFINE_list('grid_rows', [], "The grid's crops, `set:index` each.")
  flags.DEFINE_string('sheets', '', 'A folder for every crop, 16 a sheet (empty: none).')
  cli.run(main)
