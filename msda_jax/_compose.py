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
  Keys: one threefry call per sample, ``u = jax.random.uniform(key, (k,))``
  with ``n = rule.num_uniforms``:

  - α = 1: ``k = 2 + n`` and λ = ``u[0]``;
  - α ≠ 1: ``k = 3 + n`` and λ =
    ``_lam.beta_from_uniforms(u[0], u[-1], α)`` (exact Beta(α, α) from two
    uniforms, no rejection loop);

  and in both cases the mix/no-mix coin is ``u[1] < prob`` and the rule's
  uniforms are ``u[2:2 + n]``.

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

  n = rule.num_uniforms

  def sample(key: jax.Array, shape: tuple[int, int]):
    if alpha == 1.0:
      u = jax.random.uniform(key, (2 + n,), jnp.float32)
      lam = u[0]
    else:
      u = jax.random.uniform(key, (3 + n,), jnp.float32)
      lam = _lam.beta_from_uniforms(u[0], u[-1], alpha)
    mask, mean = rule.fn(u[2:2 + n], shape, lam)
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
    # Every method's mask is built from mask_key and the picked one selected.
    # Under vmap ('elem' and 'pair' modes) lax.switch lowers to this same
    # select anyway, and a vmapped lax.switch inside shard_map fails in JAX
    # 0.10 ("pvary is a invariant->variant collective"). In 'batch' mode it
    # builds a few (H, W) masks instead of one: negligible next to the blend.
    outs = [s(mask_key, shape) for s in samplers]
    mask = jax.lax.select_n(pick, *[m for m, _ in outs])
    mean = jax.lax.select_n(pick, *[v for _, v in outs])
    return mask, mean

  first = mixers[0]
  names = ", ".join(f"{m.name}: {p:g}" for m, p in zip(mixers, probs))
  return Mixer(sample, mode=first.mode, partner=first.partner,
               label_smoothing=first.label_smoothing,
               num_classes=first.num_classes, name=f"choice({names})")
