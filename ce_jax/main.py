"""python -m ce_jax.main --config=configs/default.py --workdir=DIR [--config.train.batch_size=8]"""

import logging as py_logging
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory (local or gs://) for checkpoints, logs, samples.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
# Multi-process runs: these three together, or nothing on Cloud TPU (and Slurm
# or Open MPI with one process per GPU), where JAX finds them itself.
flags.DEFINE_string('coordinator_address', None, 'Multi-process: host:port of process 0.')
flags.DEFINE_integer('num_processes', None, 'Multi-process: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-process: index of this process.')
flags.DEFINE_enum('cpu_collectives', None, ['gloo', 'mpi'],
                  'Multi-process on CPU: cross-process collectives (default: JAX\'s, or the '
                  'JAX_CPU_COLLECTIVES_IMPLEMENTATION environment variable).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  import jax  # noqa: PLC0415 (after flag parsing: distributed init must precede device use)
  import tensorflow as tf  # noqa: PLC0415

  from ce_jax import parallel, train  # noqa: PLC0415
  from ce_jax.errors import UserError  # noqa: PLC0415

  # TensorFlow only feeds data: keep it off the accelerators.
  tf.config.set_visible_devices([], 'GPU')
  try:
    config = FLAGS.config
    config.keys()  # A config file that failed to load raises here.
  except OSError as e:
    print(f'error: --config: {" ".join(str(e).split())}', file=sys.stderr)
    sys.exit(2)
  try:
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                        FLAGS.cpu_collectives)
    logging.info('Process %d of %d; local devices: %s', jax.process_index(),
                 jax.process_count(), jax.local_devices())
    train.train_and_evaluate(config, FLAGS.workdir)
  except UserError as e:
    logging.error('%s', e)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


class _QuietCheckpointer(py_logging.Filter):
  """Drops Orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or '/orbax/' not in record.pathname


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with config-file and config-override mistakes as one line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    message = str(e)
  except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    # ml_collections raises these for a bad override such as a misspelled field.
    message = ' '.join(str(e).replace('\\n', ' ').replace('\\', '').split())
    key = re.search(r"'(\w+)", str(e))
    overrides = [a for a in argv if a.startswith('--config.')]
    override = next((a for a in overrides if key and f'.{key.group(1)}' in a), '')
    if override and isinstance(e, AttributeError | KeyError):
      field = override.split('=', 1)[0][len('--config.'):]
      message = f'--config.{field}: no such config field.'
      hint = re.search(r'Did you mean "(\w+)"', str(e))
      if hint:
        message += f' Did you mean --config.{field.rpartition(".")[0]}.{hint.group(1)}?'
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def run() -> None:
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  logging.get_absl_handler().addFilter(_QuietCheckpointer())
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
