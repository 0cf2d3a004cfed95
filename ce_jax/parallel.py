"""Data parallelism over a one-axis ('data',) mesh of every device of every process."""

import collections
import os
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ce_jax.errors import UserError


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, cpu_collectives: str | None = None) -> None:
  """Joins the other processes of a multi-process run, if this is one.

  Must run before JAX touches a device. Explicit arguments must come all three
  (`JAX_COORDINATOR_ADDRESS` may stand for the first); every local device is
  then used. Without them, `jax.distributed.initialize()` takes its arguments
  from the cluster environments JAX detects (Cloud TPU VMs and pods; Slurm and
  Open MPI jobs of several tasks, one per GPU); anywhere else this stays one
  process.
  `cpu_collectives` ('gloo' or 'mpi') sets the CPU backend's cross-process
  collectives.
  """
  if cpu_collectives:
    jax.config.update('jax_cpu_collectives_implementation', cpu_collectives)
  if coordinator_address is not None or num_processes is not None or process_id is not None:
    try:
      jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                 cluster_detection_method='deactivate')
    except ValueError as e:
      raise UserError(f'--coordinator_address, --num_processes, --process_id: {e} Expected '
                      'all three (HOST:PORT of process 0, the number of processes, this '
                      "process's index).") from e
    return
  if '1' in (os.environ.get('SLURM_NTASKS'), os.environ.get('OMPI_COMM_WORLD_SIZE')):
    return  # A one-task Slurm or MPI job keeps all its devices.
  try:
    jax.distributed.initialize()
  except ValueError as e:
    if os.environ.get('JAX_COORDINATOR_ADDRESS'):
      raise UserError(f'JAX_COORDINATOR_ADDRESS is set but no cluster environment gives the '
                      f'rest ({e}): pass --num_processes and --process_id.') from e
    logging.debug('No cluster environment detected: one process (%s).', e)


def create_mesh() -> Mesh:
  # Auto axes: XLA propagates the batch sharding through the model.
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec('data'))


def local_batch_size(global_batch_size: int, field: str = 'train.batch_size') -> int:
  """This process's share of the global batch; it must split evenly over the devices."""
  devices = jax.device_count()
  if global_batch_size <= 0 or global_batch_size % devices:
    raise UserError(f'{field}={global_batch_size} must be a positive multiple of the '
                    f'{devices} devices (it is the global batch over all of them).')
  return global_batch_size // jax.process_count()


def fetch(x: jax.Array) -> np.ndarray:
  """The whole value of a global array, on every process.

  A collective when the array spans several processes: every process calls it.
  """
  if x.is_fully_addressable:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def process_rows(num: int, local: int, index: int | None = None,
                 count: int | None = None) -> np.ndarray:
  """Indices of the rows of a `num`-row array that process `index` of `count` holds.

  Cut into global batches of `local·count` rows, process `p` holds rows
  `[p·local, (p + 1)·local)` of each (the layout `global_batch` assembles), so
  the global batches are the same for any number of processes.
  """
  index = jax.process_index() if index is None else index
  count = jax.process_count() if count is None else count
  rows = np.arange(num)
  return rows[rows // local % count == index]


def process_max(value: int) -> int:
  """The largest `value` over all processes (a collective: every process calls it)."""
  if jax.process_count() == 1:
    return value
  return int(np.max(multihost_utils.process_allgather(np.int64(value))))


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Assembles each process's `[B_local, ...]` arrays into global `[B, ...]` arrays."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def prefetch(batches: Iterator[dict[str, np.ndarray]], sharding: NamedSharding,
             size: int = 2) -> Iterator[dict[str, Any]]:
  """Keeps `size` batches on the devices ahead of the one being consumed."""
  queue = collections.deque()
  for batch in batches:
    queue.append(global_batch(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
