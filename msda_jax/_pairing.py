"""Who mixes with whom: partner index arrays and the matching gathers.

``flip`` pairs ``i`` with ``B - 1 - i`` (the reference's reversed batch),
``roll`` pairs ``i`` with ``i - 1`` (cyclically), ``permute`` draws a keyed
random pairing. Odd batch sizes work; a sample paired with itself is left
unmixed by the mixers.
"""

import jax
import jax.numpy as jnp

__all__ = ["PARTNERS", "check_partner", "partner_index", "take_partner"]

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
