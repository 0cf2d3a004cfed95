"""Training: the pure step (`d_update`, then `g_update`) and the loop around it.

mesh → input → state → every phase's step compiled → loop with logging, eval,
samples, checkpoints.
"""

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
  config_checks,
  held_out,
  losses,
  masks,
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


def g_forward(params: Any, batch_stats: Any, x_in: jax.Array, colour: jax.Array, *,
              config: ml_collections.ConfigDict, gen: nn.Module) -> tuple[Any, Any]:
  """G's training forward pass: ((output, sown stages), new batch statistics).

  The output is `completion.generator_output` of G's `[B, out, out, 3]`;
  sown 'intermediates' (DeepFill v2's coarse image) are outputs too, mapped
  the same way: each gets L_rec.
  """
  variables = {'params': params, 'batch_stats': batch_stats}
  out, upd = gen.apply(variables, x_in, train=True, mutable=['batch_stats', 'intermediates'])
  outputs = jax.tree.map(lambda y: completion.generator_output(config, y, colour),
                         (out, upd.get('intermediates', {})))
  return outputs, upd.get('batch_stats', {})


def d_apply(disc: nn.Module, params: Any, batch_stats: Any, x: jax.Array,
            mask: jax.Array) -> tuple[jax.Array, Any]:
  """D's logits `[B, ...]` float32 in training mode, and its new batch statistics."""
  logit, upd = disc.apply({'params': params, 'batch_stats': batch_stats}, x, mask, train=True,
                          mutable=['batch_stats'])
  return logit, upd.get('batch_stats', {})


def d_update(state: GANState, image: jax.Array, g_out: jax.Array, mask: jax.Array, *,
             config: ml_collections.ConfigDict, disc: nn.Module) -> tuple[GANState, Metrics]:
  """One step of D on real `image` against G's `g_out` (held fixed) (pure).

  Args:
    image: `[B, H, W, 3]` float32 in [-1, 1].
    g_out: G's output `[B, out, out, 3]` float32 in [-1, 1].
    mask: `[B, H, W, 1]` float32 in {0, 1}, 1 = missing.
  Returns:
    The state with D's params, batch statistics and optimizer state updated,
    and `d_loss`, `d_real`, `d_fake` (mean probabilities), `d_grad_norm`, `d_lr`.
  """
  real, fake, d_mask = _disc_views(config, image, g_out, mask)

  def loss_fn(params):
    real_logit, stats = d_apply(disc, params, state.d_batch_stats, real, d_mask)
    fake_logit, stats = d_apply(disc, params, stats, jax.lax.stop_gradient(fake), d_mask)
    loss = losses.discriminator_loss(real_logit=real_logit, fake_logit=fake_logit,
                                     kind=config.loss.gan)
    return loss, (stats, real_logit, fake_logit)

  (loss, (stats, real_logit, fake_logit)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.d_params)
  lr = train_state.current_lr(state.d_opt_state, train_state.learning_rate(config, 'd_lr'))
  params, opt_state, grad_norm, _ = apply_gradients(state.d_tx, state.d_params,
                                                    state.d_opt_state, grads)
  state = state.replace(d_params=params, d_batch_stats=stats, d_opt_state=opt_state)
  return state, {'d_loss': loss, 'd_real': jnp.mean(jax.nn.sigmoid(real_logit)),
                 'd_fake': jnp.mean(jax.nn.sigmoid(fake_logit)), 'd_grad_norm': grad_norm,
                 'd_lr': lr}


def g_loss(g_outputs: tuple[jax.Array, Any], image: jax.Array, m: masks.Masks,
           perceptual_params: perceptual.Params | None, *, config: ml_collections.ConfigDict,
           disc: nn.Module | None, d_params: Any, d_batch_stats: Any
           ) -> tuple[jax.Array, tuple[Metrics, Any]]:
  """G's loss given its outputs (pure): what `jax.value_and_grad` differentiates.

  Without `disc` (the 'rec' phase): L_rec over the output and every sown
  stage; with it ('joint'): `rec_weight·L_rec + adv_weight·L_adv` against D
  at `d_params` (the two weights balance the terms, so a phase without
  L_adv has no use for them).
  Either way plus `loss.perceptual_weight` × the VGG16 feature distance.

  Returns:
    (loss `[]`, (its terms, D's batch statistics after G's pass)).
  """
  g_out, stages = g_outputs
  if config.model.output == 'center':
    corner, side = completion.center_box(config)
    target, weight = completion.crop(image, corner, side), completion.crop(m.weight, corner, side)
  else:
    target, weight = image, m.weight
  rec = sum(losses.reconstruction_loss(target=target, prediction=y, weight=weight,
                                       kind=config.loss.rec)
            for y in [g_out, *jax.tree.leaves(stages)])
  terms = {'rec_loss': rec}
  if disc is None:
    total = rec
  else:
    _, fake, d_mask = _disc_views(config, image, g_out, m.mask)
    logit, d_batch_stats = d_apply(disc, d_params, d_batch_stats, fake, d_mask)
    terms['adv_loss'] = losses.generator_adversarial_loss(fake_logit=logit, kind=config.loss.gan)
    total = losses.joint_loss(rec=rec, adv=terms['adv_loss'], rec_weight=config.loss.rec_weight,
                              adv_weight=config.loss.adv_weight)
  if config.loss.perceptual_weight > 0:
    terms['perceptual_loss'] = losses.perceptual_loss(
        features=functools.partial(perceptual.features, perceptual_params), target=target,
        prediction=g_out)
    total = total + config.loss.perceptual_weight * terms['perceptual_loss']
  return total, (terms, d_batch_stats)


def g_update(state: GANState, image: jax.Array, m: masks.Masks,
             g_outputs: tuple[jax.Array, Any], g_vjp: Any, g_batch_stats: Any,
             perceptual_params: perceptual.Params | None, *, config: ml_collections.ConfigDict,
             disc: nn.Module | None) -> tuple[GANState, Metrics]:
  """One step of G from its forward pass `g_outputs` and that pass's `jax.vjp` (pure).

  The loss (`g_loss`, against D when `disc` is given) is differentiated with
  respect to G's outputs, and `g_vjp` carries that back to G's params: one
  forward pass of G serves both D's and G's updates.

  Returns:
    The state with G's params, batch statistics, optimizer state and EMA (and
    D's batch statistics) updated, and `g_loss`, its terms, `g_grad_norm`,
    `g_param_norm`, `g_lr`.
  """
  (loss, (terms, d_batch_stats)), out_grads = jax.value_and_grad(g_loss, has_aux=True)(
      g_outputs, image, m, perceptual_params, config=config, disc=disc,
      d_params=state.d_params, d_batch_stats=state.d_batch_stats)
  (grads,) = g_vjp(out_grads)
  lr = train_state.current_lr(state.g_opt_state, train_state.learning_rate(config, 'g_lr'))
  params, opt_state, grad_norm, param_norm = apply_gradients(
      state.g_tx, state.g_params, state.g_opt_state, grads)
  g_ema = ema_update(config, state.g_ema, {'params': params, 'batch_stats': g_batch_stats},
                     state.step)
  state = state.replace(g_params=params, g_batch_stats=g_batch_stats, g_opt_state=opt_state,
                        g_ema=g_ema, d_batch_stats=d_batch_stats)
  return state, {'g_loss': loss, **terms, 'g_grad_norm': grad_norm, 'g_param_norm': param_norm,
                 'g_lr': lr}


def train_step(state: GANState, batch: dict[str, jax.Array],
               perceptual_params: perceptual.Params | None = None, *,
               config: ml_collections.ConfigDict, gen: nn.Module, disc: nn.Module | None,
               phase: str = 'joint') -> tuple[GANState, Metrics]:
  """One training step of `phase` (`train_state.phase_at`) (pure).

  Masks from the step's key, G's forward pass once (through `jax.vjp`), then
  `d_update` ('d', 'joint'), then `g_update` ('rec', 'joint') against the
  updated D.

  Args:
    state: the GAN state.
    batch: `{'image': [B, H, W, 3] float32 in [-1, 1]}` (and optionally
      `landmarks`, `mask`, `weight`).
    perceptual_params: frozen VGG16 LPIPS params (`perceptual.load('vgg16')`)
      when `loss.perceptual_weight` > 0.
    disc: D; None when the schedule never runs it (then only 'rec' steps).
    phase: 'rec' (G on L_rec alone; D is not run), 'd' (D alone; G frozen) or
      'joint'.
  Returns:
    The new state (step + 1) and scalar metrics: the losses the phase
    computes (`rec_loss` sums L_rec over G's output and every image it sows
    under 'intermediates', e.g. DeepFill v2's coarse stage), gradient norms
    and the learning rates used.
  """
  if phase not in train_state.PHASES:
    raise ValueError(f'phase={phase!r}: expected one of {train_state.PHASES}.')
  key = jax.random.fold_in(state.rng, state.step)
  image = batch['image']
  m = masks.from_config(config.mask, key, batch, training=True)
  colour = completion.color_offset(config, image, m.mask)
  x_in = completion.generator_input(config, image, m.mask, colour)
  forward = functools.partial(g_forward, batch_stats=state.g_batch_stats, x_in=x_in,
                              colour=colour, config=config, gen=gen)
  g_outputs, g_vjp, g_batch_stats = jax.vjp(forward, state.g_params, has_aux=True)

  step_metrics = {}
  if phase in ('d', 'joint'):
    state, d_metrics = d_update(state, image, g_outputs[0], m.mask, config=config, disc=disc)
    step_metrics.update(d_metrics)
  if phase in ('rec', 'joint'):
    state, g_metrics = g_update(state, image, m, g_outputs, g_vjp, g_batch_stats,
                                perceptual_params, config=config,
                                disc=disc if phase == 'joint' else None)
    step_metrics.update(g_metrics)
  return state.replace(step=state.step + 1), step_metrics


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
  for i, chunk in enumerate(held_out.eval_chunks(examples, local, num_chunks)):
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


# ----------------------------------------------------------------------------
# train_and_evaluate
# ----------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> GANState:
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the final state."""
  # Imported here, not at the top: both need TensorFlow, which the pure step
  # functions above (and the benchmarks that import them) do not.
  from clu import metric_writers, periodic_actions  # noqa: PLC0415

  from ce_jax import input_pipeline  # noqa: PLC0415

  config_checks.check(config)
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
  gen = models.create_generator(config)
  disc = models.create_discriminator(config) if train_state.uses_discriminator(config) else None
  init = jax.jit(functools.partial(train_state.create, config), out_shardings=repl)
  state = init(jax.random.PRNGKey(config.seed))
  if disc is None:
    logging.info('Reconstruction only: the schedule never runs D, which is not built. '
                 'Generator: %s params.', f'{models.param_count(state.g_params):,}')
  else:
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

  # --- Compiled functions: every phase the remaining steps run, before step 0.
  batch = next(batches)
  step_fns = {}
  for p in train_state.phases(config, start):
    logging.info("Compiling the '%s' step.", p)
    step_fns[p] = jax.jit(
        functools.partial(train_step, config=config, gen=gen, disc=disc, phase=p),
        in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0,
    ).lower(state, batch, vgg).compile()

  def eval_variables_step(state, batch, key, lpips_params):
    variables = completion.generator_variables(state, config)
    return held_out.eval_step(variables, batch, key, lpips_params, config=config, gen=gen)

  eval_fn = jax.jit(eval_variables_step, in_shardings=(repl, data, repl, repl),
                    out_shardings=data)

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
        batch = batch if batch is not None else next(batches)
        state, step_metrics = step_fns[train_state.phase_at(config, step)](state, batch, vgg)
        batch = None
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
