"""Granularity: how many masks a batch gets. The one place that vmaps.

- ``batch``: one λ and one mask for the whole batch;
- ``pair``: one per pair of partners, applied to both members;
- ``elem``: one per sample.

Keys (a contract the tests rely on): the mask key is split into ``B``
per-sample keys ``jax.random.split(mask_key, B)``; ``elem`` gives sample ``i``
key ``i``, ``pair`` gives both members of a pair the key of the lower index,
``batch`` uses ``mask_key`` itself for the single mask.
"""

import jax
import jax.numpy as jnp

from msda_jax._types import MaskSampler

__all__ = ["MODES", "check_mode", "draw_masks"]

MODES = ("batch", "pair", "elem")


def check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
  return mode


def draw_masks(sampler: MaskSampler, key: jax.Array, shape: tuple[int, int],
               mode: str, partner: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Masks ``(B, H, W)`` and their means ``(B,)`` for the pairing ``partner``."""
  batch_size = partner.shape[0]
  if mode == "batch":
    mask, mean = sampler(key, shape)
    return (jnp.broadcast_to(mask, (batch_size, *shape)),
            jnp.broadcast_to(mean, (batch_size,)))
  keys = jax.random.split(key, batch_size)
  if mode == "pair":
    keys = keys[jnp.minimum(jnp.arange(batch_size), partner)]
  return jax.vmap(lambda k: sampler(k, shape))(keys)
