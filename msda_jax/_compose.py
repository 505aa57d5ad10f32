"""Building and combining mask samplers and mixers.

``method_sampler`` turns a mask rule, an α and a ``prob`` into a sampler;
``choice`` combines mixers into a mixer (the algebra closes: a choice of
choices is a mixer like any other).
"""

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from msda_jax import _lam
from msda_jax._masks import MaskRule
from msda_jax._mixer import Mixer
from msda_jax._types import MaskSampler

__all__ = ["check_alpha", "check_prob", "method_sampler", "choice"]


def check_alpha(alpha) -> float:
  try:
    value = float(alpha)
  except (TypeError, ValueError):
    raise ValueError(f"alpha must be a float > 0; got {alpha!r}") from None
  if not (value > 0 and math.isfinite(value)):
    raise ValueError(f"alpha must be a finite float > 0; got {alpha!r}")
  return value


def check_prob(prob, name: str = "prob") -> float:
  try:
    value = float(prob)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a float in [0, 1]; got {prob!r}") from None
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be in [0, 1]; got {prob!r}")
  return value


def _ones(key: jax.Array, shape: tuple[int, int]):
  del key
  return jnp.ones(shape, jnp.float32), jnp.ones((), jnp.float32)


def method_sampler(rule: MaskRule, *, alpha: float,
                   prob: float = 1.0) -> MaskSampler:
  """A sampler that draws λ ~ Beta(α, α), then ``rule``'s mask and its mean.

  With probability ``1 - prob`` the sample is left unmixed (mask of ones).
  Keys: one draw ``u = jax.random.uniform(key, (2 + rule.num_uniforms,))``
  gives λ = ``u[0]`` when α = 1 (else λ ~ Beta(α, α) from
  ``jax.random.fold_in(key, 1)``), the mix/no-mix coin ``u[1] < prob`` and
  the rule's uniforms ``u[2:]``: one threefry call per sample.

  Args:
    rule: the method's :class:`~msda_jax._masks.MaskRule`, options bound.
    alpha: Beta concentration, > 0.
    prob: probability of mixing, in [0, 1].

  Returns:
    ``sampler(key, (H, W)) -> (mask, mean)``.
  """
  alpha = check_alpha(alpha)
  prob = check_prob(prob)
  if prob == 0.0:
    return _ones

  def sample(key: jax.Array, shape: tuple[int, int]):
    u = jax.random.uniform(key, (2 + rule.num_uniforms,), jnp.float32)
    if alpha == 1.0:
      lam = u[0]
    else:
      lam = _lam.sample_lam(jax.random.fold_in(key, 1), alpha)
    mask, mean = rule.fn(u[2:], shape, lam)
    if prob == 1.0:
      return mask, mean
    mixed = u[1] < prob
    return jnp.where(mixed, mask, 1.0), jnp.where(mixed, mean, 1.0)

  return sample


def choice(mixers: Sequence[Mixer],
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
  samplers = [m.sampler or _ones for m in mixers]
  weights = jnp.asarray(probs, jnp.float32)

  def sample(key: jax.Array, shape: tuple[int, int]):
    pick_key, mask_key = jax.random.split(key)
    pick = jax.random.choice(pick_key, len(samplers), p=weights)
    branches = [lambda k, s=s: s(k, shape) for s in samplers]
    return jax.lax.switch(pick, branches, mask_key)  # (mask, mean)

  first = mixers[0]
  names = ", ".join(f"{m.name}: {p:g}" for m, p in zip(mixers, probs))
  return Mixer(sample, mode=first.mode, partner=first.partner,
               label_smoothing=first.label_smoothing,
               num_classes=first.num_classes, name=f"choice({names})")
