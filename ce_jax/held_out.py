"""Held-out completion and scores, shared by training's eval and `evaluate`."""

import jax
import ml_collections
import numpy as np
from flax import linen as nn

from ce_jax import completion, masks, metrics, perceptual


def eval_step(variables: completion.Variables, batch: dict[str, jax.Array], key: jax.Array,
              lpips_params: perceptual.Params | None = None, *,
              config: ml_collections.ConfigDict, gen: nn.Module) -> dict[str, jax.Array]:
  """Completion of `batch['image']` `[B, H, W, 3]` under masks drawn from `key` (pure).

  Args:
    variables: G's inference `{'params', 'batch_stats'}`
      (`completion.generator_variables`: the EMA weights when there are any).
    lpips_params: AlexNet LPIPS params (`perceptual.load('alexnet')`), or None.
  Returns:
    `masked`, `completion` (`[B, H, W, 3]` in [-1, 1]), `mask` `[B, H, W, 1]`
    and per-image `hole_psnr` `[B]` (dB, on images in [0, 1]), and
    `hole_lpips` `[B]` given `lpips_params`.
  """
  image = batch['image']
  m = masks.from_config(config.mask, key, batch)
  filled, _ = completion.complete(gen, variables, image, m.mask, config=config)
  unit_filled, unit_image = metrics.to_unit(filled), metrics.to_unit(image)
  out = {'masked': completion.masked(config, image, m.mask), 'completion': filled, 'mask': m.mask,
         'hole_psnr': metrics.hole_psnr(unit_filled, unit_image, m.mask)}
  if lpips_params is not None:
    out['hole_lpips'] = metrics.hole_lpips(lpips_params, unit_filled, unit_image, m.mask)
  return out


def eval_chunks(examples: dict[str, np.ndarray], local: int, num_chunks: int | None = None):
  """Splits process-local eval examples into `local`-sized chunks, zero-padded.

  Yields `num_chunks` chunks (default: as many as the examples fill). Each
  gains `valid` `[local]` bool, False on padding.
  """
  n = len(examples['image'])
  num_chunks = -(-n // local) if num_chunks is None else num_chunks
  for start in range(0, num_chunks * local, local):
    chunk = {}
    for k, v in examples.items():
      part = v[start:start + local]
      chunk[k] = np.concatenate([part, np.zeros((local - len(part), *part.shape[1:]), v.dtype)])
    chunk['valid'] = np.arange(local) < n - start
    yield chunk
