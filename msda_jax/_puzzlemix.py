"""PuzzleMix as a mixer: the solved block labelling, transport, a default guide.

Each sample's mask labels the blocks of an ``n x n`` grid with 0, ½ or 1
(the weight of the image itself) by minimising PuzzleMix's energy (the
saliency each label throws away, a prior toward λ, smoothness and the
images' agreement across block borders) with the fixed-sweep solver of
:mod:`msda_jax._puzzle`; with ``transport`` each image's salient blocks
are then moved to where the mask keeps it (:class:`~msda_jax.BlockMoves`,
applied by the mixer before the blend). All of it is traced: no host round
trip, no graph-cut library.

Reference: Kim, Choo & Song, "Puzzle Mix: Exploiting Saliency and Local
Statistics for Optimal Mixup", ICML 2020; code: snu-mllab/PuzzleMix
``mixup.py``. Restated in ``shared/docs/methods.md``, Part 3.
"""

import functools
import math
import numbers
from typing import Optional

import jax
import jax.numpy as jnp

from msda_jax import _puzzle
from msda_jax._engine import Alpha, guided_mask_mixer, method_name
from msda_jax._mixer import Mixer
from msda_jax._saliency import spectral_residual_saliency

__all__ = ["puzzlemix", "puzzlemix_guide"]


def puzzlemix_guide(images: jax.Array) -> dict:
  """PuzzleMix's default guide: ``{'saliency', 'image'}`` of a batch.

  ``saliency`` is :func:`~msda_jax.spectral_residual_saliency` of the images
  (a model-free stand-in for the reference's input-gradient saliency; pass
  ``msda_jax.gradient_saliency(grads)`` instead when you have a model), and
  ``image`` the images in float32, integer images divided by their dtype's
  maximum (the border term compares pixels on a [0, 1]-like scale).

  Args:
    images: ``(B, H, W, C)``, float or integer.

  Returns:
    ``{'saliency': (B, H, W) float32, 'image': (B, H, W, C) float32}``.

  Example:
    >>> import jax.numpy as jnp
    >>> g = puzzlemix_guide(jnp.zeros((2, 8, 8, 3), jnp.uint8))
    >>> g['saliency'].shape, g['image'].dtype
    ((2, 8, 8), dtype('float32'))
  """
  images = jnp.asarray(images)
  pixels = images.astype(jnp.float32)
  if jnp.issubdtype(images.dtype, jnp.integer):
    pixels = pixels / float(jnp.iinfo(images.dtype).max)
  return {"saliency": spectral_residual_saliency(images), "image": pixels}


def _check_option(value, name: str, *, integer: bool, minimum: float,
                  allow_none: bool = False):
  if value is None and allow_none:
    return None
  kind = "an int" if integer else "a float"
  ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
        and math.isfinite(value) and value >= minimum
        and (not integer or int(value) == value))
  if not ok:
    none = " or None" if allow_none else ""
    raise ValueError(f"{name} must be {kind} >= {minimum:g}{none}; got "
                     f"{value!r}")
  return int(value) if integer else float(value)


def puzzlemix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
              partner: str = "flip", label_smoothing: float = 0.0,
              num_classes=None, block_num: Optional[int] = None,
              beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2,
              neigh_size: int = 4, transport: bool = True,
              t_eps: float = 0.8, t_size: int = 4,
              iterations: int = 3) -> Mixer:
  """PuzzleMix (Kim, Choo & Song, ICML 2020): a solved saliency puzzle.

  Per sample: a block count per side from {2, 4, 8, 16} (the reference's
  ``2 ** randint(1, 5)``, those dividing H and W) or ``block_num``; each
  block labelled 0, ½ or 1 to minimise the paper's energy with a
  fixed-sweep JAX solver (min-sum belief propagation, then exact row and
  column chain descent); with ``transport`` the salient blocks of each
  image moved to where the mask keeps it; the label weight is the realised
  mask mean. Call with ``guide={'saliency': (B, h, w), 'image': (B, H, W,
  C)}`` (e.g. ``msda_jax.gradient_saliency(grads)`` and the images), or
  with none: :func:`puzzlemix_guide` of the images (spectral-residual
  saliency). 2-D images only. Returns a guided :class:`Mixer`.

  Args:
    alpha: λ ~ Beta(α, α) for α > 0, or ``(low, high)`` for U(low, high).
    mode: 'elem' (a puzzle per sample), 'pair' (per pair, from the lower
      index's view) or 'batch' (one for the batch).
    prob: probability that a sample (pair, batch) is mixed at all.
    partner: the pairing, 'flip', 'roll' or 'permute'.
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels.
    block_num: a fixed block count per side (dividing H and W), or None
      for the reference's random one.
    beta: smoothness between neighbouring blocks (reference 1.2).
    gamma: weight of the images' agreement across block borders (0.5).
    eta: weight of the prior pulling the mask mean toward λ (0.2).
    neigh_size: pooling of the border pixels (4).
    transport: move the salient blocks (on in the reference's CIFAR
      recipes).
    t_eps: transport's distance cost (0.8).
    t_size: transport block side in pixels (4).
    iterations: chain-descent sweeps of the solver (3).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = jax.jit(msda_jax.puzzlemix(num_classes=10))
    >>> images = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
    >>> out = mix(jax.random.key(0), images, jnp.arange(4))
    >>> out.labels.shape, out.moves.own.shape   # moves on the finest t-grid
    ((4, 10), (4, 16, 16))
  """
  if not isinstance(transport, bool):
    raise ValueError(f"transport must be True or False; got {transport!r}")
  options = dict(
      block_num=_check_option(block_num, "block_num", integer=True,
                              minimum=1, allow_none=True),
      beta=_check_option(beta, "beta", integer=False, minimum=0),
      gamma=_check_option(gamma, "gamma", integer=False, minimum=0),
      eta=_check_option(eta, "eta", integer=False, minimum=0),
      neigh_size=_check_option(neigh_size, "neigh_size", integer=True,
                               minimum=1),
      transport=transport,
      t_eps=_check_option(t_eps, "t_eps", integer=False, minimum=0),
      t_size=_check_option(t_size, "t_size", integer=True, minimum=1),
      iterations=_check_option(iterations, "iterations", integer=True,
                               minimum=1))
  defaults = dict(block_num=None, beta=1.2, gamma=0.5, eta=0.2, neigh_size=4,
                  transport=True, t_eps=0.8, t_size=4, iterations=3)
  changed = {k: v for k, v in options.items() if v != defaults[k]}
  return guided_mask_mixer(
      functools.partial(_puzzle.puzzlemix_mask, **options),
      default_guide=puzzlemix_guide, alpha=alpha, mode=mode, prob=prob,
      partner=partner, label_smoothing=label_smoothing,
      num_classes=num_classes,
      name=method_name("puzzlemix", alpha, prob, **changed))
