"""Shared layers and the convolution rewrites: the same maps, faster on XLA.

The BatchNorm and conv initialisers every family uses; the 4×4 stride-2 up- and
down-sampling (transposed convolution, its sub-pixel form, the custom-VJP
down-sampling); and `model.conv_rewrites` (whole-input convolutions as matmuls,
stride-2 convolutions via `downsample`).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

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
  return False, False  # 'off'.


def conv(features: int, kernel: int, stride: int, padding: Any, dtype: Dtype,
         impl: Callable[..., jax.Array] | None = None) -> nn.Conv:
  """A bias-free `nn.Conv`; `impl` replaces `lax.conv_general_dilated` (same signature)."""
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=padding, use_bias=False,
                 kernel_init=conv_init, dtype=dtype, conv_general_dilated=impl)
