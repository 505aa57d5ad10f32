"""Who mixes with whom: partner index arrays and the matching gathers.

``flip`` pairs ``i`` with ``B - 1 - i`` (the reference's reversed batch),
``roll`` pairs ``i`` with ``i - 1`` (cyclically), ``permute`` draws a keyed
random pairing. Odd batch sizes work; a sample paired with itself is left
unmixed by the mixers.

``partner_rows`` reads the partners' rows of any per-sample data (maps,
features, targets) for a result, on one device or, after
``shard_mixer(..., across_devices=True)``, over the ``ppermute`` ring that
brought each device the previous device's shard.
"""

import jax
import jax.numpy as jnp

__all__ = ["PARTNERS", "check_across", "check_partner", "partner_index",
           "partner_rows", "take_partner"]

PARTNERS = ("flip", "roll", "permute")


def check_partner(partner: str, *, symmetric: bool = False) -> str:
  """Validates ``partner``; ``symmetric`` (the 'pair' mode) rules out 'roll'."""
  if partner not in PARTNERS:
    raise ValueError(f"partner must be one of {PARTNERS}; got {partner!r}")
  if symmetric and partner == "roll":
    raise ValueError(
        "mode='pair' needs a symmetric pairing: partner must be 'flip' or "
        "'permute', not 'roll'")
  return partner


def partner_index(key: jax.Array, batch_size: int, partner: str, *,
                  involution: bool = False) -> jax.Array:
  """int32 ``(B,)``: the partner of each sample.

  Args:
    key: used by ``permute`` only.
    batch_size: B, static.
    partner: 'flip', 'roll' or 'permute'.
    involution: if True the pairing is symmetric (``p[p[i]] == i``), as the
      'pair' mode needs: ``permute`` then pairs consecutive entries of a random
      permutation (one sample pairs with itself when B is odd). 'roll' is not
      symmetric for B > 2 and is rejected by ``check_partner``.

  Example:
    >>> import jax
    >>> partner_index(jax.random.key(0), 5, 'flip').tolist()
    [4, 3, 2, 1, 0]
  """
  check_partner(partner, symmetric=involution and batch_size > 2)
  index = jnp.arange(batch_size, dtype=jnp.int32)
  if partner == "flip":
    return index[::-1]
  if partner == "roll":
    return jnp.roll(index, 1)
  perm = jax.random.permutation(key, batch_size).astype(jnp.int32)
  if not involution:
    return perm
  pairs = batch_size // 2 * 2
  swapped = perm[:pairs].reshape(-1, 2)[:, ::-1].reshape(-1)
  mates = jnp.concatenate([swapped, perm[pairs:]])
  return jnp.zeros(batch_size, jnp.int32).at[perm].set(mates)


def take_partner(x: jax.Array, partner: str, index: jax.Array) -> jax.Array:
  """``x[index]`` along axis 0, as a reverse or a roll when that is what it is.

  Static patterns let XLA fuse the partner read into the blend instead of
  running a gather.
  """
  if partner == "flip":
    return x[::-1]
  if partner == "roll":
    return jnp.roll(x, 1, axis=0)
  return jnp.take(x, index, axis=0)


def check_across(across_devices, axis_name) -> bool:
  """Validates ``across_devices`` (a bool; with True one ``axis_name`` str)."""
  if not isinstance(across_devices, bool):
    raise ValueError(
        f"across_devices must be True or False; got {across_devices!r}")
  if across_devices and not isinstance(axis_name, str):
    raise ValueError(
        f"across_devices=True needs one axis name (a str); got axis_name "
        f"{axis_name!r}")
  return across_devices


def partner_rows(tree, partner_index: jax.Array, *, across_devices: bool,
                 axis_name: str = "data"):
  """``tree[partner_index]`` per leaf (axis 0), the index read modulo the batch.

  Every leaf of ``tree`` has the batch (or the local shard) on axis 0. A
  global index from :func:`~msda_jax.per_device` (``local + device *
  local_batch``) thus becomes the local row inside ``shard_map`` or
  ``pmap``, and an index into the whole batch stays as it is.

  With ``across_devices`` (inside ``shard_map`` / ``pmap`` over
  ``axis_name``, on the result of ``per_device(mixer,
  across_devices=True)``) the shard of device ``d - 1 mod n`` comes over
  the ``ppermute`` ring of :func:`~msda_jax.per_device` (one shard per
  device, no all-gather); rows whose global partner is on this device (a
  sample left with itself, as the pass-through mixer reports) are read
  locally.

  Args:
    tree: a pytree of arrays with the same axis 0 (the local batch).
    partner_index: int ``(B,)``, global or local partner indices.
    across_devices: the partners are on the previous device of the ring.
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    A pytree like ``tree``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> from jax.sharding import PartitionSpec as P
    >>> partner_rows(jnp.arange(3) * 10, jnp.array([2, 0, 1]),
    ...              across_devices=False).tolist()
    [20, 0, 10]
    >>> mesh = msda_jax.data_mesh()
    >>> n = len(jax.devices())
    >>> ring = jax.shard_map(                      # 2 rows a device, partners
    ...     lambda x, p: partner_rows(x, p, across_devices=True),  # on d - 1
    ...     mesh=mesh, in_specs=(P('data'), P('data')), out_specs=P('data'))
    >>> x = jnp.arange(2 * n)
    >>> p = (x - 2) % (2 * n)                      # the previous device's rows
    >>> bool(jnp.all(ring(x, p) == p))
    True
  """
  leaves = jax.tree.leaves(tree)
  local = leaves[0].shape[0]
  rows = partner_index % local
  take = lambda x: jnp.take(x, rows, axis=0)
  if not across_devices:
    return jax.tree.map(take, tree)
  n = jax.lax.axis_size(axis_name)
  ring = [(d, (d + 1) % n) for d in range(n)]  # d receives d - 1's shard.
  received = jax.lax.ppermute(tree, axis_name, perm=ring)
  here = partner_index // local == jax.lax.axis_index(axis_name)

  def pick(own, other):
    where = here.reshape(-1, *[1] * (own.ndim - 1))
    return jnp.where(where, take(own), take(other))
  return jax.tree.map(pick, tree, received)
