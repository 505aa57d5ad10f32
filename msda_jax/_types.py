"""The shared vocabulary: what a mask generator is and what a mixer returns."""

from typing import Any, NamedTuple, Optional, Protocol

import jax

__all__ = ["MaskFn", "MaskSampler", "MixResult", "PasteBox"]


class PasteBox(NamedTuple):
  """Where a partner image, resized, is pasted (ResizeMix).

  The whole partner is resized to ``size`` and placed with its first pixel
  at ``start``; one int32 entry per spatial axis (``(B, n)`` in a
  :class:`MixResult`). ``start = 0, size = shape`` is the partner as it is.
  """

  start: jax.Array
  size: jax.Array


class MaskFn(Protocol):
  """A mask generator: one sample, never looks at the images.

  ``mask_fn(key, shape, lam)`` with ``shape`` the static spatial shape
  (``(T,)``, ``(H, W)`` or ``(D, H, W)``) returns a float32 mask of
  ``shape`` in ``[0, 1]``: the weight of the *original* image at each pixel
  (the partner gets ``1 - mask``). It may instead return ``(mask, mean)``
  when the mean is known from the geometry, or ``(mask, mean, PasteBox)``
  when the partner is pasted resized rather than masked.
  """

  def __call__(self, key: jax.Array, shape: tuple[int, ...],
               lam: jax.Array) -> Any:
    ...


class MaskSampler(Protocol):
  """A mask generator with its λ distribution and mixing probability bound.

  ``sampler(key, shape) -> (mask, mean)`` draws λ, draws the mask for that λ
  and, with probability ``1 - prob``, replaces it by ones (sample left
  unmixed); ``mean`` is the mask's mean, the sample's label weight. This is
  what a mixer vmaps over the batch, and what ``choice`` composes. A
  sampler whose ``scheduled`` attribute is true (schedules of the step) is
  called ``sampler(key, shape, step)``.
  """

  def __call__(self, key: jax.Array, shape: tuple[int, ...]) -> tuple:
    ...


class MixResult(NamedTuple):
  """What a mixer returns.

  Attributes:
    images: mixed images, same shape and dtype as the input
      ``(B, *spatial, C)``.
    labels: ``(B, K)`` float32 soft labels: the (smoothed) labels mixed by
      ``lam`` (a pytree of them for pytree labels).
    lam: ``(B,)`` float32, the realised weight of each sample's own image,
      i.e. the mean of its mask.
    partner_index: ``(B,)`` int32, the index of the sample each one was
      mixed with (its own index when it was paired with itself).
    mask: ``(B, *spatial)`` float32, the weight of each sample's own image
      per pixel. Under ``jax.jit`` it costs nothing unless you use it.
    paste: None, or a :class:`PasteBox` of ``(B, n)`` arrays when the
      partner was resized into a box (ResizeMix) rather than masked.
  """

  images: jax.Array
  labels: Any
  lam: jax.Array
  partner_index: jax.Array
  mask: jax.Array
  paste: Optional[PasteBox] = None
