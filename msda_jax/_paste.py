"""Pasting a resized partner into a box (ResizeMix's partner transform).

The mask says where the partner shows (0 in the box); this module makes the
partner image that shows there: the whole partner resized to the box size
and placed at the box corner. Sizes and corners are traced, the output
shape is static, so it runs under jit and vmap.
"""

import jax
import jax.numpy as jnp

from msda_jax._types import PasteBox

__all__ = ["paste_resized"]


def paste_resized(image: jax.Array, box: PasteBox) -> jax.Array:
  """The whole ``image`` resized to ``box.size`` and placed at ``box.start``.

  Bilinear, antialiased when shrinking (``jax.image.scale_and_translate``).
  Pixels outside the box are undefined (the mask hides them). Integer images
  are resized in float32, rounded and clipped back to their dtype.

  Args:
    image: one sample ``(*spatial, C)``.
    box: a :class:`PasteBox` of ``(n,)`` int32 arrays, n = len(spatial).

  Returns:
    An array like ``image``.

  Example:
    >>> import jax.numpy as jnp
    >>> from msda_jax._types import PasteBox
    >>> x = jnp.ones((8, 8, 1))
    >>> y = paste_resized(x, PasteBox(jnp.array([2, 2]), jnp.array([4, 4])))
    >>> float(y[3, 3, 0])
    1.0
  """
  spatial = image.shape[:-1]
  full = jnp.asarray(spatial, jnp.float32)
  scale = jnp.asarray(box.size, jnp.float32) / full
  translation = jnp.asarray(box.start, jnp.float32)
  resized = jax.image.scale_and_translate(
      image.astype(jnp.float32), image.shape, tuple(range(len(spatial))),
      scale, translation, method="linear", antialias=True)
  if jnp.issubdtype(image.dtype, jnp.integer):
    info = jnp.iinfo(image.dtype)
    resized = jnp.clip(jnp.round(resized), info.min, info.max)
  return resized.astype(image.dtype)
