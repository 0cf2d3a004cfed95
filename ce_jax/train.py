"""Training loop: mesh → input → state → jitted D+G step → logging, eval, checkpoints."""

import functools
import io
import math
import signal
import threading
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath

from ce_jax import (
  checkpointing,
  completion,
  losses,
  masks,
  metrics,
  models,
  parallel,
  perceptual,
  run_config,
  train_state,
  visualize,
)
from ce_jax.errors import UserError
from ce_jax.train_state import GANState

Metrics = dict[str, jax.Array]


# ----------------------------------------------------------------------------
# Pieces of one step
# ----------------------------------------------------------------------------


def _disc_views(config, image, out, mask):
  """What D sees: (real, fake, mask) patches for 'center'; whole images for 'full'."""
  if config.model.output == 'center':
    box = completion.center_box(config)
    return completion.crop(image, *box), out, completion.crop(mask, *box)
  return image, completion.composite(image, out, mask), mask


def global_norm(tree: optax.Params) -> jax.Array:
  """The L2 norm of all leaves together, `[]` float32.

  Each leaf's squared norm is a dot product: as `sum(x²)` XLA would share the
  `x²` with Adam's second moment and write it to memory, an extra pass over
  every gradient (a third of a GB per step for the paper's generator).
  """
  squares = [jnp.vdot(x.ravel(), x.ravel()) for x in jax.tree.leaves(tree)]
  return jnp.sqrt(sum(squares))


def apply_gradients(tx: optax.GradientTransformation, params: optax.Params,
                    opt_state: optax.OptState, grads: optax.Updates
                    ) -> tuple[optax.Params, optax.OptState, jax.Array, jax.Array]:
  """`tx.update` then `optax.apply_updates`, arranged for in-place updates (pure).

  On finite steps the result is optax's (to float rounding: XLA may fuse the
  arithmetic differently; tests hold it to 1e-6). Two guards order the writes
  to the donated buffers so that XLA updates them in place instead of copying
  them first (for the paper's generator, 4 copies of 125 MiB and their fresh
  pages every step: temp memory 463 → 354 MiB, ~15 % of a CPU step):
  - parameters take the update only if every gradient is finite, so each
    parameter write waits for the whole backward pass (the last reader of the
    old parameters);
  - the first moment, found by optax's field name `mu` (Adam and its
    variants), advances only if, besides, the new parameters are finite, so
    its write waits for the parameter update, which XLA makes re-read the old
    moment. A transform without `mu` gets only the first guard.
  The guards are there for the ordering, not to rescue a step: after
  non-finite gradients the parameters and `mu` hold but the rest of the
  optimizer state (Adam's second moment and count) advances, the second
  moment to NaN. Holding it too costs the in-place update of that buffer
  (temp 354 → 622 MiB for the paper's model). Such a state is never
  checkpointed: the non-finite norms stop training first (`check_finite`).

  Returns:
    New parameters, new optimizer state, the global norms `[]` float32 of the
    gradients and of the new parameters.
  """
  grad_norm = global_norm(grads)
  updates, new_opt_state = tx.update(grads, opt_state, params)
  finite = jnp.isfinite(grad_norm)
  updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
  new_params = optax.apply_updates(params, updates)
  param_norm = global_norm(new_params)
  new_mu, old_mu = optax.tree.get(new_opt_state, 'mu'), optax.tree.get(opt_state, 'mu')
  if new_mu is not None:
    keep = finite & jnp.isfinite(param_norm)
    new_opt_state = optax.tree.set(
        new_opt_state, mu=jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_mu, old_mu))
  return new_params, new_opt_state, grad_norm, param_norm


PHASES = ('rec', 'd', 'joint')
LR_SCHEDULES = ('constant', 'cosine')


def phase(config: ml_collections.ConfigDict, step: int) -> str:
  """The training phase of `step` (GLCIC's schedule, Iizuka et al. 2017).

  'rec': G alone on the reconstruction loss (`loss.rec_only_steps` steps);
  'd': D alone against the frozen G (`loss.d_only_steps` steps);
  'joint': both, G on `rec_weight·L_rec + adv_weight·L_adv`.
  """
  rec, d = config.loss.rec_only_steps, config.loss.d_only_steps
  if step < rec:
    return 'rec'
  if step < rec + d:
    return 'd'
  return 'joint'


def ema_update(config: ml_collections.ConfigDict, ema: Any, variables: Any,
               step: jax.Array) -> Any:
  """G's EMA after `step` updates: decay `min(train.ema_decay, (1 + t) / (10 + t))`.

  The ramp lets the average follow the fast early changes instead of holding
  the random initialisation for ~1/(1 − decay) steps. `{}` when EMA is off.
  """
  if config.train.ema_decay <= 0:
    return ema
  t = step.astype(jnp.float32)
  decay = jnp.minimum(config.train.ema_decay, (1.0 + t) / (10.0 + t))
  return optax.incremental_update(variables, ema, 1.0 - decay)


def train_step(state: GANState, batch: dict[str, jax.Array],
               perceptual_params: perceptual.Params | None = None, *,
               config: ml_collections.ConfigDict, gen: nn.Module, disc: nn.Module,
               phase: str = 'joint') -> tuple[GANState, Metrics]:
  """One step of `phase` (see `phase()`): D, then G against the updated D (pure).

  Args:
    state: the GAN state.
    batch: `{'image': [B, H, W, 3] float32 in [-1, 1]}` (and optionally
      `landmarks`, `mask`, `weight`).
    perceptual_params: frozen VGG16 LPIPS params (`perceptual.load('vgg16')`)
      when `loss.perceptual_weight` > 0: G's loss gains that times
      `losses.perceptual_loss` in the 'rec' and 'joint' phases.
    phase: 'rec' (G on L_rec alone; D is not run), 'd' (D alone; G frozen) or
      'joint'.
  Returns:
    The new state and scalar metrics (the losses the phase computes;
    `rec_loss` sums L_rec over G's output and every image it sows under
    'intermediates', e.g. DeepFill v2's coarse stage).
  """
  if phase not in PHASES:
    raise ValueError(f'phase={phase!r}: expected one of {PHASES}.')
  key = jax.random.fold_in(state.rng, state.step)
  image = batch['image']
  m = masks.from_config(config.mask, key, batch, training=True)
  offset = completion.color_offset(config, image, m.mask)
  x_in = completion.generator_input(config, image, m.mask, offset)

  def g_forward(params):
    # Sown 'intermediates' (DeepFill v2's coarse image) are outputs too: they get L_rec.
    variables = {'params': params, 'batch_stats': state.g_batch_stats}
    out, upd = gen.apply(variables, x_in, train=True, mutable=['batch_stats', 'intermediates'])
    out, stages = jax.tree.map(
        lambda y: completion.generator_output(config, y, offset),
        (out, upd.get('intermediates', {})))
    return (out, stages), {'batch_stats': upd.get('batch_stats', {})}

  (out, stages), g_vjp, g_updates = jax.vjp(g_forward, state.g_params, has_aux=True)
  new_state = state.replace(step=state.step + 1)
  out_metrics = {}

  def d_apply(params, batch_stats, x, mask):
    logit, upd = disc.apply({'params': params, 'batch_stats': batch_stats}, x, mask, train=True,
                            mutable=['batch_stats'])
    return logit, upd.get('batch_stats', {})

  d_params, d_stats = state.d_params, state.d_batch_stats
  if phase in ('d', 'joint'):
    real, fake, d_mask = _disc_views(config, image, out, m.mask)

    def d_loss_fn(params):
      real_logit, stats = d_apply(params, state.d_batch_stats, real, d_mask)
      fake_logit, stats = d_apply(params, stats, jax.lax.stop_gradient(fake), d_mask)
      loss = losses.discriminator_loss(real_logit=real_logit, fake_logit=fake_logit,
                                       kind=config.loss.gan)
      return loss, (stats, real_logit, fake_logit)

    (d_loss, (d_stats, real_logit, fake_logit)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state, d_grad_norm, _ = apply_gradients(
        state.d_tx, state.d_params, state.d_opt_state, d_grads)
    new_state = new_state.replace(d_params=d_params, d_batch_stats=d_stats,
                                  d_opt_state=d_opt_state)
    out_metrics.update({
        'd_loss': d_loss, 'd_real': jnp.mean(jax.nn.sigmoid(real_logit)),
        'd_fake': jnp.mean(jax.nn.sigmoid(fake_logit)), 'd_grad_norm': d_grad_norm})
  if phase == 'd':
    return new_state, out_metrics

  if config.model.output == 'center':
    offset, side = completion.center_box(config)
    target = completion.crop(image, offset, side)
    weight = completion.crop(m.weight, offset, side)
  else:
    target, weight = image, m.weight

  def perceptual_term(g_out):
    if config.loss.perceptual_weight <= 0:
      return 0.0, None
    perc = losses.perceptual_loss(
        features=functools.partial(perceptual.features, perceptual_params), target=target,
        prediction=g_out)
    return config.loss.perceptual_weight * perc, perc

  def g_loss_fn(outputs):
    g_out, g_stages = outputs
    rec = sum(losses.reconstruction_loss(target=target, prediction=y, weight=weight,
                                         kind=config.loss.rec)
              for y in [g_out, *jax.tree.leaves(g_stages)])
    weighted_perc, perc = perceptual_term(g_out)
    if phase == 'rec':
      return rec + weighted_perc, (rec, None, perc, d_stats)
    _, g_fake, d_mask = _disc_views(config, image, g_out, m.mask)
    logit, stats = d_apply(d_params, d_stats, g_fake, d_mask)
    adv = losses.generator_adversarial_loss(fake_logit=logit, kind=config.loss.gan)
    total = losses.joint_loss(rec=rec, adv=adv, rec_weight=config.loss.rec_weight,
                              adv_weight=config.loss.adv_weight)
    return total + weighted_perc, (rec, adv, perc, stats)

  (g_loss, (rec, adv, perc, d_stats)), g_out_grad = jax.value_and_grad(
      g_loss_fn, has_aux=True)((out, stages))
  (g_grads,) = g_vjp(g_out_grad)
  g_params, g_opt_state, g_grad_norm, g_param_norm = apply_gradients(
      state.g_tx, state.g_params, state.g_opt_state, g_grads)
  g_ema = ema_update(config, state.g_ema,
                     {'params': g_params, 'batch_stats': g_updates['batch_stats']}, state.step)
  new_state = new_state.replace(
      g_params=g_params, g_batch_stats=g_updates['batch_stats'], g_opt_state=g_opt_state,
      g_ema=g_ema, d_batch_stats=d_stats)
  out_metrics.update({'g_loss': g_loss, 'rec_loss': rec, 'g_grad_norm': g_grad_norm,
                      'g_param_norm': g_param_norm})
  if adv is not None:
    out_metrics['adv_loss'] = adv
  if perc is not None:
    out_metrics['perceptual_loss'] = perc
  return new_state, out_metrics


def eval_step(state: GANState, batch: dict[str, jax.Array], key: jax.Array,
              lpips_params: perceptual.Params | None = None, *,
              config: ml_collections.ConfigDict, gen: nn.Module) -> dict[str, jax.Array]:
  """Completion of `batch['image']` `[B, H, W, 3]` under masks drawn from `key` (pure).

  Uses `completion.generator_variables` (the EMA weights when there are any).
  Returns `masked`, `completion` (`[B, H, W, 3]` in [-1, 1]), `mask`
  `[B, H, W, 1]` and per-image `hole_psnr` `[B]` (dB, on images in [0, 1]),
  and `hole_lpips` `[B]` given `lpips_params` (`perceptual.load('alexnet')`).
  """
  image = batch['image']
  m = masks.from_config(config.mask, key, batch)
  filled, _ = completion.complete(gen, completion.generator_variables(state, config), image,
                                  m.mask, config=config)
  unit_filled, unit_image = metrics.to_unit(filled), metrics.to_unit(image)
  out = {'masked': completion.masked(config, image, m.mask), 'completion': filled, 'mask': m.mask,
         'hole_psnr': metrics.hole_psnr(unit_filled, unit_image, m.mask)}
  if lpips_params is not None:
    out['hole_lpips'] = metrics.hole_lpips(lpips_params, unit_filled, unit_image, m.mask)
  return out


# ----------------------------------------------------------------------------
# Loop helpers
# ----------------------------------------------------------------------------


class PreemptionFlag:
  """Set by SIGTERM (TPU preemption, `kill`): the loop saves and exits cleanly."""

  def __init__(self):
    self.set = False
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    else:
      self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping.')
    self.set = True

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


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


EVAL_METRICS = ('hole_psnr', 'hole_lpips')


def evaluate(state: GANState, examples: dict[str, np.ndarray], eval_fn,
             config: ml_collections.ConfigDict, sharding, *extra
             ) -> tuple[dict[str, float], dict[str, jax.Array]]:
  """Mean held-out `eval_hole_psnr` (and `eval_hole_lpips`) over `examples`, and the first chunk.

  Chunks of the global batch size run under masks fixed by `mask.eval_seed`;
  every process runs as many as the one with the most examples needs. `extra`
  arguments go to `eval_fn` after the key (the LPIPS params). The first
  chunk's outputs gain its global `image` and `valid`.
  """
  local = config.train.batch_size // jax.process_count()
  num_chunks = parallel.process_max(-(-len(examples['image']) // local))
  key = jax.random.PRNGKey(config.mask.eval_seed)
  totals, counts, first = {}, {}, None
  for i, chunk in enumerate(eval_chunks(examples, local, num_chunks)):
    batch = parallel.global_batch(chunk, sharding)
    out = eval_fn(state, batch, jax.random.fold_in(key, i), *extra)
    for name in EVAL_METRICS:
      if name in out:  # An image with no hole has no hole metrics (NaN).
        ok = batch['valid'] & jnp.isfinite(out[name])
        totals[name] = totals.get(name, 0.0) + float(jnp.sum(jnp.where(ok, out[name], 0.0)))
        counts[name] = counts.get(name, 0) + int(jnp.sum(ok))
    if first is None:
      first = {**out, 'image': batch['image'], 'valid': batch['valid']}
  return {f'eval_{k}': totals[k] / counts[k] if counts[k] else math.nan for k in totals}, first


def write_samples(workdir: str, writer, step: int, out: dict[str, jax.Array], num: int) -> None:
  """PNG grid (masked | completion | original) of the first `num` valid eval images.

  `out` is `evaluate`'s first chunk. Every process calls this; process 0 writes.
  """
  valid = parallel.fetch(out['valid'])
  pick = lambda x: parallel.fetch(x)[valid][:num]  # noqa: E731
  grid = visualize.grid(pick(out['masked']), pick(out['completion']), pick(out['image']))
  if jax.process_index() == 0:
    directory = epath.Path(workdir) / 'samples'
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    visualize.save_png(grid, buf)
    (directory / f'step_{step:06d}.png').write_bytes(buf.getvalue())
  writer.write_images(step, {'samples': grid[None]})


def check_finite(history: list[Metrics], manager, step: int) -> dict[str, float]:
  """Mean of the metrics since the last call; a clear error on NaN or Inf."""
  fetched = jax.device_get(history)
  names = dict.fromkeys(k for m in fetched for k in m)  # Phases log different losses.
  means = {k: float(np.mean([m[k] for m in fetched if k in m])) for k in names}
  for i, m in enumerate(fetched):
    bad = [k for k, v in m.items() if not math.isfinite(float(v))]
    if bad:
      bad_step = step - len(fetched) + 1 + i
      last = manager.latest_step()
      where = (f'the last good checkpoint is step {last} in {manager.directory}'
               if last is not None else 'no checkpoint was written before it')
      raise UserError(f'Training diverged at step {bad_step}: {", ".join(bad)} became NaN/Inf; '
                      f'{where} (not overwritten). Lower optim.d_lr or check the data.')
  return means


def flat_config(config: ml_collections.ConfigDict, prefix: str = '') -> dict[str, object]:
  """`{'train.batch_size': 16, ...}` for the hyperparameter log."""
  out = {}
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out.update(flat_config(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v if isinstance(v, int | float | str | bool) else str(v)
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  """Cross-field checks that would otherwise fail deep inside JAX."""
  t = config.train
  for field in ('num_steps', 'log_every', 'eval_every', 'sample_every', 'checkpoint_every',
                'keep_checkpoints'):
    if t[field] <= 0:
      raise UserError(f'train.{field}={t[field]}: expected a positive integer.')
  if not 0 <= config.train.ema_decay < 1:
    raise UserError(f'train.ema_decay={config.train.ema_decay}: expected 0 (off) or a decay in '
                    '(0, 1), e.g. 0.999.')
  o = config.optim
  if o.lr_schedule not in LR_SCHEDULES:
    raise UserError(f"optim.lr_schedule='{o.lr_schedule}': expected one of {LR_SCHEDULES}.")
  if not 0 <= o.final_lr_fraction <= 1:
    raise UserError(f'optim.final_lr_fraction={o.final_lr_fraction}: expected a fraction of '
                    'the learning rate in [0, 1].')
  for field in ('rec_only_steps', 'd_only_steps'):
    if config.loss[field] < 0:
      raise UserError(f'loss.{field}={config.loss[field]}: expected a non-negative integer.')
  models.check_family(config)
  if config.model.color_offset not in completion.COLOR_OFFSETS:
    raise UserError(f"model.color_offset='{config.model.color_offset}': expected one of "
                    f'{completion.COLOR_OFFSETS}.')
  if config.model.offset_sigma <= 0:
    raise UserError(f'model.offset_sigma={config.model.offset_sigma}: expected a positive '
                    'blur radius in pixels, e.g. 8.')
  if config.model.output == 'center' and config.mask.kind != 'center':
    raise UserError(f"model.output='center' predicts only the center square, but "
                    f"mask.kind='{config.mask.kind}': use model.output='full'.")
  if config.mask.kind not in masks.KINDS:
    raise UserError(f"mask.kind='{config.mask.kind}': expected one of {masks.KINDS}.")
  if config.loss.perceptual_weight < 0:
    raise UserError(f'loss.perceptual_weight={config.loss.perceptual_weight}: expected ≥ 0 '
                    '(0 = off).')
  if t.best_metric not in checkpointing.BEST_MODES:
    raise UserError(f"train.best_metric='{t.best_metric}': expected one of "
                    f'{tuple(checkpointing.BEST_MODES)}.')
  models.output_size(config)
  models.compute_dtype(config)
  if config.loss.rec not in losses.RECONSTRUCTION:
    raise UserError(f"loss.rec='{config.loss.rec}': expected one of {losses.RECONSTRUCTION}.")
  if config.loss.gan not in losses.GAN:
    raise UserError(f"loss.gan='{config.loss.gan}': expected one of {losses.GAN}.")
  if config.data.source == 'celeba':
    from ce_jax import celeba  # noqa: PLC0415 (TensorFlow: see train_and_evaluate)

    celeba.check_available(config)


# ----------------------------------------------------------------------------
# train_and_evaluate
# ----------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> GANState:
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the final state."""
  # Imported here, not at the top: both need TensorFlow, which the pure step
  # functions above (and the benchmarks that import them) do not.
  from clu import metric_writers, periodic_actions  # noqa: PLC0415

  from ce_jax import input_pipeline  # noqa: PLC0415

  validate(config)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if jax.process_index() == 0:
    writer.write_hparams(flat_config(config))

  # --- Mesh and shardings.
  mesh = parallel.create_mesh()
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  local_batch = parallel.local_batch_size(config.train.batch_size)

  # --- Input, from where the run stands (bad data paths fail here, before any compiling).
  manager = checkpointing.create_manager(workdir, config.train.keep_checkpoints)
  best_manager = checkpointing.create_best_manager(workdir, config.train.best_metric)
  start = manager.latest_step() or 0
  run_config.check_resume(workdir, config, resuming=start > 0)
  inputs = input_pipeline.create_input(config, local_batch, start_step=start)
  batches = parallel.prefetch(inputs.train, data)

  # --- State: sharded init, then the latest checkpoint if there is one.
  gen, disc = models.create_models(config)
  init = jax.jit(functools.partial(train_state.create, config), out_shardings=repl)
  state = init(jax.random.PRNGKey(config.seed))
  logging.info('Generator: %s params; discriminator: %s params.',
               f'{models.param_count(state.g_params):,}',
               f'{models.param_count(state.d_params):,}')
  state = checkpointing.restore_or_init(manager, state, start or None)
  if start:
    logging.info('Resumed from step %d in %s.', start, manager.directory)

  # --- Frozen networks: VGG16 for the perceptual loss, AlexNet for eval LPIPS.
  vgg = (jax.device_put(perceptual.load('vgg16'), repl)
         if config.loss.perceptual_weight > 0 else None)
  alexnet = jax.device_put(perceptual.load('alexnet'), repl)

  # --- Compiled functions.
  step_fns = {}

  def step_fn(state, batch, step):
    p = phase(config, step)
    if p not in step_fns:  # Compiled when its phase first comes.
      step_fns[p] = jax.jit(
          functools.partial(train_step, config=config, gen=gen, disc=disc, phase=p),
          in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)
    return step_fns[p](state, batch, vgg)

  eval_fn = jax.jit(functools.partial(eval_step, config=config, gen=gen),
                    in_shardings=(repl, data, repl, repl), out_shardings=data)

  # --- Loop.
  t = config.train
  report = periodic_actions.ReportProgress(num_train_steps=t.num_steps, writer=writer,
                                           every_steps=t.log_every)
  preempted = PreemptionFlag()
  history: list[Metrics] = []
  step = saved = start
  try:
    while step < t.num_steps and not preempted.set:
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        state, step_metrics = step_fn(state, next(batches), step)
      step += 1
      history.append(step_metrics)
      report(step)
      last = step == t.num_steps
      saving = step % t.checkpoint_every == 0 or last or preempted.set
      if step % t.log_every == 0 or saving:
        writer.write_scalars(step, check_finite(history, manager, step))
        history = []
      if step % t.eval_every == 0 or last:
        with report.timed('eval'):
          scores, out = evaluate(state, inputs.eval_batch, eval_fn, config, data, alexnet)
        writer.write_scalars(step, scores)
        # Orbax names its multi-host barriers by step: one manager saves at a time.
        manager.wait_until_finished()
        checkpointing.save_if_best(best_manager, state, scores, config.train.best_metric)
      if step % t.sample_every == 0 or last:
        first = {k: v[:local_batch] for k, v in inputs.eval_batch.items()}
        _, out = evaluate(state, first, eval_fn, config, data, alexnet)
        write_samples(workdir, writer, step, out, t.num_samples)
      if saving:
        with report.timed('checkpoint'):
          best_manager.wait_until_finished()
          checkpointing.save(manager, state)
        saved = step
    if preempted.set and saved != step:
      # SIGTERM arrived after this step's save decision.
      if history:
        writer.write_scalars(step, check_finite(history, manager, step))
      best_manager.wait_until_finished()
      checkpointing.save(manager, state)
  finally:
    manager.wait_until_finished()
    best_manager.wait_until_finished()
    preempted.restore()
    writer.flush()
  return state
