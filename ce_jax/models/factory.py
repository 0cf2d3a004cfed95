"""From config: each family's generator and discriminator, sizes, dtype, parameter counts."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ce_jax.models.context_encoder import Discriminator, Generator
from ce_jax.models.deepfill2 import GatedGenerator, SNPatchDiscriminator
from ce_jax.models.glcic import CompletionNetwork, GlobalLocalDiscriminator
from ce_jax.models.layers import Dtype, resolve_conv_rewrites, resolve_upsample

FAMILIES = ('context_encoder', 'glcic', 'deepfill2')
FAMILY_NAMES = {'context_encoder': 'Context Encoder', 'glcic': 'GLCIC',
                'deepfill2': 'DeepFill v2'}
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


def family_name(config: ml_collections.ConfigDict) -> str:
  """The trained family's name for people: 'Context Encoder', 'GLCIC' or 'DeepFill v2'."""
  return FAMILY_NAMES[config.model.family]


def output_size(config: ml_collections.ConfigDict) -> int:
  """Side of the generator's output: the center hole ('center'), or the whole image ('full')."""
  return config.mask.hole_size if config.model.output == 'center' else config.data.image_size


def compute_dtype(config: ml_collections.ConfigDict) -> Dtype:
  return DTYPES[config.model.dtype]


def local_size(config: ml_collections.ConfigDict) -> int:
  """Side of GLCIC's local patch: `model.local_size`, or half the image when 0."""
  return config.model.local_size or config.data.image_size // 2


def create_generator(config: ml_collections.ConfigDict) -> nn.Module:
  """The generator of `config.model.family` (a config `config_checks.check` passed).

  Every generator maps `(x_in [B, H, W, 4], train)` to `[B, out, out, 3]`
  float32 in [-1, 1], `out` = `output_size(config)`.
  """
  dtype, m = compute_dtype(config), config.model
  if m.family == 'glcic':
    return CompletionNetwork(m.gen_features, resolve_upsample(m.upsample), dtype)
  if m.family == 'deepfill2':
    return GatedGenerator(m.gen_features, dtype)
  whole_input, stride2 = resolve_conv_rewrites(m.conv_rewrites)
  return Generator(
      encoder=m.encoder, bottleneck=m.bottleneck, bottleneck_dim=m.get('bottleneck_dim', 0),
      output_size=output_size(config), features=m.gen_features,
      upsample=resolve_upsample(m.upsample), dtype=dtype, rewrite_whole_input=whole_input,
      rewrite_stride2=stride2, skips=m.skips)


def create_discriminator(config: ml_collections.ConfigDict) -> nn.Module:
  """The discriminator of `config.model.family` (an adversarial config: `model.disc_features`).

  Every discriminator maps `(image [B, S, S, 3], mask [B, S, S, 1], train=)`
  to float32 logits `[B, ...]`.
  """
  dtype, m = compute_dtype(config), config.model
  if m.family == 'glcic':
    return GlobalLocalDiscriminator(m.disc_features, local_size(config), dtype)
  if m.family == 'deepfill2':
    return SNPatchDiscriminator(m.disc_features, dtype)
  whole_input, stride2 = resolve_conv_rewrites(m.conv_rewrites)
  return Discriminator(features=m.disc_features, dtype=dtype, rewrite_whole_input=whole_input,
                       rewrite_stride2=stride2)


def create_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module | None]:
  """(generator, discriminator); no discriminator for a config without an adversarial term."""
  disc = create_discriminator(config) if 'gan' in config.loss else None
  return create_generator(config), disc


def param_count(params: Any) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
