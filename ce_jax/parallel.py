"""Data parallelism over a one-axis ('data',) mesh of every device of every process."""

import collections
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ce_jax.errors import UserError


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
