"""Held-out hole PSNR and LPIPS after the same training with and without the perceptual loss.

  python benchmarks/perceptual_loss.py --out=runs/perceptual --steps=300 --weight=0.05 \
      [--config=configs/default.py] [-- extra --config.* overrides]

Trains `--config` twice for `--steps` steps, `loss.perceptual_weight` 0 and
`--weight` (same seed, data and masks), runs `ce_jax.evaluate` on each final
checkpoint and prints a Markdown table of the model's held-out metrics and the
seconds each training took.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/default.py')
  parser.add_argument('--out', required=True)
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--weight', type=float, default=0.05)
  parser.add_argument('extra', nargs='*', help='more --config.* overrides for both runs')
  args = parser.parse_args()
  rows = []
  for weight in (0.0, args.weight):
    workdir = os.path.join(args.out, f'perceptual_{weight:g}')
    overrides = [f'--config.loss.perceptual_weight={weight}',
                 f'--config.train.num_steps={args.steps}',
                 f'--config.train.eval_every={args.steps}',
                 f'--config.train.checkpoint_every={args.steps}',
                 f'--config.train.sample_every={args.steps}', *args.extra]
    start = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'ce_jax.main', f'--config={args.config}',
                    f'--workdir={workdir}', *overrides], check=True)
    seconds = time.perf_counter() - start
    subprocess.run([sys.executable, '-m', 'ce_jax.evaluate', f'--config={args.config}',
                    f'--workdir={workdir}', *overrides], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(workdir, f'eval_{args.steps}.json')) as f:
      model = json.load(f)['methods']['context_encoder']
    rows.append((weight, model, seconds))
    print(f'perceptual_weight={weight:g}: {json.dumps(model)} ({seconds:.0f} s)', flush=True)
  print(f'\n{args.steps} steps of {args.config}; held-out metrics of the model:\n')
  print('| loss.perceptual_weight | hole PSNR (dB) ↑ | hole SSIM ↑ | hole LPIPS ↓ | image LPIPS ↓ '
        '| training (s) |')
  print('| ---: | ---: | ---: | ---: | ---: | ---: |')
  for weight, m, seconds in rows:
    print(f'| {weight:g} | {m["hole_psnr"]:.2f} | {m["hole_ssim"]:.3f} | {m["hole_lpips"]:.3f} '
          f'| {m["image_lpips"]:.3f} | {seconds:.0f} |')


if __name__ == '__main__':
  main()
