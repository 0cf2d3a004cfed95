"""GLCIC (Iizuka, Simo-Serra and Ishikawa, SIGGRAPH 2017): completion network, global+local D."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ce_jax import masks
from ce_jax.models.layers import Dtype, UpConv, batch_norm, conv_init


def _conv_bn_relu(x: jax.Array, features: int, kernel: int, stride: int, train: bool,
                  dtype: Dtype, dilation: int = 1) -> jax.Array:
  pad = dilation * (kernel - 1) // 2
  x = nn.Conv(features, (kernel, kernel), (stride, stride), padding=((pad, pad), (pad, pad)),
              kernel_dilation=(dilation, dilation), use_bias=False, kernel_init=conv_init,
              dtype=dtype)(x)
  return nn.relu(batch_norm(train, dtype)(x))


class CompletionNetwork(nn.Module):
  """GLCIC's completion network: `[B, H, W, 4]` → `[B, H, W, 3]` in [-1, 1] (H, W ÷ 4).

  Convolutions down to 1/4 resolution, four 3×3 convolutions dilated 2, 4, 8
  and 16, up-convolutions back; BatchNorm and ReLU after every layer but the
  last, tanh there (the paper's sigmoid, for images in [-1, 1]). Widths are
  `features` × (1, 2, 4) (64 in the paper).
  """

  features: int = 64
  upsample: str = 'transpose'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    f, layer = self.features, functools.partial(_conv_bn_relu, train=train, dtype=self.dtype)
    x = layer(x, f, 5, 1)
    x = layer(layer(x, 2 * f, 3, 2), 2 * f, 3, 1)
    x = layer(layer(layer(x, 4 * f, 3, 2), 4 * f, 3, 1), 4 * f, 3, 1)
    for dilation in (2, 4, 8, 16):
      x = layer(x, 4 * f, 3, 1, dilation=dilation)
    x = layer(layer(x, 4 * f, 3, 1), 4 * f, 3, 1)
    for width in (2 * f, f):
      x = nn.relu(batch_norm(train, self.dtype)(UpConv(width, self.upsample, self.dtype)(x)))
      x = layer(x, width if width > f else max(f // 2, 1), 3, 1)
    x = nn.Conv(3, (3, 3), padding=((1, 1), (1, 1)), kernel_init=conv_init, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


def crop_boxes(x: jax.Array, top: jax.Array, left: jax.Array, side: int) -> jax.Array:
  """Per-sample crops: `[B, H, W, C]` and int32 corners `[B]` → `[B, side, side, C]`."""
  def one(image, row, col):
    return jax.lax.dynamic_slice(image, (row, col, 0), (side, side, image.shape[-1]))
  return jax.vmap(one)(x, top, left)


class _GLCICBranch(nn.Module):
  """5×5 stride-2 convolutions (BatchNorm, ReLU) down to 4×4, then a dense layer."""

  features: int
  dense: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    i = 0
    while x.shape[1] > 4:
      x = _conv_bn_relu(x, self.features * min(2 ** i, 8), 5, 2, train, self.dtype)
      i += 1
    x = nn.Dense(self.dense, kernel_init=conv_init, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    return nn.relu(x)


class GlobalLocalDiscriminator(nn.Module):
  """GLCIC's discriminator: the whole image and a `local_size` patch around the hole.

  The patch is `masks.hole_box`'s fixed-side square. Each branch ends in
  a dense layer of 16·`features` (1024 in the paper); the two are
  concatenated into one logit. `[B, S, S, 3]` image, `[B, S, S, 1]` mask →
  `[B]` float32 logits.
  """

  features: int = 64
  local_size: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    top, left, _ = masks.hole_box(mask, self.local_size)
    local = crop_boxes(x, top.astype(jnp.int32), left.astype(jnp.int32), self.local_size)
    dense = 16 * self.features
    g = _GLCICBranch(self.features, dense, self.dtype, name='global')(x, train)
    loc = _GLCICBranch(self.features, dense, self.dtype, name='local')(local, train)
    logit = nn.Dense(1, kernel_init=conv_init, dtype=self.dtype)(jnp.concatenate([g, loc], -1))
    return logit.reshape(x.shape[0]).astype(jnp.float32)
