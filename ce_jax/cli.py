"""Shared command-line plumbing: every mistake a user can fix ends in one `error:` line."""

import logging as py_logging
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from ce_jax.errors import UserError

FLAGS = flags.FLAGS


def fail(message: str) -> NoReturn:
  """Prints `error: <message>` on one line to stderr and exits with status 2."""
  print(f'error: {" ".join(str(message).split())}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing; a bad flag or `--config.*` override ends in one line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    fail(str(e))
  except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    # ml_collections raises these for a bad override such as a misspelled field.
    message = str(e).replace('\\n', ' ').replace('\\', '')
    key = re.search(r"'(\w+)", str(e))
    overrides = [a for a in argv if a.startswith('--config.')]
    override = next((a for a in overrides if key and f'.{key.group(1)}' in a), '')
    if override and isinstance(e, AttributeError | KeyError):
      field = override.split('=', 1)[0][len('--config.'):]
      message = f'--config.{field}: no such config field.'
      hint = re.search(r'Did you mean "(\w+)"', str(e))
      if hint:
        message += f' Did you mean --config.{field.rpartition(".")[0]}.{hint.group(1)}?'
    fail(message)


def define_checkpoint_flags() -> None:
  """`--config`, `--workdir` and `--checkpoint`, for programs that load a trained model."""
  config_flags.DEFINE_config_file('config', None, 'The training configuration file.',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Training workdir holding checkpoints/ (and best/).')
  flags.DEFINE_string('checkpoint', 'latest',
                      'latest, best, a step number, or a checkpoint directory.')


def load_config() -> ml_collections.ConfigDict:
  """The `--config` flag's config; a file that fails to load ends in one line."""
  try:
    config = FLAGS.config
    config.keys()  # A config file that failed to load raises here.
  except (OSError, SyntaxError, AttributeError, ImportError) as e:
    fail(f'--config: {e}')
  return config


def call(fn: Callable[[], object]) -> object:
  """Runs `fn`, turning a `UserError` into one `error:` line and exit status 2."""
  try:
    return fn()
  except UserError as e:
    logging.error('%s', e)
    fail(str(e))


class _QuietCheckpointer(py_logging.Filter):
  """Drops Orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or '/orbax/' not in record.pathname


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)` with quiet TF/Orbax logs and one-line flag errors."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  logging.get_absl_handler().addFilter(_QuietCheckpointer())
  app.run(main, flags_parser=parse_flags)
