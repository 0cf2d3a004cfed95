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

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from ce_jax.errors import UserError

Variables = dict[str, Any]


def fill_value(config: ml_collections.ConfigDict) -> jax.Array:
  """The mean pixel, `[3]` float32 in [-1, 1]."""
  return jnp.asarray(config.data.mean_pixel, jnp.float32) / 127.5 - 1.0


COLOR_OFFSETS = ('none', 'context_mean', 'smooth')


def _filled(image: jax.Array, mask: jax.Array, fill: jax.Array) -> jax.Array:
  """`image` `[B, H, W, C]` with the hole (`mask` `[B, H, W, 1]` = 1) set to `fill` `[C]`."""
  return (1.0 - mask) * image + mask * fill


def masked(config: ml_collections.ConfigDict, image: jax.Array, mask: jax.Array) -> jax.Array:
  """`[B, H, W, 3]` `image` with the hole (`mask` `[B, H, W, 1]` = 1) set to the mean pixel."""
  return _filled(image, mask, fill_value(config))


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
  if kind == 'none':
    return jnp.zeros((image.shape[0], 1, 1, 3), jnp.float32)
  if kind == 'context_mean':
    return context_mean(image, mask)
  return smooth_fill(image, mask, config.model.offset_sigma)


def context_mean(image: jax.Array, mask: jax.Array) -> jax.Array:
  """The known pixels' mean colour `[B, 1, 1, 3]` (0 where nothing is known)."""
  known = 1.0 - mask
  count = jnp.sum(known, axis=(1, 2), keepdims=True)
  return jnp.sum(known * image, axis=(1, 2), keepdims=True) / jnp.maximum(count, 1.0)


def smooth_fill(image: jax.Array, mask: jax.Array, sigma: float) -> jax.Array:
  """The known pixels' normalised Gaussian blur: a fill of the hole from its border.

  Args:
    image: `[B, H, W, 3]` float32 in [-1, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
    sigma: the blur's σ in pixels.
  Returns:
    `[B, H, W, 3]` float32: the known pixels blurred and divided by the
    blurred known fraction (the context mean where that fraction vanishes).
  """
  known = 1.0 - mask
  blurred = gaussian_blur(jnp.concatenate([known * image, known], axis=-1), sigma)
  eps = 1e-3
  return (blurred[..., :3] + eps * context_mean(image, mask)) / (blurred[..., 3:] + eps)


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
    x = _filled(image, mask, fill_value(config))
  else:
    x = _filled(image - offset, mask, jnp.zeros(3, jnp.float32))
  return jnp.concatenate([x, mask], axis=-1) if config.model.mask_channel else x


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


# ----------------------------------------------------------------------------
# Photos of any size: a square of context around each hole
# ----------------------------------------------------------------------------
#
# G sees S² pixels (S = `data.image_size`). Shrinking a whole large photo to
# S² would fill a small hole from a thumbnail. Instead each hole (a connected
# region of the mask; holes whose squares overlap much share one) is filled
# from a square of the photo around it: `context_factor` × the hole's longer
# side, and at least S when the photo allows. The square is resized to S²
# ('crop'), or, for the fully convolutional families (GLCIC, DeepFill v2), G
# takes it as it is when its side is at most `NATIVE_LIMIT`. G's fill is
# resized back and pasted under that hole only. A hole whose square would
# not fit in the photo falls back to the whole photo ('whole': resized to S²,
# or as it is for a fully convolutional family when it fits `NATIVE_LIMIT`).
# A center-output model predicts only the central `mask.hole_size`² of its
# input: its square is placed, and grown if needed, so that the hole lands
# there, and where it then reaches past the photo's edge it holds the photo
# reflected at that edge.

FILLS = ('crop', 'whole')
# The square's side over the hole's longer side (benchmarks/native_resolution.py,
# configs/default.py on 17 full-size held-out photos, two seeds): 2 beat 2.5
# and 3 by 0.2-0.4 dB hole PSNR on 96-px holes (on 48-px ones 3 lost 0.2-0.3 dB; on
# 24-px ones the square is S either way); 1.5 is 2 for a center-output model,
# whose 64-px predicted square of 128 needs twice the hole. Squares below S
# (enlarged to it) gave small holes a better L1 and LPIPS but, at factor 2,
# 0.7-0.8 dB less hole PSNR: squares stay at least S.
CONTEXT_FACTOR = 2.0
# Fully convolutional families take squares up to this side as they are.
NATIVE_LIMIT = 512
# Their squares' sides are rounded up to a multiple of this (of their stride,
# 4, and few enough sizes that each compiles once for many holes).
NATIVE_STEP = 32
# Two holes share one square when their squares overlap by more than this
# fraction of the smaller one's area.
MERGE_OVERLAP = 0.25
FULLY_CONVOLUTIONAL = ('glcic', 'deepfill2')
Box = tuple[int, int, int, int]  # (y0, y1, x0, x1): rows y0:y1, columns x0:x1


@dataclasses.dataclass(frozen=True)
class Crop:
  """One run of G on a photo: the region it sees and the holes whose pixels it fills.

  The region is `height` × `width` photo pixels from (`top`, `left`); where it
  reaches past the photo's edges it holds the photo reflected there. G's
  input is `size` (height, width): the region's own size (nothing resized) or
  S² (the region resized). `holes` are `find_holes` labels.
  """

  path: str  # 'crop' or 'whole'
  top: int
  left: int
  height: int
  width: int
  size: tuple[int, int]
  holes: tuple[int, ...]

  @property
  def resized(self) -> bool:
    return self.size != (self.height, self.width)


@dataclasses.dataclass(frozen=True)
class FillPlan:
  """How a photo's holes are filled: `labels` `[H, W]` int32 (0 = known, i = the i-th hole),
  `boxes[i - 1]` the i-th hole's bounding `Box`, and the `crops` that fill them."""

  labels: np.ndarray
  boxes: tuple[Box, ...]
  crops: tuple[Crop, ...]


def check_hole(hole: np.ndarray, image_shape: tuple[int, ...] | None = None) -> None:
  """Raises `UserError` for a hole `[H, W]` bool that is empty, covers everything, or does
  not match `image_shape` (`[H, W, ...]`)."""
  if image_shape is not None and hole.shape != tuple(image_shape[:2]):
    raise UserError(f'The mask is {hole.shape[1]}×{hole.shape[0]} (width×height) but its image '
                    f'is {image_shape[1]}×{image_shape[0]}: expected the same size.')
  if not hole.any():
    raise UserError('The mask is empty: nothing to fill.')
  if hole.all():
    raise UserError('The mask covers the whole image: nothing is left to fill it from.')


def check_fill(fill: str, context_factor: float) -> None:
  """Raises `UserError` for a `fill` not in `FILLS` or a `context_factor` below 1."""
  if fill not in FILLS:
    raise UserError(f"--fill='{fill}': expected one of {FILLS}.")
  if not context_factor >= 1:
    raise UserError(f'--context_factor={context_factor}: expected a number ≥ 1 (the square of '
                    "context's side over the hole's).")


def find_holes(hole: np.ndarray) -> tuple[np.ndarray, tuple[Box, ...]]:
  """The connected holes (8-neighbours) of `hole` `[H, W]` bool.

  Returns:
    (labels `[H, W]` int32: 0 known, i in the i-th hole; the holes' bounding `Box`es).
  """
  count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8),
                                                             connectivity=8)
  boxes = tuple((int(y), int(y + h), int(x), int(x + w))
                for x, y, w, h, _ in stats[1:count])
  return labels.astype(np.int32), boxes


def native_ok(config: ml_collections.ConfigDict) -> bool:
  """Whether G takes inputs of any size (a multiple of 4): the fully convolutional families."""
  return config.model.family in FULLY_CONVOLUTIONAL and config.model.output == 'full'


def predicted_span(config: ml_collections.ConfigDict, side: int) -> tuple[int, int]:
  """[lo, hi): the rows (and columns) of a `side`² square, resized to S², that G's output
  covers: all of them, or for a center-output model those that shrink into its square."""
  if config.model.output != 'center':
    return 0, side
  offset, predicted = center_box(config)
  s = config.data.image_size
  return -(-offset * side // s), (offset + predicted) * side // s


def context_side(config: ml_collections.ConfigDict, extent: int, context_factor: float,
                 min_side: int) -> int:
  """Side of the square of context around a hole of longer side `extent` pixels:
  `context_factor` × `extent`, at least `min_side`, grown until the hole fits in
  `predicted_span`; for a fully convolutional G, rounded up to `NATIVE_STEP`."""
  side = max(math.ceil(extent * context_factor), min_side, 1)
  while True:
    lo, hi = predicted_span(config, side)
    if hi - lo >= extent:
      break
    side += 1
  if native_ok(config):
    side = -(-side // NATIVE_STEP) * NATIVE_STEP
  return side


def _place(lo: int, hi: int, side: int, n: int, span: tuple[int, int]) -> int:
  """Start of a `side`-long window on an axis of `n` pixels around the hole's [lo, hi):
  centred, moved to lie inside the axis as far as the hole stays in the window's `span`."""
  start = min(max((lo + hi - side) // 2, 0), n - side) if side <= n else (n - side) // 2
  return min(max(start, hi - span[1]), lo - span[0])


def _square(config: ml_collections.ConfigDict, box: Box, shape: tuple[int, int],
            context_factor: float, min_side: int) -> tuple[int, int, int] | None:
  """(top, left, side) of the square of context around `box` in a photo of `shape` (H, W);
  None when it would not fit in the photo (a fully convolutional G's rounding aside)."""
  y0, y1, x0, x1 = box
  shorter = min(shape)
  side = context_side(config, max(y1 - y0, x1 - x0), context_factor, min(min_side, shorter))
  if side > (-(-shorter // NATIVE_STEP) * NATIVE_STEP if native_ok(config) else shorter):
    return None
  span = predicted_span(config, side)
  return _place(y0, y1, side, shape[0], span), _place(x0, x1, side, shape[1], span), side


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
  """Area shared by two squares (top, left, side), over the smaller one's area."""
  rows = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
  cols = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
  return max(rows, 0) * max(cols, 0) / min(a[2], b[2]) ** 2


def _union(a: Box, b: Box) -> Box:
  return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def plan_fills(config: ml_collections.ConfigDict, hole: np.ndarray, *, fill: str = 'crop',
               context_factor: float = CONTEXT_FACTOR, min_side: int | None = None,
               native_limit: int = NATIVE_LIMIT) -> FillPlan:
  """Where G runs to fill `hole` `[H, W]` bool of a photo (module section above; pure).

  Args:
    fill: 'crop' (a square around each hole) or 'whole' (the whole photo at once).
    context_factor: the square's side over the hole's longer side (at least 1).
    min_side: the square's least side (default S: a small hole's square is
      not enlarged past the photo's own pixels; 0 lets it be).
    native_limit: the largest square a fully convolutional G takes as it is.
  Raises:
    UserError: an empty hole, or one covering everything; a bad `fill`.
  """
  check_fill(fill, context_factor)
  check_hole(hole)
  s, shape = config.data.image_size, hole.shape
  min_side = s if min_side is None else min_side
  labels, boxes = find_holes(hole)
  groups = [((i + 1,), box) for i, box in enumerate(boxes)]
  squares = [_square(config, box, shape, context_factor, min_side) if fill == 'crop' else None
             for _, box in groups]
  merged = True
  while merged:
    merged = False
    for i, j in itertools.combinations(range(len(groups)), 2):
      if squares[i] and squares[j] and _overlap(squares[i], squares[j]) > MERGE_OVERLAP:
        box = _union(groups[i][1], groups[j][1])
        groups[i] = (groups[i][0] + groups[j][0], box)
        squares[i] = _square(config, box, shape, context_factor, min_side)
        del groups[j], squares[j]
        merged = True
        break
  crops = []
  for (holes, _), square in zip(groups, squares, strict=True):
    if square is None:
      continue
    top, left, side = square
    native = native_ok(config) and side <= native_limit
    crops.append(Crop('crop', top, left, side, side, (side, side) if native else (s, s),
                      tuple(sorted(holes))))
  whole = tuple(sorted(h for (holes, _), sq in zip(groups, squares, strict=True) if sq is None
                       for h in holes))
  if whole:
    h, w = shape
    if native_ok(config) and max(h, w) <= native_limit:
      height, width = -(-h // 4) * 4, -(-w // 4) * 4
      crops.append(Crop('whole', 0, 0, height, width, (height, width), whole))
    else:
      crops.append(Crop('whole', 0, 0, h, w, (s, s), whole))
  return FillPlan(labels, boxes, tuple(crops))


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
  """Indices into an axis of `n` pixels, reflected at its ends (without repeating them)."""
  if n == 1:
    return np.zeros_like(index)
  period = 2 * (n - 1)
  index = np.abs(index) % period
  return np.where(index >= n, period - index, index)


def region(x: np.ndarray, crop: Crop) -> np.ndarray:
  """`x[top:top + height, left:left + width]` of a photo-sized `[H, W, ...]` array, the
  photo reflected at its edges where the region reaches past them."""
  rows = _reflect(np.arange(crop.top, crop.top + crop.height), x.shape[0])
  cols = _reflect(np.arange(crop.left, crop.left + crop.width), x.shape[1])
  return x[rows[:, None], cols[None, :]]


def resize_hole(hole: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """`[h, w]` bool → `[size]` bool: a pixel is missing if any pixel under it is (exact)."""
  def along(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    m = x.shape[axis]
    i = np.arange(n)
    lo, hi = i * m // n, -(-(i + 1) * m // n)  # the input pixels under output pixel i
    counts = np.cumsum(np.moveaxis(x, axis, 0), axis=0, dtype=np.int64)
    counts = np.concatenate([np.zeros_like(counts[:1]), counts])
    return np.moveaxis(counts[hi] - counts[lo] > 0, 0, axis)

  return along(along(hole, size[0], 0), size[1], 1)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """`[h, w, C]` float32 → `[size, C]` float32, bicubic (antialiased when shrinking)."""
  return np.stack([np.asarray(Image.fromarray(c, 'F').resize(size[::-1], Image.BICUBIC))
                   for c in np.moveaxis(x.astype(np.float32), -1, 0)], axis=-1)


def model_input(config: ml_collections.ConfigDict, image: np.ndarray, hole: np.ndarray,
                crop: Crop) -> tuple[np.ndarray, np.ndarray]:
  """What G is given for `crop` of `image` `[H, W, 3]` uint8 with `hole` `[H, W]` bool.

  Every missing pixel of the region (its holes', the other holes' and their
  reflections) is set to the mean pixel before resizing, so none of it
  leaks into the known ones.

  Returns:
    (`[1, *size, 3]` float32 in [-1, 1]; `[1, *size, 1]` float32 in {0, 1}).
  """
  mean = np.asarray(config.data.mean_pixel, np.float32)
  known = region(hole, crop)
  pixels = np.where(known[..., None], mean, region(image, crop).astype(np.float32))
  if crop.resized:
    pixels = np.clip(_resize(pixels, crop.size), 0.0, 255.0)
    known = resize_hole(known, crop.size)
  return pixels[None] / 127.5 - 1.0, known[None, ..., None].astype(np.float32)


def paste(out: np.ndarray, plan: FillPlan, crop: Crop, completion: np.ndarray) -> None:
  """Writes G's `completion` `[*crop.size, 3]` float32 in [-1, 1] of `crop`, resized back to
  the region, into `out` `[H, W, 3]` uint8 under `crop`'s holes only (in place)."""
  if crop.resized:
    completion = _resize(completion, (crop.height, crop.width))
  pixels = np.round((np.clip(completion, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
  h, w = out.shape[:2]
  y0, x0 = max(crop.top, 0), max(crop.left, 0)
  y1, x1 = min(crop.top + crop.height, h), min(crop.left + crop.width, w)
  inside = pixels[y0 - crop.top:y1 - crop.top, x0 - crop.left:x1 - crop.left]
  target = out[y0:y1, x0:x1]
  mine = np.isin(plan.labels[y0:y1, x0:x1], crop.holes)
  target[mine] = inside[mine]


def describe(plan: FillPlan) -> list[str]:
  """One line per hole, in label order: where it is, its size, and how it is filled."""
  lines = {}
  for crop in plan.crops:
    if crop.path == 'whole':
      how = 'whole image'
    else:
      how = f'{crop.height}×{crop.width} crop at ({crop.top}, {crop.left})'
      if len(crop.holes) > 1:
        how += f' shared by holes {", ".join(map(str, crop.holes))}'
    size = '×'.join(map(str, crop.size))
    how += f', resized to {size}' if crop.resized else f' at its own size ({size})'
    for i in crop.holes:
      y0, y1, x0, x1 = plan.boxes[i - 1]
      lines[i] = (f'hole {i} at rows {y0}–{y1}, columns {x0}–{x1} ({y1 - y0}×{x1 - x0} px): '
                  f'{crop.path} path, {how}')
  return [lines[i] for i in sorted(lines)]


Predict = Callable[[np.ndarray, np.ndarray], Any]


def fill_photo(predict: Predict, config: ml_collections.ConfigDict, image: np.ndarray,
               hole: np.ndarray, plan: FillPlan, whole_mask: np.ndarray | None = None
               ) -> np.ndarray:
  """`image` `[H, W, 3]` uint8 with `hole` `[H, W]` bool filled as `plan` says → uint8.

  Every pixel outside `hole` is `image`'s own, bit for bit.

  Args:
    predict: G's completion: (`[1, h, w, 3]` float32 in [-1, 1], `[1, h, w, 1]`
      mask) → `[1, h, w, 3]` float32 in [-1, 1] (e.g. a jitted `complete`).
    plan: `plan_fills(config, hole, ...)`.
    whole_mask: G's mask `[S, S]` bool for the whole path instead of `hole`
      resized (e.g. a center-output model's exact central hole).
  """
  check_hole(hole, image.shape)
  out = image.copy()
  for line in describe(plan):
    logging.vlog(1, '%s', line)  # Shown with --verbosity=1.
  for crop in plan.crops:
    x, m = model_input(config, image, hole, crop)
    if crop.path == 'whole' and whole_mask is not None and whole_mask.shape == crop.size:
      m = whole_mask[None, ..., None].astype(np.float32)
    paste(out, plan, crop, np.asarray(predict(x, m))[0])
  return out
