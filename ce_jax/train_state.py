"""One pytree for the GAN: both networks' params, batch stats and optimizer states, G's EMA."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ce_jax import models


@flax.struct.dataclass
class GANState:
  """Everything that changes during training. The optax transforms are static."""

  step: jax.Array  # [] int32
  rng: jax.Array  # [2] uint32 raw PRNG key; per-step keys are fold_in(rng, step)
  g_params: Any
  g_batch_stats: Any
  g_opt_state: Any
  d_params: Any
  d_batch_stats: Any  # BatchNorm statistics, or SpectralNorm's `u` and `sigma`
  d_opt_state: Any
  # EMA of G's variables, `{'params', 'batch_stats'}`, when `train.ema_decay > 0`; else `{}`.
  g_ema: Any
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation,
                                                           optax.GradientTransformation]:
  """Adam for G (lr = D lr × `g_lr_multiplier`) and D, on `optim.lr_schedule`."""
  o = config.optim

  def rate(lr: float) -> optax.ScalarOrSchedule:
    if o.lr_schedule == 'constant':
      return lr
    return optax.cosine_decay_schedule(lr, config.train.num_steps, o.final_lr_fraction)

  g_tx = optax.adam(rate(o.d_lr * o.g_lr_multiplier), b1=o.b1, b2=o.b2)
  d_tx = optax.adam(rate(o.d_lr), b1=o.b1, b2=o.b2)
  return g_tx, d_tx


def create(config: ml_collections.ConfigDict, key: jax.Array) -> GANState:
  """Fresh state from a raw PRNG key (pure: jit it with output shardings)."""
  gen, disc = models.create_models(config)
  size = config.data.image_size
  in_ch = 4 if config.model.mask_channel else 3
  out = models.output_size(config)
  k_g, k_d, k_rng = jax.random.split(key, 3)
  g_vars = gen.init(k_g, jnp.zeros((1, size, size, in_ch)), train=False)
  d_vars = disc.init(k_d, jnp.zeros((1, out, out, 3)), jnp.zeros((1, out, out, 1)), train=False)
  g_tx, d_tx = optimizers(config)
  g_batch_stats = g_vars.get('batch_stats', {})
  g_ema = ({'params': g_vars['params'], 'batch_stats': g_batch_stats}
           if config.train.ema_decay > 0 else {})
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=k_rng,
      g_params=g_vars['params'], g_batch_stats=g_batch_stats,
      g_opt_state=g_tx.init(g_vars['params']),
      d_params=d_vars['params'], d_batch_stats=d_vars.get('batch_stats', {}),
      d_opt_state=d_tx.init(d_vars['params']), g_ema=g_ema,
      g_tx=g_tx, d_tx=d_tx)
