"""The four mask generators: Mixup, CutMix, HMix, GMix, for 1 to 3 axes.

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

Ranks: every rule takes a spatial shape of 1, 2 or 3 axes (``(T,)`` for
sequences and audio, ``(H, W)`` for images, ``(D, H, W)`` for volumes and
video). Boxes keep the volume ``(1 - λ) prod(shape)`` (side ratio
``(1 - λ)^(1/n)`` per axis), GMix keeps its full-space mass ``λ' prod(shape)``
(``exp(-π d² / (λ' prod(shape))^(2/n))``, separable per axis).

Uniforms: a rule's ``num_uniforms`` is fixed before the shape is known, and it
sets the sampler's layout (``u[-1]`` feeds λ for α != 1), so it stays what the
2-D rules need: 2 for a centre, 4 for a minmax box. A 1-D rule uses the first
uniform of each pair; a 3-D rule derives the third axis' uniforms from the
bits of ``u[0]`` and ``u[1]`` (one extra threefry call, see
:func:`~msda_jax._geometry.per_axis_uniforms`). So 1-D and 2-D draws are
exactly the 2-D streams (the same λ, centre and box for the same key as
before masks became rank-generic), and only 3-D adds a call.

Reference: Park, Yun & Chun, "A Unified Analysis of Mixed Sample Data
Augmentation: A Loss Function Perspective", NeurIPS 2022 (arXiv 2208.09913).
"""

import functools
import math
import operator
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from msda_jax import _geometry
from msda_jax import _lam
from msda_jax._engine import UniformMask

__all__ = [
    "mixup_rule", "cutmix_rule", "hmix_rule", "gmix_rule",
    "mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask",
    "check_minmax", "check_r", "check_exact_box", "box_mask_and_mean",
]


def check_exact_box(exact_box) -> bool:
  """Validates ``exact_box``: True or False."""
  if not isinstance(exact_box, (bool, np.bool_)):
    raise ValueError(f"exact_box must be True or False; got {exact_box!r}")
  return bool(exact_box)


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
  """``1 - box_volume / prod(shape)``: the share of pixels outside ``box``."""
  total = math.prod(shape)
  return (total - _geometry.box_area(box)).astype(jnp.float32) / total


def box_mask_and_mean(shape, box: _geometry.Box, outside):
  """0 in the box, ``outside`` elsewhere, and the exact mean of that mask."""
  mask = jnp.where(_geometry.box_mask(shape, box), 0.0, outside)
  return mask.astype(jnp.float32), outside * _outside_share(shape, box)


def _center(u, shape):
  return _geometry.center_from_uniform(
      _geometry.per_axis_uniforms(u, len(shape))[0], shape)


def _mixup(u, shape, lam):
  del u
  return jnp.full(shape, lam, jnp.float32), lam


def _cutmix(u, shape, lam, *, exact_box=False):
  box = _geometry.centered_box(_center(u, shape), shape,
                               _geometry.root(1.0 - lam, len(shape)),
                               exact=exact_box)
  return box_mask_and_mean(shape, box, 1.0)


def _cutmix_minmax(u, shape, lam, *, minmax):
  """timm's minmax box: sides uniform in [a size, b size), fully inside; λ unused."""
  del lam
  u_sides, u_corners = _geometry.per_axis_uniforms(u, len(shape), groups=2)
  starts, stops = [], []
  for axis, size in enumerate(shape):
    low = int(size * minmax[0])
    high = min(max(int(size * minmax[1]), low + 1), size + 1)
    side = jnp.minimum(
        low + jnp.floor(u_sides[axis] * (high - low)).astype(jnp.int32), high - 1)
    start = jnp.minimum(
        jnp.floor(u_corners[axis] * (size - side + 1)).astype(jnp.int32),
        size - side)
    starts.append(start)
    stops.append(start + side)
  box = _geometry.Box(jnp.stack(starts), jnp.stack(stops))
  return box_mask_and_mean(shape, box, 1.0)


def _hmix(u, shape, lam, *, r, exact_box=False):
  box = _geometry.centered_box(_center(u, shape), shape,
                               _geometry.root(r * (1.0 - lam), len(shape)),
                               exact=exact_box)
  lam_box = _outside_share(shape, box)
  mu = jnp.clip(jnp.where(lam_box > 0, lam / jnp.maximum(lam_box, 1e-12), 0.0),
                0.0, 1.0)
  return box_mask_and_mean(shape, box, mu)


def _gmix(u, shape, lam):
  # exp(-π d² / s) is separable, a product of per-axis bumps: sum(shape)
  # exponentials, not prod(shape), and mean(blob) = prod(mean(bump)).
  # s = (λ' prod(shape))^(2/n), so the blob's full-space mass is
  # λ' prod(shape) in every rank (s = λ' H W in 2-D).
  rank = len(shape)
  center = _center(u, shape).astype(jnp.float32)
  volume = jnp.minimum(lam, 1.0 - lam) * math.prod(shape)
  # (2-D: λ' H W itself, not through a power, so 2-D masks stay bit-exact.)
  spread = volume if rank == 2 else jnp.square(_geometry.root(volume, rank))
  scale = jnp.maximum(spread, 1e-12)

  def bump(size, c):
    return jnp.exp(-math.pi * jnp.square(jnp.arange(size, dtype=jnp.float32) - c)
                   / scale)

  bumps = [bump(size, center[axis]) for axis, size in enumerate(shape)]
  blob = _geometry.outer_product(bumps)
  blob_mean = functools.reduce(operator.mul, [jnp.mean(b) for b in bumps])
  low = lam < 0.5
  return (jnp.where(low, blob, 1.0 - blob).astype(jnp.float32),
          jnp.where(low, blob_mean, 1.0 - blob_mean))


def _checked(u, shape, lam, *, rule, **options):
  """Validates ``shape`` and ``lam``, then applies the named rule."""
  return _RULES[rule](u, _geometry.check_shape(shape), _lam.as_lam(lam), **options)


_RULES = {"mixup": _mixup, "cutmix": _cutmix, "cutmix_minmax": _cutmix_minmax,
          "hmix": _hmix, "gmix": _gmix}


def _rule(name: str, num_uniforms: int, **options) -> UniformMask:
  return UniformMask(_checked, num_uniforms,
                     tuple(sorted({"rule": name, **options}.items())))


def mixup_rule() -> UniformMask:
  return _rule("mixup", 0)


def cutmix_rule(*, minmax: Optional[tuple[float, float]] = None,
                exact_box: bool = False) -> UniformMask:
  minmax = check_minmax(minmax)
  exact = {"exact_box": True} if check_exact_box(exact_box) else {}
  if minmax is None:
    return _rule("cutmix", 2, **exact)
  # A minmax box is exactly its drawn size already: exact_box changes nothing.
  return _rule("cutmix_minmax", 4, minmax=minmax)


def hmix_rule(*, r: float = 0.5, exact_box: bool = False) -> UniformMask:
  exact = {"exact_box": True} if check_exact_box(exact_box) else {}
  return _rule("hmix", 2, r=check_r(r), **exact)


def gmix_rule() -> UniformMask:
  return _rule("gmix", 2)


def _draw(rule: UniformMask, key: jax.Array, shape, lam) -> jax.Array:
  return rule(key, shape, lam)[0]


def mixup_mask(key: jax.Array, shape: tuple[int, ...], lam) -> jax.Array:
  """Mixup (Zhang et al., ICLR 2018): the constant mask ``M = λ``.

  Args:
    key: a PRNG key (unused: Mixup has no spatial randomness; kept so every
      generator has the same signature).
    shape: the spatial shape, ``(T,)``, ``(H, W)`` or ``(D, H, W)``, static.
    lam: the mixing ratio λ in [0, 1].

  Returns:
    float32 of ``shape`` filled with λ.

  Example:
    >>> import jax
    >>> m = mixup_mask(jax.random.key(0), (4, 6), 0.3)
    >>> m.shape, float(m.mean())
    ((4, 6), 0.3...)
  """
  return _draw(mixup_rule(), key, shape, lam)


def cutmix_mask(key: jax.Array, shape: tuple[int, ...], lam, *,
                minmax: Optional[tuple[float, float]] = None,
                exact_box: bool = False) -> jax.Array:
  """CutMix (Yun et al., ICCV 2019): 0 inside a random box, 1 outside.

  The box has volume ``(1 - λ) prod(shape)`` before rounding (side ratio
  ``(1 - λ)^(1/n)`` on each of the n axes: ``sqrt(1 - λ)`` for an image),
  a centre uniform over the pixels and is clipped at the border, so the
  mask mean (the label weight the mixers use) is the corrected λ. With
  ``minmax=(a, b)`` the box sides are instead uniform in ``[a size,
  b size)`` per axis, the box lies fully inside and λ is ignored (timm's
  variant).

  Rounding: each axis gets ``cut = floor(size * ratio)``. By default it spans
  ``[c - cut // 2, c + cut // 2)`` (the CutMix authors' and the paper's
  reference rule: an odd ``cut`` loses a pixel); with ``exact_box=True`` it
  spans ``[c - cut // 2, c + (cut + 1) // 2)``, exactly ``cut`` wide before
  clipping (timm 1.0.31's ``rand_bbox``, whose label weights it matches).

  Args:
    key: a PRNG key.
    shape: the spatial shape, ``(T,)``, ``(H, W)`` or ``(D, H, W)``, static.
    lam: the mixing ratio λ in [0, 1].
    minmax: optional ``(a, b)`` with ``0 <= a < b <= 1``.
    exact_box: take timm 1.0.31's exact box rounding (no effect with
      ``minmax``, whose boxes are always their drawn size).

  Returns:
    float32 of ``shape`` with values in {0, 1}.

  Example:
    >>> import jax
    >>> m = cutmix_mask(jax.random.key(0), (32, 32), 0.75)
    >>> sorted(set(m.ravel().tolist())) in ([0.0, 1.0], [1.0])
    True
    >>> cutmix_mask(jax.random.key(0), (8, 16, 16), 0.5, exact_box=True).shape
    (8, 16, 16)
  """
  return _draw(cutmix_rule(minmax=minmax, exact_box=exact_box), key, shape,
               lam)


def hmix_mask(key: jax.Array, shape: tuple[int, ...], lam, *,
              r: float = 0.5, exact_box: bool = False) -> jax.Array:
  """HMix (Park et al., NeurIPS 2022): a CutMix box inside a Mixup blend.

  The box has volume ``r (1 - λ) prod(shape)`` before rounding (side ratio
  ``(r (1 - λ))^(1/n)`` per axis; same centre rule, clipping and rounding
  options as :func:`cutmix_mask`). Inside it the mask is 0 (pure partner);
  outside it is ``μ = λ / λ_box`` with ``λ_box = 1 - box_volume /
  prod(shape)``, so the mask mean is exactly λ: HMix never shifts the label.
  ``r = 0`` is Mixup; ``r = 1`` is a CutMix-sized box that blends only when
  clipped.

  Args:
    key: a PRNG key.
    shape: the spatial shape, ``(T,)``, ``(H, W)`` or ``(D, H, W)``, static.
    lam: the mixing ratio λ in [0, 1].
    r: the share of ``1 - λ`` given to the box, in [0, 1].
    exact_box: take timm 1.0.31's exact box rounding (see
      :func:`cutmix_mask`).

  Returns:
    float32 of ``shape`` with values in {0, μ}.

  Example:
    >>> import jax
    >>> m = hmix_mask(jax.random.key(0), (32, 32), 0.6, r=0.5)
    >>> abs(float(m.mean()) - 0.6) < 1e-5
    True
  """
  return _draw(hmix_rule(r=r, exact_box=exact_box), key, shape, lam)


def gmix_mask(key: jax.Array, shape: tuple[int, ...], lam) -> jax.Array:
  """GMix (Park et al., NeurIPS 2022): a Gaussian blob at a random pixel.

  With ``λ' = min(λ, 1 - λ)``, n the number of axes and ``g = exp(-π d² /
  (λ' prod(shape))^(2/n))`` (``d`` the distance to a centre drawn uniformly
  over the pixels; ``exp(-π d² / (λ' H W))`` for an image), the mask is
  ``g`` when ``λ < 0.5`` and ``1 - g`` otherwise: the image with the smaller
  share always takes the blob. The blob's full-space mass is ``λ'
  prod(shape)`` for any shape, so non-square images work; the border
  truncates it, so the mask mean is pulled toward 0 or 1.

  Args:
    key: a PRNG key.
    shape: the spatial shape, ``(T,)``, ``(H, W)`` or ``(D, H, W)``, static.
    lam: the mixing ratio λ in [0, 1].

  Returns:
    float32 of ``shape`` in [0, 1].

  Example:
    >>> import jax
    >>> m = gmix_mask(jax.random.key(0), (24, 40), 0.3)
    >>> m.shape, bool(m.max() <= 1.0)
    ((24, 40), True)
    >>> gmix_mask(jax.random.key(0), (100,), 0.3).shape
    (100,)
  """
  return _draw(gmix_rule(), key, shape, lam)
