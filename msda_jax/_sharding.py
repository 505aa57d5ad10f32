"""Mixing on sharded batches: per-device λ, no all-gather.

Each device mixes its own shard and folds the device index into the key, so
devices draw different λ and masks. This is big_vision's pattern (mixing
inside the jitted step under ``shard_map``), and the same body works inside
``jax.pmap``.

Partners come from the local shard by default. With ``across_devices=True``
each device receives the shard of the previous device on a ``lax.ppermute``
ring (device ``d`` gets the shard of ``d - 1 mod n``: one shard of images and
one of labels moved per device, never an all-gather) and pairs its sample
``i`` with sample ``pairing(i)`` of that shard, where ``pairing`` is the
mixer's ``partner`` rule ('flip', 'roll' or 'permute') applied within the
shard. A one-way ring is not symmetric, so mode='pair' is rejected there.
"""

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from msda_jax._mixer import Mixer
from msda_jax._types import MixResult

__all__ = ["data_mesh", "per_device", "shard_mixer"]

MixFn = Callable[..., MixResult]  # (key, images, labels, step=None)


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


def _check_across(mixer: Mixer, across_devices) -> bool:
  if not isinstance(across_devices, bool):
    raise ValueError(
        f"across_devices must be True or False; got {across_devices!r}")
  if across_devices and mixer.mode == "pair":
    raise ValueError(
        "across_devices=True needs mode 'elem' or 'batch': mode='pair' gives "
        "both members of a pair one mask, and the one-way device ring does "
        "not pair samples symmetrically; got a mixer with mode='pair'")
  return across_devices


def per_device(mixer: Mixer, *, axis_name="data",
               across_devices: bool = False) -> MixFn:
  """Wraps ``mixer`` for use inside ``shard_map`` or ``pmap`` over ``axis_name``.

  The returned function mixes the local shard with the key
  ``jax.random.fold_in(key, axis_index)`` and reports ``partner_index`` as a
  global batch index (``local + device * local_batch``). ``key`` must be the
  same on every device.

  With ``across_devices=False`` partners come from the local shard (the
  result is ``mixer(fold_in(key, d), images, labels)``). With
  ``across_devices=True`` device ``d`` receives the shard of device
  ``d - 1 mod n`` through ``lax.ppermute`` (images and labels, one shard each;
  no all-gather) and pairs its sample ``i`` with sample ``pairing(i)`` of that
  shard, ``pairing`` being the mixer's ``partner`` rule within a shard: the
  global partner is ``(d - 1 mod n) * L + pairing(i)``.

  Args:
    mixer: any mixer; with ``across_devices`` its mode must be 'elem' or
      'batch'.
    axis_name: the mapped axis name of the batch (a tuple of names only
      without ``across_devices``).
    across_devices: pair with samples of the previous device on a ring.

  Returns:
    ``fn(key, images, labels, step=None, guide=None) -> MixResult`` on the
    local shard; ``step`` (the same on every device) is required by a
    scheduled mixer; ``guide`` is the local shard's guides (a guided mixer,
    see :func:`~msda_jax.guided_mask_mixer`; with ``across_devices`` the
    partner shard's guides come over the same ring).

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
  across_devices = _check_across(mixer, across_devices)
  if across_devices and not isinstance(axis_name, str):
    raise ValueError(
        f"across_devices=True needs one axis name (a str); got axis_name "
        f"{axis_name!r}")

  def mix_local(key: jax.Array, images: jax.Array, labels: jax.Array,
                step=None, guide=None) -> MixResult:
    index = jax.lax.axis_index(axis_name)
    local = images.shape[0]
    key = jax.random.fold_in(key, index)
    if not mixer.guided:
      guide = None  # Ignored by the mixer: not sent on the ring either.
    if not across_devices:
      out = mixer(key, images, labels, step=step, guide=guide)
      return out._replace(partner_index=out.partner_index + index * local)
    n = jax.lax.axis_size(axis_name)
    ring = [(d, (d + 1) % n) for d in range(n)]  # d receives d - 1's shard.
    # The partner's guide (if given) travels with its shard; a default
    # guide is computed from the received images instead.
    partner_images, partner_labels, partner_guide = jax.lax.ppermute(
        (images, labels, guide), axis_name, perm=ring)
    offset = ((index - 1) % n) * local
    out = mixer.mix_with(key, images, labels, partner_images, partner_labels,
                         step=step, guide=guide, partner_guide=partner_guide)
    if mixer.sampler is None:  # The pass-through mixer: own global index.
      offset = index * local
    return out._replace(
        partner_index=out.partner_index + offset.astype(jnp.int32))

  return mix_local


def shard_mixer(mixer: Mixer, mesh: Mesh, *, axis_name: str = "data",
                across_devices: bool = False) -> MixFn:
  """``mixer`` for batches sharded along ``axis_name`` of ``mesh``.

  Call the result inside (or outside) ``jax.jit`` with the batch laid out as
  ``NamedSharding(mesh, P(axis_name))`` and a replicated key; the outputs are
  sharded the same way. Equivalent to running :func:`per_device` under
  ``jax.shard_map``. By default every device pairs and mixes its own shard
  and no data crosses devices; with ``across_devices=True`` every sample is
  paired with one from the previous device on a ring (one
  ``collective-permute`` of a shard per device, no all-gather).

  Args:
    mixer: any mixer (mode 'elem' or 'batch' with ``across_devices``).
    mesh: a mesh with an axis ``axis_name`` (see :func:`data_mesh`).
    axis_name: the batch axis.
    across_devices: take partners from another device (see
      :func:`per_device`).

  Returns:
    ``fn(key, images, labels, step=None, guide=None) -> MixResult`` on the
    global batch; ``step`` is replicated (required by a scheduled mixer, see
    :attr:`Mixer.scheduled`), ``guide`` sharded like the batch (a guided
    mixer's guides; see :func:`~msda_jax.guided_mask_mixer`).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mesh = msda_jax.data_mesh()
    >>> mix = jax.jit(msda_jax.shard_mixer(msda_jax.cutmix(num_classes=4), mesh,
    ...                                    across_devices=True))
    >>> b = 2 * len(jax.devices())
    >>> out = mix(jax.random.key(0), jnp.zeros((b, 8, 8, 3)), jnp.zeros(b, jnp.int32))
    >>> out.images.shape == (b, 8, 8, 3)
    True
  """
  if axis_name not in mesh.axis_names:
    raise ValueError(
        f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  batch = PartitionSpec(axis_name)
  body = per_device(mixer, axis_name=axis_name, across_devices=across_devices)
  # step is replicated, guides are sharded like the batch; None (no step, no
  # guide) is an empty pytree, which any spec fits.
  mapped = jax.shard_map(
      lambda key, images, labels, step, guide: body(
          key, images, labels, step=step, guide=guide),
      mesh=mesh, in_specs=(PartitionSpec(), batch, batch, PartitionSpec(),
                           batch),
      out_specs=batch)

  def mix(key: jax.Array, images: jax.Array, labels, step=None,
          guide=None) -> MixResult:
    # A scheduled mixer without a step raises its clear error inside.
    return mapped(key, images, labels,
                  None if step is None else jnp.asarray(step), guide)

  return mix
