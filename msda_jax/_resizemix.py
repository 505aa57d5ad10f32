"""ResizeMix: the whole partner, shrunk, pasted into a box of the original.

Not a pure mask: the mask is a box (0 inside: the partner shows there), and
the partner that shows there is the *whole* partner image resized to the box
(bilinear, antialiased; :func:`msda_jax._paste.paste_resized`), so the
partner's object is preserved rather than cropped. The mask generator returns
``(mask, mean, PasteBox(start, size))`` and the mixer pastes; a mask-only
method never runs the resize.

- scale rate τ ~ U(scale) (default U(0.1, 0.8)); the box is
  ``(floor(H τ), floor(W τ))``;
- the box centre is a pixel drawn uniformly, and the box is shifted to lie
  fully inside the image (never clipped: the partner is never cut);
- label weight of the original = ``1 - box area / (H W)``, the mask mean.

The sampled λ is not used for the geometry (as in CutMix's ``minmax``
variant): the reference draws τ on its own.

Reference: Qin, Fang, Wu, Zhang & Xing, "ResizeMix: Mixing Data with
Preserved Object Information and True Labels", arXiv 2012.11101 (2020); code:
github.com/JayQine/ResizeMix, OpenMixup ``resizemix.py``.
"""

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax._engine import (UniformMask, check_prob, is_schedule, mask_mixer,
                              uniform_mask)
from msda_jax._lam import as_lam
from msda_jax._mixer import Mixer
from msda_jax._types import PasteBox

__all__ = ["resizemix", "resizemix_mask", "resizemix_rule", "check_scale"]


def check_scale(scale) -> tuple[float, float]:
  """Validates ``scale``: a pair ``(low, high)`` with ``0 < low <= high <= 1``."""
  message = (f"scale must be a pair (low, high) of box side ratios with "
             f"0 < low <= high <= 1 (default (0.1, 0.8)); got {scale!r}")
  if isinstance(scale, (str, bytes)):
    raise ValueError(message)
  try:
    low, high = (float(s) for s in scale)
  except (TypeError, ValueError):
    raise ValueError(message) from None
  if not 0.0 < low <= high <= 1.0:
    raise ValueError(message)
  return low, high


def _resize_box(u, shape, lam, *, scale):
  as_lam(lam)  # checked like every method's λ, then unused: τ is u[0]
  height, width = _geometry.check_2d_shape(shape, "resizemix")
  tau = scale[0] + (scale[1] - scale[0]) * u[0]
  center = _geometry.center_from_uniform(u[1:3], (height, width))
  size = jnp.asarray((height, width), jnp.int32)
  side = jnp.clip(jnp.floor(size.astype(jnp.float32) * tau).astype(jnp.int32),
                  0, size)
  # Centred on the drawn pixel, then shifted (not clipped) to lie inside.
  start = jnp.clip(center - side // 2, 0, size - side)
  box = _geometry.Box(start, start + side)
  mask = jnp.where(_geometry.box_mask((height, width), box), 0.0, 1.0)
  total = height * width
  mean = (total - side[0] * side[1]).astype(jnp.float32) / total
  return mask.astype(jnp.float32), mean, PasteBox(start, side)


def _rule(scale: tuple[float, float]) -> UniformMask:
  return uniform_mask(_resize_box, num_uniforms=3, scale=scale)


def resizemix_rule(*, scale: tuple[float, float] = (0.1, 0.8)) -> UniformMask:
  """ResizeMix as a :class:`~msda_jax._engine.UniformMask` (3 uniforms: τ, centre).

  It returns ``(mask, mean, PasteBox)``.
  """
  return _rule(check_scale(scale))


def resizemix_mask(key: jax.Array, shape: tuple[int, int], lam, *,
                   scale: tuple[float, float] = (0.1, 0.8)) -> jax.Array:
  """ResizeMix's mask (Qin et al., 2020): 0 in the paste box, 1 elsewhere.

  The box is ``(floor(H τ), floor(W τ))`` with τ ~ U(scale), centred on a
  pixel drawn uniformly and shifted to lie fully inside. λ is ignored. This
  is the mask only (for symmetry with the other generators): the mixer
  (:func:`resizemix`) also pastes the whole partner, resized, into the box.

  Args:
    key: a PRNG key.
    shape: ``(H, W)``, static. Other spatial ranks raise a ValueError.
    lam: the mixing ratio λ (unused: the box size comes from τ).
    scale: ``(low, high)``, the range of τ, ``0 < low <= high <= 1``.

  Returns:
    float32 ``(H, W)`` with values in {0, 1}.

  Example:
    >>> import jax
    >>> m = resizemix_mask(jax.random.key(0), (32, 32), 0.5, scale=(0.5, 0.5))
    >>> int((m == 0).sum())   # a 16 x 16 box
    256
  """
  return resizemix_rule(scale=scale)(key, shape, lam)[0]


def _prob_name(prob) -> str:
  return "schedule" if is_schedule(prob) else f"{prob:g}"


def resizemix(*, mode: str = "elem", prob: float = 1.0, partner: str = "flip",
              label_smoothing: float = 0.0, num_classes=None,
              scale: tuple[float, float] = (0.1, 0.8)) -> Mixer:
  """ResizeMix (Qin, Fang, Wu, Zhang & Xing, "ResizeMix: Mixing Data with
  Preserved Object Information and True Labels", arXiv 2012.11101, 2020).

  The whole partner image is shrunk by τ ~ U(scale) (bilinear, antialiased)
  and pasted into a box of the original that lies fully inside it; the label
  weight of the original is ``1 - box area / (H W)``. There is no ``alpha``:
  the box size comes from τ, not λ. 2-D images only; ``MixResult.paste``
  holds the boxes. Returns a :class:`Mixer`.

  Args:
    mode: 'elem' (one box per sample), 'pair' (per pair of partners) or
      'batch' (one for the batch).
    prob: probability that a sample (the batch, in 'batch' mode; a pair, in
      'pair' mode) is mixed at all; otherwise it is left exactly as it was.
    partner: the pairing, 'flip' (i with B-1-i), 'roll' (i with i-1) or
      'permute' (keyed random pairing).
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels (one per head for pytree
      labels).
    scale: ``(low, high)``: τ ~ U(low, high), the box side over the image
      side, ``0 < low <= high <= 1`` (default (0.1, 0.8), the reference's).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mixer = resizemix(num_classes=10)
    >>> mixer.name
    'resizemix(prob=1, scale=(0.1, 0.8))'
    >>> out = jax.jit(mixer)(jax.random.key(0), jnp.zeros((4, 32, 32, 3)),
    ...                      jnp.arange(4))
    >>> out.paste.size.shape, out.images.shape
    ((4, 2), (4, 32, 32, 3))
  """
  prob, scale = check_prob(prob), check_scale(scale)  # before naming
  return mask_mixer(_rule(scale), mode=mode, prob=prob, partner=partner,
                    label_smoothing=label_smoothing, num_classes=num_classes,
                    name=f"resizemix(prob={_prob_name(prob)}, scale=({scale[0]:g}, "
                    f"{scale[1]:g}))")
