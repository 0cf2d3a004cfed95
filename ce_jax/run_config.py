"""The resolved config a workdir was trained with, saved beside its checkpoints.

`<workdir>/config.json` holds every field with every override applied, so a
run resumes, and programs that take a run (evaluate, inpaint, export) load it,
from the workdir alone. JSON has no tuples: sequences come back as tuples, the
form the config files write them in.
"""

import json
from typing import Any

import jax
import ml_collections
from absl import logging
from etils import epath

from ce_jax.errors import UserError

FILENAME = 'config.json'

# Fields a resumed run may change: schedules, logging, learning rates, loss
# weights, compute choices that leave every parameter shape as it was. Any
# other change (the model's shapes, the data or mask stream, the batch, the
# seed) would silently mix two runs in one workdir.
RESUMABLE = (
    'train.num_steps', 'train.log_every', 'train.eval_every', 'train.sample_every',
    'train.checkpoint_every', 'train.keep_checkpoints', 'train.num_samples',
    'loss.', 'optim.d_lr', 'optim.g_lr', 'optim.final_lr_fraction',
    'model.upsample', 'model.conv_rewrites', 'model.dtype',
    'data.prefetch', 'data.celeba_download', 'data.celeba_dir',
    'data.tfds_data_dir', 'data.photo_cache', 'mask.eval_seed',
)

# Fields added after runs were saved, with the value that reproduces those runs:
# a saved config without them gets them on `load`.
ADDED = {'optim.lr_schedule': 'constant', 'optim.final_lr_fraction': 0.0,
         'model.color_offset': 'none', 'model.offset_sigma': 8.0, 'model.skips': False}


def _upgrade(config: ml_collections.ConfigDict) -> None:
  """Rewrites fields that were replaced or added for one setting.

  `optim.g_lr_multiplier` became `optim.g_lr`; runs on the photo corpus
  saved before `data.add_embedded` trained on the corpus alone.
  """
  data = config.get('data')
  if (isinstance(data, ml_collections.ConfigDict) and data.get('source') == 'photos'
      and 'add_embedded' not in data):
    data.add_embedded = False
  optim = config.get('optim')
  if isinstance(optim, ml_collections.ConfigDict) and 'g_lr_multiplier' in optim:
    multiplier = optim.g_lr_multiplier
    del optim['g_lr_multiplier']
    if 'g_lr' not in optim:
      optim.g_lr = optim.d_lr * multiplier


def path(directory: str | epath.PathLike) -> epath.Path:
  return epath.Path(directory) / FILENAME


def flat(config: ml_collections.ConfigDict | dict, prefix: str = '') -> dict[str, Any]:
  """`{'train.batch_size': 16, ...}`, sequences as tuples."""
  out = {}
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict | dict):
      out.update(flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = _tuples(v)
  return out


def _tuples(value: Any) -> Any:
  if isinstance(value, list | tuple):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True) + '\n'


def from_json(text: str, source: str) -> ml_collections.ConfigDict:
  """The config of a `config.json` text; `source` names the file in errors."""
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise UserError(f'{source} is not a readable config ({e}).') from e
  if not isinstance(data, dict):
    raise UserError(f'{source}: expected a JSON object of config fields.')
  return ml_collections.ConfigDict(_tuples(data))


def save(config: ml_collections.ConfigDict, directory: str | epath.PathLike) -> None:
  """Writes `<directory>/config.json` (process 0 only)."""
  if jax.process_index() == 0:
    target = path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_json(config))


def load(directory: str | epath.PathLike) -> ml_collections.ConfigDict | None:
  """The config saved in `directory`, or None when it holds none."""
  target = path(directory)
  if not target.exists():
    return None
  config = from_json(target.read_text(), str(target))
  for field, value in ADDED.items():
    *parents, name = field.split('.')
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, ml_collections.ConfigDict) else None
    if isinstance(node, ml_collections.ConfigDict) and name not in node:
      node[name] = value
  _upgrade(config)
  return config


def differences(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict
                ) -> dict[str, tuple[Any, Any]]:
  """`{field: (old value, new value)}` for every field that differs (absent: `None`)."""
  a, b = flat(old), flat(new)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def describe(changes: dict[str, tuple[Any, Any]]) -> str:
  return ', '.join(f'{k} {a!r} → {b!r}' for k, (a, b) in changes.items())


def resumable(field: str) -> bool:
  return any(field == r or (r.endswith('.') and field.startswith(r)) for r in RESUMABLE)


def check_resume(workdir: str, config: ml_collections.ConfigDict, resuming: bool) -> None:
  """Saves `config` in `workdir`, or checks it against the saved one on a resume.

  A resumed run may change the `RESUMABLE` fields (logged in one line); any
  other change raises `UserError` naming the fields. A field the saved config
  lacks (written by an older version) counts as unchanged. A workdir with
  checkpoints but no saved config gets the current one.
  """
  saved = load(workdir)
  if saved is None or not resuming:
    if resuming:
      logging.info('%s has checkpoints but no %s: saving this run\'s config.', workdir, FILENAME)
    save(config, workdir)
    return
  changes = {k: v for k, v in differences(saved, config).items() if v[0] is not None}
  fixed = {k: v for k, v in changes.items() if not resumable(k)}
  if fixed:
    raise UserError(
        f'--workdir={workdir} was trained with another config ({path(workdir)}): '
        f'{describe(fixed)}. These fields change the model or its data; resume with the saved '
        'values or start a new workdir.')
  if changes:
    logging.info('Resuming with changed config fields: %s.', describe(changes))
  save(config, workdir)


def for_run(directory: str | epath.PathLike, config: ml_collections.ConfigDict | None
            ) -> ml_collections.ConfigDict:
  """The config of the run (or export) in `directory`; `config` (`--config`) wins if given.

  Where `config` differs from the saved one, one warning line names the fields.
  The result has passed `config_checks.check`.
  """
  from ce_jax import config_checks  # noqa: PLC0415 (it imports the models; this module does not)

  saved = load(directory)
  if config is None:
    if saved is None:
      raise UserError(f'{directory} holds no {FILENAME} (runs before it was saved lack one): '
                      'pass --config and the --config.* overrides the run was trained with.')
    config = saved
  elif saved is not None:
    changes = differences(saved, config)
    if changes:
      logging.warning('--config differs from %s in %s; using --config.', path(directory),
                      describe(changes))
  config_checks.check(config)
  return config
