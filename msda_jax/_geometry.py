"""Pixel geometry for masks: random centres, clipped boxes, Gaussian bumps.

Everything here works on one sample with a static ``(H, W)`` and traced sizes,
so masks are built from iota compares that XLA fuses into the blend.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Box", "center_from_uniform", "centered_box", "box_mask", "box_area"]


class Box(NamedTuple):
  """Half-open pixel box rows ``[top, bottom)``, columns ``[left, right)``."""

  top: jax.Array
  bottom: jax.Array
  left: jax.Array
  right: jax.Array


def center_from_uniform(u: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """The pixel ``floor(u * (H, W))`` (int32) for ``u`` uniform in ``[0, 1)^2``.

  Uniform over the ``H x W`` grid. Mask rules take uniforms rather than a key
  so that a sampler draws all of a sample's randomness in one threefry call
  (``randint`` alone makes three; on CPU each is a loop of tens of µs).
  """
  size = jnp.asarray(shape, jnp.int32)
  cell = jnp.floor(u[:2] * size.astype(jnp.float32)).astype(jnp.int32)
  return jnp.minimum(cell, size - 1)


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
