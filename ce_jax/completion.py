"""Inpainting I/O shared by training, evaluation and inference.

What the generator sees (the image with its hole set to the mean pixel, plus
the mask), where its output goes (the center square or the whole image) and
how it is pasted back: `out = M ⊙ G(x_in) + (1 − M) ⊙ x`.

With `model.color_offset` the generator works in colours relative to an
offset taken from each image's known pixels: subtracted from its input (so
the hole holds 0) and added to its output, so that it need not carry the
image's colours through its bottleneck. 'context_mean': the known pixels'
mean colour; 'smooth': their normalised Gaussian blur (σ =
`model.offset_sigma` pixels), which fills the hole with the colours of its
border, smoothly. 'none' is the paper's input (the hole holds the mean pixel).
"""

import functools
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ce_jax import models
from ce_jax.errors import UserError

Variables = dict[str, Any]


def fill_value(config: ml_collections.ConfigDict) -> jax.Array:
  """The mean pixel, `[3]` float32 in [-1, 1]."""
  return jnp.asarray(config.data.mean_pixel, jnp.float32) / 127.5 - 1.0


COLOR_OFFSETS = ('none', 'context_mean', 'smooth')


def masked(config: ml_collections.ConfigDict, image: jax.Array, mask: jax.Array) -> jax.Array:
  """`[B, H, W, 3]` `image` with the hole (`mask` `[B, H, W, 1]` = 1) set to the mean pixel."""
  return models.generator_input(image, mask, fill_value(config), mask_channel=False)


def color_offset(config: ml_collections.ConfigDict, image: jax.Array,
                 mask: jax.Array) -> jax.Array:
  """What G's colours are relative to, float32 in [-1, 1] (see the module docstring).

  Args:
    image: `[B, H, W, 3]` float32 in [-1, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
  Returns:
    'none': zeros `[B, 1, 1, 3]`; 'context_mean': the known pixels' mean
    colour `[B, 1, 1, 3]` (0 where nothing is known); 'smooth': `[B, H, W, 3]`,
    the known pixels blurred by a Gaussian of σ = `model.offset_sigma` and
    divided by the blurred known fraction (the context mean where that
    fraction vanishes).
  """
  kind = config.model.color_offset
  if kind not in COLOR_OFFSETS:
    raise UserError(f"model.color_offset='{kind}': expected one of {COLOR_OFFSETS}.")
  if kind == 'none':
    return jnp.zeros((image.shape[0], 1, 1, 3), jnp.float32)
  known = 1.0 - mask
  count = jnp.sum(known, axis=(1, 2), keepdims=True)
  mean = jnp.sum(known * image, axis=(1, 2), keepdims=True) / jnp.maximum(count, 1.0)
  if kind == 'context_mean':
    return mean
  blurred = gaussian_blur(jnp.concatenate([known * image, known], axis=-1),
                          config.model.offset_sigma)
  eps = 1e-3
  return (blurred[..., :3] + eps * mean) / (blurred[..., 3:] + eps)


def gaussian_blur(x: jax.Array, sigma: float) -> jax.Array:
  """`[B, H, W, C]` blurred channel by channel (zeros beyond the border), same shape.

  Each axis is one matmul with the `[n, n]` matrix of Gaussian weights
  (untruncated, scaled to sum to 1 on an unbounded line): on CPU, 60× faster
  than a depthwise convolution.
  """
  def weights(n: int) -> jax.Array:
    i = jnp.arange(n, dtype=jnp.float32)
    taps = jnp.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return taps / (sigma * math.sqrt(2 * math.pi))

  x = jnp.einsum('gh,bhwc->bgwc', weights(x.shape[1]), x)
  return jnp.einsum('gw,bhwc->bhgc', weights(x.shape[2]), x)


def center_box(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(offset, side) of the square the center-output generator predicts."""
  side = config.mask.hole_size
  return (config.data.image_size - side) // 2, side


def crop(x: jax.Array, offset: int, side: int) -> jax.Array:
  """`[B, H, W, C]` → the `[B, side, side, C]` square at (`offset`, `offset`)."""
  return x[:, offset:offset + side, offset:offset + side]


def full_prediction(config: ml_collections.ConfigDict, out: jax.Array) -> jax.Array:
  """The generator's output placed on an image-sized canvas `[B, H, W, 3]` (zeros outside)."""
  if config.model.output == 'full':
    return out
  offset, side = center_box(config)
  rest = config.data.image_size - offset - side
  return jnp.pad(out, ((0, 0), (offset, rest), (offset, rest), (0, 0)))


def composite(image: jax.Array, prediction: jax.Array, mask: jax.Array) -> jax.Array:
  """out = M ⊙ G + (1 − M) ⊙ x, all `[B, H, W, ·]`."""
  return mask * prediction + (1.0 - mask) * image


def generator_input(config: ml_collections.ConfigDict, image: jax.Array, mask: jax.Array,
                    offset: jax.Array) -> jax.Array:
  """`[B, H, W, 3]` image and `[B, H, W, 1]` mask → G's `[B, H, W, 4]` (or 3) input.

  The hole holds the mean pixel (`model.color_offset='none'`) or, relative to
  `offset` (`color_offset` of the same image and mask), 0.
  """
  if config.model.color_offset == 'none':
    return models.generator_input(image, mask, fill_value(config), config.model.mask_channel)
  return models.generator_input(image - offset, mask, jnp.zeros(3, jnp.float32),
                                config.model.mask_channel)


def generator_output(config: ml_collections.ConfigDict, out: jax.Array,
                     offset: jax.Array) -> jax.Array:
  """G's raw output (`[B, S, S, 3]`, the center square or the whole image) in image colours.

  The identity under `model.color_offset='none'`; else `offset` (the one
  `generator_input` took) added back and the result clipped to [-1, 1].
  """
  if config.model.color_offset == 'none':
    return out
  if offset.shape[1] > 1 and offset.shape[1:3] != out.shape[1:3]:
    offset = crop(offset, *center_box(config))
  return jnp.clip(out + offset, -1.0, 1.0)


def generator_variables(state: Any, config: ml_collections.ConfigDict) -> Variables:
  """G's variables for inference: the EMA weights when `train.ema_decay > 0`, else the live ones.

  `state` is a `GANState`, or a mapping of some of its fields (a partial
  restore): `g_ema`, or `g_params` and `g_batch_stats`.
  """
  get = state.__getitem__ if isinstance(state, Mapping) else functools.partial(getattr, state)
  if config.train.ema_decay > 0:
    return get('g_ema')
  return {'params': get('g_params'), 'batch_stats': get('g_batch_stats')}


def complete(gen: nn.Module, variables: Variables, image: jax.Array, mask: jax.Array, *,
             config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
  """The generator's completion of `image` under `mask` (pure; BatchNorm in inference mode).

  Args:
    gen: the generator `config.model` describes.
    variables: its `{'params', 'batch_stats'}`.
    image: `[B, H, W, 3]` float32 in [-1, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
  Returns:
    (completion `[B, H, W, 3]` in [-1, 1], known pixels exactly `image`'s;
    the generator's input `[B, H, W, 4]` or `[B, H, W, 3]`).
  """
  offset = color_offset(config, image, mask)
  x_in = generator_input(config, image, mask, offset)
  out = generator_output(config, gen.apply(variables, x_in, train=False), offset)
  return composite(image, full_prediction(config, out), mask), x_in
