"""Combining mixers: ``choice`` picks one of several per draw.

The algebra closes: a choice of choices is a mixer like any other.
"""

import dataclasses
from typing import Any, Callable, Sequence, Union

import jax
import jax.numpy as jnp

from msda_jax._engine import check_prob, is_schedule
from msda_jax._mixer import Mixer
from msda_jax._modes import sample
from msda_jax._types import Draw, PasteBox, identity_moves

__all__ = ["choice", "ChoiceSampler"]


@dataclasses.dataclass(frozen=True)
class _Unmixed:
  """The sampler of a mixer that never mixes: a mask of ones."""

  def __call__(self, key: jax.Array, shape):
    del key
    return Draw(jnp.ones(shape, jnp.float32), jnp.ones((), jnp.float32))


def _filled(draws, shape) -> list:
  """The draws with the same fields: a paste box (identity where a method
  pastes nothing) if any pastes, block moves (none moved) if any moves."""
  pastes = any(d.paste is not None for d in draws)
  grids = {d.moves.own.shape for d in draws if d.moves is not None}
  if len(grids) > 1:
    raise ValueError(
        f"choice: the methods move blocks on different grids {sorted(grids)}; "
        f"give them the same transport grid")
  filled = []
  for d in draws:
    if pastes and d.paste is None:
      d = d._replace(paste=PasteBox(jnp.zeros(len(shape), jnp.int32),
                                    jnp.asarray(shape, jnp.int32)))
    if grids and d.moves is None:
      d = d._replace(moves=identity_moves(next(iter(grids))))
    filled.append(d)
  return filled


@dataclasses.dataclass(frozen=True)
class ChoiceSampler:
  """Draws with one of ``samplers``, picked with weights ``probs``.

  Every sampler draws from the same key and the picked draw is selected (see
  :func:`choice`). ``probs`` is a tuple of weights or a schedule
  ``step -> weights``. Compares equal by value (a schedule by identity).
  """

  samplers: tuple
  probs: Any

  @property
  def scheduled(self) -> bool:
    """Whether the weights or any sampler are scheduled (calls need a step)."""
    return is_schedule(self.probs) or any(
        getattr(s, "scheduled", False) for s in self.samplers)

  @property
  def guided(self) -> bool:
    """Whether any sampler looks at guides (calls then pass them)."""
    return any(getattr(s, "guided", False) for s in self.samplers)

  @property
  def default_guide(self):
    """The guided samplers' default guide when they agree on one, else None
    (the mixer then needs ``guide=``)."""
    defaults = {getattr(s, "default_guide", None) for s in self.samplers
                if getattr(s, "guided", False)}
    return defaults.pop() if len(defaults) == 1 else None

  def _weights(self, step):
    if not is_schedule(self.probs):
      return jnp.asarray(self.probs, jnp.float32)
    weights = jnp.asarray(self.probs(step), jnp.float32)
    if weights.shape != (len(self.samplers),):
      raise ValueError(
          f"the probs schedule must return one weight per mixer "
          f"({len(self.samplers)},); got shape {weights.shape}")
    return weights  # jax.random.choice normalises by the sum.

  def __call__(self, key: jax.Array, shape, step=None, *, guide=None,
               partner_guide=None):
    if self.scheduled and step is None:
      raise ValueError(
          "this choice has a schedule (weights or a method's alpha/prob): "
          "call it with step=")
    pick_key, mask_key = jax.random.split(key)
    pick = jax.random.choice(pick_key, len(self.samplers),
                             p=self._weights(step))
    # Every method's mask is built from mask_key and the picked one selected.
    # Under vmap ('elem' and 'pair' modes) lax.switch lowers to this same
    # select anyway, and a vmapped lax.switch inside shard_map fails in JAX
    # 0.10 ("pvary is a invariant->variant collective"). In 'batch' mode it
    # builds a few masks instead of one: negligible next to the blend.
    # A sampler that needs no guide never sees one.
    draws = [sample(s, mask_key, shape, step=step, guide=guide,
                    partner_guide=partner_guide) for s in self.samplers]
    draws = _filled(draws, shape)
    return jax.tree.map(lambda *xs: jax.lax.select_n(pick, *xs), *draws)


def choice(mixers: Sequence[Mixer], *,
           probs: Union[None, Sequence[float], Callable] = None) -> Mixer:
  """A mixer that picks one of ``mixers`` per draw, with weights ``probs``.

  In 'elem' mode each sample draws its own method, in 'pair' mode each pair,
  in 'batch' mode the batch. timm's ``switch_prob=p`` is
  ``choice([cutmix(...), mixup(...)], probs=[p, 1 - p])``. Each method keeps
  its own α and ``prob``. All mixers must share ``mode``, ``partner``,
  ``label_smoothing`` and ``num_classes``.

  Args:
    mixers: a non-empty sequence of mixers.
    probs: weights, non-negative, summing to 1; uniform if None; or a
      schedule ``step -> weights`` (an array of one non-negative weight per
      mixer, normalised by its sum); the mixer is then called with
      ``step=``. A method's own scheduled α or ``prob`` works either way.

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
  scheduled = is_schedule(probs)
  if not scheduled:
    if isinstance(probs, str) or not hasattr(probs, "__len__"):
      raise ValueError(
          f"probs must be a sequence of weights or a schedule step -> "
          f"weights; got {probs!r}")
    probs = [check_prob(p, f"probs[{i}]", schedule=False)
             for i, p in enumerate(probs)]
    if len(probs) != len(mixers):
      raise ValueError(
          f"probs must have one weight per mixer ({len(mixers)}); got "
          f"{len(probs)}")
    if abs(sum(probs) - 1.0) > 1e-6:
      raise ValueError(f"probs must sum to 1; got {probs} (sum {sum(probs)})")
  for field in ("mode", "partner", "label_smoothing", "num_classes"):
    values = [getattr(m, field) for m in mixers]
    if any(v != values[0] for v in values):
      raise ValueError(
          f"choice: all mixers must share {field}; got {values}. Build them "
          f"with the same {field}.")
  sampler = ChoiceSampler(tuple(m.sampler or _Unmixed() for m in mixers),
                          probs if scheduled else tuple(probs))
  first = mixers[0]
  if scheduled:
    names = ", ".join(m.name for m in mixers) + "; probs=schedule"
  else:
    names = ", ".join(f"{m.name}: {p:g}" for m, p in zip(mixers, probs))
  return Mixer(sampler, mode=first.mode, partner=first.partner,
               label_smoothing=first.label_smoothing,
               num_classes=first.num_classes, name=f"choice({names})")
