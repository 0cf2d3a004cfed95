"""Image-quality metrics on images mapped to [0, 1], on the hole or the whole image.

With the known pixels pasted back exactly, the whole-image MSE is the hole MSE
times the hole fraction, so image_psnr = hole_psnr + 10·log10(1 / hole fraction).
"""

import jax
import jax.numpy as jnp


def to_unit(x: jax.Array) -> jax.Array:
  """[-1, 1] → [0, 1], clipped."""
  return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


def hole_mse(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image MSE over the hole.

  Args:
    a, b: `[B, H, W, C]` float32 in [0, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
  Returns:
    `[B]` float32.
  """
  sq = jnp.square(a - b) * mask
  return jnp.sum(sq, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)) * a.shape[-1], 1)


def hole_psnr(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image PSNR (dB) over the hole, images in [0, 1] → `[B]`."""
  return -10.0 * jnp.log10(jnp.maximum(hole_mse(a, b, mask), 1e-10))
