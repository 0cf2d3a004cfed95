"""Fréchet Inception Distance from a user's Inception-v3 weights file (nothing downloads).

FID (Heusel et al., 2017) compares the Gaussians fitted to Inception-v3 pool3
features (2048-d) of two image sets:

  FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).

The network is the FID variant of Inception-v3 that pytorch-fid uses (the
TensorFlow 2015 graph of the original FID code, ported): the average pools
inside blocks A, C and the first E exclude padding, the last E block max-pools.
Images are resized to 299×299 (bilinear), as pytorch-fid does.

Weights file: an `.npz` of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
state dict, under its own names (`Conv2d_1a_3x3.conv.weight`, ...,
`Mixed_7c.branch_pool.bn.running_var`; PyTorch layouts). One line with
PyTorch converts it (README, "LPIPS and FID"). The classifier (`fc.*`) is not
used. A file whose channel counts are all the same fraction of Inception's
(`width`) loads as that narrower network, which the tests use.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ce_jax.errors import UserError

SIZE = 299
FIRST = 'Conv2d_1a_3x3.conv.weight'
Variables = dict[str, Any]


class BasicConv(nn.Module):
  """Convolution (no bias) → batch norm (running statistics, ε = 0.001) → ReLU."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: Any = 'VALID'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, self.kernel, self.strides, padding=self.padding, use_bias=False,
                name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _same(kh: int, kw: int) -> tuple[tuple[int, int], tuple[int, int]]:
  return ((kh // 2, kh // 2), (kw // 2, kw // 2))


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x: jax.Array, stride: int = 2, pad: int = 0) -> jax.Array:
  return nn.max_pool(x, (3, 3), (stride, stride), padding=((pad, pad), (pad, pad)))


class InceptionV3(nn.Module):
  """Inception-v3 up to the 2048-d pool3 features, FID variant.

  `width` scales every channel count (1 = the real network).
  """
  width: float = 1.0

  def conv(self, name: str, features: int, kernel=(1, 1), strides: int = 1,
           padding: Any = None) -> BasicConv:
    padding = _same(*kernel) if padding is None else padding
    return BasicConv(max(1, round(features * self.width)), kernel, strides, padding, name=name)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, 299, 299, 3]` float32 in [-1, 1] → `[B, 2048·width]` float32."""
    c = self.conv
    x = c('Conv2d_1a_3x3', 32, (3, 3), 2, 'VALID')(x)
    x = c('Conv2d_2a_3x3', 32, (3, 3), 1, 'VALID')(x)
    x = c('Conv2d_2b_3x3', 64, (3, 3))(x)
    x = _max_pool(x)
    x = c('Conv2d_3b_1x1', 80)(x)
    x = c('Conv2d_4a_3x3', 192, (3, 3), 1, 'VALID')(x)
    x = _max_pool(x)
    for name, pool in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
      x = self.block_a(name, x, pool)
    x = self.block_b('Mixed_6a', x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = self.block_c(name, x, c7)
    x = self.block_d('Mixed_7a', x)
    x = self.block_e('Mixed_7b', x, max_pool=False)
    x = self.block_e('Mixed_7c', x, max_pool=True)
    return jnp.mean(x, axis=(1, 2))

  def block_a(self, name, x, pool_features):
    c = lambda n, *a: self.conv(f'{name}.{n}', *a)  # noqa: E731
    b1 = c('branch1x1', 64)(x)
    b5 = c('branch5x5_2', 64, (5, 5))(c('branch5x5_1', 48)(x))
    b3 = c('branch3x3dbl_1', 64)(x)
    b3 = c('branch3x3dbl_3', 96, (3, 3))(c('branch3x3dbl_2', 96, (3, 3))(b3))
    bp = c('branch_pool', pool_features)(_avg_pool(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)

  def block_b(self, name, x):
    c = lambda n, *a: self.conv(f'{name}.{n}', *a)  # noqa: E731
    b3 = c('branch3x3', 384, (3, 3), 2, 'VALID')(x)
    bd = c('branch3x3dbl_2', 96, (3, 3))(c('branch3x3dbl_1', 64)(x))
    bd = c('branch3x3dbl_3', 96, (3, 3), 2, 'VALID')(bd)
    return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)

  def block_c(self, name, x, c7):
    c = lambda n, *a: self.conv(f'{name}.{n}', *a)  # noqa: E731
    b1 = c('branch1x1', 192)(x)
    b7 = c('branch7x7_1', c7)(x)
    b7 = c('branch7x7_3', 192, (7, 1))(c('branch7x7_2', c7, (1, 7))(b7))
    bd = c('branch7x7dbl_1', c7)(x)
    for i, (k, f) in enumerate((((7, 1), c7), ((1, 7), c7), ((7, 1), c7), ((1, 7), 192)), 2):
      bd = c(f'branch7x7dbl_{i}', f, k)(bd)
    bp = c('branch_pool', 192)(_avg_pool(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)

  def block_d(self, name, x):
    c = lambda n, *a: self.conv(f'{name}.{n}', *a)  # noqa: E731
    b3 = c('branch3x3_2', 320, (3, 3), 2, 'VALID')(c('branch3x3_1', 192)(x))
    b7 = c('branch7x7x3_1', 192)(x)
    b7 = c('branch7x7x3_3', 192, (7, 1))(c('branch7x7x3_2', 192, (1, 7))(b7))
    b7 = c('branch7x7x3_4', 192, (3, 3), 2, 'VALID')(b7)
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)

  def block_e(self, name, x, max_pool):
    c = lambda n, *a: self.conv(f'{name}.{n}', *a)  # noqa: E731
    b1 = c('branch1x1', 320)(x)
    b3 = c('branch3x3_1', 384)(x)
    b3 = jnp.concatenate([c('branch3x3_2a', 384, (1, 3))(b3),
                          c('branch3x3_2b', 384, (3, 1))(b3)], axis=-1)
    bd = c('branch3x3dbl_2', 384, (3, 3))(c('branch3x3dbl_1', 448)(x))
    bd = jnp.concatenate([c('branch3x3dbl_3a', 384, (1, 3))(bd),
                          c('branch3x3dbl_3b', 384, (3, 1))(bd)], axis=-1)
    pooled = _max_pool(x, 1, 1) if max_pool else _avg_pool(x)
    bp = c('branch_pool', 192)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


# PyTorch name of a leaf → (collection, Flax leaf name).
_LEAVES = {'conv.weight': ('params', 'kernel'), 'bn.weight': ('params', 'scale'),
           'bn.bias': ('params', 'bias'), 'bn.running_mean': ('batch_stats', 'mean'),
           'bn.running_var': ('batch_stats', 'var')}


def flax_path(torch_name: str) -> tuple[str, ...] | None:
  """('params', module, 'conv', 'kernel') for 'module.conv.weight'; None for unused names."""
  module, _, rest = torch_name.rpartition('.')
  module, _, layer = module.rpartition('.')
  leaf = _LEAVES.get(f'{layer}.{rest}')
  if leaf is None or not module:
    return None
  return (leaf[0], module, layer, leaf[1])


def from_torch(name: str, value: np.ndarray) -> np.ndarray:
  """A PyTorch array in Flax's layout (convolutions OIHW → HWIO)."""
  return np.transpose(value, (2, 3, 1, 0)) if name.endswith('conv.weight') else value


def load(path: str) -> tuple[InceptionV3, Variables]:
  """The network and its variables from an `.npz` of pytorch-fid's state dict.

  Raises:
    UserError: the file is missing, unreadable, or not Inception-v3 weights.
  """
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: np.asarray(f[k]) for k in f.files}
  except FileNotFoundError as e:
    raise UserError(f'--fid_weights={path} not found.') from e
  except (OSError, ValueError) as e:
    raise UserError(f'--fid_weights={path} is not an .npz file: {e}') from e
  if FIRST not in arrays or arrays[FIRST].ndim != 4:
    raise UserError(f'--fid_weights={path} holds no {FIRST}: expected an .npz of pytorch-fid\'s '
                    'Inception-v3 state dict (pt_inception-2015-12-05-6726825d.pth).')
  model = InceptionV3(width=arrays[FIRST].shape[0] / 32)
  variables: dict[str, Any] = {}
  for name, value in arrays.items():
    path_ = flax_path(name)
    if path_ is None:
      continue
    node = variables
    for key in path_[:-1]:
      node = node.setdefault(key, {})
    node[path_[-1]] = from_torch(name, value).astype(np.float32)
  expected = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32))
  flat_expected = {jax.tree_util.keystr(p): tuple(x.shape)
                   for p, x in jax.tree_util.tree_leaves_with_path(expected)}
  flat_got = {jax.tree_util.keystr(p): tuple(np.shape(x))
              for p, x in jax.tree_util.tree_leaves_with_path(variables)}
  for key in sorted(set(flat_expected) | set(flat_got)):
    if flat_expected.get(key) != flat_got.get(key):
      raise UserError(f'--fid_weights={path}: {key} is {flat_got.get(key, "missing")}, '
                      f'expected {flat_expected.get(key, "absent")} (pytorch-fid\'s Inception-v3 '
                      f'at width {model.width:g}).')
  return model, jax.device_put(variables)


def features(model: InceptionV3, variables: Variables, images: jax.Array) -> jax.Array:
  """Pool3 features (pure): `[B, H, W, 3]` float32 in [-1, 1] → `[B, 2048·width]` float32."""
  x = jax.image.resize(images.astype(jnp.float32), (images.shape[0], SIZE, SIZE, 3), 'linear',
                       antialias=False)
  return model.apply(variables, x)


def all_features(model: InceptionV3, variables: Variables, images: np.ndarray,
                 batch_size: int = 32) -> np.ndarray:
  """`features` over `[N, H, W, 3]` in batches (the last one padded) → `[N, D]` float64."""
  fn = jax.jit(functools.partial(features, model))
  batch_size = min(batch_size, len(images))
  out = []
  for i in range(0, len(images), batch_size):
    part = images[i:i + batch_size]
    padded = np.concatenate([part, np.zeros((batch_size - len(part), *part.shape[1:]),
                                            part.dtype)])
    out.append(np.asarray(jax.device_get(fn(variables, padded)))[:len(part)])
  return np.concatenate(out).astype(np.float64)


def gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean `[D]` and covariance `[D, D]` (unbiased) of `[N, D]` features, float64."""
  return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (pure, float64).

  tr((Σ₁Σ₂)^½) is computed as Σᵢ √λᵢ of the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½
  (same eigenvalues as Σ₁Σ₂): two symmetric eigendecompositions, no complex
  round-off. Negative round-off eigenvalues count as 0.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
  w, v = np.linalg.eigh(s1)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  m = root1 @ s2 @ root1
  lam = np.linalg.eigvalsh((m + m.T) / 2)
  trace_sqrt = np.sum(np.sqrt(np.clip(lam, 0, None)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
  """FID between two `[N, D]` feature sets."""
  return frechet_distance(*gaussian(real), *gaussian(fake))
