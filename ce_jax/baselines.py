"""Classical inpainting baselines: OpenCV Telea, OpenCV Navier–Stokes, the unlearned smooth
fill, mean-pixel fill.

Each fills the hole of uint8 images and leaves the known pixels untouched, so
its scores compare directly with the model's composited completions.
"""

from collections.abc import Callable, Sequence

import cv2
import jax.numpy as jnp
import numpy as np

from ce_jax import completion

RADIUS = 3  # OpenCV's neighbourhood radius, in pixels (its documentation's example value).


def telea(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """Telea's fast-marching inpainting: `[H, W, 3]` uint8, hole `[H, W]` bool → `[H, W, 3]` uint8."""
  return cv2.inpaint(image, hole.astype(np.uint8) * 255, RADIUS, cv2.INPAINT_TELEA)


def navier_stokes(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
  """Bertalmío's Navier–Stokes inpainting, same shapes as `telea`."""
  return cv2.inpaint(image, hole.astype(np.uint8) * 255, RADIUS, cv2.INPAINT_NS)


def mean_fill(image: np.ndarray, hole: np.ndarray,
              mean_pixel: Sequence[float] = (117.0, 104.0, 123.0)) -> np.ndarray:
  """The hole set to the dataset mean pixel (what the generator sees), same shapes."""
  out = image.copy()
  out[hole] = np.round(np.asarray(mean_pixel)).astype(np.uint8)
  return out


SMOOTH_SIGMA = 8.0  # The default's `model.offset_sigma`.


def smooth_fill(image: np.ndarray, hole: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
  """The hole filled by the known pixels' normalised Gaussian blur (`completion.smooth_fill`).

  What the default's generator adds its output to (`model.color_offset='smooth'`),
  with no network: every table shows what the network adds over it. Same shapes
  as `telea`.
  """
  x = jnp.asarray(image, jnp.float32)[None] / 127.5 - 1.0
  m = jnp.asarray(hole, jnp.float32)[None, :, :, None]
  fill = np.asarray(completion.smooth_fill(x, m, sigma)[0])
  fill = np.clip(np.round((fill + 1.0) * 127.5), 0, 255).astype(np.uint8)
  return np.where(hole[..., None], fill, image)


def methods(mean_pixel: Sequence[float], sigma: float = SMOOTH_SIGMA
            ) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
  """Name → fill function, in table order (`sigma`: the smooth fill's blur)."""
  return {'telea': telea, 'navier_stokes': navier_stokes,
          'smooth_fill': lambda image, hole: smooth_fill(image, hole, sigma),
          'mean_fill': lambda image, hole: mean_fill(image, hole, mean_pixel)}


def complete(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], images: np.ndarray,
             mask: np.ndarray) -> np.ndarray:
  """Applies `fn` image by image.

  Args:
    fn: one of `methods()`.
    images: `[B, H, W, 3]` float32 in [-1, 1] whose values are k/127.5 − 1.
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = hole.
  Returns:
    `[B, H, W, 3]` float32 in [-1, 1]; known pixels equal `images` exactly.
  """
  u8 = np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)
  holes = np.asarray(mask[..., 0]) > 0
  filled = np.stack([fn(im, h) for im, h in zip(u8, holes, strict=True)])
  out = filled.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
  return np.where(holes[..., None], out, images).astype(np.float32)
