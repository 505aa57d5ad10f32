"""Pixel geometry for masks: random centres, clipped boxes, separable bumps.

Everything here works on one sample with a static spatial shape of 1, 2 or 3
axes (``(T,)``, ``(H, W)``, ``(D, H, W)``) and traced sizes, so masks are
built from per-axis iota compares that XLA fuses into the blend.
"""

import functools
import numbers
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Box", "per_axis_uniforms", "center_from_uniform", "centered_box",
    "box_mask", "box_area", "outer_product", "root",
    "check_shape", "check_2d_shape",
]


class Box(NamedTuple):
  """A half-open pixel box: axis ``i`` spans ``[start[i], stop[i])``.

  Attributes:
    start: int32 ``(n,)``, the first pixel inside, per axis.
    stop: int32 ``(n,)``, one past the last pixel inside, per axis.
  """

  start: jax.Array
  stop: jax.Array


def per_axis_uniforms(u: jax.Array, rank: int, groups: int = 1) -> jax.Array:
  """``groups`` rows of ``rank`` uniforms, from ``u`` laid out for 2-D.

  The built-in rules reserve two uniforms per group (one per axis of an
  image): ``u = [g0_axis0, g0_axis1, g1_axis0, g1_axis1, ...]``. For 1 or 2
  axes the rows are those entries (2-D streams are exactly the 2-D layout; a
  1-D rule uses the first of each pair). For a third axis the missing
  uniforms are derived from the bits of ``u[0]`` and ``u[1]`` with one
  threefry call: a hash of 46 random bits, so they are uniform and, for
  all practical purposes, independent of ``u``. This keeps the sampler's
  layout (and so every 1-D and 2-D stream) the same for every rank.

  Args:
    u: float32 ``(2 * groups,)`` uniform in [0, 1).
    rank: the number of spatial axes, 1 to 3.
    groups: how many per-axis rows (a centre is one, a box's sides and
      corner are two).

  Returns:
    float32 ``(groups, rank)``.

  Example:
    >>> import jax
    >>> u = jax.random.uniform(jax.random.key(0), (4,))
    >>> per_axis_uniforms(u, 2, groups=2).tolist() == u.reshape(2, 2).tolist()
    True
    >>> per_axis_uniforms(u, 3, groups=2).shape
    (2, 3)
  """
  pairs = u[:2 * groups].reshape(groups, 2)
  if rank <= 2:
    return pairs[:, :rank]
  key = jax.random.wrap_key_data(
      jax.lax.bitcast_convert_type(u[:2], jnp.uint32), impl="threefry2x32")
  extra = jax.random.uniform(key, (groups, rank - 2), jnp.float32)
  return jnp.concatenate([pairs, extra], axis=1)


def center_from_uniform(u: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """The pixel ``floor(u[:n] * shape)`` (int32 ``(n,)``), ``n = len(shape)``.

  Uniform over the pixel grid for ``u`` uniform in ``[0, 1)^n``. Mask rules
  take uniforms rather than a key so that a sampler draws all of a sample's
  randomness in one threefry call (``randint`` alone makes three; on CPU
  each is a loop of tens of µs).
  """
  size = jnp.asarray(shape, jnp.int32)
  cell = jnp.floor(u[:len(shape)] * size.astype(jnp.float32)).astype(jnp.int32)
  return jnp.minimum(cell, size - 1)


def centered_box(center: jax.Array, shape: tuple[int, ...],
                 side_ratio: jax.Array, *, exact: bool = False) -> Box:
  """The CutMix box: side ``cut = floor(size * s)`` per axis around ``center``.

  With ``exact=False`` (the CutMix authors' and the HMix/GMix reference
  rule) each axis spans ``[c - cut // 2, c + cut // 2)``, so an odd ``cut``
  loses one pixel; with ``exact=True`` (timm 1.0.31's ``rand_bbox``) it
  spans ``[c - cut // 2, c + (cut + 1) // 2)``, exactly ``cut`` wide. Either
  is then clipped to ``[0, size)``.
  """
  size = jnp.asarray(shape, jnp.int32)
  cut = jnp.floor(size.astype(jnp.float32) * side_ratio).astype(jnp.int32)
  below = cut // 2
  above = (cut + 1) // 2 if exact else below
  return Box(start=jnp.clip(center - below, 0, size),
             stop=jnp.clip(center + above, 0, size))


def box_area(box: Box) -> jax.Array:
  """Number of pixels inside ``box`` (int32)."""
  sides = box.stop - box.start
  # An unrolled product: jnp.prod adds a reduction kernel per sample.
  return functools.reduce(operator.mul,
                          [sides[axis] for axis in range(sides.shape[0])])


def box_mask(shape: tuple[int, ...], box: Box) -> jax.Array:
  """Boolean ``shape``: True inside ``box``."""
  inside = [(pos >= box.start[axis]) & (pos < box.stop[axis])
            for axis, pos in enumerate(jnp.arange(s, dtype=jnp.int32)
                                       for s in shape)]
  return outer_product(inside, operator.and_)


def outer_product(vectors, combine=operator.mul) -> jax.Array:
  """``combine`` of 1-D ``vectors`` broadcast to their joint grid.

  ``outer_product([a, b]) = a[:, None] * b[None, :]``, and so on for three.
  """
  return functools.reduce(lambda acc, v: combine(acc[..., None], v), vectors)


def root(x: jax.Array, n: int) -> jax.Array:
  """``x ** (1 / n)`` for n = 1, 2, 3 (``sqrt`` and ``cbrt``, exactly rounded
  where a ``pow`` would not be, so 2-D masks match their 2-D formulas)."""
  if n == 1:
    return x
  if n == 2:
    return jnp.sqrt(x)
  if n == 3:
    return jnp.cbrt(x)
  raise ValueError(f"n must be 1, 2 or 3; got {n!r}")


def check_shape(shape) -> tuple[int, ...]:
  """A mask's static spatial shape: a tuple of 1 to 3 positive ints.

  Example:
    >>> check_shape((32, 24))
    (32, 24)
  """
  message = (f"shape must be a tuple of 1 to 3 positive ints ((T,), (H, W) "
             f"or (D, H, W)); got {shape!r}")
  try:
    sizes = tuple(shape)
  except TypeError:
    raise ValueError(message) from None
  if (not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
              for s in sizes)
      or not 1 <= len(sizes) <= 3 or min(sizes) <= 0):
    raise ValueError(message)
  return tuple(int(s) for s in sizes)


def check_2d_shape(shape, method: str) -> tuple[int, int]:
  """``(H, W)`` from a mask's static spatial shape, for 2-D-only methods.

  Raises:
    ValueError: ``shape`` is not two positive ints (at trace time, so a
      ``(B, T, C)`` or ``(B, D, H, W, C)`` batch fails with this message).
  """
  try:
    dims = tuple(shape)
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
               for d in dims):
      raise TypeError
  except TypeError:
    raise ValueError(
        f"{method}: shape must be a tuple of positive ints (H, W); got "
        f"{shape!r}") from None
  dims = tuple(int(d) for d in dims)
  if len(dims) != 2:
    raise ValueError(
        f"{method} needs 2-D images (B, H, W, C); got spatial shape {dims}")
  if min(dims) <= 0:
    raise ValueError(
        f"{method}: shape must be positive ints (H, W); got {dims}")
  return dims
