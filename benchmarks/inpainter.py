"""Size of a trained inpainter and what one `inpaint` costs: training checkpoint vs. export.

  python benchmarks/inpainter.py --workdir=runs/default [--image=photo.png] [--mask=center]

Exports `--workdir`'s latest checkpoint (`python -m ce_jax.export`) in float32
and bfloat16 to a temporary folder, prints the size on disk of the checkpoint
and of both exports, then runs `python -m ce_jax.inpaint` on one image from
each, `--repeats` times, under `/usr/bin/time -v` (Linux), and prints the
median wall time and peak resident memory of the whole process. The default
image is scikit-image's astronaut (512×512).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def timed(args: list[str]) -> tuple[float, int]:
  """(wall seconds, peak RSS bytes) of `python -m <args>`."""
  proc = subprocess.run(['/usr/bin/time', '-v', sys.executable, '-m', *args], cwd=ROOT,
                        capture_output=True, text=True, check=False)
  if proc.returncode:
    sys.exit(proc.stderr[-2000:])
  wall = re.search(r'Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)', proc.stderr)
  hours, minutes, seconds = wall.groups()
  rss = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', proc.stderr).group(1))
  return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), rss * 1024


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--image', default=None, help='default: scikit-image\'s astronaut')
  parser.add_argument('--mask', default='center')
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    image = args.image
    if image is None:
      import skimage.data  # noqa: PLC0415
      from PIL import Image  # noqa: PLC0415

      image = os.path.join(tmp, 'astronaut.png')
      Image.fromarray(skimage.data.astronaut()).save(image)
    checkpoints = os.path.join(args.workdir, 'checkpoints')
    latest = os.path.join(checkpoints, str(max(int(s) for s in os.listdir(checkpoints)
                                               if s.isdigit())))
    sources = {'training checkpoint': args.workdir}
    print(f'{"source":<22} {"size MiB":>9} {"inpaint s":>10} {"peak RSS MiB":>13}')
    for dtype in ('float32', 'bfloat16'):
      out = os.path.join(tmp, dtype)
      subprocess.run([sys.executable, '-m', 'ce_jax.export', f'--workdir={args.workdir}',
                      f'--output={out}', f'--dtype={dtype}'], cwd=ROOT, check=True,
                     capture_output=True)
      sources[f'export {dtype}'] = out
    for name, source in sources.items():
      runs = [timed(['ce_jax.inpaint', f'--workdir={source}', f'--image={image}',
                     f'--mask={args.mask}', f'--output={os.path.join(tmp, "out.png")}'])
              for _ in range(args.repeats)]
      on_disk = size(latest if source == args.workdir else source)
      print(f'{name:<22} {on_disk / 2**20:>9.1f} '
            f'{statistics.median(r[0] for r in runs):>10.2f} '
            f'{statistics.median(r[1] for r in runs) / 2**20:>13.0f}')


if __name__ == '__main__':
  main()
