"""Held-out metrics of a trained model next to classical baselines.

  python -m ce_jax.evaluate --workdir=runs/default \
      [--checkpoint=latest|best|<step>|<checkpoint directory>] [--nolpips] \
      [--fid_weights=inception_fid.npz]

`--workdir` is a training workdir (its `config.json` says what it trained) or
an export (`python -m ce_jax.export`). Restores the generator's inference
weights, completes the config's fixed eval crops under masks
drawn from `mask.eval_seed` (exactly the images and masks of the training
run's `eval_hole_psnr`), fills the same holes with OpenCV Telea, OpenCV
Navier–Stokes and the mean pixel, and writes to the workdir (or `--output_dir`):

  eval_<step>.json   mean of every per-image metric, per method (and per hole-area bin)
  eval_<step>.md     the same as Markdown tables (also printed)
  eval_<step>.png    rows of masked input | model | Telea | Navier–Stokes | original
"""

import concurrent.futures
import functools
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from etils import epath

from ce_jax import (
  baselines,
  cli,
  completion,
  fid,
  held_out,
  metrics,
  models,
  perceptual,
  trained,
  visualize,
)

MODEL = 'model'  # The trained model's key among the methods; its label names its family.
FAMILY_LABELS = {'context_encoder': 'Context Encoder', 'glcic': 'GLCIC',
                 'deepfill2': 'DeepFill v2'}
LABELS = {MODEL: 'the model', 'telea': 'OpenCV Telea', 'navier_stokes': 'OpenCV Navier–Stokes',
          'smooth_fill': 'smooth fill (no network)', 'mean_fill': 'mean-pixel fill'}


def label(method: str, family: str) -> str:
  """A method's name in tables: the trained model's is its family's (`model.family`)."""
  return FAMILY_LABELS[family] if method == MODEL else LABELS[method]
# (metric, header, scale, decimals)
COLUMNS = (('hole_psnr', 'hole PSNR (dB) ↑', 1, 2), ('image_psnr', 'image PSNR (dB) ↑', 1, 2),
           ('hole_ssim', 'hole SSIM ↑', 1, 3), ('image_ssim', 'image SSIM ↑', 1, 3),
           ('hole_l1', 'hole L1 (%) ↓', 100, 2), ('image_l1', 'image L1 (%) ↓', 100, 2),
           ('hole_l2', 'hole L2 (%) ↓', 100, 2), ('image_l2', 'image L2 (%) ↓', 100, 2),
           ('hole_lpips', 'hole LPIPS ↓', 1, 3), ('image_lpips', 'image LPIPS ↓', 1, 3),
           ('image_fid', 'image FID ↓', 1, 2))
AREA_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
SCORE_BATCH = 64
_metrics_fn = jax.jit(metrics.all_metrics)
_lpips_features_fn = jax.jit(metrics.lpips_features)
_lpips_distances_fn = jax.jit(metrics.lpips_distances)


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------


def eval_examples(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The training run's fixed eval examples, e.g. `{'image': [N, S, S, 3] float32 in [-1, 1]}`.

  Whatever else the source provides (e.g. `landmarks` for mask kinds that use them) comes along.
  """
  from ce_jax import input_pipeline  # noqa: PLC0415 (TensorFlow: imported by the program first)

  return input_pipeline.create_input(config, config.train.batch_size).eval_batch


def complete_all(variables: completion.Variables, config: ml_collections.ConfigDict,
                 examples: dict[str, np.ndarray],
                 on_method: Callable[[str, dict[str, np.ndarray]], None] | None = None
                 ) -> dict[str, np.ndarray]:
  """Completions by the model (G's inference `variables`) and every baseline, same masks.

  Returns `{'image', 'mask', 'masked', <method>: ...}`, each `[N, S, S, ·]`
  float32 in [-1, 1] (`mask` in {0, 1}), methods in `LABELS` order.
  `on_method(method, done so far)` is called as each method's completions
  are ready (e.g. `LpipsScores.add`, which scores them while the next runs).
  """
  gen = models.create_generator(config)
  eval_fn = jax.jit(functools.partial(held_out.eval_step, config=config, gen=gen))
  key = jax.random.PRNGKey(config.mask.eval_seed)
  parts: dict[str, list[np.ndarray]] = {}
  for i, chunk in enumerate(held_out.eval_chunks(examples, config.train.batch_size)):
    out = jax.device_get(eval_fn(variables, chunk, jax.random.fold_in(key, i)))
    valid = chunk['valid']
    for name, value in (('image', chunk['image']), ('mask', out['mask']),
                        ('masked', out['masked']), (MODEL, out['completion'])):
      parts.setdefault(name, []).append(np.asarray(value)[valid])
  done = {k: np.concatenate(v) for k, v in parts.items()}
  on_method = on_method or (lambda method, done: None)
  on_method(MODEL, done)
  for name, fn in baselines.methods(config.data.mean_pixel, config.model.offset_sigma).items():
    done[name] = baselines.complete(fn, done['image'], done['mask'])
    on_method(name, done)
  return done


def compile_metrics(config: ml_collections.ConfigDict) -> None:
  """Compiles `score`'s metrics for the config's eval chunks ahead of their use.

  Meant for a background thread; `score` then finds them in jit's cache.
  """
  images, mask = _score_shapes(config)
  _metrics_fn.lower(images, images, mask).compile()


def load_lpips(config: ml_collections.ConfigDict) -> perceptual.Params:
  """The AlexNet LPIPS params, with `LpipsScores`' programs compiled like `compile_metrics`."""
  images, mask = _score_shapes(config)
  params = perceptual.load('alexnet')
  features = _lpips_features_fn.lower(params, images, mask)
  features.compile()
  _lpips_distances_fn.lower(params, features.out_info, features.out_info, mask).compile()
  return params


def _score_shapes(config: ml_collections.ConfigDict) -> tuple[jax.ShapeDtypeStruct, ...]:
  side, num = config.data.image_size, min(SCORE_BATCH, config.data.num_eval_examples)
  return (jax.ShapeDtypeStruct((num, side, side, 3), jnp.float32),
          jax.ShapeDtypeStruct((num, side, side, 1), jnp.float32))


class LpipsScores:
  """Per-image LPIPS of each method against the originals, started as each method is ready.

  `add` only dispatches: JAX computes while the caller goes on (e.g. with
  the next baseline, on the other core); `result` waits. The originals'
  features, computed once per chunk of `batch_size` images, serve every
  method.
  """

  def __init__(self, params: perceptual.Params, batch_size: int = SCORE_BATCH):
    """`params`: `perceptual.load('alexnet')`."""
    self._params, self._batch_size = params, batch_size
    self._chunks: list[tuple[slice, Any]] = []
    self._pending: dict[str, list[dict[str, jax.Array]]] = {}

  def add(self, method: str, done: dict[str, np.ndarray]) -> None:
    """Starts scoring `done[method]` against `done['image']` under `done['mask']` (`[N, ...]`)."""
    mask = done['mask']
    if not self._chunks:
      target = metrics.to_unit(done['image'])
      for i in range(0, len(target), self._batch_size):
        c = slice(i, i + self._batch_size)
        self._chunks.append((c, _lpips_features_fn(self._params, target[c], mask[c])))
    pred = metrics.to_unit(done[method])
    self._pending[method] = [
        _lpips_distances_fn(self._params, _lpips_features_fn(self._params, pred[c], mask[c]),
                            reference, mask[c])
        for c, reference in self._chunks]

  def result(self) -> dict[str, dict[str, np.ndarray]]:
    """`{method: {'hole_lpips': [N], 'image_lpips': [N]}}` for every method added."""
    return {method: {k: np.concatenate([c[k] for c in jax.device_get(chunks)])
                     for k in metrics.LPIPS_NAMES}
            for method, chunks in self._pending.items()}


def score(done: dict[str, np.ndarray], batch_size: int = SCORE_BATCH,
          lpips_params: perceptual.Params | None = None) -> dict[str, dict[str, np.ndarray]]:
  """Per-image metrics `{method: {metric: [N]}}` (and `hole_fraction`) on images in [0, 1].

  LPIPS too when given `lpips_params` (`perceptual.load('alexnet')`).
  """
  lpips = None
  if lpips_params is not None:
    lpips = LpipsScores(lpips_params, batch_size)
    for method in LABELS:
      lpips.add(method, done)
  target, mask = metrics.to_unit(done['image']), done['mask']
  out = {}
  for method in LABELS:
    pred = metrics.to_unit(done[method])
    chunks = [jax.device_get(_metrics_fn(pred[i:i + batch_size], target[i:i + batch_size],
                                         mask[i:i + batch_size]))
              for i in range(0, len(pred), batch_size)]
    out[method] = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
  return merge(out, lpips.result()) if lpips else out


def merge(*per_image: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
  """`{method: {metric: [N]}}` dicts joined, method by method."""
  out: dict[str, dict[str, np.ndarray]] = {}
  for scores in per_image:
    for method, values in scores.items():
      out.setdefault(method, {}).update(values)
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


def markdown_table(methods: dict[str, dict[str, float]], step: int,
                   family: str = 'context_encoder') -> str:
  """One row per method; L1 and L2 (mean squared error) in % of the [0, 1] range.

  The trained model's row is named after its `family` and `step`.

  Only the columns whose metrics the values have (LPIPS and FID are optional).
  """
  columns = [c for c in COLUMNS if c[0] in next(iter(methods.values()))]
  lines = ['| method | ' + ' | '.join(c[1] for c in columns) + ' |',
           '| --- |' + ' ---: |' * len(columns)]
  for method, values in methods.items():
    name = f'{label(method, family)} (step {step})' if method == MODEL else label(method, family)
    cells = [f'{values[k] * scale:.{digits}f}' for k, _, scale, digits in columns]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def markdown(summary: dict[str, Any]) -> str:
  """The whole report: a caption, the main table and the per-area tables."""
  size, family = summary['image_size'], summary.get('model_family', 'context_encoder')
  text = [f'{summary["num_images"]} held-out {size}×{size} crops, mask.kind='
          f'{summary["mask_kind"]} (seed {summary["mask_seed"]}), mean hole '
          f'{100 * summary["mean_hole_fraction"]:.1f} % of the image; means over images.',
          '', markdown_table(summary['methods'], summary['step'], family)]
  for b in summary.get('area_bins', []):
    text += ['', f'Hole area {100 * b["min"]:.0f}–{100 * b["max"]:.0f} % '
             f'({b["num_images"]} images):', '',
             markdown_table(b['methods'], summary['step'], family)]
  return '\n'.join(text) + '\n'


def sample_grid(done: dict[str, np.ndarray], num: int, gap: int = 2,
                cols: tuple[str, ...] = ('masked', MODEL, 'telea', 'navier_stokes', 'image')
                ) -> np.ndarray:
  """The first `num` images of `done[c]` for each `c` in `cols` side by side, `[h, w, 3]` uint8.

  By default rows of masked input | model | Telea | Navier–Stokes | original.
  """
  return visualize.columns([done[c][:num] for c in cols], gap)


def run(config: ml_collections.ConfigDict | None, workdir: str | None,
        checkpoint: str = 'latest', output_dir: str | None = None,
        num_samples: int = 4, lpips: bool = True,
        fid_weights: str | None = None) -> dict[str, Any]:
  """Evaluates and writes `eval_<step>.{json,md,png}`; returns the JSON dict.

  `config` None: the run's (or export's) saved config. Output goes to the
  workdir (or export directory) unless `output_dir` is given. LPIPS unless
  `lpips` is False; FID (whole images, over all the held-out images) when
  `fid_weights` names an Inception-v3 weights file.
  """
  # Weights first: a missing file fails before the work.
  if lpips:
    perceptual.existing_weights_file('alexnet')
  inception = fid.load(fid_weights) if fid_weights else None
  generator = trained.load(config, workdir, checkpoint)
  config, step, path = generator.config, generator.step, generator.path
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    # Compiles overlap TensorFlow's import (seconds, one core) and, for LPIPS
    # (whose tracing would hold the import back), the data's loading.
    metrics_ready = pool.submit(compile_metrics, config)
    cli.import_tensorflow()
    lpips_ready = pool.submit(load_lpips, config) if lpips else None
    examples = eval_examples(config)
    lpips_scores = LpipsScores(lpips_ready.result()) if lpips_ready else None
    done = complete_all(generator.variables, config, examples,
                        on_method=lpips_scores and lpips_scores.add)
    metrics_ready.result()
  per_image = score(done)
  if lpips_scores:
    per_image = merge(per_image, lpips_scores.result())
  summary = {'step': step, 'checkpoint': path, 'mask_kind': config.mask.kind,
             'mask_seed': config.mask.eval_seed, 'image_size': config.data.image_size,
             'model_family': config.model.family, 'model_output': config.model.output,
             **summarise(per_image, by_area=config.mask.kind != 'center')}
  if inception:
    for method, value in fid_scores(done, *inception).items():
      summary['methods'][method]['image_fid'] = value
    summary['fid_weights'] = str(fid_weights)
  out_dir = epath.Path(output_dir or generator.home)
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


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = cli.load_config(required=False)
  summary = cli.call(lambda: run(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.output_dir,
                                 FLAGS.num_samples, FLAGS.lpips, FLAGS.fid_weights))
  print(markdown(summary))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
