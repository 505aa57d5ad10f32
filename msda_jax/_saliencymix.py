"""SaliencyMix: CutMix's box, centred on the partner's most salient pixel.

The partner's box of area ``1 - λ`` (before clipping, CutMix's size
``sqrt(1 - λ)`` per side; ``(1 - λ)^(1/n)`` for n spatial axes) is centred on
the argmax of the partner's guide, so the patch pasted into the image is the
partner's salient region. The label weight is the realised mask mean.

Reference: Uddin, Monira, Shin, Chung & Bae, "SaliencyMix: A Saliency Guided
Data Augmentation Strategy for Better Regularization", ICLR 2021; code:
SaliencyMix/SaliencyMix-ImageNet ``train.py`` (one OpenCV saliency map of one
image of the permuted batch, one box for the whole batch: ``mode='batch'``
here). Restated in ``shared/docs/methods.md``, Part 3.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax import _masks
from msda_jax._engine import (Alpha, guided_mask_mixer, method_name,
                              uniform_mask)
from msda_jax._lam import as_lam
from msda_jax._mixer import Mixer
from msda_jax._saliency import spectral_residual_saliency

__all__ = ["saliencymix", "saliencymix_mask", "saliency_of", "salient_pixel"]


def saliency_of(guide, shape) -> jax.Array:
  """The saliency map in a one-sample ``guide``: the array itself, or the
  ``'saliency'`` entry of a dict guide (the PuzzleMix layout), checked to
  have ``shape``'s rank and no axis longer than it."""
  if isinstance(guide, Mapping):
    if "saliency" not in guide:
      raise ValueError(
          f"a dict guide must have a 'saliency' entry; got keys "
          f"{sorted(guide)}")
    guide = guide["saliency"]
  guide = jnp.asarray(guide)
  if guide.ndim != len(shape) or any(
      g > s for g, s in zip(guide.shape, shape)):
    raise ValueError(
        f"the guide of one sample must be a saliency map of shape {shape} or "
        f"a coarser grid of the same rank (no channel axis); got shape "
        f"{guide.shape}")
  return guide


def salient_pixel(saliency: jax.Array, shape) -> jax.Array:
  """The pixel of ``shape`` at the argmax of ``saliency`` (int32 ``(n,)``).

  A coarser grid's cell maps to the pixel at its centre,
  ``floor((cell + 0.5) * size / grid)``; at full resolution that is the
  cell itself. Ties go to the first maximum in row-major order.
  """
  grid = saliency.shape
  cell = jnp.stack(jnp.unravel_index(jnp.argmax(saliency.ravel()), grid))
  size = jnp.asarray(shape, jnp.float32)
  scale = size / jnp.asarray(grid, jnp.float32)
  pixel = jnp.floor((cell.astype(jnp.float32) + 0.5) * scale)
  return jnp.minimum(pixel.astype(jnp.int32), jnp.asarray(shape) - 1)


def _saliency_box(u, shape, lam, guide, partner_guide, *, exact_box=False):
  del u, guide  # The box looks at the partner's saliency only.
  shape = _geometry.check_shape(shape)
  lam = as_lam(lam)
  center = salient_pixel(saliency_of(partner_guide, shape), shape)
  box = _geometry.centered_box(center, shape,
                               _geometry.root(1.0 - lam, len(shape)),
                               exact=exact_box)
  return _masks.box_mask_and_mean(shape, box, 1.0)


def saliencymix_rule(*, exact_box: bool = False):
  """The guided generator on uniforms (none needed) that the mixer uses."""
  exact = {"exact_box": True} if _masks.check_exact_box(exact_box) else {}
  return uniform_mask(_saliency_box, num_uniforms=0, **exact)


def saliencymix_mask(key: jax.Array, shape, lam, guide, partner_guide, *,
                     exact_box: bool = False):
  """SaliencyMix's mask for one sample: 0 in the partner's salient box.

  Args:
    key: a PRNG key (unused: the box is placed by the saliency; kept for
      the guided generator signature).
    shape: the spatial shape, ``(T,)``, ``(H, W)`` or ``(D, H, W)``, static.
    lam: λ in [0, 1]; the box has volume ``(1 - λ) prod(shape)`` before
      clipping at the border.
    guide: this sample's guide (unused).
    partner_guide: the partner's saliency, of ``shape`` or a coarser grid of
      the same rank, or a dict with a ``'saliency'`` entry; the box is
      centred on its argmax.
    exact_box: the box rounding, as :func:`~msda_jax.cutmix`'s.

  Returns:
    ``(mask, mean)``: float32 mask of ``shape`` (0 inside the box, 1
    outside) and its exact mean.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> saliency = jnp.zeros((8, 8)).at[2, 5].set(1.0)
    >>> mask, mean = saliencymix_mask(jax.random.key(0), (8, 8), 0.75,
    ...                               None, saliency)
    >>> float(mean), mask[2, 5].item(), mask[7, 0].item()
    (0.75, 0.0, 1.0)
  """
  return saliencymix_rule(exact_box=exact_box)(key, shape, lam, guide,
                                               partner_guide)


def saliencymix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
                partner: str = "flip", label_smoothing: float = 0.0,
                num_classes=None, exact_box: bool = False) -> Mixer:
  """SaliencyMix (Uddin et al., ICLR 2021): the partner's salient patch.

  CutMix's box (area ``1 - λ`` before clipping) centred on the most
  salient pixel of the partner's guide, pasted from the partner; the label
  weight is the realised mask mean. Call the mixer with
  ``guide=saliency`` (``(B, *spatial)`` or a coarser grid, e.g.
  :func:`~msda_jax.gradient_saliency` of the input gradient), or with no
  guide: the default is :func:`~msda_jax.spectral_residual_saliency` of the
  images, computed inside the mixer. The reference draws one box per batch
  from one partner's saliency: that is ``mode='batch'`` (sample 0's
  partner); 'elem' (default) centres each sample's box on its own
  partner's saliency. Returns a guided :class:`Mixer`.

  Args:
    alpha: λ ~ Beta(α, α) for α > 0, or ``(low, high)`` for U(low, high).
    mode: 'elem' (one λ and box per sample), 'pair' (per pair: the box of
      the lower index's partner) or 'batch' (one for the batch).
    prob: probability that a sample (pair, batch) is mixed at all.
    partner: the pairing, 'flip', 'roll' or 'permute'.
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels.
    exact_box: the box rounding, as :func:`~msda_jax.cutmix`'s.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = jax.jit(msda_jax.saliencymix(num_classes=10))
    >>> images = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3))
    >>> out = mix(jax.random.key(0), images, jnp.arange(4))
    >>> out.labels.shape, out.mask.shape
    ((4, 10), (4, 32, 32))
  """
  exact_box = _masks.check_exact_box(exact_box)
  return guided_mask_mixer(
      saliencymix_rule(exact_box=exact_box),
      default_guide=spectral_residual_saliency, alpha=alpha, mode=mode,
      prob=prob, partner=partner, label_smoothing=label_smoothing,
      num_classes=num_classes,
      name=method_name("saliencymix", alpha, prob,
                       exact_box=exact_box or None))
