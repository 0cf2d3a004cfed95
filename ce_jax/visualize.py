"""Image grids: one row per sample, masked input | completion | original."""

import numpy as np
from PIL import Image


def to_uint8(x: np.ndarray) -> np.ndarray:
  """`[..., 3]` float in [-1, 1] → uint8 in [0, 255]."""
  return np.round((np.clip(np.asarray(x, np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)


def columns(cols: list[np.ndarray], gap: int = 2) -> np.ndarray:
  """Images side by side, one row per sample.

  Args:
    cols: each `[N, H, W, 3]` float in [-1, 1], one column of the grid.
    gap: white pixels between tiles.
  Returns:
    `[N·(H + gap) − gap, len(cols)·(W + gap) − gap, 3]` uint8.
  """
  n, h, w, _ = cols[0].shape
  out = np.full((n * (h + gap) - gap, len(cols) * (w + gap) - gap, 3), 255, np.uint8)
  for j, col in enumerate(cols):
    tiles = to_uint8(col)
    for i in range(n):
      out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = tiles[i]
  return out


def grid(masked: np.ndarray, completion: np.ndarray, original: np.ndarray,
         gap: int = 2) -> np.ndarray:
  """Rows of (masked | completion | original), each `[N, H, W, 3]` float in [-1, 1]; uint8."""
  return columns([masked, completion, original], gap)


def save_png(image: np.ndarray, path) -> None:
  """Writes a `[H, W, 3]` uint8 image to a path or binary file object."""
  Image.fromarray(image).save(path, format='PNG')
