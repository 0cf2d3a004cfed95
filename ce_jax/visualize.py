"""Image grids: one row per sample, masked input | completion | original."""

import numpy as np
from PIL import Image


def to_uint8(x: np.ndarray) -> np.ndarray:
  """`[..., 3]` float in [-1, 1] → uint8 in [0, 255]."""
  return np.round((np.clip(np.asarray(x, np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)


def grid(masked: np.ndarray, completion: np.ndarray, original: np.ndarray,
         gap: int = 2) -> np.ndarray:
  """Rows of (masked | completion | original).

  Args:
    masked, completion, original: `[N, H, W, 3]` float in [-1, 1].
    gap: white pixels between tiles.
  Returns:
    `[N·(H + gap) − gap, 3·(W + gap) − gap, 3]` uint8.
  """
  n, h, w, _ = original.shape
  out = np.full((n * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, np.uint8)
  for i in range(n):
    for j, tile in enumerate((masked[i], completion[i], original[i])):
      out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = to_uint8(tile)
  return out


def save_png(image: np.ndarray, path) -> None:
  """Writes a `[H, W, 3]` uint8 image to a path or binary file object."""
  Image.fromarray(image).save(path, format='PNG')
