"""Images/s the tf.data input pipeline delivers, against what the train step consumes.

  python benchmarks/input_pipeline.py
  python benchmarks/input_pipeline.py --config=configs/celeba_center.py \
      --config.data.celeba_dir=/data/celeba --noceleba_style --notrain_step

Times `input_pipeline.create_input(...).train` (decode, crop, resize, flip,
batch, as training reads it) for `--config` (default: the bundled photos) and,
with `--celeba_style`, for `configs/celeba_center.py` on a CelebA-format
directory of drawn 178×218 JPEG faces written to a temporary folder (every
example is read and decoded from disk, cropped and resized). With
`--train_step` it also times the train step of `--config`
(`benchmarks/train_step.py`) and prints how many times over the pipeline
feeds it; training needs at least 3×. Median of `--repeats` blocks of
`--batches` batches, after `--warmup` batches.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE, os.path.join(ROOT, 'tests')):
  if path not in sys.path:
    sys.path.insert(0, path)

import ml_collections  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ce_jax import cli, input_pipeline  # noqa: E402
from configs import celeba_center  # noqa: E402


def pipeline_rate(config: ml_collections.ConfigDict, batch_size: int, *, batches: int = 50,
                  warmup: int = 5, repeats: int = 3) -> dict[str, Any]:
  """Median images/s of the train iterator over `repeats` blocks of `batches` batches."""
  t0 = time.perf_counter()
  inputs = input_pipeline.create_input(config, batch_size)
  setup_s = time.perf_counter() - t0
  for _ in range(warmup):
    next(inputs.train)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(batches):
      next(inputs.train)
    times.append(time.perf_counter() - t0)
  rates = [batches * batch_size / t for t in times]
  return {'images_per_s': round(statistics.median(rates), 1),
          'images_per_s_min': round(min(rates), 1), 'images_per_s_max': round(max(rates), 1),
          'batch_size': batch_size, 'setup_s': round(setup_s, 2)}


def celeba_style_config(root: str) -> ml_collections.ConfigDict:
  """`configs/celeba_center.py` on a CelebA-format directory of drawn faces under `root`."""
  import celeba_fixture  # noqa: PLC0415 (the tests' CelebA-format writer)

  config = celeba_center.get_config()
  config.data.celeba_dir = celeba_fixture.write(root)
  config.data.num_eval_examples = 8
  return config


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', os.path.join(ROOT, 'configs', 'default.py'),
                                'Configuration file.', lock_config=True)
flags.DEFINE_integer('batch_size', 0, 'Batch size (default: the config\'s).')
flags.DEFINE_integer('batches', 50, 'Batches per timed block.')
flags.DEFINE_integer('warmup', 5, 'Untimed batches first.')
flags.DEFINE_integer('repeats', 3, 'Timed blocks; the median is reported.')
flags.DEFINE_bool('celeba_style', True, 'Also time the CelebA pipeline on drawn JPEG faces.')
flags.DEFINE_bool('train_step', True, 'Also time the train step of --config for the ratio.')
flags.DEFINE_bool('json', False, 'Print one JSON line with the results on stdout.')


def main(argv: list[str]) -> None:
  del argv
  config = cli.load_config()
  batch_size = FLAGS.batch_size or config.train.batch_size
  log: Callable[[str], None] = (lambda s: print(s, file=sys.stderr, flush=True)) if FLAGS.json \
      else print
  kw = {'batches': FLAGS.batches, 'warmup': FLAGS.warmup, 'repeats': FLAGS.repeats}
  result: dict[str, Any] = {'cpu_cores': os.cpu_count()}

  def show(name: str, r: dict[str, Any]) -> None:
    log(f'{name:22s} {r["images_per_s"]:9.1f} img/s (spread {r["images_per_s_min"]:.1f}–'
        f'{r["images_per_s_max"]:.1f}; batch {r["batch_size"]})')

  def run():
    result['pipeline'] = pipeline_rate(config, batch_size, **kw)
    show(f'pipeline ({config.data.source})', result['pipeline'])
    if FLAGS.celeba_style:
      with tempfile.TemporaryDirectory() as root:
        celeba = celeba_style_config(root)
        result['pipeline_celeba_style'] = pipeline_rate(celeba, celeba.train.batch_size, **kw)
      show('pipeline (CelebA JPEGs)', result['pipeline_celeba_style'])
    if FLAGS.train_step:
      import train_step  # noqa: PLC0415 (compiles the model: only when asked)

      step = train_step.benchmark(config, batch_size, steps=3, warmup=2, repeats=3,
                                  inference=False, log=lambda s: None)['train']
      result['train_step_images_per_s'] = step['images_per_s']
      ratio = result['pipeline']['images_per_s'] / step['images_per_s']
      result['pipeline_over_train_step'] = round(ratio, 2)
      log(f'{"train step consumes":22s} {step["images_per_s"]:9.1f} img/s: the pipeline '
          f'delivers {ratio:.1f}× that ({"ok" if ratio >= 3 else "BELOW"} the 3× needed)')

  cli.call(run)
  if FLAGS.json:
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  cli.run(main)
