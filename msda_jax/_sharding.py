"""Mixing on sharded batches: per-device pairing, per-device λ, no all-gather.

Each device mixes its own shard: partners are drawn within the shard and the
device index is folded into the key, so devices draw different λ and masks.
This is big_vision's pattern (mixing inside the jitted step under
``shard_map``), and the same body works inside ``jax.pmap``.
"""

from typing import Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from msda_jax._mixer import Mixer
from msda_jax._types import MixResult

__all__ = ["data_mesh", "per_device", "shard_mixer"]

MixFn = Callable[[jax.Array, jax.Array, jax.Array], MixResult]


def data_mesh(*, devices: Optional[Sequence[jax.Device]] = None,
              axis_name: str = "data") -> Mesh:
  """A 1-D mesh over ``devices`` (default: all) with an Auto axis type.

  Example:
    >>> mesh = data_mesh()
    >>> mesh.axis_names
    ('data',)
  """
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (axis_name,),
              axis_types=(jax.sharding.AxisType.Auto,))


def per_device(mixer: Mixer, *, axis_name="data") -> MixFn:
  """Wraps ``mixer`` for use inside ``shard_map`` or ``pmap`` over ``axis_name``.

  The returned function mixes the local shard with
  ``mixer(jax.random.fold_in(key, axis_index), images, labels)`` and reports
  ``partner_index`` as a global batch index (``local + axis_index * local_batch``).
  ``key`` must be the same on every device.

  Args:
    mixer: any mixer.
    axis_name: the mapped axis name (or tuple of names) of the batch.

  Returns:
    ``fn(key, images, labels) -> MixResult`` on the local shard.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> fn = jax.pmap(msda_jax.per_device(msda_jax.mixup(num_classes=4)),
    ...               axis_name='data', in_axes=(None, 0, 0))
    >>> n = jax.local_device_count()
    >>> out = fn(jax.random.key(0), jnp.zeros((n, 2, 8, 8, 3)),
    ...          jnp.zeros((n, 2), jnp.int32))
    >>> out.labels.shape == (n, 2, 4)
    True
  """
  if not isinstance(mixer, Mixer):
    raise ValueError(f"mixer must be a Mixer; got {mixer!r}")

  def mix_local(key: jax.Array, images: jax.Array,
                labels: jax.Array) -> MixResult:
    index = jax.lax.axis_index(axis_name)
    out = mixer(jax.random.fold_in(key, index), images, labels)
    return out._replace(
        partner_index=out.partner_index + index * images.shape[0])

  return mix_local


def shard_mixer(mixer: Mixer, mesh: Mesh, *, axis_name: str = "data") -> MixFn:
  """``mixer`` for batches sharded along ``axis_name`` of ``mesh``.

  Call the result inside (or outside) ``jax.jit`` with the batch laid out as
  ``NamedSharding(mesh, P(axis_name))`` and a replicated key; the outputs are
  sharded the same way. Equivalent to running :func:`per_device` under
  ``jax.shard_map``: every device pairs and mixes its own shard, no data
  crosses devices.

  Args:
    mixer: any mixer.
    mesh: a mesh with an axis ``axis_name`` (see :func:`data_mesh`).
    axis_name: the batch axis.

  Returns:
    ``fn(key, images, labels) -> MixResult`` on the global batch.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mesh = msda_jax.data_mesh()
    >>> mix = jax.jit(msda_jax.shard_mixer(msda_jax.cutmix(num_classes=4), mesh))
    >>> b = 2 * len(jax.devices())
    >>> out = mix(jax.random.key(0), jnp.zeros((b, 8, 8, 3)), jnp.zeros(b, jnp.int32))
    >>> out.images.shape == (b, 8, 8, 3)
    True
  """
  if axis_name not in mesh.axis_names:
    raise ValueError(
        f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  batch = PartitionSpec(axis_name)
  return jax.shard_map(per_device(mixer, axis_name=axis_name), mesh=mesh,
                       in_specs=(PartitionSpec(), batch, batch),
                       out_specs=batch)
