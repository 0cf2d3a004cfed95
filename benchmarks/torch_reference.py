"""PyTorch reference of the Context Encoder (Pathak et al., CVPR 2016) and a train-step benchmark.

The models follow the released center-hole setting: a 128×128 image whose central 56×56 hole is
filled with the mean pixel, plus the mask as a fourth channel, goes through a DCGAN-style encoder,
a 4000-d convolutional bottleneck and an up-convolutional decoder that predicts the 64×64 center
(the hole and a 4-px overlap band). A DCGAN discriminator judges 64×64 patches.

One train step is a discriminator Adam update followed by a generator Adam update. The script
times it, and generator inference, in eager mode and/or under `torch.compile`:

  python benchmarks/torch_reference.py --batch-size 16 --mode both
  python benchmarks/torch_reference.py --json   # one JSON line on stdout, the report on stderr

`build_models`, `make_train_step` and `benchmark` can be imported by other scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

HOLE = 64  # Side of the predicted center patch.
OVERLAP = 4  # Overlap band inside the patch that is visible in the input.
OVERLAP_WEIGHT = 10.0
MEAN_PIXEL = (117.0, 104.0, 123.0)  # In [0, 255]; fills the hole.
D_LR, G_LR, BETAS = 2e-4, 2e-3, (0.5, 0.999)
ADV_WEIGHT, REC_WEIGHT = 0.001, 0.999

TrainStep = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _down(cin: int, cout: int, bn: bool = True) -> list[nn.Module]:
  """Conv 4×4 / stride 2 that halves H and W, [BN], LeakyReLU(0.2)."""
  layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
  if bn:
    layers.append(nn.BatchNorm2d(cout))
  return [*layers, nn.LeakyReLU(0.2, inplace=True)]


def _up(cin: int, cout: int) -> list[nn.Module]:
  """Transposed conv 4×4 / stride 2 that doubles H and W, BN, ReLU."""
  return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


class Generator(nn.Sequential):
  """Maps [B, 4 (3 without mask channel), S, S] inputs to the [B, 3, 64, 64] center in [-1, 1]."""

  def __init__(self, in_channels: int = 4, image_size: int = 128, bottleneck_dim: int = 4000):
    bottom = image_size // 32  # Encoder output side: 4 at 128×128.
    super().__init__(
      *_down(in_channels, 64, bn=False),  # S/2
      *_down(64, 64),  # S/4
      *_down(64, 128),  # S/8
      *_down(128, 256),  # S/16
      *_down(256, 512),  # S/32
      nn.Conv2d(512, bottleneck_dim, bottom, bias=False),  # 1×1
      nn.BatchNorm2d(bottleneck_dim),
      nn.LeakyReLU(0.2, inplace=True),
      nn.ConvTranspose2d(bottleneck_dim, 512, 4, 1, 0, bias=False),  # 4×4
      nn.BatchNorm2d(512),
      nn.ReLU(True),
      *_up(512, 256),  # 8×8
      *_up(256, 128),  # 16×16
      *_up(128, 64),  # 32×32
      nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),  # 64×64
      nn.Tanh(),
    )

  # Own forward methods keep torch.compile from sharing one Sequential.forward cache between the
  # generator and the discriminator, which forces recompilation with dynamic shapes.
  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return super().forward(x)


class Discriminator(nn.Sequential):
  """Maps [B, 3, 64, 64] patches to [B] real/fake logits."""

  def __init__(self):
    super().__init__(
      *_down(3, 64, bn=False),  # 32×32
      *_down(64, 128),  # 16×16
      *_down(128, 256),  # 8×8
      *_down(256, 512),  # 4×4
      nn.Conv2d(512, 1, 4, bias=False),  # 1×1
      nn.Flatten(0),
    )

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return super().forward(x)


def init_weights(module: nn.Module) -> None:
  """DCGAN init: conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), BN shift = 0."""
  for m in module.modules():
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
      nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)


def count_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def build_models(
  mask_channel: bool = True,
  image_size: int = 128,
  bottleneck_dim: int = 4000,
  device: str | torch.device = 'cpu',
) -> tuple[Generator, Discriminator]:
  """Returns initialised (generator, discriminator) in train mode on `device`."""
  g = Generator(4 if mask_channel else 3, image_size, bottleneck_dim)
  d = Discriminator()
  for m in (g, d):
    init_weights(m)
  return g.to(device), d.to(device)


def center_mask(image_size: int = 128, device: str | torch.device = 'cpu') -> torch.Tensor:
  """[1, 1, S, S] float mask: 1 in the central (HOLE - 2·OVERLAP)² hole, 0 elsewhere."""
  m = torch.zeros(1, 1, image_size, image_size, device=device)
  lo = (image_size - HOLE) // 2 + OVERLAP
  hi = lo + HOLE - 2 * OVERLAP
  m[..., lo:hi, lo:hi] = 1.0
  return m


def rec_weights(device: str | torch.device = 'cpu') -> torch.Tensor:
  """[1, 1, HOLE, HOLE] loss weights: OVERLAP_WEIGHT in the overlap band, 1 inside."""
  w = torch.full((1, 1, HOLE, HOLE), OVERLAP_WEIGHT, device=device)
  w[..., OVERLAP:-OVERLAP, OVERLAP:-OVERLAP] = 1.0
  return w


def mean_pixel(device: str | torch.device = 'cpu') -> torch.Tensor:
  """[1, 3, 1, 1] mean pixel in [-1, 1]."""
  return (torch.tensor(MEAN_PIXEL, device=device) / 255.0 * 2.0 - 1.0).view(1, 3, 1, 1)


def make_inputs(x: torch.Tensor, mask_channel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
  """Splits images [B, 3, S, S] in [-1, 1] into the generator input and the target center.

  Returns (input [B, 4 or 3, S, S] with the hole filled by the mean pixel, center [B, 3, 64, 64]).
  """
  b, _, s, _ = x.shape
  m = center_mask(s, x.device)
  inp = x * (1.0 - m) + m * mean_pixel(x.device)
  if mask_channel:
    inp = torch.cat([inp, m.expand(b, 1, s, s)], dim=1)
  lo = (s - HOLE) // 2
  return inp, x[..., lo : lo + HOLE, lo : lo + HOLE]


def rec_loss(real: torch.Tensor, fake: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
  """Weighted mean squared error over [B, 3, 64, 64]: sum(W·err²) / (sum(W) · 3), W per pixel."""
  sq = (real - fake.float()).square()
  return (w * sq).sum() / (w.sum() * sq.shape[0] * sq.shape[1])


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
  if dtype is None or dtype == torch.float32:
    return contextlib.nullcontext()
  return torch.autocast(device.type, dtype=dtype)


def make_train_step(
  g: nn.Module,
  d: nn.Module,
  mask_channel: bool = True,
  dtype: torch.dtype | None = None,
) -> TrainStep:
  """Returns `step(x) -> (d_loss, g_loss)` for images x [B, 3, S, S] in [-1, 1].

  Each call makes one discriminator Adam update then one generator Adam update. `g` and `d` may
  be `torch.compile`d modules; the optimisers are created here and live in the closure.
  `dtype=torch.bfloat16` runs the forward passes under autocast (parameters stay float32).
  """
  device = next(g.parameters()).device
  opt_d = torch.optim.Adam(d.parameters(), lr=D_LR, betas=BETAS)
  opt_g = torch.optim.Adam(g.parameters(), lr=G_LR, betas=BETAS)
  w = rec_weights(device)
  bce = F.binary_cross_entropy_with_logits

  def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inp, real = make_inputs(x, mask_channel)
    with _autocast(device, dtype):
      fake = g(inp)
      d_real, d_fake = d(real).float(), d(fake.detach()).float()
      d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    with _autocast(device, dtype):
      d_gen = d(fake).float()
      g_loss = ADV_WEIGHT * bce(d_gen, torch.ones_like(d_gen)) + REC_WEIGHT * rec_loss(
        real, fake, w
      )
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()

  return step


def _sync(device: torch.device) -> None:
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, steps: int, repeats: int) -> list[float]:
  """Seconds for `steps` calls of `fn`, once per repeat."""
  times = []
  for _ in range(repeats):
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
      fn()
    _sync(device)
    times.append(time.perf_counter() - t0)
  return times


def _peak_memory_mib(device: torch.device) -> dict[str, float]:
  # ru_maxrss is in KiB on Linux and bytes on macOS.
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  rss_mib = rss / 2**20 if sys.platform == 'darwin' else rss / 2**10
  out = {'host_peak_rss_mib': round(rss_mib, 1)}
  if device.type == 'cuda':
    out['cuda_max_allocated_mib'] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
  return out


def _rates(times: list[float], steps: int, batch: int) -> dict[str, float]:
  t = statistics.median(times)
  return {'steps_per_s': round(steps / t, 3), 'images_per_s': round(steps * batch / t, 2)}


def _run_mode(args: argparse.Namespace, mode: str, log: Callable[[str], None]) -> dict:
  """Builds fresh models, warms up and times the train step and generator inference."""
  device, dtype = torch.device(args.device), getattr(torch, args.dtype)
  mask_channel = not args.no_mask_channel
  torch.manual_seed(args.seed)
  g, d = build_models(mask_channel, args.image_size, device=device)
  x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device) * 2 - 1
  inp, _ = make_inputs(x, mask_channel)
  if device.type == 'cuda':
    torch.cuda.reset_peak_memory_stats(device)

  def run(g_run: nn.Module, d_run: nn.Module) -> dict:
    step = make_train_step(g_run, d_run, mask_channel, dtype)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
      step(x)
    _sync(device)
    train_warmup_s = time.perf_counter() - t0
    train_times = _time(lambda: step(x), device, args.steps, args.repeats)
    d_loss, g_loss = step(x)

    g_run.eval()

    def infer() -> torch.Tensor:
      with torch.no_grad(), _autocast(device, dtype):
        return g_run(inp)

    t0 = time.perf_counter()
    for _ in range(args.warmup):
      infer()
    _sync(device)
    infer_warmup_s = time.perf_counter() - t0
    infer_times = _time(infer, device, args.steps, args.repeats)
    g_run.train()
    return {
      'train': _rates(train_times, args.steps, args.batch_size),
      'infer': _rates(infer_times, args.steps, args.batch_size),
      'train_times_s': [round(t, 4) for t in train_times],
      'infer_times_s': [round(t, 4) for t in infer_times],
      'warmup_s': {'train': round(train_warmup_s, 2), 'infer': round(infer_warmup_s, 2)},
      'final_losses': {'d': float(d_loss), 'g': float(g_loss)},
    }

  result: dict = {'compiled': False}
  if mode == 'compile':
    try:
      result |= run(torch.compile(g, dynamic=False), torch.compile(d, dynamic=False))
      result['compiled'] = True
    except Exception as e:  # Any backend or toolchain failure: compile is unavailable here.
      msg = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
      log(f'torch.compile failed ({msg}); falling back to eager for this mode.')
      result['compile_error'] = msg
      torch.manual_seed(args.seed)
      g, d = build_models(mask_channel, args.image_size, device=device)
  if not result['compiled']:
    result |= run(g, d)
  result['memory'] = _peak_memory_mib(device)
  return result


def benchmark(args: argparse.Namespace) -> dict:
  """Runs the benchmark described by `args` (see `parse_args`) and returns the results."""
  log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
  torch.set_num_threads(args.threads)
  device, dtype = torch.device(args.device), getattr(torch, args.dtype)
  if dtype == torch.bfloat16:
    try:  # bf16 autocast is not supported by every CPU build.
      with torch.autocast(device.type, dtype=dtype):
        torch.nn.Conv2d(3, 4, 3).to(device)(torch.zeros(1, 3, 8, 8, device=device))
    except Exception as e:
      log(f'bfloat16 autocast unavailable on {device.type} ({e}); using float32.')
      args.dtype = 'float32'

  g, d = build_models(not args.no_mask_channel, args.image_size, device='meta')
  results: dict = {
    'framework': 'torch',
    'torch_version': torch.__version__,
    'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()
    or platform.machine(),
    'threads': torch.get_num_threads(),
    'config': {
      k: getattr(args, k)
      for k in ('batch_size', 'image_size', 'steps', 'warmup', 'repeats', 'dtype', 'seed')
    }
    | {'mask_channel': not args.no_mask_channel},
    'params': {'generator': count_params(g), 'discriminator': count_params(d)},
    'modes': {},
  }
  del g, d
  p = results['params']
  log(f'torch {torch.__version__} on {args.device} ({results["device"]}), {results["threads"]} '
      f'threads, batch {args.batch_size}, {args.image_size}px, {args.dtype}')
  log(f'params: G {p["generator"]:,}  D {p["discriminator"]:,}')

  modes = ['eager', 'compile'] if args.mode == 'both' else [args.mode]
  for mode in modes:
    r = _run_mode(args, mode, log)
    results['modes'][mode] = r
    label = mode if mode == 'eager' or r['compiled'] else 'compile (fell back to eager)'
    mem = ', '.join(f'{k} {v:,.0f}' for k, v in r['memory'].items())
    log(f'[{label}] warm-up {r["warmup_s"]["train"]:.1f}s train / '
        f'{r["warmup_s"]["infer"]:.1f}s infer')
    log(f'[{label}] train step (D+G): {r["train"]["images_per_s"]:.2f} img/s, '
        f'{r["train"]["steps_per_s"]:.3f} steps/s (median of {args.repeats})')
    log(f'[{label}] G inference:      {r["infer"]["images_per_s"]:.2f} img/s, '
        f'{r["infer"]["steps_per_s"]:.3f} steps/s')
    log(f'[{label}] peak memory (MiB, process so far): {mem}')
  return results


def _num_cores() -> int:
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def add_run_arguments(p: argparse.ArgumentParser) -> None:
  """The flags this script shares with compare.py: batch, execution, device, dtype, output."""
  p.add_argument('--batch-size', type=int, default=16)
  p.add_argument('--mode', choices=('eager', 'compile', 'both'), default='eager',
                 help='PyTorch execution')
  p.add_argument('--threads', type=int, default=_num_cores(), help='torch.set_num_threads')
  p.add_argument('--device', choices=('cpu', 'cuda'),
                 default='cuda' if torch.cuda.is_available() else 'cpu')
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  p.add_argument('--no-mask-channel', action='store_true', help='3-channel input (no mask)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--json', action='store_true', help='print one JSON line with the results')


def check_device(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  if args.device == 'cuda' and not torch.cuda.is_available():
    p.error('--device cuda requested but CUDA is not available to PyTorch')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_run_arguments(p)
  p.add_argument('--image-size', type=int, default=128,
                 help='input side; a multiple of 32, at least 96 (the patch is always 64×64)')
  p.add_argument('--steps', type=int, default=5, help='timed steps per repeat')
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--repeats', type=int, default=3)
  args = p.parse_args(argv)
  if args.image_size % 32 or args.image_size < 96:
    p.error('--image-size must be a multiple of 32 and at least 96')
  check_device(p, args)
  return args


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  results = benchmark(args)
  if args.json:
    print(json.dumps(results), flush=True)


if __name__ == '__main__':
  main()
