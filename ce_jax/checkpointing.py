"""Orbax checkpoints of the GAN state, behind three functions."""

import jax
import orbax.checkpoint as ocp
from etils import epath

from ce_jax.train_state import GANState


def create_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  """Manager of `<workdir>/checkpoints`, keeping the last `keep` (async saves)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(epath.Path(workdir) / 'checkpoints', options=options)


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
