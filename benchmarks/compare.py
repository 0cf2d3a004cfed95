"""ce_jax against the PyTorch reference: the same D+G step, side by side, alternating.

  python benchmarks/compare.py --batch-size 16 --repeats 7
  python benchmarks/compare.py --device cuda --batch-size 256 --dtype bfloat16 --mode both

Builds both (the paper's center-hole model: 128 → 64, 4000-d bottleneck; the
parameter counts must match), warms both up, then runs `--repeats` rounds; each
round times `--steps` train steps of each framework, the order swapping every
round, so that both see the same load on a shared machine. Prints the median
images/s of each, the spread over rounds, and the ratio of the medians (with
the median and range of the per-round ratios). Both flush denormal floats to
zero, as XLA:CPU always does (PyTorch on CPU otherwise slows several-fold
while early Adam statistics are denormal). `--json` adds one JSON line on
stdout. Flags follow `benchmarks/torch_reference.py`; `--config` picks the JAX
configuration (its image size, batch size and dtype are set from the flags).
"""

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# Both frameworks share one GPU: JAX must not take 75% of its memory up front.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):
  if path not in sys.path:
    sys.path.insert(0, path)

import jax  # noqa: E402
import torch  # noqa: E402
import train_step as jax_bench  # noqa: E402

from ce_jax import models  # noqa: E402


def _load_torch_reference():
  spec = importlib.util.spec_from_file_location('torch_reference',
                                                os.path.join(HERE, 'torch_reference.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ref = _load_torch_reference()


def machine() -> dict[str, Any]:
  """What the numbers were measured on."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  out = {'cpu': cpu, 'cores': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
         else os.cpu_count(), 'python': platform.python_version(),
         'jax': jax.__version__, 'torch': torch.__version__,
         'jax_device': jax.local_devices()[0].device_kind}
  if torch.cuda.is_available():
    out['torch_device'] = torch.cuda.get_device_name()
  # Page faults on large fresh allocations are a large part of a CPU step, so the
  # transparent-huge-page policy changes both frameworks' speed (PyTorch's more).
  try:
    with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
      out['transparent_hugepage'] = f.read().split('[')[1].split(']')[0]
  except (OSError, IndexError):
    pass
  out['glibc_tunables'] = os.environ.get('GLIBC_TUNABLES', '')
  if hasattr(os, 'getloadavg'):
    out['load_average_start'] = round(os.getloadavg()[0], 2)
  return out


def jax_config(args: argparse.Namespace):
  """The JAX config file, with the image size, batch size and dtype of the flags."""
  config = _load_config_file(args.config)
  config.data.image_size = args.image_size
  config.train.batch_size = args.batch_size
  config.model.dtype = args.dtype
  config.model.mask_channel = not args.no_mask_channel
  return config


def _load_config_file(path: str):
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


class TorchStep:
  """The PyTorch reference step on a fixed batch, eager or compiled."""

  def __init__(self, args: argparse.Namespace, mode: str):
    self.device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    mask_channel = not args.no_mask_channel
    torch.manual_seed(args.seed)
    g, d = ref.build_models(mask_channel, args.image_size, device=self.device)
    self.params = {'generator': ref.count_params(g), 'discriminator': ref.count_params(d)}
    if mode == 'compile':
      g, d = torch.compile(g, dynamic=False), torch.compile(d, dynamic=False)
    self.step = ref.make_train_step(g, d, mask_channel, dtype)
    self.x = torch.rand(args.batch_size, 3, args.image_size, args.image_size,
                        device=self.device) * 2 - 1

  def run(self, steps: int) -> float:
    self._sync()
    t0 = time.perf_counter()
    for _ in range(steps):
      self.step(self.x)
    self._sync()
    return time.perf_counter() - t0

  def _sync(self):
    if self.device.type == 'cuda':
      torch.cuda.synchronize(self.device)


def summarize(times: list[float], steps: int, batch: int) -> dict[str, Any]:
  rates = [steps * batch / t for t in times]
  return {'images_per_s': round(statistics.median(rates), 2),
          'images_per_s_min': round(min(rates), 2), 'images_per_s_max': round(max(rates), 2),
          'times_s': [round(t, 4) for t in times]}


def compare(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs both benchmarks alternating; returns rates, ratios and the machine description."""
  torch.set_num_threads(args.threads)
  torch.set_flush_denormal(True)
  result: dict[str, Any] = {'machine': machine(), 'args': vars(args)}
  m = result['machine']
  log(f'{m["cpu"]} ({m["cores"]} cores, transparent huge pages: '
      f'{m.get("transparent_hugepage", "?")}, GLIBC_TUNABLES={m["glibc_tunables"] or "unset"}); '
      f'jax {m["jax"]} on {m["jax_device"]}, torch {m["torch"]} on {args.device} '
      f'({args.threads} threads); batch {args.batch_size}, {args.image_size}px, {args.dtype}')

  config = jax_config(args)
  jax_step = jax_bench.build_train(config, args.batch_size)
  state = jax_step.args[0]
  jax_params = {'generator': models.param_count(state.g_params),
                'discriminator': models.param_count(state.d_params)}
  log(f'JAX compiled in {jax_step.compile_s:.1f} s '
      f'(upsample={models.resolve_upsample(config.model.upsample)})')

  modes = ['eager', 'compile'] if args.mode == 'both' else [args.mode]
  runners: dict[str, Any] = {'jax': jax_step}
  for mode in modes:
    try:
      runner = TorchStep(args, mode)
      runner.run(1)  # torch.compile compiles here
    except Exception as e:  # noqa: BLE001 (a missing compiler toolchain and the like)
      log(f'torch {mode}: unavailable ({type(e).__name__}: {str(e).splitlines()[0]})')
      result[f'torch_{mode}_error'] = f'{type(e).__name__}: {e}'
      continue
    runners[f'torch_{mode}'] = runner
    if runner.params != jax_params:
      log(f'WARNING: parameter counts differ: jax {jax_params}, torch {runner.params}')
  result['params'] = {'jax': jax_params,
                      **{k: r.params for k, r in runners.items() if k != 'jax'}}
  log(f'params: G {jax_params["generator"]:,}  D {jax_params["discriminator"]:,} (jax); '
      + '; '.join(f'G {r.params["generator"]:,}  D {r.params["discriminator"]:,} ({k})'
                  for k, r in runners.items() if k != 'jax'))

  for runner in runners.values():
    runner.run(args.warmup)
  times: dict[str, list[float]] = {k: [] for k in runners}
  names = list(runners)
  for r in range(args.repeats):
    for name in names if r % 2 == 0 else names[::-1]:
      times[name].append(runners[name].run(args.steps))
    log(f'round {r + 1}/{args.repeats}: ' + ', '.join(
        f'{k} {args.steps * args.batch_size / v[-1]:.2f} img/s' for k, v in times.items()))

  for name, t in times.items():
    result[name] = summarize(t, args.steps, args.batch_size)
  if jax_step.flops:
    achieved = jax_step.flops * result['jax']['images_per_s'] / args.batch_size
    result['jax']['flops_per_step'] = jax_step.flops
    result['jax']['tflops_per_s'] = round(achieved / 1e12, 3)
    peak = jax_bench.peak_flops(jax.local_devices()[0], args.dtype)
    if peak:
      result['jax']['mfu'] = round(achieved / (peak * jax.device_count()), 4)
  for name in names[1:]:
    per_round = [b / a for a, b in zip(times['jax'], times[name], strict=True)]
    ratio = result['jax']['images_per_s'] / result[name]['images_per_s']
    result[f'ratio_vs_{name}'] = {
        'of_medians': round(ratio, 3), 'per_round_median': round(statistics.median(per_round), 3),
        'per_round_min': round(min(per_round), 3), 'per_round_max': round(max(per_round), 3)}
  if hasattr(os, 'getloadavg'):
    m['load_average_end'] = round(os.getloadavg()[0], 2)

  log(f'\nmedian of {args.repeats} alternating rounds of {args.steps} steps '
      f'(after {args.warmup} warm-up steps), batch {args.batch_size}:')
  for name in names:
    s = result[name]
    log(f'  {name:14s} {s["images_per_s"]:9.2f} img/s  '
        f'(spread {s["images_per_s_min"]:.2f}–{s["images_per_s_max"]:.2f})')
  if 'mfu' in result['jax']:
    log(f'  jax: {result["jax"]["tflops_per_s"]:.1f} TFLOP/s (XLA count), '
        f'MFU {result["jax"]["mfu"]:.1%}')
  for name in names[1:]:
    q = result[f'ratio_vs_{name}']
    log(f'  jax / {name}: {q["of_medians"]:.2f}× (per round: median {q["per_round_median"]:.2f}×, '
        f'{q["per_round_min"]:.2f}–{q["per_round_max"]:.2f}×)')
  return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--config', default=os.path.join(ROOT, 'configs', 'paper.py'),
                 help='JAX config file (model options; size, batch and dtype come from flags)')
  ref.add_run_arguments(p)
  p.add_argument('--image-size', type=int, default=128,
                 help='input side; a power of two, at least 128 (the patch is always 64×64)')
  p.add_argument('--steps', type=int, default=3, help='timed steps per round and framework')
  p.add_argument('--warmup', type=int, default=5)
  p.add_argument('--repeats', type=int, default=7, help='alternating rounds')
  args = p.parse_args(argv)
  if args.image_size < 128 or args.image_size & (args.image_size - 1):
    p.error('--image-size must be a power of two and at least 128 (what both models take)')
  ref.check_device(p, args)
  backend = jax.default_backend()
  if (args.device == 'cuda') != (backend == 'gpu'):
    p.error(f'--device {args.device} but JAX runs on {backend}: compare like with like')
  if args.batch_size % jax.device_count():
    p.error(f'--batch-size {args.batch_size} must be a multiple of the {jax.device_count()} '
            'JAX devices')
  return args


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  log = functools.partial(print, file=sys.stderr, flush=True) if args.json else print
  result = compare(args, log)
  if args.json:
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  main()
