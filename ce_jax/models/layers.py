"""The Context Encoder: generator (encoder → bottleneck → decoder) and discriminator.

Images are `[B, H, W, C]` float in [-1, 1]. Conv weights are N(0, 0.02), BatchNorm
scales N(1, 0.02), convolutions carry no bias (BatchNorm follows them), as in the
released Torch code. Params are float32; `dtype` sets the compute dtype.
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ce_jax.errors import UserError

Dtype = Any
conv_init = nn.initializers.normal(0.02)


def bn_scale_init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def batch_norm(train: bool, dtype: Dtype) -> nn.BatchNorm:
  # Torch's momentum 0.1 is Flax's 0.9.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, scale_init=bn_scale_init)


# ----------------------------------------------------------------------------
# Up-sampling: a 4×4 stride-2 transposed convolution (Torch k=4, s=2, p=1: H → 2H)
# ----------------------------------------------------------------------------


def upsample_transpose(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y[o] = Σ_{o = 2i + k − 1} x[i] · kernel[k] per axis, as a dilated convolution.

  Args:
    x: `[B, H, W, Cin]`.
    kernel: `[4, 4, Cin, Cout]`.
  Returns:
    `[B, 2H, 2W, Cout]`.
  """
  return jax.lax.conv_general_dilated(
      x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((2, 2), (2, 2)),
      lhs_dilation=(2, 2), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def subpixel_kernel(kernel: jax.Array) -> jax.Array:
  """Maps a `[4, 4, Cin, Cout]` transposed-conv kernel to `[2, 2, Cin, 4·Cout]`.

  Along each axis, output phase r ∈ {0, 1} reads the 1-padded input at window
  offset j ∈ {0, 1} through tap 3 − 2j − r, i.e. y[2m] = x[m−1]·k[3] + x[m]·k[1]
  and y[2m+1] = x[m]·k[2] + x[m+1]·k[0]: the reversed taps, split as (j, r).
  Output channels are phase-major: `(ry, rx, Cout)`.
  """
  cin, cout = kernel.shape[2:]
  k = kernel[::-1, ::-1].reshape(2, 2, 2, 2, cin, cout)  # [jy, ry, jx, rx, Cin, Cout]
  return k.transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, cin, 4 * cout)


def upsample_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Exactly `upsample_transpose`, as a 2×2 convolution to 4·Cout then depth-to-space.

  The convolution of the 1-padded input gives `[B, H+1, W+1, 4·Cout]`; phase
  (ry, rx), shifted by (ry, rx), is `y[:, ry::2, rx::2]`. Same shapes as
  `upsample_transpose`, about a quarter of its multiply-adds.
  """
  b, h, w, _ = x.shape
  cout = kernel.shape[-1]
  # Padding as its own op: XLA:CPU differentiates a padded convolution far more slowly.
  x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  z = jax.lax.conv_general_dilated(
      x, subpixel_kernel(kernel), window_strides=(1, 1), padding='VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  z = z.reshape(b, h + 1, w + 1, 2, 2, cout)
  rows = [jnp.stack([z[:, ry:ry + h, rx:rx + w, ry, rx] for rx in (0, 1)], axis=3)
          for ry in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, cout)


def _conv_stride2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@jax.custom_vjp
def downsample(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """4×4 stride-2 convolution, padding 1: `[B, 2H, 2W, Cin]` → `[B, H, W, Cout]`.

  Its input gradient is the transposed convolution of the output gradient by
  the same kernel, channels swapped; it runs through `upsample_subpixel`, which
  XLA:CPU computes several times faster than its own (dilated) form.
  """
  return _conv_stride2(x, kernel)


def _downsample_fwd(x, kernel):
  return _conv_stride2(x, kernel), (x, kernel)


def _downsample_bwd(res, dy):
  x, kernel = res
  dx = upsample_subpixel(dy, kernel.transpose(0, 1, 3, 2))
  _, kernel_vjp = jax.vjp(lambda k: _conv_stride2(x, k), kernel)
  return dx, kernel_vjp(dy)[0]


downsample.defvjp(_downsample_fwd, _downsample_bwd)


def resolve_upsample(method: str) -> str:
  """'auto' → 'subpixel' on CPU (XLA:CPU transposed convolutions are slow), else 'transpose'."""
  if method == 'auto':
    return 'subpixel' if jax.default_backend() == 'cpu' else 'transpose'
  if method not in ('transpose', 'subpixel'):
    raise UserError(f"model.upsample='{method}': expected 'auto', 'transpose' or 'subpixel'.")
  return method


class UpConv(nn.Module):
  """4×4 stride-2 up-convolution; both methods share the `kernel` param layout."""

  features: int
  method: str = 'transpose'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', conv_init, (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.method == 'subpixel':
      return upsample_subpixel(x, kernel)
    return upsample_transpose(x, kernel)


class ProjectUp(nn.Module):
  """Transposed convolution of a 1×1 map to n×n (n = kernel size): one matmul."""

  features: int
  size: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n = x.shape[0], self.size
    shape = (n, n, x.shape[-1], self.features)
    kernel = self.param('kernel', conv_init, shape, jnp.float32).astype(self.dtype)
    x = jnp.broadcast_to(x.reshape(1, b, -1).astype(self.dtype), (n * n, b, shape[2]))
    # One [B, Cin] × [Cin, Cout] product per output pixel, batched over the n² pixels:
    # the HWIO kernel is read in place, where 'bc,hwcd->bhwd' transposes all of it.
    y = jax.lax.dot_general(x, kernel.reshape(n * n, *shape[2:]), (((2,), (1,)), ((0,), (0,))))
    return y.transpose(1, 0, 2).reshape(b, n, n, self.features)


# ----------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------


def dcgan_channels(num_layers: int, features: int) -> list[int]:
  """64, 64, 128, 256, 512 for five layers of 64 features (the released encoder)."""
  return [features * min(2 ** max(i - 1, 0), 8) for i in range(num_layers)]


def _log2_layers(size: int, field: str) -> int:
  if size < 8 or size & (size - 1):
    raise UserError(f'{field}={size}: the dcgan networks need a power of two ≥ 8.')
  return int(math.log2(size // 4))


# ----------------------------------------------------------------------------
# Convolution rewrites (`model.conv_rewrites`): the same maps, faster on XLA
# ----------------------------------------------------------------------------

NHWC = ('NHWC', 'HWIO', 'NHWC')


def _check_geometry(name: str, ok: bool, lhs: jax.Array, rhs: jax.Array, **args: Any) -> None:
  if not ok:
    raise ValueError(f'{name}: not the convolution it rewrites (input {lhs.shape}, kernel '
                     f'{rhs.shape}, {args}).')


def _is_plain(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
              precision) -> bool:
  """NHWC input, HWIO kernel, no dilation or groups: the layout the rewrites assume."""
  return (lhs.ndim == 4 and feature_group_count == 1 and precision is None
          and jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
          == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC)
          and all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))))


def _pads(padding: Any) -> Any:
  return padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)


def whole_input_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any,
                     lhs_dilation: Any = None, rhs_dilation: Any = None,
                     dimension_numbers: Any = None, feature_group_count: int = 1,
                     precision: Any = None) -> jax.Array:
  """A VALID convolution whose kernel covers the whole input, as one matmul.

  With `lhs` `[B, H, W, Cin]` and `rhs` `[H, W, Cin, Cout]` there is one output
  pixel, y[b, 0, 0, o] = Σ_{h, w, c} x[b, h, w, c] · k[h, w, c, o]: the product
  `[B, H·W·Cin] × [H·W·Cin, Cout]` of the two reshaped for free (the 4×4
  bottleneck, D's last layer). XLA:CPU runs it about 10× faster so. Takes
  `lax.conv_general_dilated`'s arguments (for `nn.Conv`); any other
  convolution is a `ValueError`.
  """
  _check_geometry(
      'whole_input_conv',
      _is_plain(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                precision) and rhs.shape[:2] == lhs.shape[1:3]
      and _pads(padding) in ('VALID', ((0, 0), (0, 0))), lhs, rhs, padding=padding)
  y = jnp.dot(lhs.reshape(lhs.shape[0], -1), rhs.reshape(-1, rhs.shape[-1]))
  return y.reshape(lhs.shape[0], 1, 1, rhs.shape[-1])


def stride2_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any,
                 lhs_dilation: Any = None, rhs_dilation: Any = None,
                 dimension_numbers: Any = None, feature_group_count: int = 1,
                 precision: Any = None) -> jax.Array:
  """A 4×4 stride-2 convolution with padding 1 of an even-sized input, via `downsample`.

  Same value as `lax.conv_general_dilated`; its input gradient runs through
  `upsample_subpixel` (see `downsample`). Takes `lax.conv_general_dilated`'s
  arguments (for `nn.Conv`); any other convolution is a `ValueError`.
  """
  _check_geometry(
      'stride2_conv',
      _is_plain(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                precision) and rhs.shape[:2] == (4, 4) and tuple(window_strides) == (2, 2)
      and _pads(padding) == ((1, 1), (1, 1)) and lhs.shape[1] % 2 == 0
      and lhs.shape[2] % 2 == 0, lhs, rhs, strides=window_strides, padding=padding)
  return downsample(lhs, rhs)


def resolve_conv_rewrites(method: str) -> tuple[bool, bool]:
  """(whole-input convolutions as matmuls?, stride-2 convolutions via `stride2_conv`?).

  'auto': matmuls on every backend, `stride2_conv` on CPU (whose own gradient
  of a strided convolution is slow); 'off': `lax.conv_general_dilated` throughout.
  """
  if method == 'auto':
    return True, jax.default_backend() == 'cpu'
  if method == 'off':
    return False, False
  raise UserError(f"model.conv_rewrites='{method}': expected 'auto' or 'off'.")


def conv(features: int, kernel: int, stride: int, padding: Any, dtype: Dtype,
         impl: Callable[..., jax.Array] | None = None) -> nn.Conv:
  """A bias-free `nn.Conv`; `impl` replaces `lax.conv_general_dilated` (same signature)."""
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=padding, use_bias=False,
                 kernel_init=conv_init, dtype=dtype, conv_general_dilated=impl)


class DCGANEncoder(nn.Module):
  """4×4 stride-2 convolutions down to 4×4: `[B, S, S, C]` → `[B, 4, 4, 8·features]`.

  `stride2`: the convolutions' implementation (`stride2_conv`, or None for lax's).
  """

  features: int = 64
  dtype: Dtype = jnp.float32
  stride2: Callable[..., jax.Array] | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    layers = _log2_layers(x.shape[1], 'data.image_size')
    for i, c in enumerate(dcgan_channels(layers, self.features)):
      x = conv(c, 4, 2, ((1, 1), (1, 1)), self.dtype, self.stride2)(x)
      if i > 0:
        x = batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    return x


class AlexNetEncoder(nn.Module):
  """AlexNet's five convolutions to pool5: `[B, 227, 227, C]` → `[B, 6, 6, 4·features]`.

  BatchNorm stands in for local response normalisation.
  """

  features: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    f = self.features / 64
    pool = lambda y: nn.max_pool(y, (3, 3), (2, 2))  # noqa: E731
    x = pool(nn.relu(conv(int(96 * f), 11, 4, 'VALID', self.dtype)(x)))
    x = batch_norm(train, self.dtype)(x)
    x = pool(nn.relu(conv(int(256 * f), 5, 1, ((2, 2), (2, 2)), self.dtype)(x)))
    x = batch_norm(train, self.dtype)(x)
    x = nn.relu(conv(int(384 * f), 3, 1, ((1, 1), (1, 1)), self.dtype)(x))
    x = nn.relu(conv(int(384 * f), 3, 1, ((1, 1), (1, 1)), self.dtype)(x))
    x = nn.relu(conv(int(256 * f), 3, 1, ((1, 1), (1, 1)), self.dtype)(x))
    return pool(x)


class ChannelwiseFC(nn.Module):
  """The paper's channel-wise fully connected layer, then a 1×1 convolution.

  Each of the m feature maps (n×n) has its own n²×n² dense map (m·n⁴ weights);
  the 1×1 convolution then mixes channels. `[B, n, n, m]` → `[B, n, n, m]`.
  """

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, m = x.shape
    kernel = self.param('kernel', conv_init, (m, h * w, h * w), jnp.float32).astype(self.dtype)
    bias = self.param('bias', nn.initializers.zeros, (m, h * w), jnp.float32).astype(self.dtype)
    y = jnp.einsum('bpc,cpq->bcq', x.reshape(b, h * w, m).astype(self.dtype), kernel) + bias
    y = y.transpose(0, 2, 1).reshape(b, h, w, m)
    return conv(m, 1, 1, 'VALID', self.dtype)(y)


class Generator(nn.Module):
  """Encoder → bottleneck → decoder.

  Input `[B, H, W, 3 or 4]` (the image with the hole filled, plus the mask
  channel); output `[B, out, out, 3]` in [-1, 1], `out` = `output_size`.
  """

  encoder: str = 'dcgan'
  bottleneck: str = 'conv'
  bottleneck_dim: int = 4000
  output_size: int = 64
  features: int = 64
  upsample: str = 'transpose'
  dtype: Dtype = jnp.float32
  # `resolve_conv_rewrites`: whole-input convolutions as matmuls; stride-2 ones via stride2_conv.
  rewrite_whole_input: bool = False
  rewrite_stride2: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.encoder == 'dcgan':
      x = DCGANEncoder(self.features, self.dtype, stride2_conv if self.rewrite_stride2 else None)(
          x, train)
    elif self.encoder == 'alexnet':
      x = AlexNetEncoder(self.features, self.dtype)(x, train)
    else:
      raise UserError(f"model.encoder='{self.encoder}': expected 'dcgan' or 'alexnet'.")
    n, top = x.shape[1], x.shape[-1]
    if self.bottleneck == 'conv':
      x = conv(self.bottleneck_dim, n, 1, 'VALID', self.dtype,
               whole_input_conv if self.rewrite_whole_input else None)(x)
      x = nn.leaky_relu(batch_norm(train, self.dtype)(x), 0.2)
      x = ProjectUp(top, n, self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
    elif self.bottleneck == 'channelwise_fc':
      x = ChannelwiseFC(self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
    else:
      raise UserError(
          f"model.bottleneck='{self.bottleneck}': expected 'conv' or 'channelwise_fc'.")
    ups = max(1, math.ceil(math.log2(self.output_size / n)))
    for i in range(ups - 1):
      x = UpConv(max(top >> (i + 1), self.features), self.upsample, self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
    x = jnp.tanh(UpConv(3, self.upsample, self.dtype)(x))
    if x.shape[1] != self.output_size:
      x = jax.image.resize(x, (x.shape[0], self.output_size, self.output_size, 3), 'bilinear')
    return x.astype(jnp.float32)


class Discriminator(nn.Module):
  """DCGAN discriminator: `[B, S, S, 3]` in [-1, 1] → `[B]` float32 logits.

  Every discriminator takes `(image, mask, train)`; this one ignores the mask.
  """

  features: int = 64
  dtype: Dtype = jnp.float32
  rewrite_whole_input: bool = False  # as in Generator
  rewrite_stride2: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, train: bool) -> jax.Array:
    del mask
    i = 0
    while x.shape[1] >= 8:
      even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0  # stride2_conv's precondition
      x = conv(self.features * min(2 ** i, 8), 4, 2, ((1, 1), (1, 1)), self.dtype,
               stride2_conv if self.rewrite_stride2 and even else None)(x)
      if i > 0:
        x = batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      i += 1
    x = conv(1, x.shape[1], 1, 'VALID', self.dtype,
             whole_input_conv if self.rewrite_whole_input else None)(x)
    return x.reshape(x.shape[0]).astype(jnp.float32)


# ----------------------------------------------------------------------------
# GLCIC (Iizuka, Simo-Serra and Ishikawa, SIGGRAPH 2017)
# ----------------------------------------------------------------------------


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


def hole_box(mask: jax.Array, side: int) -> tuple[jax.Array, jax.Array]:
  """Top-left corners `[B]` int32 of `side`×`side` squares centred on each hole.

  The centre is that of the hole's bounding box (the image's for an empty
  mask), moved as little as needed to keep the square inside the image.

  Args:
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
  """
  hole = mask[..., 0] > 0.5

  def centre(any_along: jax.Array) -> jax.Array:  # [B, N] bool → [B] int32
    n = any_along.shape[-1]
    idx = jnp.arange(n)
    lo = jnp.min(jnp.where(any_along, idx, n), axis=-1)
    hi = jnp.max(jnp.where(any_along, idx, -1), axis=-1)
    mid = jnp.where(jnp.any(any_along, axis=-1), (lo + hi + 1) // 2, n // 2)
    return jnp.clip(mid - side // 2, 0, n - side).astype(jnp.int32)

  return centre(jnp.any(hole, axis=2)), centre(jnp.any(hole, axis=1))


def crop_boxes(x: jax.Array, top: jax.Array, left: jax.Array, side: int) -> jax.Array:
  """Per-sample crops: `[B, H, W, C]` and corners `[B]` → `[B, side, side, C]`."""
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

  Each branch ends in a dense layer of 16·`features` (1024 in the paper); the
  two are concatenated into one logit. `[B, S, S, 3]` image, `[B, S, S, 1]`
  mask → `[B]` float32 logits.
  """

  features: int = 64
  local_size: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    local = crop_boxes(x, *hole_box(mask, self.local_size), self.local_size)
    dense = 16 * self.features
    g = _GLCICBranch(self.features, dense, self.dtype, name='global')(x, train)
    loc = _GLCICBranch(self.features, dense, self.dtype, name='local')(local, train)
    logit = nn.Dense(1, kernel_init=conv_init, dtype=self.dtype)(jnp.concatenate([g, loc], -1))
    return logit.reshape(x.shape[0]).astype(jnp.float32)


# ----------------------------------------------------------------------------
# DeepFill v2 (Yu et al., ICCV 2019), without contextual attention
# ----------------------------------------------------------------------------


class GatedConv(nn.Module):
  """Gated convolution: φ(conv_f(x)) ⊙ σ(conv_g(x)), φ = ELU, 'SAME' zero padding.

  One convolution to 2·`features` channels; the first half is the feature,
  the second the gate. `[B, H, W, Cin]` → `[B, H/stride, W/stride, features]`.
  """

  features: int
  kernel: int = 3
  stride: int = 1
  dilation: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pad = self.dilation * (self.kernel - 1) // 2
    y = nn.Conv(2 * self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                padding=((pad, pad), (pad, pad)), kernel_dilation=(self.dilation, self.dilation),
                kernel_init=conv_init, dtype=self.dtype)(x)
    feature, gate = jnp.split(y, 2, axis=-1)
    return nn.elu(feature) * nn.sigmoid(gate)


class _GatedStage(nn.Module):
  """One DeepFill v2 stage: gated convolutions to 1/4 resolution, dilated 2–16, back up."""

  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = self.features
    g = functools.partial(GatedConv, dtype=self.dtype)
    x = g(c, 5)(x)
    x = g(2 * c)(g(2 * c, stride=2)(x))
    x = g(4 * c)(g(4 * c)(g(4 * c, stride=2)(x)))
    for dilation in (2, 4, 8, 16):
      x = g(4 * c, dilation=dilation)(x)
    x = g(4 * c)(g(4 * c)(x))
    for width in (2 * c, c):
      b, h, w, ch = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, ch), 'nearest')
      x = g(width if width > c else max(c // 2, 1))(g(width)(x))
    x = nn.Conv(3, (3, 3), padding=((1, 1), (1, 1)), kernel_init=conv_init, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class GatedGenerator(nn.Module):
  """DeepFill v2's coarse-to-fine generator: `[B, H, W, 4]` → `[B, H, W, 3]` in [-1, 1].

  The coarse stage fills the hole; the refine stage sees the coarse result
  pasted into the known pixels (plus the mask) and returns the final image.
  The coarse image is sown as `intermediates/coarse_image` (apply with
  `mutable=['intermediates']` to get it; the trainer puts the reconstruction
  loss on it too). H and W must be multiples of 4.
  """

  features: int = 48
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    del train  # No BatchNorm, no dropout.
    image, mask = x[..., :3], x[..., 3:]
    coarse = _GatedStage(self.features, self.dtype, name='coarse')(x)
    self.sow('intermediates', 'coarse_image', coarse)
    pasted = mask * coarse + (1.0 - mask) * image
    return _GatedStage(self.features, self.dtype, name='refine')(
        jnp.concatenate([pasted, mask], axis=-1))


class SNPatchDiscriminator(nn.Module):
  """SN-PatchGAN: six spectrally normalised 5×5 stride-2 convolutions on image + mask.

  Widths `features` × (1, 2, 4, 4, 4, 4), leaky ReLU 0.2 between them; every
  element of the last map is a logit. `[B, S, S, 3]`, `[B, S, S, 1]` →
  `[B, ⌈S/64⌉, ⌈S/64⌉, 4·features]` float32. The power-iteration vectors
  `u` and estimates `sigma` live in the 'batch_stats' collection (updated
  when `train`).
  """

  features: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.concatenate([x, mask], axis=-1)
    widths = [self.features * m for m in (1, 2, 4, 4, 4, 4)]
    for i, width in enumerate(widths):
      layer = nn.Conv(width, (5, 5), (2, 2), padding=((2, 2), (2, 2)), kernel_init=conv_init,
                      dtype=self.dtype)
      x = nn.SpectralNorm(layer)(x, update_stats=train)
      if i < len(widths) - 1:
        x = nn.leaky_relu(x, 0.2)
    return x.astype(jnp.float32)


# ----------------------------------------------------------------------------
# From config
# ----------------------------------------------------------------------------


def output_size(config: ml_collections.ConfigDict) -> int:
  """Side of the generator's output: the center hole, or the whole image."""
  if config.model.output == 'center':
    return config.mask.hole_size
  if config.model.output == 'full':
    return config.data.image_size
  raise UserError(f"model.output='{config.model.output}': expected 'center' or 'full'.")


def compute_dtype(config: ml_collections.ConfigDict) -> Dtype:
  names = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
  if config.model.dtype not in names:
    raise UserError(f"model.dtype='{config.model.dtype}': expected one of {sorted(names)}.")
  return names[config.model.dtype]


FAMILIES = ('context_encoder', 'glcic', 'deepfill2')


def local_size(config: ml_collections.ConfigDict) -> int:
  """Side of GLCIC's local patch: `model.local_size`, or half the image when 0."""
  return config.model.local_size or config.data.image_size // 2


def check_family(config: ml_collections.ConfigDict) -> None:
  """A clear error for a family/output/size combination the networks cannot build."""
  family, size = config.model.family, config.data.image_size
  if family not in FAMILIES:
    raise UserError(f"model.family='{family}': expected one of {FAMILIES}.")
  if family == 'context_encoder':
    return
  if config.model.output != 'full':
    raise UserError(f"model.family='{family}' predicts the whole image: set model.output='full' "
                    f"(got '{config.model.output}').")
  if not config.model.mask_channel:
    raise UserError(f"model.family='{family}' needs the mask channel: set model.mask_channel=True.")
  if size % 4:
    raise UserError(f'data.image_size={size}: model.family={family!r} needs a multiple of 4.')
  if family == 'glcic' and not 4 <= local_size(config) <= size:
    raise UserError(f'model.local_size={config.model.local_size}: expected 0 (half the image) '
                    f'or a side in [4, data.image_size={size}].')


def create_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """The generator and discriminator of `config.model.family`.

  Every generator maps `(x_in [B, H, W, 4], train)` to `[B, out, out, 3]`;
  every discriminator maps `(image [B, S, S, 3], mask [B, S, S, 1], train=)`
  to float32 logits `[B, ...]`.
  """
  check_family(config)
  dtype = compute_dtype(config)
  m = config.model
  if m.family == 'glcic':
    return (CompletionNetwork(m.gen_features, resolve_upsample(m.upsample), dtype),
            GlobalLocalDiscriminator(m.disc_features, local_size(config), dtype))
  if m.family == 'deepfill2':
    return GatedGenerator(m.gen_features, dtype), SNPatchDiscriminator(m.disc_features, dtype)
  whole_input, stride2 = resolve_conv_rewrites(config.model.conv_rewrites)
  gen = Generator(
      encoder=config.model.encoder, bottleneck=config.model.bottleneck,
      bottleneck_dim=config.model.bottleneck_dim, output_size=output_size(config),
      features=config.model.gen_features, upsample=resolve_upsample(config.model.upsample),
      dtype=dtype, rewrite_whole_input=whole_input, rewrite_stride2=stride2)
  disc = Discriminator(features=config.model.disc_features, dtype=dtype,
                       rewrite_whole_input=whole_input, rewrite_stride2=stride2)
  return gen, disc


def generator_input(image: jax.Array, mask: jax.Array, fill: jax.Array,
                    mask_channel: bool) -> jax.Array:
  """The image with the hole filled by `fill`, plus the mask as a 4th channel.

  Args:
    image: `[B, H, W, 3]` float32 in [-1, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
    fill: `[3]` float32 in [-1, 1], the mean pixel.
    mask_channel: whether to append the mask.
  Returns:
    `[B, H, W, 4]` (or 3) float32.
  """
  x = (1.0 - mask) * image + mask * fill
  return jnp.concatenate([x, mask], axis=-1) if mask_channel else x


def param_count(params: Any) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
