"""Device layout of data-parallel training: the 'data' mesh and host -> device.

Under ``parallelism='jit'`` the state is replicated and the batch sharded along
a 1-D mesh axis 'data' built with `msda_jax.data_mesh`, which gives it an
*Auto* axis type (JAX 0.10 defaults to Explicit axes, which reject the
implicit gathers of an ordinary model). Under ``parallelism='pmap'`` the state carries a leading
local-device axis and batches are reshaped to (devices, per-device, ...).
"""

from typing import Any

import jax
import msda_jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

__all__ = [
    'DATA_AXIS', 'PARALLELISMS', 'check_batch_size', 'make_data_mesh',
    'replicate_for_pmap', 'replicated', 'shard_batch', 'split_for_pmap',
    'unreplicate_from_pmap'
]

DATA_AXIS = 'data'
PARALLELISMS = ('jit', 'pmap')


def make_data_mesh(devices: list | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh named 'data' over ``devices`` (default: all), Auto axis type."""
  return msda_jax.data_mesh(devices=devices, axis_name=DATA_AXIS)


def check_batch_size(global_batch_size: int, num_devices: int,
                     field: str = 'batch_size') -> None:
  """Raises ValueError unless the global batch splits evenly over devices."""
  if global_batch_size <= 0 or global_batch_size % num_devices:
    raise ValueError(
        f'{field}={global_batch_size} is not divisible by the device count '
        f'({num_devices}); use a positive multiple of {num_devices}')


def replicated(mesh: jax.sharding.Mesh, tree: Any) -> Any:
  """``tree`` placed on every device of ``mesh`` (sharding P())."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(mesh: jax.sharding.Mesh, local_batch: dict) -> dict:
  """Assembles each process's rows into global arrays sharded P('data')."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x),
      local_batch)


def split_for_pmap(local_batch: dict, num_local_devices: int) -> dict:
  """Reshapes (b, ...) host arrays to (devices, b / devices, ...) for pmap."""
  return jax.tree.map(
      lambda x: np.reshape(x, (num_local_devices, -1, *x.shape[1:])),
      local_batch)


def _pmap_sharding() -> NamedSharding:
  # The layout jax.pmap gives its outputs: feeding it the same layout keeps
  # the second call from compiling the step again.
  mesh = msda_jax.data_mesh(devices=jax.local_devices(), axis_name=DATA_AXIS)
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate_for_pmap(tree: Any) -> Any:
  """Copies ``tree`` to every local device along a new leading axis."""
  sharding = _pmap_sharding()
  count = jax.local_device_count()

  def put(x):
    x = np.asarray(x)
    return jax.device_put(np.broadcast_to(x, (count, *x.shape)), sharding)

  return jax.tree.map(put, jax.device_get(tree))


def unreplicate_from_pmap(tree: Any) -> Any:
  """The first local device's copy of a pmap-replicated ``tree``, as numpy."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0],
                      tree)
