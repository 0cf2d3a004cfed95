"""GLCIC and DeepFill v2 beside the Context Encoder: layers against NumPy, shapes, one step each."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ce_jax import completion, config_checks, masks, models, train, train_state
from ce_jax.errors import UserError
from ce_jax.models import deepfill2, glcic
from configs import test as test_config

FAMILIES = models.FAMILIES


def np_conv(x, kernel, bias, stride, dilation):
  """'SAME'-style zero-padded convolution in float64: x `[H, W, Cin]`, kernel HWIO."""
  k = kernel.shape[0]
  pad = dilation * (k - 1) // 2
  xp = np.pad(x.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)))
  h = (x.shape[0] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
  w = (x.shape[1] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
  out = np.zeros((h, w, kernel.shape[-1]))
  for i in range(h):
    for j in range(w):
      window = xp[i * stride:i * stride + dilation * (k - 1) + 1:dilation,
                  j * stride:j * stride + dilation * (k - 1) + 1:dilation]
      out[i, j] = np.einsum('hwc,hwco->o', window, kernel) + bias
  return out


@pytest.mark.parametrize('stride,dilation', [(1, 1), (2, 1), (1, 2)])
def test_gated_conv_matches_numpy(stride, dilation):
  x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
  layer = deepfill2.GatedConv(features=2, kernel=3, stride=stride, dilation=dilation)
  v = layer.init(jax.random.key(0), x)
  v = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), v)
  got = np.asarray(layer.apply(v, x))
  kernel, bias = (np.asarray(v['params']['Conv_0'][n], np.float64) for n in ('kernel', 'bias'))
  y = np_conv(x[0], kernel, bias, stride, dilation)
  feature, gate = y[..., :2], y[..., 2:]
  elu = np.where(feature > 0, feature, np.expm1(feature))
  np.testing.assert_allclose(got[0], elu / (1 + np.exp(-gate)), rtol=1e-4, atol=1e-5)


def test_spectral_norm_sigma_reaches_one_after_power_iterations():
  # The discriminator's layer: flax's SpectralNorm around a 5×5 stride-2 conv.
  layer = nn.SpectralNorm(nn.Conv(8, (5, 5), (2, 2)))
  x = jnp.ones((1, 8, 8, 4))
  v = layer.init(jax.random.key(0), x, update_stats=False)

  def power_step(_, stats):
    _, upd = layer.apply({'params': v['params'], 'batch_stats': stats}, x, update_stats=True,
                         mutable=['batch_stats'])
    return upd['batch_stats']

  stats = jax.jit(lambda s: jax.lax.fori_loop(0, 100, power_step, s))(v['batch_stats'])
  kernel = np.asarray(v['params']['layer_instance']['kernel'], np.float64).reshape(-1, 8)
  sigma = float(stats['layer_instance/kernel/sigma'])
  np.testing.assert_allclose(np.linalg.norm(kernel / sigma, 2), 1.0, rtol=1e-4)
  # Without update_stats (eval), the state stays where it is.
  _, upd = layer.apply({'params': v['params'], 'batch_stats': stats}, x, update_stats=False,
                       mutable=['batch_stats'])
  np.testing.assert_array_equal(upd['batch_stats']['layer_instance/kernel/u'],
                                stats['layer_instance/kernel/u'])


def test_hole_box_centres_the_patch_on_the_hole_and_keeps_it_inside():
  mask = np.zeros((3, 32, 32, 1), np.float32)
  mask[0, 10:14, 20:26] = 1  # centre (12, 23) → corner (4, 15)
  mask[1, 0:3, 28:32] = 1  # corner clipped to (0, 16)
  top, left, side = masks.hole_box(jnp.asarray(mask), 16)  # mask[2] empty: the centre
  np.testing.assert_array_equal(top, [4, 0, 8])
  np.testing.assert_array_equal(left, [15, 16, 8])
  np.testing.assert_array_equal(side, [16, 16, 16])
  top, left = top.astype(jnp.int32), left.astype(jnp.int32)
  x = np.random.default_rng(0).normal(size=(3, 32, 32, 2)).astype(np.float32)
  crops = glcic.crop_boxes(jnp.asarray(x), top, left, 16)
  for b in range(3):
    np.testing.assert_array_equal(crops[b], x[b, top[b]:top[b] + 16, left[b]:left[b] + 16])


def test_glcic_local_discriminator_follows_the_hole():
  disc = glcic.GlobalLocalDiscriminator(features=4, local_size=16)
  image = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3), minval=-1, maxval=1)
  mask = jnp.zeros((1, 32, 32, 1)).at[:, 2:6, 2:6].set(1.0)  # local patch: [0:16, 0:16]
  v = disc.init(jax.random.key(1), image, mask, train=False)
  logit = lambda x, m: disc.apply(v, x, m, train=False)  # noqa: E731
  assert logit(image, mask).shape == (1,)
  far_hole = mask[:, ::-1, ::-1]  # local patch: [16:32, 16:32]
  assert float(jnp.abs(logit(image, mask) - logit(image, far_hole)).max()) > 0
  # Pixels outside the local patch reach the logit only through the global branch.
  glob = {'params': {**v['params'], 'local': jax.tree.map(jnp.zeros_like, v['params']['local'])},
          'batch_stats': v['batch_stats']}
  changed = image.at[:, 20:, 20:].set(0.0)
  local_only = lambda x: disc.apply(  # noqa: E731
      {'params': {**v['params'], 'global': jax.tree.map(jnp.zeros_like, v['params']['global'])},
       'batch_stats': v['batch_stats']}, x, mask, train=False)
  np.testing.assert_allclose(local_only(image), local_only(changed), rtol=0, atol=0)
  assert float(jnp.abs(disc.apply(glob, image, mask, train=False)
                       - disc.apply(glob, changed, mask, train=False)).max()) > 0


@pytest.mark.parametrize('family', FAMILIES)
def test_shapes_and_completion_at_another_aspect(family):
  config = test_config.get_config(family)
  state = train_state.create(config, jax.random.PRNGKey(0))
  gen, disc = models.create_models(config)
  image = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3), minval=-1, maxval=1)
  mask = jnp.zeros((2, 32, 32, 1)).at[:, 8:20, 4:12].set(1.0)
  d_vars = {'params': state.d_params, 'batch_stats': state.d_batch_stats}
  size = models.output_size(config)
  logits = disc.apply(d_vars, image[:, :size, :size], mask[:, :size, :size], train=False)
  assert logits.shape[0] == 2 and logits.dtype == jnp.float32
  if family == 'deepfill2':
    # SN-PatchGAN: every element of the last map (4·disc_features wide) is a logit.
    assert logits.shape == (2, 1, 1, 4 * config.model.disc_features)
  if family == 'context_encoder':
    return  # A center-output model; its completions are tested in test_recipe.py.
  # Fully convolutional: any size divisible by 4, known pixels kept exactly.
  wide = jax.random.uniform(jax.random.key(3), (1, 24, 40, 3), minval=-1, maxval=1)
  hole = jnp.zeros((1, 24, 40, 1)).at[:, 5:15, 20:33].set(1.0)
  filled, _ = completion.complete(gen, completion.generator_variables(state, config), wide, hole,
                                  config=config)
  assert filled.shape == wide.shape
  np.testing.assert_array_equal(np.asarray(filled)[np.asarray(hole[..., 0]) == 0],
                                np.asarray(wide)[np.asarray(hole[..., 0]) == 0])
  assert float(jnp.abs(filled - wide).max()) > 0


@pytest.mark.parametrize('family', ['glcic', 'deepfill2'])  # The CE's: test_recipe.py.
@pytest.mark.parametrize('phase', train_state.PHASES)
def test_one_step_per_family_and_phase_is_finite(family, phase):
  config = test_config.get_config(family)
  gen, disc = models.create_models(config)
  state = train_state.create(config, jax.random.PRNGKey(0))
  batch = {'image': jax.random.uniform(jax.random.key(1), (8, 32, 32, 3), minval=-1, maxval=1)}
  fn = jax.jit(functools.partial(train.train_step, config=config, gen=gen, disc=disc, phase=phase))
  new, metrics = fn(state, batch)
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(new))
  if family == 'deepfill2' and phase != 'rec':
    # The power-iteration state moves with every D pass and is kept in the state.
    u = lambda s: s['SpectralNorm_0']['Conv_0/kernel/u']  # noqa: E731
    assert not np.array_equal(u(state.d_batch_stats), u(new.d_batch_stats))
  if family == 'deepfill2' and phase == 'rec':
    # The coarse stage learns from its own reconstruction loss, not only through the refine stage.
    old_c, new_c = state.g_params['coarse'], new.g_params['coarse']
    assert any(not np.array_equal(a, b)
               for a, b in zip(jax.tree.leaves(old_c), jax.tree.leaves(new_c), strict=True))


def test_deepfill_reconstruction_covers_both_stages():
  config = test_config.get_config('deepfill2')
  gen, _ = models.create_models(config)
  x = jax.random.uniform(jax.random.key(0), (1, 32, 32, 4))
  v = gen.init(jax.random.key(1), x, train=False)
  out, upd = gen.apply(v, x, train=True, mutable=['intermediates'])
  (coarse,) = upd['intermediates']['coarse_image']
  assert coarse.shape == out.shape == (1, 32, 32, 3)
  assert float(jnp.abs(coarse - out).max()) > 0


@pytest.mark.parametrize('field,value,match', [
    ('family', 'pconv', r"model.family='pconv': expected one of"),
    ('output', 'center', r"model.family='glcic' predicts the whole image: set model.output='full'"),
    ('local_size', 40, r'model.local_size=40: expected 0'),
])
def test_bad_family_settings_name_the_field(field, value, match):
  config = test_config.get_config('glcic')
  setattr(config.model, field, value)
  with pytest.raises(UserError, match=match):
    config_checks.check(config)


def test_bad_loss_kind_names_the_field():
  config = test_config.get_config()
  config.loss.gan = 'wgan'
  with pytest.raises(UserError, match=r"loss.gan='wgan': expected one of \('bce', 'hinge'\)"):
    config_checks.check(config)


def test_spectral_norm_wraps_every_discriminator_conv():
  config = test_config.get_config('deepfill2')
  state = train_state.create(config, jax.random.PRNGKey(0))
  assert sorted(state.d_batch_stats) == [f'SpectralNorm_{i}' for i in range(6)]
  assert sorted(state.d_params) == [f'Conv_{i}' for i in range(6)]
  assert isinstance(models.create_models(config)[1], deepfill2.SNPatchDiscriminator)
