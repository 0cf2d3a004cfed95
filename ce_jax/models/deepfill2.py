"""DeepFill v2 (Yu et al., ICCV 2019) without contextual attention.

Gated convolutions in a coarse-to-fine generator; SN-PatchGAN discriminator.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ce_jax.models.layers import Dtype, conv_init


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
