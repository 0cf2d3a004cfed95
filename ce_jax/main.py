"""python -m ce_jax.main --config=configs/default.py --workdir=DIR [--config.train.batch_size=8]"""

from absl import app, flags, logging
from ml_collections import config_flags

from ce_jax import cli

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
  cli.import_tensorflow()
  import jax  # noqa: PLC0415 (after flag parsing: distributed init must precede device use)

  from ce_jax import parallel, train  # noqa: PLC0415

  config = cli.load_config()

  def train_here():
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                        FLAGS.cpu_collectives)
    logging.info('Process %d of %d; local devices: %s', jax.process_index(),
                 jax.process_count(), jax.local_devices())
    train.train_and_evaluate(config, FLAGS.workdir)

  cli.call(train_here)


def run() -> None:
  cli.run(main)


if __name__ == '__main__':
  run()
