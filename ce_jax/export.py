"""Share a trained inpainter: its generator alone, as a small Orbax checkpoint.

  python -m ce_jax.export --workdir=runs/default --output=exports/default \
      [--checkpoint=latest|best|<step>|<checkpoint directory>] [--dtype=bfloat16]

Writes `<output>/generator/` (the generator's inference weights: its
parameters and BatchNorm statistics, the EMA ones when the run kept an EMA;
and the step) and `<output>/config.json`; neither the live weights of an EMA
run, nor the discriminator, nor the optimizer states. `evaluate` and `inpaint`
take the output directory wherever they take a workdir. `--dtype=bfloat16`
halves it; the programs compute in float32 either way.
"""

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import app, flags, logging

from ce_jax import checkpointing, cli, run_config, trained
from ce_jax.errors import UserError

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def export(config: ml_collections.ConfigDict | None, workdir: str | None, output: str,
           checkpoint: str = 'latest', dtype: str = 'float32') -> str:
  """Writes the export of a workdir's checkpoint to `output`; returns its directory."""
  if dtype not in DTYPES:
    raise UserError(f"--dtype='{dtype}': expected one of {sorted(DTYPES)}.")
  if trained.is_export(workdir):
    raise UserError(f'--workdir={workdir} is already an export.')
  target = checkpointing.workdir_path(output)
  if (target / trained.EXPORT_ITEM).exists():
    raise UserError(f'--output={output} already holds an export: choose a new directory.')
  generator = trained.load(config, workdir, checkpoint)
  config, step, path = generator.config, generator.step, generator.path
  tree = {**jax.tree.map(lambda x: x.astype(DTYPES[dtype]), generator.variables),
          'step': jnp.int32(step)}
  with ocp.PyTreeCheckpointer() as checkpointer:
    checkpointer.save(target / trained.EXPORT_ITEM, args=ocp.args.PyTreeSave(tree))
  run_config.save(config, target)
  logging.info('Exported %s (%s) to %s.', path, dtype, target)
  return str(target)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Command-line flags (defined only when run as a program)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('output', None, 'The export directory to create.')
  flags.DEFINE_enum('dtype', 'float32', sorted(DTYPES), 'Stored dtype of the weights.')
  flags.mark_flags_as_required(['output'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = cli.load_config(required=False)
  print(cli.call(lambda: export(config, FLAGS.workdir, FLAGS.output, FLAGS.checkpoint,
                                FLAGS.dtype)))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
