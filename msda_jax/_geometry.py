"""Pixel geometry for masks: random centres, clipped boxes, Gaussian bumps.

Everything here works on one sample with a static ``(H, W)`` and traced sizes,
so masks are built from iota compares that XLA fuses into the blend.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Box", "random_center", "centered_box", "box_mask", "box_area",
    "squared_distance",
]


class Box(NamedTuple):
  """Half-open pixel box rows ``[top, bottom)``, columns ``[left, right)``."""

  top: jax.Array
  bottom: jax.Array
  left: jax.Array
  right: jax.Array


def random_center(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """A pixel ``(cy, cx)`` drawn uniformly over the ``H x W`` grid (int32)."""
  return jax.random.randint(key, (2,), 0, jnp.asarray(shape, jnp.int32))


def centered_box(center: jax.Array, shape: tuple[int, int],
                 side_ratio: jax.Array) -> Box:
  """The CutMix box: sides ``floor(H s)``, ``floor(W s)`` around ``center``.

  Rows ``[cy - cut_h // 2, cy + cut_h // 2)`` clipped to ``[0, H)``; columns
  likewise (the spec's rule, which is timm's ``rand_bbox``).
  """
  height, width = shape
  cut_h = jnp.floor(height * side_ratio).astype(jnp.int32)
  cut_w = jnp.floor(width * side_ratio).astype(jnp.int32)
  cy, cx = center[0], center[1]
  return Box(
      top=jnp.clip(cy - cut_h // 2, 0, height),
      bottom=jnp.clip(cy + cut_h // 2, 0, height),
      left=jnp.clip(cx - cut_w // 2, 0, width),
      right=jnp.clip(cx + cut_w // 2, 0, width),
  )


def box_area(box: Box) -> jax.Array:
  """Number of pixels inside ``box`` (int32)."""
  return (box.bottom - box.top) * (box.right - box.left)


def box_mask(shape: tuple[int, int], box: Box) -> jax.Array:
  """Boolean ``(H, W)``: True inside ``box``."""
  rows = jax.lax.broadcasted_iota(jnp.int32, shape, 0)
  cols = jax.lax.broadcasted_iota(jnp.int32, shape, 1)
  return ((rows >= box.top) & (rows < box.bottom)
          & (cols >= box.left) & (cols < box.right))


def squared_distance(shape: tuple[int, int], center: jax.Array) -> jax.Array:
  """float32 ``(H, W)``: squared pixel distance to ``center``."""
  rows = jax.lax.broadcasted_iota(jnp.float32, shape, 0)
  cols = jax.lax.broadcasted_iota(jnp.float32, shape, 1)
  center = center.astype(jnp.float32)
  return jnp.square(rows - center[0]) + jnp.square(cols - center[1])
