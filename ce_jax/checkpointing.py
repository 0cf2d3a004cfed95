"""Orbax checkpoints of the GAN state: the last N, and the best by eval hole PSNR."""

import math
import os

import jax
import orbax.checkpoint as ocp
from etils import epath

from ce_jax.train_state import GANState


def workdir_path(workdir: str) -> epath.Path:
  """The workdir, absolute for local paths (Orbax restores need that); gs:// as is."""
  return epath.Path(workdir if '://' in str(workdir) else os.path.abspath(workdir))


def create_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  """Manager of `<workdir>/checkpoints`, keeping the last `keep` (async saves)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(workdir_path(workdir) / 'checkpoints', options=options)


BEST_METRIC = 'eval_hole_psnr'


def create_best_manager(workdir: str) -> ocp.CheckpointManager:
  """Manager of `<workdir>/best`: the one checkpoint with the highest `BEST_METRIC`."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=_best_value,
                                         best_mode='max', enable_async_checkpointing=True)
  return ocp.CheckpointManager(workdir_path(workdir) / 'best', options=options)


def _best_value(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


def save_if_best(manager: ocp.CheckpointManager, state: GANState, value: float) -> bool:
  """Saves `state` into the best manager when `value` (eval hole PSNR) beats the kept one."""
  manager.wait_until_finished()  # An async save's metrics are readable once it is done.
  best = manager.best_step()
  if not math.isfinite(value) or (best is not None and
                                  _best_value(manager.metrics(best)) >= value):
    return False
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave(state), metrics={BEST_METRIC: float(value)},
               force=True)
  return True


def save(manager: ocp.CheckpointManager, state: GANState) -> None:
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_or_init(manager: ocp.CheckpointManager, state: GANState,
                    step: int | None = None) -> GANState:
  """The checkpoint at `step` (default: latest) in the shape and sharding of `state`.

  Returns `state` itself when the directory holds no checkpoint.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return state
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))
