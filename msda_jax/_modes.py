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

from msda_jax._types import Draw, MaskSampler

__all__ = ["MODES", "check_mode", "draw_masks", "sample"]

MODES = ("batch", "pair", "elem")


def check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
  return mode


def sample(sampler: MaskSampler, key: jax.Array, shape: tuple[int, ...], *,
           step=None, guide=None, partner_guide=None) -> tuple:
  """One draw of ``sampler``: the one way the engine calls a sampler.

  A sampler takes ``step`` only if its ``scheduled`` attribute is true and
  the guides (keywords ``guide``, ``partner_guide``: one sample's) only if
  its ``guided`` attribute is true, so a user's plain ``(key, shape)``
  sampler keeps working; its output (a :class:`Draw`, or a mask, ``(mask,
  mean)``, ...) comes back as a :class:`Draw`.
  """
  kwargs = {}
  if getattr(sampler, "guided", False):
    kwargs = dict(guide=guide, partner_guide=partner_guide)
  if getattr(sampler, "scheduled", False):
    out = sampler(key, shape, step, **kwargs)
  else:
    out = sampler(key, shape, **kwargs)
  return Draw.of(out, shape, f"sampler {sampler!r}")


def draw_masks(sampler: MaskSampler, key: jax.Array, shape: tuple[int, ...],
               mode: str, partner: jax.Array, step=None, guide=None,
               partner_guide=None) -> tuple:
  """A batched :class:`Draw` for the pairing ``partner``: masks ``(B,
  *shape)``, means ``(B,)``, and paste boxes or block moves of ``B`` rows
  when the sampler has them.

  ``step`` (None, or the step of a scheduled sampler) is the same for every
  sample. ``guide`` and ``partner_guide`` (None, or pytrees of ``(B, ...)``
  arrays, ``partner_guide[i]`` the guide of sample ``i``'s partner) give each
  draw the guides of the sample whose key it uses: sample ``i`` in 'elem'
  mode, the lower index of the pair in 'pair' mode (both members get the
  mask drawn from its view), sample 0 in 'batch' mode.
  """
  batch_size = partner.shape[0]
  guided = guide is not None

  def one(k, g=None, pg=None):
    return sample(sampler, k, shape, step=step, guide=g, partner_guide=pg)

  if mode == "batch":
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)
    draw = (one(key, first(guide), first(partner_guide)) if guided
            else one(key))
    return jax.tree.map(
        lambda x: jnp.broadcast_to(x, (batch_size, *jnp.shape(x))), draw)
  keys = jax.random.split(key, batch_size)
  if mode == "pair":
    lower = jnp.minimum(jnp.arange(batch_size), partner)
    keys = keys[lower]
    if guided:
      take = lambda tree: jax.tree.map(lambda x: x[lower], tree)
      guide, partner_guide = take(guide), take(partner_guide)
  if guided:
    return jax.vmap(one)(keys, guide, partner_guide)
  return jax.vmap(one)(keys)
