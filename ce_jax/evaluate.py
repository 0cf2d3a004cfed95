"""Held-out metrics of a trained model next to classical baselines.

  python -m ce_jax.evaluate --config=configs/default.py --workdir=runs/default \
      [--checkpoint=latest|best|<step>|<checkpoint directory>] [--nolpips] \
      [--fid_weights=inception_fid.npz]

Restores the checkpoint, completes the config's fixed eval crops under masks
drawn from `mask.eval_seed` (exactly the images and masks of the training
run's `eval_hole_psnr`), fills the same holes with OpenCV Telea, OpenCV
Navier–Stokes and the mean pixel, and writes to the workdir (or `--output_dir`):

  eval_<step>.json   mean of every per-image metric, per method (and per hole-area bin)
  eval_<step>.md     the same as Markdown tables (also printed)
  eval_<step>.png    rows of masked input | model | Telea | Navier–Stokes | original
"""

import functools
import importlib
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from etils import epath

from ce_jax import (
  baselines,
  checkpointing,
  cli,
  fid,
  input_pipeline,
  metrics,
  models,
  perceptual,
  train,
  train_state,
  visualize,
)
from ce_jax.errors import UserError
from ce_jax.train_state import GANState

MODEL = 'context_encoder'
LABELS = {MODEL: 'Context Encoder', 'telea': 'OpenCV Telea',
          'navier_stokes': 'OpenCV Navier–Stokes', 'mean_fill': 'mean-pixel fill'}
# (metric, header, scale, decimals)
COLUMNS = (('hole_psnr', 'hole PSNR (dB) ↑', 1, 2), ('image_psnr', 'image PSNR (dB) ↑', 1, 2),
           ('hole_ssim', 'hole SSIM ↑', 1, 3), ('image_ssim', 'image SSIM ↑', 1, 3),
           ('hole_l1', 'hole L1 (%) ↓', 100, 2), ('image_l1', 'image L1 (%) ↓', 100, 2),
           ('hole_l2', 'hole L2 (%) ↓', 100, 2), ('image_l2', 'image L2 (%) ↓', 100, 2),
           ('hole_lpips', 'hole LPIPS ↓', 1, 3), ('image_lpips', 'image LPIPS ↓', 1, 3),
           ('image_fid', 'image FID ↓', 1, 2))
AREA_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)


# ----------------------------------------------------------------------------
# Checkpoint
# ----------------------------------------------------------------------------


def abstract_state(config: ml_collections.ConfigDict) -> GANState:
  """The state `config` trains, as shapes on the first device (nothing allocated)."""
  train.validate(config)
  shapes = jax.eval_shape(functools.partial(train_state.create, config), jax.random.PRNGKey(0))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)


def _param_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {jax.tree_util.keystr(p, simple=True, separator='/'): tuple(x.shape) for p, x in leaves}


def _model_shapes(state: Any) -> dict[str, tuple[int, ...]]:
  """Parameter shapes of G and D from a state or a checkpoint's metadata tree."""
  get = (lambda k: state[k]) if hasattr(state, 'keys') else (lambda k: getattr(state, k))
  return _param_shapes({'g_params': get('g_params'), 'd_params': get('d_params')})


def matching_configs(shapes: dict[str, tuple[int, ...]]) -> list[str]:
  """The files in `configs/` whose models have exactly these parameter shapes."""
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
      if _model_shapes(abstract_state(config)) == shapes:
        found.append(f'configs/{name}')
    except Exception:  # noqa: BLE001 (a config that does not build matches nothing)
      continue
  return found


def _mismatch(stored: dict, wanted: dict) -> str:
  """A short description of the first difference between two shape dicts."""
  for k in sorted(set(stored) | set(wanted), key=lambda k: (not k.startswith('g_'), k)):
    if stored.get(k) != wanted.get(k):
      return (f'{k} is {stored.get(k, "absent")} in the checkpoint but '
              f'{wanted.get(k, "absent")} under this config')
  return 'the parameter shapes agree'


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


def load_state(config: ml_collections.ConfigDict, workdir: str | None,
               checkpoint: str = 'latest') -> tuple[GANState, int, str]:
  """Restores a checkpoint for `config`: (state on the first device, step, its directory).

  Raises `UserError` when there is no such checkpoint or when it was trained
  with a model of other shapes (naming the configs/ files that match it).
  """
  root, best, step = resolve(workdir, checkpoint)
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
    check_compatible(path, abstract)
    try:
      state = checkpointing.restore_or_init(manager, abstract, step)
    except Exception as e:  # noqa: BLE001 (any storage error: name the checkpoint)
      raise UserError(f'checkpoint {path} could not be restored: {e}') from e
  return state, step, str(path)


def check_compatible(path: epath.Path, abstract: GANState) -> None:
  """Raises `UserError` naming the matching configs/ files if the model shapes differ."""
  import orbax.checkpoint as ocp  # noqa: PLC0415

  try:
    stored = _model_shapes(ocp.PyTreeCheckpointHandler().metadata(path / 'default').tree)
  except Exception as e:  # noqa: BLE001 (unreadable metadata)
    raise UserError(f'checkpoint {path} could not be read: {e}') from e
  wanted = _model_shapes(abstract)
  if stored == wanted:
    return
  matches = matching_configs(stored)
  needs = (f'it was trained with {" or ".join(matches)}' if matches else
           'no file in configs/ matches it: pass the config (and overrides) it was trained with')
  raise UserError(f'checkpoint {path} does not fit --config ({_mismatch(stored, wanted)}); '
                  f'{needs}.')


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------


def eval_examples(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The training run's fixed eval examples, e.g. `{'image': [N, S, S, 3] float32 in [-1, 1]}`.

  Whatever else the source provides (e.g. `landmarks` for mask kinds that use them) comes along.
  """
  return input_pipeline.create_input(config, config.train.batch_size).eval_batch


def complete_all(state: GANState, config: ml_collections.ConfigDict,
                 examples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Completions by the model and every baseline on the same images and masks.

  Returns `{'image', 'mask', 'masked', <method>: ...}`, each `[N, S, S, ·]`
  float32 in [-1, 1] (`mask` in {0, 1}), methods in `LABELS` order.
  """
  gen, _ = models.create_models(config)
  eval_fn = jax.jit(functools.partial(train.eval_step, config=config, gen=gen))
  key = jax.random.PRNGKey(config.mask.eval_seed)
  parts: dict[str, list[np.ndarray]] = {}
  for i, chunk in enumerate(train.eval_chunks(examples, config.train.batch_size)):
    out = jax.device_get(eval_fn(state, chunk, jax.random.fold_in(key, i)))
    valid = chunk['valid']
    for name, value in (('image', chunk['image']), ('mask', out['mask']),
                        ('masked', out['masked']), (MODEL, out['completion'])):
      parts.setdefault(name, []).append(np.asarray(value)[valid])
  done = {k: np.concatenate(v) for k, v in parts.items()}
  for name, fn in baselines.methods(config.data.mean_pixel).items():
    done[name] = baselines.complete(fn, done['image'], done['mask'])
  return done


def score(done: dict[str, np.ndarray], batch_size: int = 64,
          lpips_params: perceptual.Params | None = None) -> dict[str, dict[str, np.ndarray]]:
  """Per-image metrics `{method: {metric: [N]}}` (and `hole_fraction`) on images in [0, 1].

  LPIPS too when given `lpips_params` (`perceptual.load('alexnet')`).
  """
  fn = jax.jit(metrics.all_metrics)
  target, mask = metrics.to_unit(done['image']), done['mask']
  out = {}
  for method in LABELS:
    pred = metrics.to_unit(done[method])
    chunks = [jax.device_get(fn(pred[i:i + batch_size], target[i:i + batch_size],
                                mask[i:i + batch_size]))
              for i in range(0, len(pred), batch_size)]
    out[method] = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  if lpips_params is not None:
    # Every method at once: the originals' features serve all of them.
    lpips_fn = jax.jit(metrics.lpips_metrics)
    preds = np.stack([metrics.to_unit(done[m]) for m in LABELS])
    chunks = [jax.device_get(lpips_fn(lpips_params, preds[:, i:i + batch_size],
                                      target[i:i + batch_size], mask[i:i + batch_size]))
              for i in range(0, len(target), batch_size)]
    for name in metrics.LPIPS_NAMES:
      values = np.concatenate([c[name] for c in chunks], axis=1)
      for j, method in enumerate(LABELS):
        out[method][name] = values[j]
  return out


def fid_scores(done: dict[str, np.ndarray], model: fid.InceptionV3,
               variables: fid.Variables) -> dict[str, float]:
  """FID of each method's completed images against the originals `{method: FID}`.

  `model`, `variables`: `fid.load(...)` of an Inception-v3 weights file.
  """
  real = fid.all_features(model, variables, done['image'])
  return {m: fid.fid(real, fid.all_features(model, variables, done[m])) for m in LABELS}


def summarise(per_image: dict[str, dict[str, np.ndarray]], by_area: bool) -> dict[str, Any]:
  """Means over images per method, and per hole-area bin when `by_area`."""
  def means(select):
    names = metrics.NAMES + metrics.LPIPS_NAMES
    return {m: {k: float(np.mean(v[select])) for k, v in vals.items() if k in names}
            for m, vals in per_image.items()}

  fraction = per_image[MODEL]['hole_fraction']
  out = {'num_images': len(fraction), 'mean_hole_fraction': float(np.mean(fraction)),
         'methods': means(slice(None))}
  if by_area:
    out['area_bins'] = []
    for lo, hi in zip(AREA_BINS[:-1], AREA_BINS[1:], strict=True):
      select = (fraction > lo) & (fraction <= hi)
      if select.any():
        out['area_bins'].append({'min': lo, 'max': hi, 'num_images': int(select.sum()),
                                 'methods': means(select)})
  return out


def markdown_table(methods: dict[str, dict[str, float]], step: int) -> str:
  """One row per method; L1 and L2 (mean squared error) in % of the [0, 1] range.

  Only the columns whose metrics the values have (LPIPS and FID are optional).
  """
  columns = [c for c in COLUMNS if c[0] in next(iter(methods.values()))]
  lines = ['| method | ' + ' | '.join(c[1] for c in columns) + ' |',
           '| --- |' + ' ---: |' * len(columns)]
  for method, values in methods.items():
    label = f'{LABELS[method]} (step {step})' if method == MODEL else LABELS[method]
    cells = [f'{values[k] * scale:.{digits}f}' for k, _, scale, digits in columns]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def markdown(summary: dict[str, Any]) -> str:
  """The whole report: a caption, the main table and the per-area tables."""
  size = summary['image_size']
  text = [f'{summary["num_images"]} held-out {size}×{size} crops, mask.kind='
          f'{summary["mask_kind"]} (seed {summary["mask_seed"]}), mean hole '
          f'{100 * summary["mean_hole_fraction"]:.1f} % of the image; means over images.',
          '', markdown_table(summary['methods'], summary['step'])]
  for b in summary.get('area_bins', []):
    text += ['', f'Hole area {100 * b["min"]:.0f}–{100 * b["max"]:.0f} % '
             f'({b["num_images"]} images):', '', markdown_table(b['methods'], summary['step'])]
  return '\n'.join(text) + '\n'


def sample_grid(done: dict[str, np.ndarray], num: int, gap: int = 2) -> np.ndarray:
  """Rows of masked input | model | Telea | Navier–Stokes | original, `[h, w, 3]` uint8."""
  cols = ('masked', MODEL, 'telea', 'navier_stokes', 'image')
  tiles = [visualize.to_uint8(done[c][:num]) for c in cols]
  n, h, w, _ = tiles[0].shape
  out = np.full((n * (h + gap) - gap, len(cols) * (w + gap) - gap, 3), 255, np.uint8)
  for j, tile in enumerate(tiles):
    for i in range(n):
      out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = tile[i]
  return out


def run(config: ml_collections.ConfigDict, workdir: str | None, checkpoint: str = 'latest',
        output_dir: str | None = None, num_samples: int = 4, lpips: bool = True,
        fid_weights: str | None = None) -> dict[str, Any]:
  """Evaluates and writes `eval_<step>.{json,md,png}`; returns the JSON dict.

  LPIPS unless `lpips` is False; FID (whole images, over all the held-out
  images) when `fid_weights` names an Inception-v3 weights file.
  """
  # Weights first: a missing file fails before the work.
  lpips_params = perceptual.load('alexnet') if lpips else None
  inception = fid.load(fid_weights) if fid_weights else None
  state, step, path = load_state(config, workdir, checkpoint)
  done = complete_all(state, config, eval_examples(config))
  per_image = score(done, lpips_params=lpips_params)
  summary = {'step': step, 'checkpoint': path, 'mask_kind': config.mask.kind,
             'mask_seed': config.mask.eval_seed, 'image_size': config.data.image_size,
             'model_output': config.model.output,
             **summarise(per_image, by_area=config.mask.kind != 'center')}
  if inception:
    for method, value in fid_scores(done, *inception).items():
      summary['methods'][method]['image_fid'] = value
    summary['fid_weights'] = str(fid_weights)
  out_dir = epath.Path(output_dir or epath.Path(path).parent.parent)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / f'eval_{step}.json').write_text(json.dumps(summary, indent=2) + '\n')
  (out_dir / f'eval_{step}.md').write_text(markdown(summary))
  with (out_dir / f'eval_{step}.png').open('wb') as f:
    visualize.save_png(sample_grid(done, num_samples), f)
  logging.info('Wrote %s/eval_%d.{json,md,png}', out_dir, step)
  return summary


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Command-line flags (defined only when run as a program)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('output_dir', None, 'Where eval_<step>.* go (default: the workdir).')
  flags.DEFINE_integer('num_samples', 4, 'Rows of the sample PNG.')
  flags.DEFINE_bool('lpips', True, 'Also LPIPS (AlexNet; --nolpips: without).')
  flags.DEFINE_string('fid_weights', None, 'Also FID, with this .npz of pytorch-fid\'s '
                      'Inception-v3 weights (README: "LPIPS and FID").')
  flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  import tensorflow as tf  # noqa: PLC0415

  tf.config.set_visible_devices([], 'GPU')
  config = cli.load_config()
  summary = cli.call(lambda: run(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.output_dir,
                                 FLAGS.num_samples, FLAGS.lpips, FLAGS.fid_weights))
  print(markdown(summary))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
