"""Moving equal blocks of an image (PuzzleMix's transport, applied).

The spatial shape is cut into a grid of equal blocks; block ``g`` of the
output is block ``sources[g]`` (row-major flat index) of the input. A pure
gather under jit and vmap, any spatial rank.
"""

import math

import jax
import jax.numpy as jnp

__all__ = ["move_blocks"]


def move_blocks(image: jax.Array, sources: jax.Array) -> jax.Array:
  """``image`` with its blocks rearranged: output block g = block sources[g].

  Args:
    image: one sample ``(*spatial, C)``.
    sources: int ``(*grid)``, one flat block index per output block; every
      ``grid[i]`` divides ``spatial[i]`` (static).

  Returns:
    An array like ``image``.

  Example:
    >>> import jax.numpy as jnp
    >>> image = jnp.arange(4.0).reshape(1, 4, 1)       # blocks [0 1] [2 3]
    >>> move_blocks(image, jnp.array([[1, 0]]))[0, :, 0].tolist()
    [2.0, 3.0, 0.0, 1.0]
  """
  grid = sources.shape
  spatial, channels = image.shape[:-1], image.shape[-1]
  rank = len(spatial)
  if len(grid) != rank or any(s % g for s, g in zip(spatial, grid)):
    raise ValueError(
        f"sources has grid {grid}, which must have one axis per spatial axis "
        f"of image {image.shape} and divide it")
  block = tuple(s // g for s, g in zip(spatial, grid))
  split = image.reshape(*[d for g, b in zip(grid, block) for d in (g, b)],
                        channels)
  # (g0, b0, g1, b1, ..., C) -> (g0, g1, ..., b0, b1, ..., C)
  order = [*range(0, 2 * rank, 2), *range(1, 2 * rank, 2), 2 * rank]
  blocks = split.transpose(order).reshape(math.prod(grid), *block, channels)
  moved = jnp.take(blocks, sources.reshape(-1), axis=0)
  moved = moved.reshape(*grid, *block, channels)
  inverse = [0] * (2 * rank + 1)
  for position, axis in enumerate(order):
    inverse[axis] = position
  return moved.transpose(inverse).reshape(image.shape)

