"""The four mask generators: Mixup, CutMix, HMix, GMix.

Each method is a *rule* ``(u, shape, lam) -> (mask, mean)`` that builds one
sample's mask from a few uniforms ``u`` in [0, 1) (its random centre or box)
and returns the mask's mean from the geometry (box area, separable sums):
under ``jax.jit`` the mask then never has to be materialised to be averaged,
and a sampler draws all of a sample's randomness in one threefry call. A
rule is lifted into a :class:`~msda_jax._engine.UniformMask`; the public
generators ``(key, shape, lam) -> mask`` draw ``u`` from the key exactly as
the mixers do (``_engine``'s key contract), so they reproduce a mixer's
mask from the sample's key and λ.

The mask is float32 in ``[0, 1]``: the weight of the original image per pixel.

Reference: Park, Yun & Chun, "A Unified Analysis of Mixed Sample Data
Augmentation: A Loss Function Perspective", NeurIPS 2022 (arXiv 2208.09913).
"""

import math
from typing import Optional

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax._engine import UniformMask

__all__ = [
    "mixup_rule", "cutmix_rule", "hmix_rule", "gmix_rule",
    "mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask",
    "check_minmax", "check_r",
]


def _check_shape(shape) -> tuple[int, int]:
  message = f"shape must be a pair of positive ints (H, W); got {shape!r}"
  try:
    height, width = (int(s) for s in shape)
  except (TypeError, ValueError):
    raise ValueError(message) from None
  if height <= 0 or width <= 0:
    raise ValueError(message)
  return height, width


def _as_lam(lam) -> jax.Array:
  """λ as float32; a concrete λ outside [0, 1] is an error, a traced one is clipped."""
  if isinstance(lam, (int, float)) and not 0.0 <= lam <= 1.0:
    raise ValueError(f"lam must be in [0, 1]; got {lam!r}")
  return jnp.clip(jnp.asarray(lam, jnp.float32), 0.0, 1.0)


def check_minmax(minmax) -> Optional[tuple[float, float]]:
  """Validates CutMix's ``minmax``: None or ``(a, b)`` with 0 <= a < b <= 1."""
  if minmax is None:
    return None
  message = (f"minmax must be None or a pair (a, b) with 0 <= a < b <= 1; "
             f"got {minmax!r}")
  try:
    low, high = (float(v) for v in minmax)
  except (TypeError, ValueError):
    raise ValueError(message) from None
  if not 0.0 <= low < high <= 1.0:
    raise ValueError(message)
  return low, high


def check_r(r) -> float:
  """Validates HMix's ``r`` in [0, 1]."""
  try:
    value = float(r)
  except (TypeError, ValueError):
    raise ValueError(f"r must be a float in [0, 1]; got {r!r}") from None
  if not 0.0 <= value <= 1.0:
    raise ValueError(
        f"r must be in [0, 1] (r > 1 would extrapolate, r < 0 is undefined); got {r!r}")
  return value


def _outside_share(shape, box: _geometry.Box) -> jax.Array:
  """``1 - box_area / (H W)``: the share of pixels outside ``box``."""
  total = shape[0] * shape[1]
  return (total - _geometry.box_area(box)).astype(jnp.float32) / total


def _box_mask_and_mean(shape, box: _geometry.Box, outside):
  """0 in the box, ``outside`` elsewhere, and the exact mean of that mask."""
  mask = jnp.where(_geometry.box_mask(shape, box), 0.0, outside)
  return mask.astype(jnp.float32), outside * _outside_share(shape, box)


def _mixup(u, shape, lam):
  del u
  return jnp.full(shape, lam, jnp.float32), lam


def _cutmix(u, shape, lam):
  box = _geometry.centered_box(_geometry.center_from_uniform(u, shape), shape,
                               jnp.sqrt(1.0 - lam))
  return _box_mask_and_mean(shape, box, 1.0)


def _cutmix_minmax(u, shape, lam, *, minmax):
  """timm's minmax box: sides uniform in [aH, bH), fully inside; λ unused."""
  del lam
  sides, corner = [], []
  for size, u_side, u_corner in zip(shape, u[:2], u[2:]):
    low = int(size * minmax[0])
    high = min(max(int(size * minmax[1]), low + 1), size + 1)
    side = jnp.minimum(low + jnp.floor(u_side * (high - low)).astype(jnp.int32),
                       high - 1)
    sides.append(side)
    corner.append(jnp.minimum(
        jnp.floor(u_corner * (size - side + 1)).astype(jnp.int32), size - side))
  box = _geometry.Box(corner[0], corner[0] + sides[0],
                      corner[1], corner[1] + sides[1])
  return _box_mask_and_mean(shape, box, 1.0)


def _hmix(u, shape, lam, *, r):
  box = _geometry.centered_box(_geometry.center_from_uniform(u, shape), shape,
                               jnp.sqrt(r * (1.0 - lam)))
  lam_box = _outside_share(shape, box)
  mu = jnp.clip(jnp.where(lam_box > 0, lam / jnp.maximum(lam_box, 1e-12), 0.0),
                0.0, 1.0)
  return _box_mask_and_mean(shape, box, mu)


def _gmix(u, shape, lam):
  # exp(-π d² / s) is separable, row ⊗ col: H + W exponentials, not H W, and
  # mean(blob) = mean(row) * mean(col).
  height, width = shape
  center = _geometry.center_from_uniform(u, shape).astype(jnp.float32)
  scale = jnp.maximum(jnp.minimum(lam, 1.0 - lam) * (height * width), 1e-12)

  def bump(size, c):
    return jnp.exp(-math.pi * jnp.square(jnp.arange(size, dtype=jnp.float32) - c)
                   / scale)

  row, col = bump(height, center[0]), bump(width, center[1])
  blob, blob_mean = row[:, None] * col[None, :], jnp.mean(row) * jnp.mean(col)
  low = lam < 0.5
  return (jnp.where(low, blob, 1.0 - blob).astype(jnp.float32),
          jnp.where(low, blob_mean, 1.0 - blob_mean))


def _checked(u, shape, lam, *, rule, **options):
  """Validates ``shape`` and ``lam``, then applies the named rule."""
  return _RULES[rule](u, _check_shape(shape), _as_lam(lam), **options)


_RULES = {"mixup": _mixup, "cutmix": _cutmix, "cutmix_minmax": _cutmix_minmax,
          "hmix": _hmix, "gmix": _gmix}


def _rule(name: str, num_uniforms: int, **options) -> UniformMask:
  return UniformMask(_checked, num_uniforms,
                     tuple(sorted({"rule": name, **options}.items())))


def mixup_rule() -> UniformMask:
  return _rule("mixup", 0)


def cutmix_rule(*, minmax: Optional[tuple[float, float]] = None) -> UniformMask:
  minmax = check_minmax(minmax)
  if minmax is None:
    return _rule("cutmix", 2)
  return _rule("cutmix_minmax", 4, minmax=minmax)


def hmix_rule(*, r: float = 0.5) -> UniformMask:
  return _rule("hmix", 2, r=check_r(r))


def gmix_rule() -> UniformMask:
  return _rule("gmix", 2)


def _draw(rule: UniformMask, key: jax.Array, shape, lam) -> jax.Array:
  return rule(key, shape, lam)[0]


def mixup_mask(key: jax.Array, shape: tuple[int, int], lam) -> jax.Array:
  """Mixup (Zhang et al., ICLR 2018): the constant mask ``M = λ``.

  Args:
    key: a PRNG key (unused: Mixup has no spatial randomness; kept so every
      generator has the same signature).
    shape: ``(H, W)``, static.
    lam: the mixing ratio λ in [0, 1].

  Returns:
    float32 ``(H, W)`` filled with λ.

  Example:
    >>> import jax
    >>> m = mixup_mask(jax.random.key(0), (4, 6), 0.3)
    >>> m.shape, float(m.mean())
    ((4, 6), 0.3...)
  """
  return _draw(mixup_rule(), key, shape, lam)


def cutmix_mask(key: jax.Array, shape: tuple[int, int], lam, *,
                minmax: Optional[tuple[float, float]] = None) -> jax.Array:
  """CutMix (Yun et al., ICCV 2019): 0 inside a random box, 1 outside.

  The box has side ratio ``sqrt(1 - λ)``, a centre uniform over the pixels and
  is clipped at the border, so the mask mean (the label weight the mixers use)
  is the corrected λ. With ``minmax=(a, b)`` the box sides are instead uniform
  in ``[aH, bH)`` and ``[aW, bW)``, the box lies fully inside the image and λ
  is ignored (timm's variant).

  Args:
    key: a PRNG key.
    shape: ``(H, W)``, static.
    lam: the mixing ratio λ in [0, 1].
    minmax: optional ``(a, b)`` with ``0 <= a < b <= 1``.

  Returns:
    float32 ``(H, W)`` with values in {0, 1}.

  Example:
    >>> import jax
    >>> m = cutmix_mask(jax.random.key(0), (32, 32), 0.75)
    >>> sorted(set(m.ravel().tolist())) in ([0.0, 1.0], [1.0])
    True
  """
  return _draw(cutmix_rule(minmax=minmax), key, shape, lam)


def hmix_mask(key: jax.Array, shape: tuple[int, int], lam, *,
              r: float = 0.5) -> jax.Array:
  """HMix (Park et al., NeurIPS 2022): a CutMix box inside a Mixup blend.

  The box has side ratio ``sqrt(r (1 - λ))`` (same centre rule and clipping
  as CutMix). Inside it the mask is 0 (pure partner); outside it is
  ``μ = λ / λ_box`` with ``λ_box = 1 - box_area / (H W)``, so the mask mean is
  exactly λ: HMix never shifts the label. ``r = 0`` is Mixup; ``r = 1`` is a
  CutMix-sized box that blends only when clipped.

  Args:
    key: a PRNG key.
    shape: ``(H, W)``, static.
    lam: the mixing ratio λ in [0, 1].
    r: the share of ``1 - λ`` given to the box, in [0, 1].

  Returns:
    float32 ``(H, W)`` with values in {0, μ}.

  Example:
    >>> import jax
    >>> m = hmix_mask(jax.random.key(0), (32, 32), 0.6, r=0.5)
    >>> abs(float(m.mean()) - 0.6) < 1e-5
    True
  """
  return _draw(hmix_rule(r=r), key, shape, lam)


def gmix_mask(key: jax.Array, shape: tuple[int, int], lam) -> jax.Array:
  """GMix (Park et al., NeurIPS 2022): a Gaussian blob at a random pixel.

  With ``λ' = min(λ, 1 - λ)`` and ``g = exp(-π d² / (λ' H W))`` (``d`` the
  distance to a centre drawn uniformly over the pixels), the mask is ``g``
  when ``λ < 0.5`` and ``1 - g`` otherwise: the image with the smaller share
  always takes the blob. The blob's full-plane area is ``λ' H W`` for any
  aspect ratio, so non-square images work; the border truncates it, so the
  mask mean is pulled toward 0 or 1.

  Args:
    key: a PRNG key.
    shape: ``(H, W)``, static.
    lam: the mixing ratio λ in [0, 1].

  Returns:
    float32 ``(H, W)`` in [0, 1].

  Example:
    >>> import jax
    >>> m = gmix_mask(jax.random.key(0), (24, 40), 0.3)
    >>> m.shape, bool(m.max() <= 1.0)
    ((24, 40), True)
  """
  return _draw(gmix_rule(), key, shape, lam)
