"""Model shapes for every encoder/bottleneck/output combination, and the paper's size."""

import itertools

import jax
import jax.numpy as jnp
import pytest

from ce_jax import config_checks, models, train_state
from ce_jax.errors import UserError
from ce_jax.models import context_encoder
from configs import default, paper


def shapes(config):
  """Abstract state (no allocation) → (G output shape, D output shape, G params)."""
  state = jax.eval_shape(lambda: train_state.create(config, jax.random.PRNGKey(0)))
  gen, disc = models.create_models(config)
  size = config.data.image_size
  x = jax.ShapeDtypeStruct((2, size, size, 4 if config.model.mask_channel else 3), jnp.float32)
  g_vars = {'params': state.g_params, 'batch_stats': state.g_batch_stats}
  out = jax.eval_shape(lambda v, x: gen.apply(v, x, train=False), g_vars, x)
  d_vars = {'params': state.d_params, 'batch_stats': state.d_batch_stats}
  mask = jax.ShapeDtypeStruct((*out.shape[:3], 1), jnp.float32)
  logit = jax.eval_shape(lambda v, x, m: disc.apply(v, x, m, train=False), d_vars, out, mask)
  return out.shape, logit.shape, models.param_count(state.g_params)


@pytest.mark.parametrize('encoder,bottleneck,output', list(itertools.product(
    ['dcgan', 'alexnet'], ['conv', 'channelwise_fc'], ['center', 'full'])))
def test_output_shapes(encoder, bottleneck, output):
  config = default.get_config('adversarial,model_options')
  config.model.encoder, config.model.bottleneck, config.model.output = encoder, bottleneck, output
  if encoder == 'alexnet':
    config.data.image_size, config.mask.hole_size = 227, 113
  size = config.data.image_size if output == 'full' else config.mask.hole_size
  g_shape, d_shape, _ = shapes(config)
  assert g_shape == (2, size, size, 3)
  assert d_shape == (2,)


def test_released_generator_has_71m_params():
  _, _, count = shapes(paper.get_config())
  # 5 encoder convs + 4×4×512×4000 bottleneck + its transposed twin + 4 up-convs + BatchNorms.
  convs = 16 * (4 * 64 + 64 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 2 * 512 * 4000 +
                512 * 256 + 256 * 128 + 128 * 64 + 64 * 3)
  norms = 2 * (64 + 128 + 256 + 512 + 4000 + 512 + 256 + 128 + 64)
  assert count == convs + norms
  assert 71.0e6 < count < 71.2e6


def test_channelwise_fc_params_scale_as_m_n4():
  config = default.get_config('adversarial,model_options')
  config.model.bottleneck = 'channelwise_fc'
  state = jax.eval_shape(lambda: train_state.create(config, jax.random.PRNGKey(0)))
  fc = state.g_params['ChannelwiseFC_0']
  assert fc['kernel'].shape == (512, 16, 16)  # m · n² · n² with m = 512, n = 4
  assert fc['Conv_0']['kernel'].shape == (1, 1, 512, 512)


def test_output_in_tanh_range_and_mask_channel_matters():
  config = default.get_config('adversarial,model_options')
  config.data.image_size, config.mask.hole_size = 32, 16
  config.model.gen_features, config.model.bottleneck_dim = 8, 16
  gen, _ = models.create_models(config)
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 4), minval=-1, maxval=1)
  v = gen.init(jax.random.key(1), x, train=False)
  y = gen.apply(v, x, train=False)
  assert float(jnp.abs(y).max()) <= 1.0
  y2 = gen.apply(v, x.at[..., 3].set(0.0), train=False)
  assert float(jnp.abs(y - y2).max()) > 0


def test_center_skip_crops_the_predicted_square():
  maps = [jnp.arange(s * s, dtype=jnp.float32).reshape(1, s, s, 1) for s in (64, 32, 16, 8)]
  # A 16-px decoder map of the 64-px center of a 128-px input: the 32-px map's center.
  skip = context_encoder.center_skip(maps, 16, 128, 64)
  assert skip.shape == (1, 16, 16, 1)
  assert jnp.array_equal(skip, maps[1][:, 8:24, 8:24])
  # A whole-image output ('full') takes the map as it is; no map of the density: None.
  assert jnp.array_equal(context_encoder.center_skip(maps, 32, 128, 128), maps[1])
  assert context_encoder.center_skip(maps, 64, 128, 64) is None


def test_skips_feed_each_decoder_layer_its_encoder_map():
  config = default.get_config('adversarial')
  config.model.skips = True
  state = jax.eval_shape(lambda: train_state.create(config, jax.random.PRNGKey(0)))
  # Decoder maps of 4, 8, 16, 32 px (512, 256, 128, 64 channels) meet the encoder's
  # 8, 16, 32, 64-px maps (256, 128, 64, 64 channels), cropped to the center.
  ins = [state.g_params[f'UpConv_{i}']['kernel'].shape[2] for i in range(4)]
  assert ins == [512 + 256, 256 + 128, 128 + 64, 64 + 64]
  g_shape, _, count = shapes(config)
  assert g_shape == (2, 64, 64, 3)
  config.model.skips = False
  assert count > shapes(config)[2]


def test_skips_without_the_dcgan_encoder_name_the_field():
  config = default.get_config()
  config.model.encoder, config.model.skips = 'alexnet', True
  with pytest.raises(UserError, match=r"model.skips=True needs model.encoder='dcgan'"):
    config_checks.check(config)
