"""One pytree for the GAN (both networks' params, batch stats and optimizer states, G's EMA)
and the schedule that decides whether D exists at all."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ce_jax import models

PHASES = ('rec', 'd', 'joint')
LR_SCHEDULES = ('constant', 'cosine')
# What an adversarial config (one with `loss.gan`) holds besides the default's fields.
ADVERSARIAL_FIELDS = ('loss.gan', 'loss.rec_weight', 'loss.adv_weight', 'loss.rec_only_steps',
                      'loss.d_only_steps', 'optim.d_lr', 'model.disc_features')


def adversarial(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` describes an adversarial term at all (it holds `loss.gan`)."""
  return 'gan' in config.loss


def phase_at(config: ml_collections.ConfigDict, step: int) -> str:
  """The training phase of `step` (GLCIC's schedule, Iizuka et al. 2017).

  'rec': G alone on the reconstruction loss (every step of a config without
  an adversarial term; else the first `loss.rec_only_steps`);
  'd': D alone against the frozen G (the next `loss.d_only_steps` steps);
  'joint': both, G on `rec_weight·L_rec + adv_weight·L_adv`.
  """
  if not adversarial(config):
    return 'rec'
  rec, d = config.loss.rec_only_steps, config.loss.d_only_steps
  if step < rec:
    return 'rec'
  if step < rec + d:
    return 'd'
  return 'joint'


def phases(config: ml_collections.ConfigDict, start: int = 0) -> tuple[str, ...]:
  """The phases that steps `start` … `train.num_steps − 1` run, in order of first use."""
  loss, end = config.loss, config.train.num_steps
  if not adversarial(config):
    return ('rec',) if start < end else ()
  firsts = {'rec': start, 'd': max(start, loss.rec_only_steps),
            'joint': max(start, loss.rec_only_steps + loss.d_only_steps)}
  return tuple(p for p in PHASES if firsts[p] < end and phase_at(config, firsts[p]) == p)


def uses_discriminator(config: ml_collections.ConfigDict) -> bool:
  """Whether any step up to `train.num_steps` runs D: else D is not built at all."""
  return any(p != 'rec' for p in phases(config))


@flax.struct.dataclass
class GANState:
  """Everything that changes during training. The optax transforms are static."""

  step: jax.Array  # [] int32
  rng: jax.Array  # [2] uint32 raw PRNG key; per-step keys are fold_in(rng, step)
  g_params: Any
  g_batch_stats: Any
  g_opt_state: Any
  # D's, `{}` each when the schedule never runs D (`uses_discriminator`).
  d_params: Any
  d_batch_stats: Any  # BatchNorm statistics, or SpectralNorm's `u` and `sigma`
  d_opt_state: Any
  # EMA of G's variables, `{'params', 'batch_stats'}`, when `train.ema_decay > 0`; else `{}`.
  g_ema: Any
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation | None = flax.struct.field(pytree_node=False)


def learning_rate(config: ml_collections.ConfigDict, field: str) -> optax.ScalarOrSchedule:
  """`optim.<field>` ('g_lr' or 'd_lr') on `optim.lr_schedule`, over each network's own updates."""
  o = config.optim
  if o.lr_schedule == 'constant':
    return o[field]
  return optax.cosine_decay_schedule(o[field], config.train.num_steps, o.final_lr_fraction)


def current_lr(tx_state: optax.OptState, schedule: optax.ScalarOrSchedule) -> jax.Array:
  """The rate `schedule` gives the next update of an `optimizer`'s state, `[]` float32."""
  if not callable(schedule):
    return jnp.asarray(schedule, jnp.float32)
  return jnp.asarray(schedule(tx_state[0].count), jnp.float32)


def optimizer(config: ml_collections.ConfigDict, field: str) -> optax.GradientTransformation:
  """Adam at `optim.<field>` ('g_lr' or 'd_lr') on `optim.lr_schedule`."""
  o = config.optim
  return optax.adam(learning_rate(config, field), b1=o.b1, b2=o.b2)


def create(config: ml_collections.ConfigDict, key: jax.Array) -> GANState:
  """Fresh state from a raw PRNG key (pure: jit it with output shardings).

  D's fields are `{}` (and `d_tx` None) when the schedule never runs D.
  """
  gen, disc = models.create_models(config)
  size = config.data.image_size
  in_ch = 4 if config.model.mask_channel else 3
  out = models.output_size(config)
  k_g, k_d, k_rng = jax.random.split(key, 3)
  g_vars = gen.init(k_g, jnp.zeros((1, size, size, in_ch)), train=False)
  g_tx = optimizer(config, 'g_lr')
  g_batch_stats = g_vars.get('batch_stats', {})
  g_ema = ({'params': g_vars['params'], 'batch_stats': g_batch_stats}
           if config.train.ema_decay > 0 else {})
  d_params, d_batch_stats, d_opt_state, d_tx = {}, {}, {}, None
  if uses_discriminator(config):
    d_vars = disc.init(k_d, jnp.zeros((1, out, out, 3)), jnp.zeros((1, out, out, 1)),
                       train=False)
    d_tx = optimizer(config, 'd_lr')
    d_params, d_batch_stats = d_vars['params'], d_vars.get('batch_stats', {})
    d_opt_state = d_tx.init(d_params)
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=k_rng,
      g_params=g_vars['params'], g_batch_stats=g_batch_stats,
      g_opt_state=g_tx.init(g_vars['params']),
      d_params=d_params, d_batch_stats=d_batch_stats, d_opt_state=d_opt_state, g_ema=g_ema,
      g_tx=g_tx, d_tx=d_tx)
