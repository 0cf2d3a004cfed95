"""Checks of the PyTorch Context Encoder reference used by the benchmarks."""

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip('torch')

_PATH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'torch_reference.py'
_spec = importlib.util.spec_from_file_location('torch_reference', _PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def _expected_generator_params(in_channels: int) -> int:
  convs = [(in_channels, 64), (64, 64), (64, 128), (128, 256), (256, 512), (512, 4000),
           (4000, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
  bn_channels = [64, 128, 256, 512, 4000, 512, 256, 128, 64]
  return sum(cin * cout * 16 for cin, cout in convs) + 2 * sum(bn_channels)


@pytest.fixture(scope='module')
def models():
  torch.manual_seed(0)
  return ref.build_models(mask_channel=True)


def test_generator_param_count(models):
  g, _ = models
  assert ref.count_params(g) == _expected_generator_params(4) == 71_125_568
  g3, _ = ref.build_models(mask_channel=False, device='meta')
  assert ref.count_params(g3) == _expected_generator_params(3)


def test_discriminator_param_count(models):
  _, d = models
  convs = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
  expected = sum(cin * cout * 16 for cin, cout in convs) + 2 * (128 + 256 + 512)
  assert ref.count_params(d) == expected


def test_shapes_and_masks(models):
  g, d = models
  x = torch.rand(2, 3, 128, 128) * 2 - 1
  inp, real = ref.make_inputs(x)
  assert inp.shape == (2, 4, 128, 128)
  assert real.shape == (2, 3, 64, 64)
  assert torch.equal(real, x[:, :, 32:96, 32:96])
  mask = inp[:, 3]
  assert mask.sum() == 2 * 56 * 56 and mask[:, 36:92, 36:92].all()
  assert torch.allclose(inp[0, :3, 64, 64], ref.mean_pixel().flatten())
  assert ref.rec_weights().sum() == 56 * 56 + 10 * (64 * 64 - 56 * 56)

  with torch.no_grad():
    fake = g.eval()(inp)
    logits = d.eval()(fake)
  g.train(), d.train()
  assert fake.shape == (2, 3, 64, 64) and fake.abs().max() <= 1
  assert logits.shape == (2,)


def test_train_step_updates_params(models):
  g, d = models
  step = ref.make_train_step(g, d)
  params = [*g.parameters(), *d.parameters()]
  before = [p.detach().clone() for p in params]
  d_loss, g_loss = step(torch.rand(2, 3, 128, 128) * 2 - 1)
  assert math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())
  assert all(not torch.equal(b, p) for b, p in zip(before, params, strict=True))


def test_benchmark_smoke():
  args = ref.parse_args(['--device', 'cpu', '--batch-size', '2', '--steps', '1', '--warmup', '1',
                         '--repeats', '1', '--threads', str(torch.get_num_threads()), '--json'])
  out = ref.benchmark(args)
  r = out['modes']['eager']
  assert out['params']['generator'] == _expected_generator_params(4)
  assert r['train']['images_per_s'] > 0 and r['infer']['images_per_s'] > 0
  assert r['memory']['host_peak_rss_mib'] > 0
