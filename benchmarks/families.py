"""The model families side by side: same photos, same free-form masks, same steps.

  python benchmarks/families.py --out=runs/families --steps=1200 --grid=docs/families.png
  python benchmarks/families.py --out=runs/families --families=glcic,deepfill2 \
      -- --config.train.batch_size=8

Trains `configs/freeform.py` (the Context Encoder with full-image output),
`configs/glcic.py` and `configs/deepfill2.py` with `python -m ce_jax.main` for
`--steps` steps each (the first half reconstruction only; GLCIC then trains D
alone for a tenth of that, as in its paper), into `<out>/<family>`; a workdir
that finished is not retrained. Then restores each one's inference weights,
completes the same held-out crops under the same free-form eval masks, and
prints one Markdown table: hole PSNR, SSIM, L1 and LPIPS and image PSNR and LPIPS of every
family and of OpenCV Telea, Navier–Stokes and the mean-pixel fill, with each
family's parameter count (each training's wall time is printed above it;
`benchmarks/train_step.py` measures step speeds). `--grid` writes rows of
masked | Context Encoder | GLCIC | DeepFill v2 | Telea | original.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks import recipe  # noqa: E402
from ce_jax import cli, evaluate, models, perceptual, trained, visualize  # noqa: E402

FAMILIES = {'context_encoder': ('configs/freeform.py', 'Context Encoder'),
            'glcic': ('configs/glcic.py', 'GLCIC'),
            'deepfill2': ('configs/deepfill2.py', 'DeepFill v2')}
BASELINES = ('telea', 'navier_stokes', 'mean_fill')
COLUMNS = (('hole_psnr', 'hole PSNR (dB) ↑', 1, 2), ('hole_ssim', 'hole SSIM ↑', 1, 3),
           ('hole_l1', 'hole L1 (%) ↓', 100, 2), ('hole_lpips', 'hole LPIPS ↓', 1, 3),
           ('image_psnr', 'image PSNR (dB) ↑', 1, 2), ('image_lpips', 'image LPIPS ↓', 1, 3))


def schedule(family: str, steps: int) -> list[str]:
  """The phase overrides for `steps` steps: half reconstruction only (GLCIC: then D alone)."""
  rec = steps // 2
  d_only = rec // 10 if family == 'glcic' else 0
  return [f'--config.train.num_steps={steps}', f'--config.loss.rec_only_steps={rec}',
          f'--config.loss.d_only_steps={d_only}', f'--config.train.eval_every={steps // 4}',
          f'--config.train.sample_every={steps // 2}',
          f'--config.train.checkpoint_every={steps // 2}']


def train(family: str, workdir: str, steps: int, extra: list[str]) -> float:
  """Trains one family unless `workdir` finished before; its wall time in seconds."""
  return recipe.train_once([f'--config={FAMILIES[family][0]}', *schedule(family, steps), *extra],
                           workdir)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out', default='runs/families', help='Parent of the family workdirs.')
  parser.add_argument('--families', default=','.join(FAMILIES), help='Comma-separated names.')
  parser.add_argument('--steps', type=int, default=1200, help='Training steps of every family.')
  parser.add_argument('--grid', default='', help='PNG of masked | families | Telea | original.')
  parser.add_argument('--num_samples', type=int, default=6, help='Rows of the grid.')
  parser.add_argument('--checkpoint', default='latest',
                      help="Which checkpoint of each run to score: 'latest' or a step (e.g. "
                           'half of --steps, to compare the reconstruction phase alone).')
  parser.add_argument('overrides', nargs='*', help='More --config.* overrides for every run.')
  args = parser.parse_args()
  names = args.families.split(',')
  unknown = [n for n in names if n not in FAMILIES]
  if unknown:
    parser.error(f'--families: unknown {unknown}; expected some of {list(FAMILIES)}')
  walls = {n: train(n, os.path.join(args.out, n), args.steps, args.overrides) for n in names}

  cli.import_tensorflow()
  lpips_params = perceptual.load('alexnet')
  scores, done, params, examples = {}, {}, {}, None
  for name in names:
    generator = trained.load(None, os.path.join(args.out, name), args.checkpoint)
    examples = evaluate.eval_examples(generator.config) if examples is None else examples
    out = evaluate.complete_all(generator.variables, generator.config, examples)
    if 'mask' in done and not np.array_equal(done['mask'], out['mask']):
      raise SystemExit(f'{name}: its eval masks differ from the others; same mask.* expected.')
    done.update({k: v for k, v in out.items() if k != evaluate.MODEL})
    done[name] = out[evaluate.MODEL]
    scores[name] = evaluate.summarise(evaluate.score(out, lpips_params=lpips_params),
                                      by_area=False)
    params[name] = models.param_count(generator.variables['params'])
    print(f'{name}: step {generator.step}, {params[name]:,} generator params, '
          f'{walls[name] / 60:.1f} min of training', flush=True)

  first = scores[names[0]]
  print(f'\n{first["num_images"]} held-out crops, free-form masks covering '
        f'{100 * first["mean_hole_fraction"]:.1f} % of the image on average; '
        f'checkpoint {args.checkpoint} of {args.steps} steps each.\n')
  print('| method | G params | ' + ' | '.join(c[1] for c in COLUMNS) + ' |')
  print('| --- | ---: |' + ' ---: |' * len(COLUMNS))

  def row(label, values, extra):
    cells = [f'{values[k] * scale:.{digits}f}' for k, _, scale, digits in COLUMNS]
    print(f'| {label} | {extra} | ' + ' | '.join(cells) + ' |')

  for name in names:
    row(FAMILIES[name][1], scores[name]['methods'][evaluate.MODEL],
        f'{params[name] / 1e6:.2f}M')
  for key in BASELINES:
    row(evaluate.LABELS[key], first['methods'][key], '—')
  if args.grid:
    grid = evaluate.sample_grid(done, args.num_samples,
                                cols=('masked', *names, 'telea', 'image'))
    visualize.save_png(grid, args.grid)
    print(f'\nWrote {args.grid}: masked | ' + ' | '.join(FAMILIES[n][1] for n in names)
          + ' | OpenCV Telea | original')


if __name__ == '__main__':
  main()
