"""Combining mixers: ``choice`` picks one of several per draw.

The algebra closes: a choice of choices is a mixer like any other.
"""

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from msda_jax._engine import check_prob
from msda_jax._mixer import Mixer
from msda_jax._types import PasteBox

__all__ = ["choice", "ChoiceSampler"]


@dataclasses.dataclass(frozen=True)
class _Unmixed:
  """The sampler of a mixer that never mixes: a mask of ones."""

  def __call__(self, key: jax.Array, shape):
    del key
    return jnp.ones(shape, jnp.float32), jnp.ones((), jnp.float32)


def _with_paste(draw, shape):
  if len(draw) == 3:
    return draw
  identity = PasteBox(jnp.zeros(len(shape), jnp.int32),
                      jnp.asarray(shape, jnp.int32))
  return (*draw, identity)


@dataclasses.dataclass(frozen=True)
class ChoiceSampler:
  """Draws with one of ``samplers``, picked with weights ``probs``.

  Every sampler draws from the same key and the picked draw is selected (see
  :func:`choice`). Compares equal by value.
  """

  samplers: tuple
  probs: tuple

  def __call__(self, key: jax.Array, shape):
    pick_key, mask_key = jax.random.split(key)
    pick = jax.random.choice(pick_key, len(self.samplers),
                             p=jnp.asarray(self.probs, jnp.float32))
    # Every method's mask is built from mask_key and the picked one selected.
    # Under vmap ('elem' and 'pair' modes) lax.switch lowers to this same
    # select anyway, and a vmapped lax.switch inside shard_map fails in JAX
    # 0.10 ("pvary is a invariant->variant collective"). In 'batch' mode it
    # builds a few masks instead of one: negligible next to the blend.
    draws = [s(mask_key, shape) for s in self.samplers]
    if any(len(d) == 3 for d in draws):
      draws = [_with_paste(d, shape) for d in draws]
    return jax.tree.map(lambda *xs: jax.lax.select_n(pick, *xs), *draws)


def choice(mixers: Sequence[Mixer], *,
           probs: Optional[Sequence[float]] = None) -> Mixer:
  """A mixer that picks one of ``mixers`` per draw, with weights ``probs``.

  In 'elem' mode each sample draws its own method, in 'pair' mode each pair,
  in 'batch' mode the batch. timm's ``switch_prob=p`` is
  ``choice([cutmix(...), mixup(...)], probs=[p, 1 - p])``. Each method keeps
  its own α and ``prob``. All mixers must share ``mode``, ``partner``,
  ``label_smoothing`` and ``num_classes``.

  Args:
    mixers: a non-empty sequence of mixers.
    probs: weights, non-negative, summing to 1; uniform if None.

  Returns:
    A :class:`Mixer`.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = msda_jax.choice([msda_jax.cutmix(num_classes=3),
    ...                        msda_jax.mixup(alpha=0.8, num_classes=3)],
    ...                       probs=[0.5, 0.5])
    >>> out = mix(jax.random.key(0), jnp.zeros((4, 8, 8, 3)), jnp.arange(4) % 3)
    >>> out.labels.shape
    (4, 3)
  """
  mixers = list(mixers)
  if not mixers or not all(isinstance(m, Mixer) for m in mixers):
    raise ValueError(
        f"mixers must be a non-empty sequence of Mixer; got {mixers!r}")
  if probs is None:
    probs = [1.0 / len(mixers)] * len(mixers)
  probs = [check_prob(p, f"probs[{i}]") for i, p in enumerate(probs)]
  if len(probs) != len(mixers):
    raise ValueError(
        f"probs must have one weight per mixer ({len(mixers)}); got {len(probs)}")
  if abs(sum(probs) - 1.0) > 1e-6:
    raise ValueError(f"probs must sum to 1; got {probs} (sum {sum(probs)})")
  for field in ("mode", "partner", "label_smoothing", "num_classes"):
    values = [getattr(m, field) for m in mixers]
    if any(v != values[0] for v in values):
      raise ValueError(
          f"choice: all mixers must share {field}; got {values}. Build them "
          f"with the same {field}.")
  sampler = ChoiceSampler(tuple(m.sampler or _Unmixed() for m in mixers),
                          tuple(probs))
  first = mixers[0]
  names = ", ".join(f"{m.name}: {p:g}" for m, p in zip(mixers, probs))
  return Mixer(sampler, mode=first.mode, partner=first.partner,
               label_smoothing=first.label_smoothing,
               num_classes=first.num_classes, name=f"choice({names})")
