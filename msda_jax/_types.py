"""The shared vocabulary: what a mask generator is and what a mixer returns."""

import math

from typing import Any, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp

__all__ = ["MaskFn", "MaskSampler", "MixResult", "PasteBox", "BlockMoves",
           "Draw"]


class PasteBox(NamedTuple):
  """Where a partner image, resized, is pasted (ResizeMix).

  The whole partner is resized to ``size`` and placed with its first pixel
  at ``start``; one int32 entry per spatial axis (``(B, n)`` in a
  :class:`MixResult`). ``start = 0, size = shape`` is the partner as it is.
  """

  start: jax.Array
  size: jax.Array


class BlockMoves(NamedTuple):
  """Blocks of both images moved before they are blended (PuzzleMix's
  transport).

  The spatial shape is cut into a grid of equal blocks, ``own.shape`` (static;
  each axis divides the image's). Block ``g`` of the moved image is block
  ``own[g]`` (a row-major flat index) of the sample's own image, and block
  ``g`` of the moved partner is block ``partner[g]`` of the partner; int32,
  ``(B, *grid)`` in a :class:`MixResult`. ``arange`` is no move.
  """

  own: jax.Array
  partner: jax.Array


def identity_moves(grid) -> BlockMoves:
  """No block moved on ``grid``."""
  index = jnp.arange(math.prod(grid), dtype=jnp.int32).reshape(grid)
  return BlockMoves(index, index)


class Draw(NamedTuple):
  """One sample's draw, what a sampler returns (batched by the modes).

  Attributes:
    mask: float32 ``(*spatial)``, the weight of the sample's own image.
    mean: float32 scalar, the mask's mean: the label weight.
    paste: None, or a :class:`PasteBox`: the partner is resized into it.
    moves: None, or :class:`BlockMoves`: blocks moved before the blend.
  """

  mask: jax.Array
  mean: jax.Array
  paste: Optional[PasteBox] = None
  moves: Optional[BlockMoves] = None

  @classmethod
  def of(cls, out, shape, where: str) -> "Draw":
    """A generator's or sampler's output as a :class:`Draw`: a mask,
    ``(mask, mean)``, ``(mask, mean, PasteBox | BlockMoves)`` or a Draw,
    checked against the spatial ``shape`` (errors name ``where``)."""
    paste = moves = None
    if isinstance(out, Draw):
      mask, mean, paste, moves = out
    elif isinstance(out, (tuple, list)):
      if len(out) == 2:
        mask, mean = out
      elif len(out) == 3 and isinstance(out[2], (PasteBox, BlockMoves)):
        mask, mean, extra = out
        paste, moves = ((extra, None) if isinstance(extra, PasteBox)
                        else (None, extra))
      else:
        raise ValueError(
            f"{where} must return a mask, (mask, mean), (mask, mean, "
            f"PasteBox), (mask, mean, BlockMoves) or a Draw; got a tuple of "
            f"{len(out)}")
    else:
      mask, mean = out, None
    mask = jnp.asarray(mask)
    if mask.shape != tuple(shape):
      raise ValueError(
          f"{where} returned a mask of shape {mask.shape} for shape "
          f"{tuple(shape)}; it must return one weight per pixel")
    mask = mask.astype(jnp.float32)
    mean = jnp.mean(mask) if mean is None else jnp.asarray(mean, jnp.float32)
    if paste is not None:
      paste = PasteBox(*(jnp.asarray(p, jnp.int32) for p in paste))
    if moves is not None:
      moves = BlockMoves(*(jnp.asarray(m, jnp.int32) for m in moves))
      grid = moves.own.shape
      if (moves.partner.shape != grid or len(grid) != len(shape)
          or any(s % g for s, g in zip(shape, grid))):
        raise ValueError(
            f"{where} returned BlockMoves on grids {moves.own.shape} and "
            f"{moves.partner.shape}; both must be one grid of {len(shape)} "
            f"axes dividing the spatial shape {tuple(shape)}")
    return cls(mask, mean, paste, moves)


class MaskFn(Protocol):
  """A mask generator: one sample; looks at no images (a guided one, see
  :func:`~msda_jax.guided_mask_mixer`, also takes per-sample guides).

  ``mask_fn(key, shape, lam)`` with ``shape`` the static spatial shape
  (``(T,)``, ``(H, W)`` or ``(D, H, W)``) returns a float32 mask of
  ``shape`` in ``[0, 1]``: the weight of the *original* image at each pixel
  (the partner gets ``1 - mask``). It may instead return ``(mask, mean)``
  when the mean is known from the geometry, ``(mask, mean, BlockMoves)``
  when blocks of both images move first (PuzzleMix), or ``(mask, mean, PasteBox)``
  when the partner is pasted resized rather than masked.
  """

  def __call__(self, key: jax.Array, shape: tuple[int, ...],
               lam: jax.Array) -> Any:
    ...


class MaskSampler(Protocol):
  """A mask generator with its λ distribution and mixing probability bound.

  ``sampler(key, shape) -> Draw`` (or ``(mask, mean)``) draws λ, draws the mask for that λ
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
    moves: None, or :class:`BlockMoves` of ``(B, *grid)`` arrays when blocks
      of both images were moved before the blend (PuzzleMix's transport):
      ``images = mask * moved(x) + (1 - mask) * moved(x[partner])``.
  """

  images: jax.Array
  labels: Any
  lam: jax.Array
  partner_index: jax.Array
  mask: jax.Array
  paste: Optional[PasteBox] = None
  moves: Optional[BlockMoves] = None
