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


def draw_masks(sampler: MaskSampler, key: jax.Array, shape: tuple[int, ...],
               mode: str, partner: jax.Array, step=None) -> tuple:
  """Masks ``(B, *shape)``, their means ``(B,)`` (and a batched ``PasteBox``
  when the sampler pastes) for the pairing ``partner``.

  ``step`` (None, or the step of a scheduled sampler) is passed to the
  sampler as its third argument, the same for every sample.
  """
  batch_size = partner.shape[0]
  if step is not None:
    scheduled = sampler
    sampler = lambda k, s: scheduled(k, s, step)
  if mode == "batch":
    draw = sampler(key, shape)
    return jax.tree.map(
        lambda x: jnp.broadcast_to(x, (batch_size, *jnp.shape(x))), draw)
  keys = jax.random.split(key, batch_size)
  if mode == "pair":
    keys = keys[jnp.minimum(jnp.arange(batch_size), partner)]
  return jax.vmap(lambda k: sampler(k, shape))(keys)
