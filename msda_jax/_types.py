"""The shared vocabulary: what a mask generator is and what a mixer returns."""

from typing import NamedTuple, Protocol

import jax

__all__ = ["MaskFn", "MaskSampler", "MixResult"]


class MaskFn(Protocol):
  """A mask generator: one sample, never looks at the images.

  Returns a float32 ``(H, W)`` mask in ``[0, 1]``: the weight of the
  *original* image at each pixel (the partner gets ``1 - mask``).
  """

  def __call__(self, key: jax.Array, shape: tuple[int, int],
               lam: jax.Array) -> jax.Array:
    ...


class MaskSampler(Protocol):
  """A mask generator with its λ distribution and mixing probability bound.

  ``sampler(key, shape) -> (mask, mean)`` draws λ, draws the mask for that λ
  and, with probability ``1 - prob``, replaces it by ones (sample left
  unmixed); ``mean`` is the mask's mean, the sample's label weight. This is
  what a mixer vmaps over the batch, and what ``choice`` composes.
  """

  def __call__(self, key: jax.Array,
               shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
    ...


class MixResult(NamedTuple):
  """What a mixer returns.

  Attributes:
    images: mixed images, same shape and dtype as the input ``(B, H, W, C)``.
    labels: ``(B, K)`` float32 soft labels: the (smoothed) labels mixed by
      ``lam``.
    lam: ``(B,)`` float32, the realised weight of each sample's own image,
      i.e. the mean of its mask.
    partner: ``(B,)`` int32, the index of the sample each one was mixed with
      (its own index when it was paired with itself).
    mask: ``(B, H, W)`` float32, the weight of each sample's own image per
      pixel. Under ``jax.jit`` it costs nothing unless you use it.
  """

  images: jax.Array
  labels: jax.Array
  lam: jax.Array
  partner: jax.Array
  mask: jax.Array
