"""The Context Encoder: generator (encoder → bottleneck → decoder) and DCGAN discriminator."""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ce_jax.models.layers import (
  Dtype,
  ProjectUp,
  UpConv,
  batch_norm,
  conv,
  conv_init,
  stride2_conv,
  whole_input_conv,
)


def dcgan_channels(num_layers: int, features: int) -> list[int]:
  """64, 64, 128, 256, 512 for five layers of 64 features (the released encoder)."""
  return [features * min(2 ** max(i - 1, 0), 8) for i in range(num_layers)]


def _log2_layers(size: int, field: str) -> int:
  if size < 8 or size & (size - 1):
    raise ValueError(f'{field}={size}: the dcgan networks need a power of two ≥ 8.')
  return int(math.log2(size // 4))


class DCGANEncoder(nn.Module):
  """4×4 stride-2 convolutions down to 4×4: `[B, S, S, C]` → `[B, 4, 4, 8·features]`.

  `stride2`: the convolutions' implementation (`stride2_conv`, or None for lax's).
  With `return_all`, every layer's output, `[B, S/2, S/2, features]` first.
  """

  features: int = 64
  dtype: Dtype = jnp.float32
  stride2: Callable[..., jax.Array] | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool,
               return_all: bool = False) -> jax.Array | list[jax.Array]:
    layers = _log2_layers(x.shape[1], 'data.image_size')
    outputs = []
    for i, c in enumerate(dcgan_channels(layers, self.features)):
      x = conv(c, 4, 2, ((1, 1), (1, 1)), self.dtype, self.stride2)(x)
      if i > 0:
        x = batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      outputs.append(x)
    return outputs if return_all else x


def center_skip(features: list[jax.Array], side: int, image_size: int,
                output_size: int) -> jax.Array | None:
  """The encoder map at the decoder's pixel density, cropped to the predicted square.

  A decoder map of `side` pixels covers the center `output_size` of the
  `image_size` input; the encoder map of `side · image_size / output_size`
  pixels has the same density: its center `side` square, `[B, side, side, C]`,
  or None when no encoder map has that size.
  """
  full = side * image_size // output_size
  for f in features:
    if f.shape[1] == full:
      start = (full - side) // 2
      return f[:, start:start + side, start:start + side]
  return None


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
  # U-Net skips (dcgan encoder): each decoder map is concatenated with the
  # encoder map of the same pixel density, cropped to the predicted square.
  skips: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    image_size, encoded = x.shape[1], []
    if self.encoder == 'dcgan':
      encoded = DCGANEncoder(self.features, self.dtype,
                             stride2_conv if self.rewrite_stride2 else None)(x, train, True)
      x = encoded[-1]
    elif self.encoder == 'alexnet':
      x = AlexNetEncoder(self.features, self.dtype)(x, train)
    else:
      raise ValueError(f'encoder={self.encoder!r} (config_checks names the choices).')
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
      raise ValueError(f'bottleneck={self.bottleneck!r} (config_checks names the choices).')
    def with_skip(y: jax.Array) -> jax.Array:
      skip = center_skip(encoded, y.shape[1], image_size, self.output_size) if self.skips else None
      return y if skip is None else jnp.concatenate([y, skip.astype(y.dtype)], axis=-1)

    ups = max(1, math.ceil(math.log2(self.output_size / n)))
    for i in range(ups - 1):
      x = UpConv(max(top >> (i + 1), self.features), self.upsample, self.dtype)(with_skip(x))
      x = nn.relu(batch_norm(train, self.dtype)(x))
    x = jnp.tanh(UpConv(3, self.upsample, self.dtype)(with_skip(x)))
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
