"""Pure mask generators: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.

Each generator returns `Masks(mask, weight)`. `weight` is the per-pixel weight
of the reconstruction loss: 1 inside the hole, `overlap_weight` in a band of
`overlap` pixels around it (pixels known to the generator that it must also
predict so the fill blends in) and 0 elsewhere. `hole_box` goes the other
way: the square around a mask's hole.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

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


def hole_box(mask: jax.Array, side: int | None = None, margin: float = 0.0
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The square around each hole, centred on its bounding box, inside the image (pure).

  The hole is where `mask > 0`, as for the `hole_*` metrics (masks are {0, 1},
  so any threshold in [0, 1) picks the same pixels); an empty hole counts as
  the whole image. The square's side:

  - `side` given (GLCIC's local patch, `models.glcic`): that side, on whole
    pixels; the corner is the box's centre pixel ⌊(lo + hi) / 2⌋ minus ⌊side / 2⌋.
  - None (hole_lpips' box in `metrics`, resampled there): the box's longer
    side plus `margin` × max(H, W) (rounded) on each side, at most min(H, W);
    the corner is (lo + hi − side) / 2, possibly half a pixel.

  The square is then moved as little as needed to lie inside the image.

  Args:
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
    side: a fixed side in pixels, at most min(H, W); None for the hole's own.
    margin: with `side` None, the growth on each side, as a fraction of max(H, W).
  Returns:
    (top, left, side), each `[B]` float32 pixels.
  """
  _, h, w, _ = mask.shape
  hole = mask[..., 0] > 0

  def extent(present, n):  # [B, n] bool → the hole's [lo, hi) along that axis, [B] each
    idx = jnp.arange(n, dtype=jnp.float32)
    lo = jnp.min(jnp.where(present, idx, n), axis=1)
    hi = jnp.max(jnp.where(present, idx + 1, 0), axis=1)
    empty = ~jnp.any(present, axis=1)
    return jnp.where(empty, 0.0, lo), jnp.where(empty, n, hi)

  (y0, y1), (x0, x1) = extent(jnp.any(hole, axis=2), h), extent(jnp.any(hole, axis=1), w)
  if side is None:
    grow = 2 * round(margin * max(h, w))
    size = jnp.minimum(jnp.maximum(y1 - y0, x1 - x0) + grow, min(h, w))
    top, left = (y0 + y1 - size) / 2, (x0 + x1 - size) / 2
  else:
    size = jnp.full(mask.shape[:1], side, jnp.float32)
    top = jnp.floor((y0 + y1) / 2) - side // 2
    left = jnp.floor((x0 + x1) / 2) - side // 2
  return jnp.clip(top, 0, h - size), jnp.clip(left, 0, w - size), size


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
  the center-output generator predicts. The masks need no key: they are built
  on the host, so a jitted step holds them as constants instead of drawing
  them every step (what `with_band` would compute, exactly).
  """
  h, w = image_size
  side = hole_size - 2 * overlap
  if side <= 0 or hole_size > min(h, w):
    raise UserError(
        f'mask.hole_size={hole_size} with mask.overlap={overlap} does not fit a '
        f'{h}×{w} image: expected 2·overlap < hole_size ≤ {min(h, w)}.')
  top, left = (h - side) // 2, (w - side) // 2
  yy, xx = np.arange(h)[:, None], np.arange(w)[None, :]

  def square(grow: int) -> np.ndarray:
    inside = ((yy >= top - grow) & (yy < top + side + grow)
              & (xx >= left - grow) & (xx < left + side + grow))
    return inside.astype(np.float32)

  hole = square(0)
  weight = hole + overlap_weight * (square(max(overlap, 0)) - hole)
  as_batch = lambda a: jnp.broadcast_to(jnp.asarray(a)[None, :, :, None],  # noqa: E731
                                        (batch_size, h, w, 1))
  return Masks(as_batch(hole), as_batch(weight.astype(np.float32)))


def center_random(key: jax.Array, batch_size: int, image_size: tuple[int, int], *,
                  hole_size: int, hole_range: tuple[int, int], overlap: int,
                  overlap_weight: float) -> Masks:
  """Rectangular holes of random size and place inside the central `hole_size` square.

  Each side is drawn uniformly from `hole_range` = (smallest, largest) pixels
  (largest ≤ `hole_size`: up to the whole square the center-output generator
  predicts), the position uniformly among those that keep the hole inside the
  square. The band is cut to the square, the part of the image whose loss
  counts.
  """
  h, w = image_size
  lo, hi = hole_range
  if not 0 < lo <= hi <= hole_size or hole_size > min(h, w):
    raise UserError(f'mask.hole_range={tuple(hole_range)} with mask.hole_size={hole_size} in a '
                    f'{h}×{w} image: expected 0 < smallest ≤ largest ≤ hole_size ≤ {min(h, w)}.')
  k_h, k_w, k_y, k_x = jax.random.split(key, 4)
  size = lambda k: jax.random.randint(k, (batch_size, 1), lo, hi + 1)  # noqa: E731
  height, width = size(k_h), size(k_w)
  top0, left0 = (h - hole_size) // 2, (w - hole_size) // 2
  top = top0 + jax.random.randint(k_y, (batch_size, 1), 0, hole_size - height + 1)
  left = left0 + jax.random.randint(k_x, (batch_size, 1), 0, hole_size - width + 1)
  m = with_band(_boxes(top, left, height, width, image_size), overlap, overlap_weight)
  square = _boxes(jnp.full((1, 1), top0), jnp.full((1, 1), left0), jnp.full((1, 1), hole_size),
                  jnp.full((1, 1), hole_size), image_size)
  return Masks(m.mask, m.weight * square)


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


def _stroke_vertices(key: jax.Array, shape: tuple[int, int], image_size: tuple[int, int],
                     num_vertices: int, mean_angle: float, angle_range: float) -> jax.Array:
  """Random zig-zag polylines: `[B, S, num_vertices + 1, 2]` float32 (y, x) in pixels.

  Turning angles alternate between a and 2π − a, a drawn per stroke from
  [mean − U(0, range), mean + U(0, range)]; segment lengths are N(r, r/2)
  clipped to [0, 2r], r = diagonal / 8; each vertex is clipped to the image.
  A random flip per sample and axis removes the zig-zag's drift.
  """
  h, w = image_size
  k_start, k_lo, k_hi, k_angle, k_len, k_flip = jax.random.split(key, 6)
  spread_lo = jax.random.uniform(k_lo, (*shape, 1), maxval=angle_range)
  spread_hi = jax.random.uniform(k_hi, (*shape, 1), maxval=angle_range)
  angle = jax.random.uniform(k_angle, (*shape, num_vertices), minval=mean_angle - spread_lo,
                             maxval=mean_angle + spread_hi)
  angle = jnp.where(jnp.arange(num_vertices) % 2 == 0, 2 * jnp.pi - angle, angle)
  radius = (h * h + w * w) ** 0.5 / 8
  length = jnp.clip(radius + radius / 2 * jax.random.normal(k_len, angle.shape), 0, 2 * radius)
  flip = jnp.where(jax.random.bernoulli(k_flip, 0.5, (shape[0], 1, 1, 2)), -1.0, 1.0)
  steps = jnp.stack([jnp.sin(angle), jnp.cos(angle)], -1) * length[..., None] * flip
  start = jax.random.uniform(k_start, (*shape, 2)) * jnp.array([h, w], jnp.float32)
  upper = jnp.array([h - 1, w - 1], jnp.float32)

  def walk(point, step):
    point = jnp.clip(point + step, 0.0, upper)
    return point, point

  _, rest = jax.lax.scan(walk, start, jnp.moveaxis(steps, -2, 0))
  return jnp.concatenate([start[..., None, :], jnp.moveaxis(rest, 0, -2)], axis=-2)


def _rasterise_strokes(vertices: jax.Array, num_segments: jax.Array, width: jax.Array,
                       image_size: tuple[int, int]) -> jax.Array:
  """Pixels within `width / 2` of a polyline's first `num_segments` segments.

  Args:
    vertices: `[B, S, V + 1, 2]` (y, x) float32.
    num_segments: `[B, S]` int, segments drawn per stroke (0 = no stroke).
    width: `[B, S]` float32 brush width in pixels.
  Returns:
    `[B, S, H, W]` bool.
  """
  grid = jnp.stack(jnp.meshgrid(jnp.arange(image_size[0]), jnp.arange(image_size[1]),
                                indexing='ij'), -1).astype(jnp.float32)  # [H, W, 2]
  p0, p1 = vertices[..., :-1, None, None, :], vertices[..., 1:, None, None, :]
  d = p1 - p0  # [B, S, V, 1, 1, 2]
  t = jnp.sum((grid - p0) * d, -1, keepdims=True) / jnp.maximum(jnp.sum(d * d, -1, keepdims=True),
                                                                1e-6)
  nearest = p0 + jnp.clip(t, 0.0, 1.0) * d
  dist2 = jnp.sum(jnp.square(grid - nearest), -1)  # [B, S, V, H, W]
  drawn = jnp.arange(vertices.shape[-2] - 1) < num_segments[..., None]  # [B, S, V]
  inside = dist2 <= jnp.square(width / 2)[..., None, None, None]
  return jnp.any(inside & drawn[..., None, None], axis=2)


def freeform(key: jax.Array, batch_size: int, image_size: tuple[int, int], *,
             num_strokes: tuple[int, int], num_vertices: tuple[int, int],
             width: tuple[float, float], mean_angle: float, angle_range: float,
             box: tuple[float, float], max_coverage: float, overlap: int,
             overlap_weight: float) -> Masks:
  """DeepFill v2 free-form masks: a random box plus random brush strokes, per sample.

  Args:
    num_strokes: inclusive range of strokes per sample.
    num_vertices: inclusive range of segments per stroke.
    width: brush width range, as fractions of the shorter image side.
    mean_angle, angle_range: turning angles in radians (see `_stroke_vertices`).
    box: range of the box's height and width, as fractions of the image's.
    max_coverage: strokes that would push the hole past this fraction of the
      image are left out, so the hole covers at least the box and at most this.
  """
  h, w = image_size
  (s_lo, s_hi), (v_lo, v_hi), (w_lo, w_hi), (b_lo, b_hi) = num_strokes, num_vertices, width, box
  if not 0 <= s_lo <= s_hi or not 1 <= v_lo <= v_hi or not 0 < w_lo <= w_hi:
    raise UserError(f'mask.freeform_strokes={num_strokes}, mask.freeform_vertices={num_vertices}, '
                    f'mask.freeform_width={width}: expected 0 ≤ low ≤ high (vertices ≥ 1, '
                    'widths > 0).')
  if not 0 < b_lo <= b_hi or b_hi * b_hi > max_coverage or max_coverage > 1:
    raise UserError(f'mask.freeform_box={box} with mask.freeform_max_coverage={max_coverage}: '
                    'expected 0 < low ≤ high and high² ≤ max_coverage ≤ 1.')
  k_box, k_vert, k_count, k_segs, k_width = jax.random.split(key, 5)
  kb = jax.random.split(k_box, 4)
  bh = jnp.floor(jax.random.uniform(kb[0], (batch_size, 1), minval=b_lo, maxval=b_hi) * h)
  bw = jnp.floor(jax.random.uniform(kb[1], (batch_size, 1), minval=b_lo, maxval=b_hi) * w)
  bh, bw = jnp.maximum(bh, 1).astype(jnp.int32), jnp.maximum(bw, 1).astype(jnp.int32)
  top = jax.random.randint(kb[2], (batch_size, 1), 0, h - bh + 1)
  left = jax.random.randint(kb[3], (batch_size, 1), 0, w - bw + 1)
  box_mask = _boxes(top, left, bh, bw, image_size)[..., 0] > 0  # [B, H, W]

  shape = (batch_size, max(s_hi, 1))
  vertices = _stroke_vertices(k_vert, shape, image_size, v_hi, mean_angle, angle_range)
  count = jax.random.randint(k_count, (batch_size, 1), s_lo, s_hi + 1)
  segments = jax.random.randint(k_segs, shape, v_lo, v_hi + 1)
  segments = jnp.where(jnp.arange(shape[1]) < count, segments, 0)
  widths = jax.random.uniform(k_width, shape, minval=w_lo, maxval=w_hi) * min(h, w)
  strokes = _rasterise_strokes(vertices, segments, widths, image_size)  # [B, S, H, W]

  # Union of the box and the first k strokes for k = 0..S; keep the largest within bound.
  layers = jnp.concatenate([box_mask[:, None], strokes], axis=1)
  unions = jax.lax.cummax(layers.astype(jnp.float32), axis=1)
  within = jnp.mean(unions, axis=(2, 3)) <= max_coverage  # [B, S + 1], a prefix
  last = jnp.maximum(jnp.sum(within, axis=1) - 1, 0)
  mask = jnp.take_along_axis(unions, last[:, None, None, None], axis=1)[:, 0, ..., None]
  return with_band(mask, overlap, overlap_weight)


def mustache(landmarks: jax.Array, image_size: tuple[int, int], *, margin_x: float,
             margin_y: float, overlap: int, overlap_weight: float) -> Masks:
  """A box over the upper lip of each face, from its nose and mouth corners.

  Rows run from the nose tip down to the mouth corners' mean height, widened
  by `margin_y` of that distance above and below; columns run between the
  mouth corners, widened by `margin_x` of the mouth width on each side. The box
  is clipped to the image.

  Args:
    landmarks: `[B, 5, 2]` float32 (x, y) pixel coordinates (pixel centers at
      integers) in CelebA order: left eye, right eye, nose, left and right mouth
      corner.
    image_size: (H, W).
    margin_x, margin_y: fractions of the mouth width and of the nose-to-mouth
      height added on each side.
  Returns:
    `Masks` `[B, H, W, 1]`.
  """
  landmarks = jnp.asarray(landmarks, jnp.float32)
  nose_y = landmarks[:, 2, 1]
  mouth_x, mouth_y = landmarks[:, 3:, 0], jnp.mean(landmarks[:, 3:, 1], axis=1)
  x0, x1 = jnp.min(mouth_x, axis=1), jnp.max(mouth_x, axis=1)
  y0, y1 = jnp.minimum(nose_y, mouth_y), jnp.maximum(nose_y, mouth_y)
  dx, dy = margin_x * (x1 - x0), margin_y * (y1 - y0)
  edge = lambda v: v[:, None, None]  # noqa: E731
  yy = jnp.arange(image_size[0], dtype=jnp.float32)[None, :, None]
  xx = jnp.arange(image_size[1], dtype=jnp.float32)[None, None, :]
  inside = ((yy >= edge(y0 - dy)) & (yy <= edge(y1 + dy)) &
            (xx >= edge(x0 - dx)) & (xx <= edge(x1 + dx)))
  return with_band(inside[..., None].astype(jnp.float32), overlap, overlap_weight)


def from_config(config: ml_collections.ConfigDict, key: jax.Array,
                batch: Mapping[str, Any], training: bool = False) -> Masks:
  """Masks for `batch` (which holds `image` `[B, H, W, 3]`) as `config.mask` says.

  A batch that carries its own `mask` (and optionally `weight`) keeps it. With
  `training`, center holes vary in size when `hole_range` is set; evaluation
  always uses the fixed center hole.
  """
  b, h, w, _ = batch['image'].shape
  kind = config.kind
  if 'mask' in batch:
    mask = jnp.asarray(batch['mask'], jnp.float32)
    if 'weight' in batch:
      return Masks(mask, jnp.asarray(batch['weight'], jnp.float32))
    return with_band(mask, config.overlap, config.overlap_weight)
  band = dict(overlap=config.overlap, overlap_weight=config.overlap_weight)
  if kind == 'center' and training and tuple(config.hole_range) != (0, 0):
    return center_random(key, b, (h, w), hole_size=config.hole_size,
                         hole_range=tuple(config.hole_range), **band)
  if kind == 'center':
    return center(b, (h, w), hole_size=config.hole_size, **band)
  if kind == 'random_blocks':
    return random_blocks(key, b, (h, w), num_blocks=config.num_blocks,
                         max_coverage=config.max_coverage, **band)
  if kind == 'random_region':
    return random_region(key, b, (h, w), coverage=tuple(config.region_coverage),
                         noise_size=config.noise_size, **band)
  if kind == 'freeform':
    return freeform(key, b, (h, w), num_strokes=tuple(config.freeform_strokes),
                    num_vertices=tuple(config.freeform_vertices),
                    width=tuple(config.freeform_width), mean_angle=config.freeform_mean_angle,
                    angle_range=config.freeform_angle_range, box=tuple(config.freeform_box),
                    max_coverage=config.freeform_max_coverage, **band)
  if kind == 'mustache':
    if 'landmarks' not in batch:
      raise UserError("mask.kind='mustache' needs face landmarks in each batch: use "
                      "data.source='celeba'.")
    return mustache(batch['landmarks'], (h, w), margin_x=config.mustache_margin_x,
                    margin_y=config.mustache_margin_y, **band)
  raise ValueError(f"mask.kind='{kind}' (config_checks.check names the choices).")


KINDS = ('center', 'random_blocks', 'random_region', 'freeform', 'mustache')
