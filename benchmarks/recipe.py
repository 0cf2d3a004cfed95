"""The recipe ablation: train each variant, evaluate on held-out photos, print one table.

  python benchmarks/recipe.py --out=runs/ablation                       # every variant
  python benchmarks/recipe.py --out=runs/ablation --variants=paper,default
  python benchmarks/recipe.py --out=runs/ablation --extra_eval=/path/to/photos

Each variant is `configs/paper.py` or `configs/default.py` with a few
`--config.*` overrides (see `VARIANTS`), trained by `python -m ce_jax.main`
into `<out>/<variant>` (a finished workdir is not retrained) and evaluated by
`python -m ce_jax.evaluate`
on the default held-out crops with the 56×56 hole and with a hole covering the
whole predicted 64×64 square, and, with `--extra_eval`, on crops of a folder of
other photos. Prints a Markdown table per evaluation (hole PSNR / SSIM / L1 of
each variant, with OpenCV Telea, Navier–Stokes and the mean-pixel fill beside
them), the held-out hole PSNR of every training-time eval, and the wall time of
each run. Takes about 16–20 minutes per variant on a 2-core CPU.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

import tensorflow as tf

PAPER = ['--config=configs/paper.py']
DEFAULT = ['--config=configs/default.py']
OPTIM = ['--config.optim.g_lr=2e-4', '--config.loss.rec_only_steps=1600',
         '--config.mask.overlap_weight=1']
# The default before the bottleneck, colour offset and schedule levers below:
# the paper's model with OPTIM, G's EMA, augmentation and random-size holes.
AUGMENT = ['--config=configs/default.py:adversarial,model_options',
           '--config.model.bottleneck=conv', '--config.model.color_offset=none',
           '--config.optim.lr_schedule=constant', '--config.train.num_steps=2400',
           '--config.loss.rec_only_steps=1600']
CFC = AUGMENT + ['--config.model.bottleneck=channelwise_fc', '--config.train.num_steps=3200']
# Cumulative: each lever joins the ones above it, on the same photos, until
# `default`, which is configs/default.py itself. The channel-wise FC generator
# takes 30 % less time a step, so its rows train 3,200 steps in about the
# time of the 4000-d bottleneck's 2,400. `smooth_l2` is the default with the
# paper's plain L2 instead of the per-image log L2; `default_seed1` repeats the
# default with other initial weights and crops.
VARIANTS = {
    'paper': PAPER,
    'optim': PAPER + OPTIM,
    'ema': PAPER + OPTIM + ['--config.train.ema_decay=0.999'],
    'augment': AUGMENT,
    'channelwise_fc': CFC,
    'context_mean': CFC + ['--config.model.color_offset=context_mean',
                           '--config.optim.lr_schedule=cosine'],
    'smooth': CFC + ['--config.model.color_offset=smooth', '--config.optim.lr_schedule=cosine'],
    'smooth_l2': DEFAULT + ['--config.loss.rec=l2'],
    'default': DEFAULT,
    'default_seed1': DEFAULT + ['--config.seed=1'],
}
EVALS = {
    'hole 56×56': [],
    'hole 64×64 (whole square)': ['--config.mask.overlap=0'],
}
COLUMNS = (('hole_psnr', 'hole PSNR (dB) ↑', 1, 2), ('hole_ssim', 'hole SSIM ↑', 1, 3),
           ('hole_l1', 'hole L1 (%) ↓', 100, 2))
BASELINES = {'telea': 'OpenCV Telea', 'navier_stokes': 'OpenCV Navier–Stokes',
             'smooth_fill': 'smooth fill (no network)', 'mean_fill': 'mean-pixel fill'}


def run(cmd: list[str]) -> float:
  """Runs `cmd`, streaming its output; returns the wall time in seconds."""
  print('$', ' '.join(cmd), flush=True)
  start = time.time()
  subprocess.run(cmd, check=True)
  return time.time() - start


def train_once(overrides: list[str], workdir: str) -> float:
  """Runs `ce_jax.main` with `overrides` into `workdir` unless it finished before (its
  `wall_seconds.txt`); returns the training's wall time in seconds."""
  done = os.path.join(workdir, 'wall_seconds.txt')
  if not os.path.exists(done):
    wall = run([sys.executable, '-m', 'ce_jax.main', *overrides, f'--workdir={workdir}'])
    with open(done, 'w') as f:
      f.write(f'{wall:.0f}\n')
  with open(done) as f:
    return float(f.read())


def eval_curve(workdir: str) -> dict[int, float]:
  """{step: eval_hole_psnr} from the workdir's TensorBoard events."""
  out = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'eval_hole_psnr':
          out[event.step] = float(tf.make_ndarray(value.tensor))
  return dict(sorted(out.items()))


def evaluate(variant: list[str], workdir: str, out_dir: str, extra: list[str]) -> dict:
  os.makedirs(out_dir, exist_ok=True)
  if not glob.glob(os.path.join(out_dir, 'eval_*.json')):
    run([sys.executable, '-m', 'ce_jax.evaluate', *variant, f'--workdir={workdir}',
         f'--output_dir={out_dir}', *extra])
  (path,) = glob.glob(os.path.join(out_dir, 'eval_*.json'))
  with open(path) as f:
    return json.load(f)


def table(results: dict[str, dict]) -> str:
  lines = ['| recipe | ' + ' | '.join(c[1] for c in COLUMNS) + ' |',
           '| --- |' + ' ---: |' * len(COLUMNS)]

  def row(label, values):
    cells = [f'{values[k] * scale:.{digits}f}' for k, _, scale, digits in COLUMNS]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')

  for name, summary in results.items():
    row(name, summary['methods']['model'])
  any_summary = next(iter(results.values()))
  for key, label in BASELINES.items():
    row(label, any_summary['methods'][key])
  return '\n'.join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default='runs/ablation', help='Parent of the variant workdirs.')
  parser.add_argument('--variants', default=','.join(VARIANTS), help='Comma-separated names.')
  parser.add_argument('--extra_eval', default='',
                      help='A folder of photos no variant trained on, for one more table.')
  parser.add_argument('overrides', nargs='*', help='More --config.* overrides for every run.')
  args = parser.parse_args()
  names = args.variants.split(',')
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    parser.error(f'--variants: unknown {unknown}; expected some of {list(VARIANTS)}')
  evals = dict(EVALS)
  if args.extra_eval:
    folder = os.path.abspath(args.extra_eval)
    evals[f'{os.path.basename(folder)} photos, hole 56×56'] = [
        '--config.data.source=folder', f'--config.data.folder={folder}',
        f'--config.data.eval_folder={folder}']
  results: dict[str, dict[str, dict]] = {e: {} for e in evals}
  walls, curves = {}, {}
  for name in names:
    variant = VARIANTS[name] + list(args.overrides)
    workdir = os.path.join(args.out, name)
    walls[name] = train_once(variant, workdir)
    curves[name] = eval_curve(workdir)
    for i, (label, extra) in enumerate(evals.items()):
      results[label][name] = evaluate(variant, workdir, os.path.join(workdir, f'eval{i}'), extra)
  for label, by_variant in results.items():
    summary = next(iter(by_variant.values()))
    print(f'\n### {label}: {summary["num_images"]} held-out crops, mean hole '
          f'{100 * summary["mean_hole_fraction"]:.1f} % of the image\n')
    print(table(by_variant))
  print('\n### Held-out hole PSNR (dB) at each training-time eval, and wall time\n')
  for name in names:
    curve = ', '.join(f'{s}: {v:.2f}' for s, v in curves[name].items())
    print(f'- {name} ({walls[name] / 60:.1f} min): {curve}')


if __name__ == '__main__':
  main()
