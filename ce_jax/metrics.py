"""Image-quality metrics on images mapped to [0, 1], on the hole or the whole image.

Every metric is per image (`[B]` float32) and names its domain:

- `hole_*`: over the missing pixels only (mask = 1), all channels.
- `image_*`: over the whole image.

PSNR (dB, peak 1) and SSIM (11×11 Gaussian window, σ = 1.5) come from dm-pix;
L1 is the mean absolute error and L2 the mean squared error. With the known
pixels pasted back exactly, the whole-image MSE is the hole MSE times the hole
fraction f, so

  image_psnr = hole_psnr + 10·log10(1 / f)        (+6.02 dB for a ¼-area hole),
  image_l1 = f · hole_l1,  image_l2 = f · hole_l2.

hole_ssim averages dm-pix's SSIM map over the windows centred in the hole
(windows also see the known pixels around it); image_ssim averages all windows.
PSNR is capped at `MAX_PSNR` so that a perfect image does not make a mean infinite;
an image with an empty hole scores NaN on every `hole_*` metric.

LPIPS (`perceptual.lpips`, AlexNet, lower is better) needs its params:
image_lpips compares the whole images; hole_lpips compares a square box around
the hole, cut from both images and resampled to `BOX_SIZE`² (`masks.hole_box`: its
bounding box grown by `BOX_MARGIN` × the image side on each side), so
that the score is about the fill and its seam rather than the untouched rest.
"""

import dm_pix as pix
import jax
import jax.numpy as jnp

from ce_jax import masks, perceptual

MAX_PSNR = 100.0
SSIM_FILTER = 11
SSIM_SIGMA = 1.5
NAMES = ('hole_psnr', 'image_psnr', 'hole_ssim', 'image_ssim', 'hole_l1', 'image_l1',
         'hole_l2', 'image_l2')
LPIPS_NAMES = ('hole_lpips', 'image_lpips')
BOX_SIZE = 64
BOX_MARGIN = 1 / 16


def to_unit(x: jax.Array) -> jax.Array:
  """[-1, 1] → [0, 1], clipped."""
  return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


def hole_fraction(mask: jax.Array) -> jax.Array:
  """Fraction of missing pixels: `[B, H, W, 1]` → `[B]`."""
  return jnp.mean(mask, axis=(1, 2, 3))


def _hole_only(x: jax.Array, mask: jax.Array) -> jax.Array:
  """NaN outside the hole, so that dm-pix's `ignore_nans` averages over the hole only."""
  return jnp.where(mask > 0, x, jnp.nan)


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image mean of `x` `[B, H, W, C]` where `mask` `[B, H, W, 1]` is 1 (NaN if none)."""
  return jnp.nanmean(_hole_only(x, mask), axis=(1, 2, 3))


def hole_mse(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image MSE over the hole.

  Args:
    a, b: `[B, H, W, C]` float32 in [0, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
  Returns:
    `[B]` float32 (0 for an empty hole).
  """
  sq = jnp.square(a - b) * mask
  return jnp.sum(sq, axis=(1, 2, 3)) / jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)) * a.shape[-1], 1)


def hole_psnr(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image PSNR (dB) over the hole: `[B, H, W, C]` in [0, 1], mask `[B, H, W, 1]` → `[B]`."""
  psnr = pix.psnr(_hole_only(a, mask), _hole_only(b, mask), ignore_nans=True)
  return jnp.minimum(psnr, MAX_PSNR)


def image_psnr(a: jax.Array, b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Per-image PSNR (dB) over the whole image, `[B, H, W, C]` in [0, 1] → `[B]`."""
  del mask
  return jnp.minimum(pix.psnr(a, b), MAX_PSNR)


def _ssim_window(x: jax.Array) -> jax.Array:
  """SSIM's 11-tap Gaussian (σ = 1.5, 'valid') along H and W of `[B, H, W, C]`.

  dm-pix's own filter is a depthwise convolution, slow on CPU; this is one
  matmul per axis with the banded `[n − 10, n]` matrix of the same weights.
  """
  taps = jnp.exp(-0.5 * jnp.square((jnp.arange(SSIM_FILTER) - SSIM_FILTER // 2) / SSIM_SIGMA))
  taps = taps / jnp.sum(taps)

  def band(n: int) -> jax.Array:
    lag = jnp.arange(n)[None, :] - jnp.arange(n - SSIM_FILTER + 1)[:, None]
    return jnp.where((lag >= 0) & (lag < SSIM_FILTER),
                     taps[jnp.clip(lag, 0, SSIM_FILTER - 1)], 0.0)

  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum('gh,...hwc->...gwc', band(x.shape[-3]), x, precision=hp)
  return jnp.einsum('gw,...hwc->...hgc', band(x.shape[-2]), x, precision=hp)


def _ssim(a: jax.Array, b: jax.Array, return_map: bool) -> jax.Array:
  return pix.ssim(a, b, max_val=1.0, filter_size=SSIM_FILTER, filter_sigma=SSIM_SIGMA,
                  return_map=return_map, filter_fn=_ssim_window)


def _ssim_map(a: jax.Array, b: jax.Array) -> jax.Array:
  """dm-pix SSIM map `[B, H − 10, W − 10, C]`, entry (i, j) = window centred at (i + 5, j + 5)."""
  return _ssim(a, b, return_map=True)


def hole_ssim(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image mean SSIM of the windows centred in the hole → `[B]`."""
  r = SSIM_FILTER // 2
  centres = mask[:, r:mask.shape[1] - r, r:mask.shape[2] - r]
  return _masked_mean(_ssim_map(a, b), centres)


def image_ssim(a: jax.Array, b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Per-image mean SSIM over the whole image (dm-pix's own mean) → `[B]`."""
  del mask
  return _ssim(a, b, return_map=False)


def hole_l1(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image mean absolute error over the hole → `[B]`."""
  return _masked_mean(jnp.abs(a - b), mask)


def image_l1(a: jax.Array, b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Per-image mean absolute error over the whole image → `[B]`."""
  del mask
  return jnp.mean(jnp.abs(a - b), axis=(1, 2, 3))


def hole_l2(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image mean squared error over the hole → `[B]`."""
  return pix.mse(_hole_only(a, mask), _hole_only(b, mask), ignore_nans=True)


def image_l2(a: jax.Array, b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Per-image mean squared error over the whole image → `[B]`."""
  del mask
  return pix.mse(a, b)


def crop_resize(x: jax.Array, top: jax.Array, left: jax.Array, side: jax.Array,
                size: int = BOX_SIZE) -> jax.Array:
  """Per-image square crops resampled to `size`² (bilinear, antialiased when shrinking).

  Args:
    x: `[B, H, W, C]` float32.
    top, left, side: `[B]` float32 pixels (from `masks.hole_box`).
  Returns:
    `[B, size, size, C]` float32.
  """
  def one(img, t, left, s):
    scale = size / s
    return jax.image.scale_and_translate(
        img, (size, size, img.shape[-1]), (0, 1), jnp.stack([scale, scale]),
        jnp.stack([-t * scale, -left * scale]), 'linear', antialias=True)

  return jax.vmap(one)(x, top, left, side)


def image_lpips(params: perceptual.Params, a: jax.Array, b: jax.Array,
                mask: jax.Array | None = None) -> jax.Array:
  """Per-image LPIPS over the whole image, `[B, H, W, 3]` in [0, 1] → `[B]`."""
  del mask
  return perceptual.lpips(params, 2.0 * a - 1.0, 2.0 * b - 1.0)


def hole_lpips(params: perceptual.Params, a: jax.Array, b: jax.Array,
               mask: jax.Array) -> jax.Array:
  """Per-image LPIPS on the hole's box, resampled to `BOX_SIZE`² → `[B]` (NaN: no hole)."""
  box = masks.hole_box(mask, margin=BOX_MARGIN)
  value = image_lpips(params, crop_resize(a, *box), crop_resize(b, *box))
  return jnp.where(jnp.any(mask > 0, axis=(1, 2, 3)), value, jnp.nan)


def lpips_features(params: perceptual.Params, x: jax.Array, mask: jax.Array
                   ) -> tuple[list[jax.Array], list[jax.Array]]:
  """The LPIPS features that `lpips_distances` compares (pure).

  Args:
    params: `perceptual.load('alexnet')`.
    x: `[B, H, W, 3]` float32 in [0, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
  Returns:
    (whole-image features, the hole's box features), as `perceptual.features`.
  """
  box = masks.hole_box(mask, margin=BOX_MARGIN)
  return (perceptual.features(params, 2.0 * x - 1.0),
          perceptual.features(params, 2.0 * crop_resize(x, *box) - 1.0))


def lpips_distances(params: perceptual.Params,
                    features: tuple[list[jax.Array], list[jax.Array]],
                    reference: tuple[list[jax.Array], list[jax.Array]],
                    mask: jax.Array) -> dict[str, jax.Array]:
  """hole_lpips and image_lpips between two `lpips_features` (pure).

  Args:
    params: `perceptual.load('alexnet')`.
    features, reference: `lpips_features` of completions and of their
      originals (under the same `mask`).
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
  Returns:
    `{'hole_lpips': [B], 'image_lpips': [B]}` float32 (hole_lpips NaN: no hole).
  """
  weights = perceptual.lin_weights(params)
  hole = perceptual.distance(features[1], reference[1], weights)
  return {'hole_lpips': jnp.where(jnp.any(mask > 0, axis=(1, 2, 3)), hole, jnp.nan),
          'image_lpips': perceptual.distance(features[0], reference[0], weights)}


def all_metrics(a: jax.Array, b: jax.Array, mask: jax.Array,
                lpips_params: perceptual.Params | None = None) -> dict[str, jax.Array]:
  """Every metric of `NAMES` (and `LPIPS_NAMES` given `lpips_params`), plus `hole_fraction`.

  Args:
    a: completions `[B, H, W, 3]` float32 in [0, 1].
    b: originals, same shape and range.
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
    lpips_params: `perceptual.load('alexnet')`, or None for no LPIPS.
  Returns:
    `{name: [B] float32}`.
  """
  fns = {'hole_psnr': hole_psnr, 'image_psnr': image_psnr, 'hole_ssim': hole_ssim,
         'image_ssim': image_ssim, 'hole_l1': hole_l1, 'image_l1': image_l1,
         'hole_l2': hole_l2, 'image_l2': image_l2}
  out = {name: fns[name](a, b, mask) for name in NAMES}
  if lpips_params is not None:
    out['hole_lpips'] = hole_lpips(lpips_params, a, b, mask)
    out['image_lpips'] = image_lpips(lpips_params, a, b, mask)
  out['hole_fraction'] = hole_fraction(mask)
  return out
