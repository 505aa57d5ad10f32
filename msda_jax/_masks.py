"""The four mask generators: Mixup, CutMix, HMix, GMix.

Each is a pure function of one sample, ``(key, shape, lam) -> mask``, with
``shape = (H, W)`` static and ``lam`` a Python float or a traced scalar. The
mask is float32 in ``[0, 1]``: the weight of the original image per pixel.

Reference: Park, Yun & Chun, "A Unified Analysis of Mixed Sample Data
Augmentation: A Loss Function Perspective", NeurIPS 2022 (arXiv 2208.09913).
"""

import math
from typing import Optional

import jax
import jax.numpy as jnp

from msda_jax import _geometry

__all__ = ["mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask"]


def _check_shape(shape) -> tuple[int, int]:
  try:
    height, width = (int(s) for s in shape)
  except (TypeError, ValueError):
    raise ValueError(
        f"shape must be a pair of positive ints (H, W); got {shape!r}"
    ) from None
  if height <= 0 or width <= 0:
    raise ValueError(f"shape must be a pair of positive ints (H, W); got {shape!r}")
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
  try:
    low, high = (float(v) for v in minmax)
  except (TypeError, ValueError):
    raise ValueError(
        f"minmax must be None or a pair (a, b) with 0 <= a < b <= 1; got {minmax!r}"
    ) from None
  if not 0.0 <= low < high <= 1.0:
    raise ValueError(
        f"minmax must be None or a pair (a, b) with 0 <= a < b <= 1; got {minmax!r}")
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
  del key
  return jnp.full(_check_shape(shape), _as_lam(lam), jnp.float32)


def _minmax_box(key: jax.Array, shape: tuple[int, int],
                minmax: tuple[float, float]) -> _geometry.Box:
  """timm's minmax box: sides uniform in [aH, bH), fully inside the image."""
  height, width = shape
  k_h, k_w, k_y, k_x = jax.random.split(key, 4)

  def side(k, size):
    low = int(size * minmax[0])
    high = max(int(size * minmax[1]), low + 1)
    return jax.random.randint(k, (), low, min(high, size + 1))

  cut_h, cut_w = side(k_h, height), side(k_w, width)
  top = jax.random.randint(k_y, (), 0, height - cut_h + 1)
  left = jax.random.randint(k_x, (), 0, width - cut_w + 1)
  return _geometry.Box(top, top + cut_h, left, left + cut_w)


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
  shape = _check_shape(shape)
  minmax = check_minmax(minmax)
  lam = _as_lam(lam)
  if minmax is None:
    side_ratio = jnp.sqrt(1.0 - lam)
    box = _geometry.centered_box(
        _geometry.random_center(key, shape), shape, side_ratio)
  else:
    box = _minmax_box(key, shape, minmax)
  return jnp.where(_geometry.box_mask(shape, box), 0.0, 1.0).astype(jnp.float32)


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
    >>> round(float(m.mean()), 5)
    0.6
  """
  shape = _check_shape(shape)
  r = check_r(r)
  lam = _as_lam(lam)
  height, width = shape
  box = _geometry.centered_box(
      _geometry.random_center(key, shape), shape, jnp.sqrt(r * (1.0 - lam)))
  lam_box = 1.0 - _geometry.box_area(box).astype(jnp.float32) / (height * width)
  mu = jnp.where(lam_box > 0, lam / jnp.maximum(lam_box, 1e-12), 0.0)
  mu = jnp.clip(mu, 0.0, 1.0)
  return jnp.where(_geometry.box_mask(shape, box), 0.0, mu).astype(jnp.float32)


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
  shape = _check_shape(shape)
  lam = _as_lam(lam)
  height, width = shape
  small = jnp.minimum(lam, 1.0 - lam)
  dist2 = _geometry.squared_distance(shape, _geometry.random_center(key, shape))
  scale = jnp.maximum(small * (height * width), 1e-12)
  blob = jnp.exp(-math.pi * dist2 / scale)
  return jnp.where(lam < 0.5, blob, 1.0 - blob).astype(jnp.float32)
