"""Held-out hole PSNR and LPIPS after the same training with and without the perceptual loss.

  python benchmarks/perceptual_loss.py --out=runs/perceptual --weight=0.05 \
      [--config=configs/default.py] [--steps=N] [-- extra --config.* overrides]

Trains `--config` twice (`--steps` steps, default the config's own),
`loss.perceptual_weight` 0 and `--weight`, same seed, data and masks (a
finished workdir is not retrained), evaluates each final checkpoint with
`ce_jax.evaluate` and prints a Markdown table of the model's held-out metrics,
OpenCV Telea's beside them, and the wall time of each training.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from benchmarks import recipe  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/default.py')
  parser.add_argument('--out', required=True)
  parser.add_argument('--steps', type=int, default=0, help='0: the config\'s train.num_steps.')
  parser.add_argument('--weight', type=float, default=0.05)
  parser.add_argument('extra', nargs='*', help='more --config.* overrides for both runs')
  args = parser.parse_args()
  steps = ([f'--config.train.num_steps={args.steps}'] if args.steps else [])
  rows = []
  for weight in (0.0, args.weight):
    workdir = os.path.join(args.out, f'perceptual_{weight:g}')
    overrides = [f'--config={args.config}', f'--config.loss.perceptual_weight={weight}',
                 *steps, *args.extra]
    seconds = recipe.train_once(overrides, workdir)
    methods = recipe.evaluate(overrides, workdir, os.path.join(workdir, 'eval'), [])['methods']
    rows.append((f'{weight:g}', methods['model'], seconds))
    print(f'perceptual_weight={weight:g}: {json.dumps(methods["model"])} '
          f'({seconds:.0f} s)', flush=True)
  rows.append(('OpenCV Telea', methods['telea'], None))
  print(f'\n{args.config} {" ".join(steps + args.extra)}; held-out metrics:\n')
  print('| loss.perceptual_weight | hole PSNR (dB) ↑ | hole SSIM ↑ | hole LPIPS ↓ | image LPIPS ↓ '
        '| training (min) |')
  print('| ---: | ---: | ---: | ---: | ---: | ---: |')
  for label, m, seconds in rows:
    minutes = '' if seconds is None else f'{seconds / 60:.1f}'
    print(f'| {label} | {m["hole_psnr"]:.2f} | {m["hole_ssim"]:.3f} | {m["hole_lpips"]:.3f} '
          f'| {m["image_lpips"]:.3f} | {minutes} |')


if __name__ == '__main__':
  main()
