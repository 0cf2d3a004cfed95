"""A small random Inception-v3 saved the way pytorch-fid's weights are converted."""

import jax
import jax.numpy as jnp
import numpy as np

from ce_jax import fid

_TORCH = {'kernel': 'conv.weight', 'scale': 'bn.weight', 'bias': 'bn.bias',
          'mean': 'bn.running_mean',
          'var': 'bn.running_var'}


def write_random_weights(path: str, width: float = 1 / 8, seed: int = 0) -> dict:
  """Saves a random `width` Inception-v3 as an `.npz` of PyTorch names and layouts.

  Returns the Flax variables it holds: He-normal kernels, random batch-norm
  scales, offsets and statistics; a classifier (`fc.*`) comes along as in the
  real file.
  """
  shapes = jax.eval_shape(fid.InceptionV3(width=width).init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, fid.SIZE, fid.SIZE, 3), jnp.float32))
  rng = np.random.default_rng(seed)
  draw = {'kernel': lambda s: rng.normal(0, np.sqrt(2 / np.prod(s[:-1])), s),
          'scale': lambda s: rng.uniform(0.5, 1.5, s), 'bias': lambda s: rng.normal(0, 0.1, s),
          'mean': lambda s: rng.normal(0, 0.1, s), 'var': lambda s: rng.uniform(0.5, 1.5, s)}
  variables: dict = {}
  arrays = {}
  for collection, modules in shapes.items():
    for module, layers in modules.items():
      for layer, leaves in layers.items():
        for leaf, shape in leaves.items():
          value = draw[leaf](shape.shape).astype(np.float32)
          variables.setdefault(collection, {}).setdefault(module, {}).setdefault(layer, {})[
              leaf] = value
          torch_value = np.transpose(value, (3, 2, 0, 1)) if leaf == 'kernel' else value
          arrays[f'{module}.{_TORCH[leaf]}'] = torch_value
  channels = arrays['Mixed_7c.branch_pool.conv.weight'].shape[0]
  arrays['fc.weight'] = np.zeros((1008, channels), np.float32)
  arrays['fc.bias'] = np.zeros((1008,), np.float32)
  arrays['Conv2d_1a_3x3.bn.num_batches_tracked'] = np.array(0)
  np.savez(path, **arrays)
  return variables
