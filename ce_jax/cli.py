"""Shared command-line plumbing: every mistake a user can fix ends in one `error:` line."""

import logging as py_logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

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
    message = str(e)
    if 'Traceback (most recent call last)' in message:
      # A config file's get_config raised: its own last line says why.
      head, _, trace = message.partition('Traceback (most recent call last)')
      message = head.rstrip(': \n') + ': ' + trace.strip().splitlines()[-1]
    fail(message)
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
  """`--workdir`, `--checkpoint` and an optional `--config`, for programs that load a model."""
  config_flags.DEFINE_config_file(
      'config', None, 'A configuration file (and --config.* overrides) to use instead of the '
      "run's saved config.json.", lock_config=True)
  flags.DEFINE_string('workdir', None, 'A training workdir (checkpoints/, best/, config.json) '
                      'or an exported generator (python -m ce_jax.export).')
  flags.DEFINE_string('checkpoint', 'latest',
                      'latest, best, a step number, or a checkpoint directory.')


def load_config(required: bool = True) -> ml_collections.ConfigDict | None:
  """The `--config` flag's config (None if optional and not given); a bad file ends in one line."""
  if not required and FLAGS.config is None:
    if any(a.startswith('--config.') for a in sys.argv[1:]):
      fail('--config.* overrides need --config: the file they apply to.')
    return None
  try:
    config = FLAGS.config
    config.keys()  # A config file that failed to load raises here.
  except (OSError, SyntaxError, AttributeError, ImportError) as e:
    fail(f'--config: {e}')
  return config


def verbose() -> bool:
  """Whether `--verbosity` (`-v`) asks for the frameworks' own messages too."""
  return FLAGS.is_parsed() and FLAGS.verbosity >= 1


def import_tensorflow() -> Any:
  """Imports TensorFlow, which only feeds data, kept off the accelerators.

  Its C++ start-up banner (written to the stderr file descriptor, past
  `TF_CPP_MIN_LOG_LEVEL`) is silenced unless `--verbosity` ≥ 1.
  """
  if verbose() or 'tensorflow' in sys.modules:
    import tensorflow as tf  # noqa: PLC0415
  else:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
      import tensorflow as tf  # noqa: PLC0415
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      os.close(devnull)
  tf.config.set_visible_devices([], 'GPU')
  return tf


def call(fn: Callable[[], object]) -> object:
  """Runs `fn`, turning a `UserError` into one `error:` line and exit status 2."""
  try:
    return fn()
  except UserError as e:
    logging.error('%s', e)
    fail(str(e))


# Whose INFO lines a normal run shows: ours, and clu's progress and metric lines.
_OWN_LOGS = (f'{os.sep}ce_jax{os.sep}', f'{os.sep}clu{os.sep}')


class _Quiet(py_logging.Filter):
  """Drops other libraries' INFO lines (JAX, Orbax, TensorFlow) unless `--verbosity` ≥ 1."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return (record.levelno >= py_logging.WARNING or any(p in record.pathname for p in _OWN_LOGS)
            or verbose())


COMPILATION_CACHE = os.path.join(os.environ.get('XDG_CACHE_HOME', '~/.cache'), 'ce_jax', 'xla')
# Programs that compile faster than this are not worth a cache file.
CACHE_MIN_COMPILE_SECS = 0.2


def use_compilation_cache(path: str, required: bool = True) -> None:
  """JAX's persistent compilation cache in `path` ('' : none).

  A second run of a program loads its compiled XLA programs from there
  instead of compiling them again. JAX's own variables win:
  `JAX_COMPILATION_CACHE_DIR` over `path`, and
  `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` over `CACHE_MIN_COMPILE_SECS`.

  Raises:
    UserError: `path` cannot be made a directory and is `required` (without
      `required`, a warning and no cache).
  """
  import jax  # noqa: PLC0415 (after flag parsing: a flag error needs no JAX)
  if not path or jax.config.jax_compilation_cache_dir:
    return
  from etils import epath  # noqa: PLC0415

  path = os.path.expanduser(path)
  try:
    epath.Path(path).mkdir(parents=True, exist_ok=True)  # also gs:// and the like
  except Exception as e:  # noqa: BLE001 (OSError, or a remote file system's own error)
    reason = e.strerror if isinstance(e, OSError) and e.strerror else e
    message = (f'--compilation_cache={path}: cannot create the directory ({reason}); '
               'give a writable one, or --compilation_cache= for none.')
    if required:
      raise UserError(message) from e
    logging.warning('%s Running without the cache.', message)
    return
  jax.config.update('jax_compilation_cache_dir', path)
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in os.environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', CACHE_MIN_COMPILE_SECS)


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)` with one-line flag errors, only our own INFO lines and
  the `--compilation_cache` flag.

  Programs import TensorFlow through `import_tensorflow`.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  logging.get_absl_handler().addFilter(_Quiet())
  if 'compilation_cache' not in FLAGS:
    flags.DEFINE_string('compilation_cache', COMPILATION_CACHE,
                        "Where compiled XLA programs are kept for the next run ('': nowhere; "
                        'JAX_COMPILATION_CACHE_DIR, when set, wins).')

  def with_cache(argv: list[str]) -> None:
    # The default place may be read-only (a shared home): no cache then, no error.
    call(lambda: use_compilation_cache(FLAGS.compilation_cache,
                                       required=FLAGS['compilation_cache'].present))
    main(argv)

  app.run(with_cache, flags_parser=parse_flags)
