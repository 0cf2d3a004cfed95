"""The model families and the factory that builds them from a config.

`context_encoder`, `glcic` and `deepfill2` hold one family each; `layers` the
shared layers and the convolution rewrites; `factory` what the trainer and the
programs call (re-exported here). Images are `[B, H, W, C]` float in [-1, 1].
Conv weights are N(0, 0.02), BatchNorm scales N(1, 0.02), convolutions before
a BatchNorm carry no bias, as in the released Torch code. Params are float32;
`dtype` sets the compute dtype.
"""

from ce_jax.models.factory import (
  FAMILIES,
  FAMILY_NAMES,
  compute_dtype,
  create_discriminator,
  create_generator,
  create_models,
  family_name,
  local_size,
  output_size,
  param_count,
)
from ce_jax.models.layers import resolve_conv_rewrites, resolve_upsample

__all__ = [
  'FAMILIES',
  'FAMILY_NAMES',
  'compute_dtype',
  'create_discriminator',
  'create_generator',
  'create_models',
  'family_name',
  'local_size',
  'output_size',
  'param_count',
  'resolve_conv_rewrites',
  'resolve_upsample',
]
