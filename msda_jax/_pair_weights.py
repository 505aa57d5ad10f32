"""The paper's pixel-pair regulariser weight, estimated for any method.

Park, Yun & Chun ("A Unified Analysis of Mixed Sample Data Augmentation: A
Loss Function Perspective", NeurIPS 2022) show that training on mixed samples
is the clean loss plus a pixel-level regulariser whose weight for the pixel
pair ``(k, l)`` is about ``E[(1 - M_k)(1 - M_l)]``, ``M`` being the weight of
the original image. For Mixup it is flat in the distance between ``k`` and
``l`` (a global input-gradient penalty); for CutMix it decays (a local one).
:func:`pair_weights` estimates that weight as a function of the pixel offset
``l - k`` for any mask generator or mixer, by Monte Carlo under jit.
"""

import functools
import math
from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from msda_jax._engine import Alpha, check_alpha, mask_mixer
from msda_jax._mixer import Mixer

__all__ = ["PairWeights", "pair_weights", "DEFAULT_CHUNK_SIZE"]

# Samples drawn per step of the loop (256 masks of 32x32 are 1 MB, which
# stays in cache: 20% faster than 1024 on CPU).
DEFAULT_CHUNK_SIZE = 256


class PairWeights(NamedTuple):
  """Monte-Carlo estimates of ``E[(1 - M_k)(1 - M_l)]`` by offset ``l - k``.

  Attributes:
    offsets: int64 numpy ``(n, rank)``, one row per requested offset with
      one entry per spatial axis (an int offset ``d`` becomes
      ``(0, ..., 0, d)``).
    mean: float64 numpy ``(n,)``, the estimates.
    stderr: float64 numpy ``(n,)``, their standard errors (the standard
      deviation of the per-sample averages over ``sqrt(num_samples)``).
    num_samples: the number of masks drawn.
  """

  offsets: np.ndarray
  mean: np.ndarray
  stderr: np.ndarray
  num_samples: int


def _check_shape(shape) -> tuple[int, ...]:
  message = (f"shape must be the spatial shape, 1 to 3 positive ints (T,), "
             f"(H, W) or (D, H, W); got {shape!r}")
  if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
    shape = (shape,)
  try:
    dims = tuple(int(s) for s in shape)
    exact = all(not isinstance(s, bool) and int(s) == s for s in shape)
  except (TypeError, ValueError):
    raise ValueError(message) from None
  if not exact or not 1 <= len(dims) <= 3 or min(dims) <= 0:
    raise ValueError(message)
  return dims


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_offsets(offsets, shape) -> tuple[tuple[int, ...], ...]:
  rank = len(shape)
  message = (f"offsets must be a non-empty sequence of ints (along the last "
             f"spatial axis) or of {rank}-tuples of ints (one per spatial "
             f"axis of shape {shape}); got {offsets!r}")
  if _is_int(offsets) or isinstance(offsets, str):
    raise ValueError(message)
  try:
    offsets = list(offsets)
  except TypeError:
    raise ValueError(message) from None
  if not offsets:
    raise ValueError(message)
  out = []
  for offset in offsets:
    if _is_int(offset):
      offset = (0,) * (rank - 1) + (int(offset),)
    elif isinstance(offset, (tuple, list, np.ndarray)):
      offset = tuple(offset)
      if len(offset) != rank or not all(_is_int(d) for d in offset):
        raise ValueError(message)
      offset = tuple(int(d) for d in offset)
    else:
      raise ValueError(message)
    if any(abs(d) >= n for d, n in zip(offset, shape)):
      raise ValueError(
          f"offset {offset} has no pixel pair in shape {shape}: every "
          f"|offset| must be smaller than the size of its axis")
    out.append(offset)
  return tuple(out)


def _check_count(value, name: str, minimum: int) -> int:
  if not _is_int(value) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
  return int(value)


def _sampler(method, alpha):
  """The mixer's one-sample sampler ``(key, shape) -> (mask, mean, ...)``
  (None: never mixes). Samplers compare equal by value, so jit caches."""
  if isinstance(method, Mixer):
    if alpha is not None:
      raise ValueError(
          f"alpha is for a mask generator; the mixer {method.name!r} draws "
          f"λ with its own alpha (build it with the alpha you want)")
    return method.sampler
  if callable(method):
    alpha = check_alpha(1.0 if alpha is None else alpha)
    return mask_mixer(method, alpha=alpha).sampler
  raise ValueError(
      f"method must be a Mixer (e.g. msda_jax.cutmix()) or a mask "
      f"generator (key, shape, lam) -> mask; got {method!r}")


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _chunk_stats(key, offsets, num_samples, sampler, shape, margin,
                 num_chunks, chunk_size):
  """Per-chunk (count, mean, sum of squared deviations) of the per-sample
  pair averages, ``(num_chunks, n)`` each; sample ``i`` uses
  ``fold_in(key, i)``.

  ``offsets`` (int32 ``(n, rank)``) and ``num_samples`` are traced, so one
  compilation serves every offset list of a length and every sample count
  of a chunk count. ``margin[a] >= max |offsets[:, a]|``.
  """
  rank = len(shape)
  spatial = tuple(range(rank))
  # Pixel pairs at each offset: prod(n - |d|).
  pairs = jnp.prod(jnp.asarray(shape, jnp.float32) - jnp.abs(offsets), axis=1)

  def draw(index):
    if sampler is None:  # none(): M = 1 everywhere.
      return jnp.ones(shape, jnp.float32)
    # (mask, mean) or (mask, mean, PasteBox): the mask is element 0.
    return sampler(jax.random.fold_in(key, index), shape)[0]

  def chunk(c):
    index = c * chunk_size + jnp.arange(chunk_size, dtype=jnp.uint32)
    # (*shape, chunk): samples on the minor axis, where the CPU vectorises.
    partner = jnp.moveaxis(1.0 - jax.vmap(draw)(index), 0, -1)
    # Zeros around the grid: a shifted copy is zero where k + d leaves it,
    # so a plain sum runs over exactly the pairs inside.
    padded = jnp.pad(partner, [(m, m) for m in margin] + [(0, 0)])

    def pair_sums(offset):
      start = (*(m + offset[a] for a, m in enumerate(margin)), 0)
      shifted = jax.lax.dynamic_slice(padded, start, partner.shape)
      return jnp.sum(partner * shifted, axis=spatial)  # (chunk,)

    values = jax.lax.map(pair_sums, offsets).T / pairs  # (chunk, n)
    valid = (index < num_samples).astype(jnp.float32)[:, None]
    count = jnp.sum(valid, axis=0)
    mean = jnp.sum(values * valid, axis=0) / count
    m2 = jnp.sum(valid * jnp.square(values - mean), axis=0)
    return count, mean, m2

  return jax.lax.map(chunk, jnp.arange(num_chunks, dtype=jnp.uint32))


def _default_chunk_size(shape, margin) -> int:
  """``DEFAULT_CHUNK_SIZE`` samples, fewer for large grids (a padded chunk
  of at most 2^22 floats, 16 MB)."""
  padded = math.prod(n + 2 * m for n, m in zip(shape, margin))
  return max(1, min(DEFAULT_CHUNK_SIZE, (1 << 22) // padded))


def pair_weights(key: jax.Array, method, shape: Sequence[int], *,
                 offsets: Sequence[Union[int, Sequence[int]]],
                 num_samples: int = 16384, alpha: Optional[Alpha] = None,
                 chunk_size: Optional[int] = None) -> PairWeights:
  """Estimates the pixel-pair weight ``E[(1 - M_k)(1 - M_l)]`` by offset.

  The paper's regulariser weight (Park, Yun & Chun, NeurIPS 2022): for
  each offset ``d`` it averages ``(1 - M_k)(1 - M_{k+d})`` over every pixel
  pair of the grid at that offset, then over ``num_samples`` masks drawn
  as the mixer draws them (λ, the mask, and ``prob``). The masks are drawn
  under one jit in chunks of ``chunk_size`` (``lax.map`` over chunks,
  ``vmap`` inside one), so memory does not grow with ``num_samples``; the
  offsets and the sample count are traced, so one compilation serves a
  method, shape, number of offsets and number of chunks (2^16 masks of
  32x32 at 13 offsets: about 1 s of compilation and 1 s of running on 2 CPU
  cores). The standard error is the spread of the per-sample averages over
  ``sqrt(num_samples)``: the samples are independent (the pixel pairs
  within one mask are not, which is why they are averaged first). Sample
  ``i`` uses the key ``jax.random.fold_in(key, i)``, so the estimate does
  not depend on ``chunk_size``. This is an analysis tool, called from
  Python with concrete arguments; it is not itself traceable.

  For a mixer that pastes its partner resized (ResizeMix), ``1 - M`` is
  where the partner shows, as for every other method.

  Args:
    key: a PRNG key.
    method: a :class:`~msda_jax.Mixer` (its own λ distribution, ``prob`` and
      choice of methods apply; its mode and pairing do not change one
      sample's mask and are ignored), or a mask generator
      ``(key, shape, lam) -> mask`` (wrapped with
      :func:`~msda_jax.mask_mixer` and ``alpha``, so λ and the mask are drawn
      as the mixer would draw them).
    shape: the spatial shape, e.g. ``(32, 32)``; 1 to 3 axes.
    offsets: ints (offsets along the last spatial axis) or tuples with one
      int per spatial axis, e.g. ``(dy, dx)``; negative entries are allowed
      and ``|d|`` must be smaller than the axis.
    num_samples: masks to draw (>= 2). The standard error falls as
      ``1 / sqrt(num_samples)``: at most about 0.3 / sqrt(num_samples) for
      Mixup, CutMix and HMix with λ ~ U(0, 1), 0.37 / sqrt(num_samples)
      for GMix (0.0023 and 0.0029 at the default 16384).
    alpha: only with a mask generator: λ ~ Beta(α, α), or ``(low, high)`` for
      U(low, high); default 1 (λ ~ U(0, 1), the paper's figure).
    chunk_size: masks drawn at once (>= 1); default up to
      ``DEFAULT_CHUNK_SIZE``, fewer for large grids.

  Returns:
    A :class:`PairWeights` of numpy arrays.

  Example:
    >>> import jax, msda_jax
    >>> w = msda_jax.pair_weights(jax.random.key(0), msda_jax.mixup_mask,
    ...                           (8, 8), offsets=[0, 3], num_samples=4096)
    >>> bool(abs(w.mean[0] - 1 / 3) < 4 * w.stderr[0])   # E[(1 - λ)²] = 1/3
    True
    >>> bool(abs(w.mean[0] - w.mean[1]) < 1e-6)           # flat in distance
    True
  """
  shape = _check_shape(shape)
  offsets = _check_offsets(offsets, shape)
  num_samples = _check_count(num_samples, "num_samples", 2)
  margin = tuple(max(abs(d[a]) for d in offsets) for a in range(len(shape)))
  if chunk_size is None:
    chunk_size = _default_chunk_size(shape, margin)
  chunk_size = min(_check_count(chunk_size, "chunk_size", 1), num_samples)
  num_chunks = -(-num_samples // chunk_size)
  sampler = _sampler(method, alpha)
  count, mean, m2 = (np.asarray(a, np.float64) for a in _chunk_stats(
      key, jnp.asarray(offsets, jnp.int32), jnp.asarray(num_samples, jnp.uint32),
      sampler, shape, margin, num_chunks, chunk_size))
  # Chan et al.'s pairwise merge of the chunks' moments, in float64.
  total = count.sum(axis=0)
  grand = (count * mean).sum(axis=0) / total
  m2 = m2.sum(axis=0) + (count * np.square(mean - grand)).sum(axis=0)
  stderr = np.sqrt(m2 / (total - 1) / total)
  return PairWeights(np.asarray(offsets, np.int64), grand, stderr,
                     num_samples)
