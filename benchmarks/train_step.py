"""Throughput of the jitted train step (D+G, or G alone without D) and of generator inference.

  python benchmarks/train_step.py --config=configs/default.py
  python benchmarks/train_step.py --config=configs/deepfill2.py   # any model family
  python benchmarks/train_step.py --config=configs/default.py --batch_size=256 \
      --config.model.dtype=bfloat16 --json

Runs the real `train.train_step` (donated state, batch sharded over every
device) on a fixed random batch, so that the input pipeline is not measured
(`benchmarks/input_pipeline.py` does that). Prints the parameter counts, the
compile time, then steps/s and images/s of the train step and of generator
inference: the median of `--repeats` timed blocks of `--steps` steps each,
after `--warmup` steps, with `jax.block_until_ready` closing every block. Also the peak host memory,
the peak device memory where the backend reports it, XLA's FLOP count of one
step and, on a GPU or TPU, the model FLOP utilisation against the peak of
`PEAK_TFLOPS` (dense, per chip). `--json` adds one JSON line on stdout.
"""

import dataclasses
import functools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import jax  # noqa: E402
import ml_collections  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ce_jax import cli, completion, masks, models, parallel, train, train_state  # noqa: E402

# Dense peak TFLOP/s per chip by compute dtype, matched against `device_kind`
# (first match wins). NVIDIA float32 is the TF32 tensor-core rate, which XLA
# uses for float32 matmuls and convolutions at default precision.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ('H200', {'bfloat16': 989.0, 'float32': 494.0}),
    ('H100 PCIe', {'bfloat16': 756.0, 'float32': 378.0}),
    ('H100', {'bfloat16': 989.0, 'float32': 494.0}),
    ('A100', {'bfloat16': 312.0, 'float32': 156.0}),
    ('L4', {'bfloat16': 121.0, 'float32': 60.0}),
    ('TPU v6', {'bfloat16': 918.0, 'float32': 918.0}),
    ('TPU v5p', {'bfloat16': 459.0, 'float32': 459.0}),
    ('TPU v5', {'bfloat16': 197.0, 'float32': 197.0}),  # v5e ('TPU v5 lite')
    ('TPU v4', {'bfloat16': 275.0, 'float32': 275.0}),
)


def peak_flops(device: jax.Device, dtype: str) -> float | None:
  """Peak FLOP/s of one `device` in `dtype` ('float32' or 'bfloat16'); None if unknown."""
  if device.platform == 'cpu':
    return None
  for name, peaks in PEAK_TFLOPS:
    if name.lower() in device.device_kind.lower():
      return peaks.get(dtype, peaks['float32']) * 1e12
  return None


def _flops(compiled: Any) -> float | None:
  """XLA's FLOP count of one call of a compiled function on one device."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list | tuple) else cost
  return float(cost['flops']) if cost and 'flops' in cost else None


def _median_rate(times: list[float], steps: int, batch: int) -> dict[str, float]:
  t = statistics.median(times)
  return {'steps_per_s': round(steps / t, 3), 'images_per_s': round(steps * batch / t, 2)}


@dataclasses.dataclass
class Bench:
  """A compiled function and the arguments it is timed on."""

  fn: Callable[..., Any]
  args: tuple[Any, ...]
  compile_s: float
  flops: float | None  # one call, summed over the devices
  carry_state: bool  # fn returns (state, aux) and takes that state back

  def run(self, steps: int) -> float:
    """Seconds for `steps` calls, the last result waited for."""
    t0 = time.perf_counter()
    out = None
    for _ in range(steps):
      out = self.fn(*self.args)
      if self.carry_state:
        self.args = (out[0], *self.args[1:])
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def _compile(fn: Callable[..., Any], args: tuple[Any, ...], carry_state: bool) -> Bench:
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  flops = _flops(compiled)
  return Bench(compiled, args, compile_s, flops and flops * jax.device_count(), carry_state)


def random_batch(config: ml_collections.ConfigDict, batch_size: int,
                 seed: int = 0) -> dict[str, jax.Array]:
  """`{'image': [B, S, S, 3] float32}` uniform in [-1, 1], sharded over the batch."""
  size = config.data.image_size
  image = jax.random.uniform(jax.random.key(seed), (batch_size, size, size, 3),
                             minval=-1.0, maxval=1.0)
  return {'image': jax.device_put(image, parallel.batch_sharded(parallel.create_mesh()))}


TRAIN_LABELS = {'joint': 'train step (D+G)', 'rec': 'train step (G)  ', 'd': 'train step (D)  '}


def timed_phase(config: ml_collections.ConfigDict) -> str:
  """The phase of the run's last step: 'joint' with D, 'rec' for a config without one."""
  return train_state.phase_at(config, config.train.num_steps - 1)


def build_train(config: ml_collections.ConfigDict, batch_size: int) -> Bench:
  """The train step exactly as `train.train_and_evaluate` compiles it."""
  mesh = parallel.create_mesh()
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  gen, disc = models.create_models(config)
  init = jax.jit(functools.partial(train_state.create, config), out_shardings=repl)
  state = init(jax.random.PRNGKey(config.seed))
  step = jax.jit(functools.partial(train.train_step, config=config, gen=gen, disc=disc,
                                   phase=timed_phase(config)),
                 in_shardings=(repl, data), out_shardings=(repl, repl), donate_argnums=0)
  return _compile(step, (state, random_batch(config, batch_size)), carry_state=True)


def build_inference(config: ml_collections.ConfigDict, batch_size: int) -> Bench:
  """Generator inference (eval-mode BatchNorm) on masked images."""
  mesh = parallel.create_mesh()
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  gen, _ = models.create_models(config)
  state = jax.jit(functools.partial(train_state.create, config),
                  out_shardings=repl)(jax.random.PRNGKey(config.seed))
  variables = {'params': state.g_params, 'batch_stats': state.g_batch_stats}
  batch = random_batch(config, batch_size)
  m = masks.from_config(config.mask, jax.random.key(1), batch)
  x_in = completion.generator_input(config, batch['image'], m.mask,
                                    completion.color_offset(config, batch['image'], m.mask))
  infer = jax.jit(lambda v, x: gen.apply(v, x, train=False), in_shardings=(repl, data),
                  out_shardings=data)
  return _compile(infer, (variables, x_in), carry_state=False)


def _memory() -> dict[str, float]:
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
  out = {'host_peak_rss_mib': round(rss / 2**20 if sys.platform == 'darwin' else rss / 2**10, 1)}
  stats = jax.local_devices()[0].memory_stats()
  if stats and 'peak_bytes_in_use' in stats:
    out['device_peak_mib'] = round(stats['peak_bytes_in_use'] / 2**20, 1)
  return out


def time_bench(bench: Bench, steps: int, warmup: int, repeats: int) -> list[float]:
  """Seconds of each of `repeats` blocks of `steps` calls, after `warmup` calls."""
  if warmup:
    bench.run(warmup)
  return [bench.run(steps) for _ in range(repeats)]


def benchmark(config: ml_collections.ConfigDict, batch_size: int, *, steps: int = 5,
              warmup: int = 3, repeats: int = 5, inference: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
  """Times the train step (and generator inference); returns the figures as a dict."""
  parallel.local_batch_size(batch_size, '--batch_size')
  device = jax.local_devices()[0]
  dtype = config.model.dtype
  result: dict[str, Any] = {
      'framework': 'jax', 'jax_version': jax.__version__, 'backend': jax.default_backend(),
      'device': device.device_kind, 'num_devices': jax.device_count(),
      'config': {'batch_size': batch_size, 'image_size': config.data.image_size,
                 'dtype': dtype, 'upsample': models.resolve_upsample(config.model.upsample),
                 'steps': steps, 'warmup': warmup, 'repeats': repeats},
  }
  log(f'jax {jax.__version__} on {jax.device_count()}× {device.device_kind} '
      f'({jax.default_backend()}), batch {batch_size}, {config.data.image_size}px, {dtype}, '
      f'upsample={result["config"]["upsample"]}')

  benches = {'train': build_train(config, batch_size)}
  state = benches['train'].args[0]
  result['params'] = {'generator': models.param_count(state.g_params),
                      'discriminator': models.param_count(state.d_params)}
  log(f'model.family={config.model.family}: generator {result["params"]["generator"]:,} '
      f'params, discriminator {result["params"]["discriminator"]:,}')
  if inference:
    benches['infer'] = build_inference(config, batch_size)
  peak = peak_flops(device, dtype)
  for name, bench in benches.items():
    times = time_bench(bench, steps, warmup, repeats)
    rate = _median_rate(times, steps, batch_size)
    entry = {**rate, 'times_s': [round(t, 4) for t in times],
             'compile_s': round(bench.compile_s, 2), 'flops_per_step': bench.flops}
    label = TRAIN_LABELS[timed_phase(config)] if name == 'train' else 'G inference     '
    line = (f'{label}: {rate["images_per_s"]:9.2f} img/s  {rate["steps_per_s"]:8.3f} steps/s  '
            f'(median of {repeats}; spread {min(times) / steps * 1e3:.1f}–'
            f'{max(times) / steps * 1e3:.1f} ms/step; compile {bench.compile_s:.1f} s)')
    if bench.flops:
      achieved = bench.flops * rate['steps_per_s']
      entry['tflops_per_s'] = round(achieved / 1e12, 3)
      line += f'\n  {bench.flops / 1e9:.1f} GFLOP/step (XLA), {achieved / 1e12:.3f} TFLOP/s'
      if peak:
        entry['mfu'] = round(achieved / (peak * jax.device_count()), 4)
        line += f', MFU {entry["mfu"]:.1%} of {peak / 1e12:.0f} TFLOP/s per chip'
    result[name] = entry
    log(line)
  result['memory'] = _memory()
  log('peak memory (MiB): ' + ', '.join(f'{k} {v:,.0f}' for k, v in result['memory'].items()))
  return result


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line (not defined on import, so other scripts can import this one)."""
  config_flags.DEFINE_config_file('config', os.path.join(ROOT, 'configs', 'default.py'),
                                  'Configuration file.', lock_config=True)
  flags.DEFINE_integer('batch_size', 0, 'Global batch size (default: the config\'s).')
  flags.DEFINE_integer('steps', 5, 'Steps per timed block.')
  flags.DEFINE_integer('warmup', 3, 'Untimed steps after compiling.')
  flags.DEFINE_integer('repeats', 5, 'Timed blocks; the median is reported.')
  flags.DEFINE_bool('inference', True, 'Also time generator inference.')
  flags.DEFINE_bool('json', False, 'Print one JSON line with the results on stdout '
                    '(the report goes to stderr).')


def main(argv: list[str]) -> None:
  del argv
  config = cli.load_config()
  batch_size = FLAGS.batch_size or config.train.batch_size
  log = (lambda s: print(s, file=sys.stderr, flush=True)) if FLAGS.json else print

  def run():
    models.compute_dtype(config)
    return benchmark(config, batch_size, steps=FLAGS.steps, warmup=FLAGS.warmup,
                     repeats=FLAGS.repeats, inference=FLAGS.inference, log=log)

  result = cli.call(run)
  if FLAGS.json:
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
