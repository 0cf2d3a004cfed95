"""A trained generator, from a training workdir, one of its checkpoints, or an export.

Programs that use a trained model (evaluate, inpaint, export) need only
`--workdir` (the run's `config.json` says what it trained) and restore only the
generator's variables they use (an Orbax partial restore): neither the
discriminator nor the optimizer states are read. An export
(`python -m ce_jax.export`) is a directory with the run's `config.json` and
`generator/`, an Orbax checkpoint of G's inference weights `{'params',
'batch_stats'}` (the EMA ones when the run kept an EMA) and `'step'`, float32
or bfloat16.
"""

import dataclasses
import functools
import importlib
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from ce_jax import checkpointing, completion, run_config, train_state
from ce_jax.errors import UserError

EXPORT_ITEM = 'generator'
Variables = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Generator:
  """What a program needs of a trained run."""

  config: ml_collections.ConfigDict
  # G's inference variables `{'params', 'batch_stats'}`, float32 on the first
  # device: the EMA weights when the run kept them (`train.ema_decay > 0`).
  variables: Variables
  step: int
  path: str  # the checkpoint directory, or the export's generator/
  home: str  # the workdir or export directory


# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------


def abstract_state(config: ml_collections.ConfigDict) -> train_state.GANState:
  """The state `config` trains, as shapes on the first device (nothing allocated)."""
  shapes = jax.eval_shape(functools.partial(train_state.create, config), jax.random.PRNGKey(0))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)


def generator_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The `GANState` fields inference uses: G's EMA when the run keeps one, else the live G."""
  return ('g_ema',) if config.train.ema_decay > 0 else ('g_params', 'g_batch_stats')


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {jax.tree_util.keystr(p, simple=True, separator='/'): tuple(x.shape) for p, x in leaves}


def _get(tree: Any, key: str) -> Any:
  return tree[key] if hasattr(tree, 'keys') else getattr(tree, key)


def generator_shapes(state: Any) -> dict[str, tuple[int, ...]]:
  """G's parameter shapes from a state or a checkpoint's metadata tree."""
  return _shapes({'g_params': _get(state, 'g_params')})


def matching_configs(shapes: dict[str, tuple[int, ...]]) -> list[str]:
  """The files in the repository's `configs/` whose generators have exactly these shapes.

  Empty when `configs` is not importable (the program runs elsewhere).
  """
  try:
    import configs  # noqa: PLC0415 (only needed to explain a mismatch)
  except ImportError:
    return []
  found = []
  for name in sorted(os.listdir(os.path.dirname(configs.__file__))):
    if not name.endswith('.py') or name.startswith('_'):
      continue
    try:
      config = importlib.import_module(f'configs.{name[:-3]}').get_config()
      if generator_shapes(abstract_state(config)) == shapes:
        found.append(f'configs/{name}')
    except Exception:  # noqa: BLE001 (a config that does not build matches nothing)
      continue
  return found


def _mismatch(stored: dict, wanted: dict) -> str:
  """A short description of the first difference between two shape dicts."""
  for k in sorted(set(stored) | set(wanted)):
    if stored.get(k) != wanted.get(k):
      return (f'{k} is {stored.get(k, "absent")} in the checkpoint but '
              f'{wanted.get(k, "absent")} under this config')
  return 'the parameter shapes agree'


def check_compatible(path: epath.Path, abstract: train_state.GANState, saved: bool) -> None:
  """Raises `UserError` if the checkpoint's generator has other shapes than `abstract`'s.

  `saved`: whether the run's `config.json` exists (then the fix is to leave
  out `--config`); else the message names the matching configs/ files.
  """
  try:
    stored = generator_shapes(ocp.PyTreeCheckpointHandler().metadata(path / 'default').tree)
  except Exception as e:  # noqa: BLE001 (unreadable metadata)
    raise UserError(f'checkpoint {path} could not be read: {e}') from e
  wanted = generator_shapes(abstract)
  if stored == wanted:
    return
  if saved:
    needs = "the run's config.json fits it: leave out --config"
  else:
    matches = matching_configs(stored)
    needs = (f'it was trained with {" or ".join(matches)}' if matches else
             'no file in configs/ matches it: pass the config (and overrides) it was trained with')
  raise UserError(f'checkpoint {path} does not fit --config ({_mismatch(stored, wanted)}); '
                  f'{needs}.')


# ----------------------------------------------------------------------------
# Restoring
# ----------------------------------------------------------------------------


def resolve(workdir: str | None, checkpoint: str) -> tuple[epath.Path, bool, int | None]:
  """(workdir, best?, step) for `--checkpoint` = latest | best | <step> | <step directory>."""
  if checkpoint not in ('latest', 'best') and not checkpoint.isdigit():
    path = checkpointing.workdir_path(checkpoint)
    if not (path.name.isdigit() and path.parent.name in ('checkpoints', 'best')):
      raise UserError(f"--checkpoint='{checkpoint}': expected latest, best, a step number or a "
                      'checkpoint directory such as runs/default/checkpoints/1500.')
    if not path.exists():
      raise UserError(f"--checkpoint='{checkpoint}' does not exist.")
    return path.parent.parent, path.parent.name == 'best', int(path.name)
  if not workdir:
    raise UserError(f'--checkpoint={checkpoint} needs --workdir (or pass a checkpoint directory).')
  step = int(checkpoint) if checkpoint.isdigit() else None
  return checkpointing.workdir_path(workdir), checkpoint == 'best', step


def is_export(directory: str | None) -> bool:
  return bool(directory) and (checkpointing.workdir_path(directory) / EXPORT_ITEM).exists()


def load_fields(config: ml_collections.ConfigDict | None, workdir: str | None,
                checkpoint: str = 'latest'
                ) -> tuple[ml_collections.ConfigDict, dict[str, Any], int, str]:
  """(config, `{field: value}` of G's `generator_fields`, step, checkpoint directory).

  `config` None means the run's saved one. Raises `UserError` when there is no
  such checkpoint or when its generator does not fit `config`.
  """
  root, best, step = resolve(workdir, checkpoint)
  config = run_config.for_run(root, config)
  saved = run_config.path(root).exists()
  sub = 'best' if best else 'checkpoints'
  if not (root / sub).exists():
    extra = (' (written by training runs that evaluated at least once); '
             'try --checkpoint=latest') if best else ''
    raise UserError(f'--workdir={root} holds no {sub}/ directory{extra}.')
  manager = (checkpointing.create_best_manager(str(root)) if best else
             checkpointing.create_manager(str(root), keep=1_000_000))
  with manager:
    steps = manager.all_steps()
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
  if step is None or step not in steps:
    raise UserError(f'no checkpoint {"" if step is None else step} in {root / sub}; '
                    f'available steps: {sorted(steps) or "none"}.')
  path = root / sub / str(step)
  abstract = abstract_state(config)
  check_compatible(path, abstract, saved)
  fields = {k: getattr(abstract, k) for k in generator_fields(config)}
  try:
    restored = checkpointing.restore_tree(path / 'default', fields)
  except Exception as e:  # noqa: BLE001 (any storage error: name the checkpoint)
    raise UserError(f'checkpoint {path} could not be restored: {e}') from e
  return config, restored, step, str(path)


def _load_export(config: ml_collections.ConfigDict | None, directory: str,
                 checkpoint: str) -> Generator:
  root = checkpointing.workdir_path(directory)
  if checkpoint != 'latest':
    raise UserError(f'--checkpoint={checkpoint}: {root} is an export, which holds one '
                    'generator; leave out --checkpoint.')
  config = run_config.for_run(root, config)
  path = root / EXPORT_ITEM
  try:
    stored = ocp.PyTreeCheckpointHandler().metadata(path).tree
  except Exception as e:  # noqa: BLE001 (unreadable metadata)
    raise UserError(f'export {root} could not be read: {e}') from e
  abstract = abstract_state(config)
  wanted = {'params': abstract.g_params, 'batch_stats': abstract.g_batch_stats}
  if _shapes(stored['params']) != _shapes(wanted['params']):
    raise UserError(f'export {root} does not fit --config '
                    f'({_mismatch(_shapes(stored["params"]), _shapes(wanted["params"]))}).')
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  item = {**wanted, 'step': jax.ShapeDtypeStruct((), jnp.int32, sharding=device)}
  try:
    restored = checkpointing.restore_tree(path, item)  # cast to the model's float32 on the way
  except Exception as e:  # noqa: BLE001
    raise UserError(f'export {root} could not be restored: {e}') from e
  variables = {k: restored[k] for k in ('params', 'batch_stats')}
  return Generator(config, variables, int(restored['step']), str(path), str(root))


def load(config: ml_collections.ConfigDict | None, workdir: str | None,
         checkpoint: str = 'latest') -> Generator:
  """The generator of an export directory, or of a workdir's checkpoint (`--checkpoint`)."""
  if is_export(workdir):
    return _load_export(config, workdir, checkpoint)
  config, fields, step, path = load_fields(config, workdir, checkpoint)
  return Generator(config, completion.generator_variables(fields, config), step, path,
                   str(epath.Path(path).parent.parent))
