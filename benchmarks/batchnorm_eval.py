"""Held-out hole PSNR of one checkpoint under each choice of weights and BatchNorm statistics.

  python benchmarks/batchnorm_eval.py --workdir=runs/default

Completes the config's fixed held-out crops (the images and masks of the
training run's `eval_hole_psnr`) four ways: the EMA or the live weights, with
BatchNorm's running statistics (what eval and inference use) or with each
eval batch's own statistics (what training sees). Prints the mean hole PSNR of
each, beside the mean-pixel fill.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from etils import epath

from ce_jax import (
  checkpointing,
  cli,
  completion,
  evaluate,
  held_out,
  masks,
  metrics,
  models,
  trained,
)

FLAGS = flags.FLAGS


def hole_psnr(gen, variables, config, examples, batch_stats: bool) -> float:
  """Mean held-out hole PSNR (dB) with running (`batch_stats=False`) or batch statistics."""

  def forward(variables, image, key):
    m = masks.from_config(config.mask, key, {'image': image})
    offset = completion.color_offset(config, image, m.mask)
    x_in = completion.generator_input(config, image, m.mask, offset)
    if batch_stats:
      out, _ = gen.apply(variables, x_in, train=True, mutable=['batch_stats'])
    else:
      out = gen.apply(variables, x_in, train=False)
    out = completion.generator_output(config, out, offset)
    filled = completion.composite(image, completion.full_prediction(config, out), m.mask)
    return metrics.hole_psnr(metrics.to_unit(filled), metrics.to_unit(image), m.mask)

  fn = jax.jit(forward)
  key = jax.random.PRNGKey(config.mask.eval_seed)
  values = []
  for i, chunk in enumerate(held_out.eval_chunks(examples, config.train.batch_size)):
    psnr = fn(variables, jnp.asarray(chunk['image']), jax.random.fold_in(key, i))
    values.append(np.asarray(psnr)[chunk['valid']])
  return float(np.mean(np.concatenate(values)))


def main(argv: list[str]) -> None:
  del argv
  run = cli.call(lambda: trained.load(cli.load_config(required=False), FLAGS.workdir,
                                      FLAGS.checkpoint))
  config, step = run.config, run.step
  abstract = trained.abstract_state(config)
  live = checkpointing.restore_tree(epath.Path(run.path) / 'default',
                                    {'g_params': abstract.g_params,
                                     'g_batch_stats': abstract.g_batch_stats})
  examples = evaluate.eval_examples(config)
  gen, _ = models.create_models(config)
  weights = {'live': {'params': live['g_params'], 'batch_stats': live['g_batch_stats']}}
  if config.train.ema_decay > 0:
    weights['EMA'] = run.variables
  print(f'Step {step}, {len(examples["image"])} held-out crops, hole PSNR (dB):')
  for name, variables in weights.items():
    for stats in (False, True):
      value = hole_psnr(gen, variables, config, examples, batch_stats=stats)
      label = 'batch statistics' if stats else 'running statistics'
      print(f'  {name} weights, {label}: {value:.2f}')
  done = evaluate.complete_all(run.variables, config, examples)
  fill = evaluate.summarise(evaluate.score(done), by_area=False)['methods']['mean_fill']
  print(f'  mean-pixel fill: {fill["hole_psnr"]:.2f}')


if __name__ == '__main__':
  cli.define_checkpoint_flags()
  cli.run(main)
