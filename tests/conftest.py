"""Test setup: eight simulated CPU devices, set before JAX is first imported, and one
compilation cache for the whole run.

Many tests train or evaluate the same tiny networks, in this process, in
`pytest -n` workers and in the subprocesses of the command-line tests: JAX's
persistent compilation cache, in a folder of this run only, compiles each
program once, however small (an eager op's is ~30 ms; Orbax's saves of
replicated arrays slice them in ~150 such programs). Every program still runs
and is checked as before.
"""

import os
import sys
import tempfile

import pytest

# Tiny networks run a few steps each, so compiling, not running, is the cost: the
# CPU backend's unoptimised code generation compiles them ~40 % faster
# (`xla_env.with_devices` passes these flags on to subprocesses).
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8'
                           ' --xla_backend_optimization_level=0').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

_RUN = os.environ.get('PYTEST_XDIST_TESTRUNUID') or str(os.getpid())
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(), f'ce_jax_tests_xla_{_RUN}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')


# Modules whose tests take the most CPU (`--durations`), scheduled first so that
# neither worker is left with one of them at the end.
HEAVIEST_FIRST = ('test_train', 'test_multiprocess', 'test_families', 'test_evaluate')


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  """Under `pytest -n`, one worker runs each module: its module fixtures, and the first
  calls of its eager JAX ops, are built once; `xdist_group` marks split a module."""
  for item in items:
    if item.get_closest_marker('xdist_group') is None:
      item.add_marker(pytest.mark.xdist_group(item.module.__name__))
  rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))
