"""Pure mask generators: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.

Each generator returns `Masks(mask, weight)`. `weight` is the per-pixel weight
of the reconstruction loss: 1 inside the hole, `overlap_weight` in a band of
`overlap` pixels around it (pixels known to the generator that it must also
predict so the fill blends in) and 0 elsewhere.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from ce_jax.errors import UserError


class Masks(NamedTuple):
  mask: jax.Array  # [B, H, W, 1] float32 in {0, 1}, 1 = missing.
  weight: jax.Array  # [B, H, W, 1] float32 ≥ 0, loss weight.


def with_band(mask: jax.Array, overlap: int, overlap_weight: float) -> Masks:
  """Adds the overlap band: pixels within `overlap` px (Chebyshev) of the hole.

  Args:
    mask: `[B, H, W, 1]` float32 in {0, 1}.
    overlap: band width in pixels; 0 for no band.
    overlap_weight: loss weight of band pixels (hole pixels weigh 1).
  """
  if overlap <= 0:
    return Masks(mask, mask)
  window = (1, 2 * overlap + 1, 2 * overlap + 1, 1)
  dilated = jax.lax.reduce_window(mask, 0.0, jax.lax.max, window, (1, 1, 1, 1), 'SAME')
  band = dilated - mask
  return Masks(mask, mask + overlap_weight * band)


def _boxes(top: jax.Array, left: jax.Array, height: jax.Array, width: jax.Array,
           image_size: tuple[int, int]) -> jax.Array:
  """Union of axis-aligned boxes. Box arrays are `[B, K]` ints → `[B, H, W, 1]`."""
  yy = jnp.arange(image_size[0])[None, None, :, None]
  xx = jnp.arange(image_size[1])[None, None, None, :]
  top, left = top[..., None, None], left[..., None, None]
  height, width = height[..., None, None], width[..., None, None]
  inside = (yy >= top) & (yy < top + height) & (xx >= left) & (xx < left + width)
  return jnp.any(inside, axis=1)[..., None].astype(jnp.float32)


def center(batch_size: int, image_size: tuple[int, int], *, hole_size: int, overlap: int,
           overlap_weight: float) -> Masks:
  """The paper's center hole: a `hole_size − 2·overlap` square hole in the middle.

  With its band, the loss covers the central `hole_size` square, the region
  the center-output generator predicts.
  """
  h, w = image_size
  side = hole_size - 2 * overlap
  if side <= 0 or hole_size > min(h, w):
    raise UserError(
        f'mask.hole_size={hole_size} with mask.overlap={overlap} does not fit a '
        f'{h}×{w} image: expected 2·overlap < hole_size ≤ {min(h, w)}.')
  full = lambda v: jnp.full((batch_size, 1), v, jnp.int32)  # noqa: E731
  mask = _boxes(full((h - side) // 2), full((w - side) // 2), full(side), full(side), image_size)
  return with_band(mask, overlap, overlap_weight)


def random_blocks(key: jax.Array, batch_size: int, image_size: tuple[int, int], *,
                  num_blocks: int, max_coverage: float, overlap: int,
                  overlap_weight: float) -> Masks:
  """Several possibly overlapping squares per sample, covering ≤ `max_coverage`.

  Each side is drawn from [s/2, s] with s = sqrt(max_coverage·H·W / num_blocks),
  so the areas sum to at most `max_coverage` of the image.
  """
  h, w = image_size
  s_max = int((max_coverage * h * w / num_blocks) ** 0.5)
  if s_max < 1:
    raise UserError(f'mask.max_coverage={max_coverage} with mask.num_blocks={num_blocks} '
                    f'leaves blocks smaller than a pixel in a {h}×{w} image.')
  k_side, k_top, k_left = jax.random.split(key, 3)
  shape = (batch_size, num_blocks)
  side = jax.random.randint(k_side, shape, max(1, s_max // 2), s_max + 1)
  top = jax.random.randint(k_top, shape, 0, h - side + 1)
  left = jax.random.randint(k_left, shape, 0, w - side + 1)
  return with_band(_boxes(top, left, side, side, image_size), overlap, overlap_weight)


def random_region(key: jax.Array, batch_size: int, image_size: tuple[int, int], *,
                  coverage: tuple[float, float], noise_size: int, overlap: int,
                  overlap_weight: float) -> Masks:
  """Smooth random blobs: bicubically up-sampled noise, thresholded per sample.

  The threshold is the sample's own quantile for a coverage drawn uniformly
  from `coverage`, so every hole covers that fraction of the image.
  """
  lo, hi = coverage
  if not 0.0 < lo <= hi < 1.0:
    raise UserError(f'mask.region_coverage={coverage}: expected 0 < low ≤ high < 1.')
  k_noise, k_cov = jax.random.split(key)
  noise = jax.random.uniform(k_noise, (batch_size, noise_size, noise_size, 1))
  smooth = jax.image.resize(noise, (batch_size, *image_size, 1), 'cubic')
  frac = jax.random.uniform(k_cov, (batch_size,), minval=lo, maxval=hi)
  flat = smooth.reshape(batch_size, -1)
  threshold = jax.vmap(jnp.quantile)(flat, frac)
  mask = (smooth < threshold[:, None, None, None]).astype(jnp.float32)
  return with_band(mask, overlap, overlap_weight)


def from_config(config: ml_collections.ConfigDict, key: jax.Array,
                batch: Mapping[str, Any]) -> Masks:
  """Masks for `batch` (which holds `image` `[B, H, W, 3]`) as `config.mask` says.

  A batch that carries its own `mask` (and optionally `weight`) keeps it.
  """
  b, h, w, _ = batch['image'].shape
  kind = config.kind
  if 'mask' in batch:
    mask = jnp.asarray(batch['mask'], jnp.float32)
    if 'weight' in batch:
      return Masks(mask, jnp.asarray(batch['weight'], jnp.float32))
    return with_band(mask, config.overlap, config.overlap_weight)
  band = dict(overlap=config.overlap, overlap_weight=config.overlap_weight)
  if kind == 'center':
    return center(b, (h, w), hole_size=config.hole_size, **band)
  if kind == 'random_blocks':
    return random_blocks(key, b, (h, w), num_blocks=config.num_blocks,
                         max_coverage=config.max_coverage, **band)
  if kind == 'random_region':
    return random_region(key, b, (h, w), coverage=tuple(config.region_coverage),
                         noise_size=config.noise_size, **band)
  raise UserError(f"mask.kind='{kind}': expected one of {KINDS}.")


KINDS = ('center', 'random_blocks', 'random_region')
