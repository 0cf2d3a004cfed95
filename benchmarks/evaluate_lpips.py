"""What LPIPS adds to a `python -m ce_jax.evaluate` run: wall and CPU time, with and without.

  python benchmarks/evaluate_lpips.py --config=configs/default.py --workdir=runs/default \
      [--repeats=3]

Runs the whole program (start-up, checkpoint restore, completions, baselines,
metrics, files) alternately with `--lpips` and `--nolpips`, each in a fresh
process, and prints every run and the medians, twice: with no compilation
cache (every run compiles, as a first run does) and with a warm one (as every
later run on the same machine: one untimed run of each fills a fresh cache).
CPU time (user + system of the child) is steadier than wall time on a shared
machine.
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(config: str, workdir: str, lpips: bool, cache: str) -> tuple[float, float]:
  """(wall seconds, CPU seconds) of one evaluate run; `cache`: its --compilation_cache."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as out:
    subprocess.run([sys.executable, '-m', 'ce_jax.evaluate', f'--config={config}',
                    f'--workdir={workdir}', f'--output_dir={out}',
                    '--lpips' if lpips else '--nolpips', f'--compilation_cache={cache}'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return wall, cpu


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/default.py')
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as cache_dir:
    for cache in ('', cache_dir):
      name = 'warm compilation cache' if cache else 'no compilation cache'
      if cache:
        for lpips in (False, True):
          run_once(args.config, args.workdir, lpips, cache)
      times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
      for i in range(args.repeats):
        for lpips in (False, True):
          wall, cpu = run_once(args.config, args.workdir, lpips, cache)
          times[lpips].append((wall, cpu))
          print(f'{name}, run {i + 1} {"with" if lpips else "without"} LPIPS: '
                f'wall {wall:.1f} s, CPU {cpu:.1f} s', flush=True)
      med = {k: tuple(statistics.median(t[j] for t in v) for j in range(2))
             for k, v in times.items()}
      for j, what in enumerate(('wall', 'CPU')):
        base, more = med[False][j], med[True][j]
        pairs = zip(times[False], times[True], strict=True)
        paired = statistics.median(b[j] - a[j] for a, b in pairs)
        print(f'{name}, median {what}: {base:.1f} s without, {more:.1f} s with LPIPS '
              f'(+{more - base:.1f} s, {100 * (more - base) / base:+.1f} %; median of the '
              f'paired runs\' differences +{paired:.2f} s, {100 * paired / base:+.1f} %)',
              flush=True)


if __name__ == '__main__':
  main()
