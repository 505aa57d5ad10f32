"""The mixer: a pure function ``(key, images, labels) -> MixResult``."""

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from msda_jax import _mixing
from msda_jax import _modes
from msda_jax import _pairing
from msda_jax._types import MaskSampler, MixResult

__all__ = ["Mixer"]


def _check_label_smoothing(value) -> float:
  value = float(value)
  if not 0.0 <= value < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1); got {value!r}")
  return value


def _check_num_classes(value) -> Optional[int]:
  if value is None:
    return None
  if isinstance(value, bool) or int(value) != value or int(value) < 1:
    raise ValueError(f"num_classes must be None or a positive int; got {value!r}")
  return int(value)


@dataclasses.dataclass(frozen=True)
class Mixer:
  """Mixes a batch: ``mixer(key, images, labels) -> MixResult``.

  Build one with :func:`mixup`, :func:`cutmix`, :func:`hmix`, :func:`gmix`,
  :func:`none`, :func:`choice` or :func:`from_config` rather than directly.
  A mixer is immutable and hashable; calling it is pure and jit-able.

  Keys: ``partner_key, mask_key = jax.random.split(key)``; ``partner_key``
  draws the 'permute' pairing, ``mask_key`` the masks (see ``_modes``).

  Attributes:
    sampler: draws one sample's mask and its mean,
      ``sampler(key, (H, W)) -> (mask, mean)``; None for the pass-through
      mixer.
    mode: 'batch', 'pair' or 'elem'.
    partner: 'flip', 'roll' or 'permute'.
    label_smoothing: ε applied to the targets before mixing.
    num_classes: K for integer labels; None if labels come as ``(B, K)``.
    name: a readable description.
  """

  sampler: Optional[MaskSampler]
  mode: str = "elem"
  partner: str = "flip"
  label_smoothing: float = 0.0
  num_classes: Optional[int] = None
  name: str = "mixer"

  def __post_init__(self):
    _modes.check_mode(self.mode)
    _pairing.check_partner(self.partner, symmetric=self.mode == "pair")
    object.__setattr__(self, "label_smoothing",
                       _check_label_smoothing(self.label_smoothing))
    object.__setattr__(self, "num_classes",
                       _check_num_classes(self.num_classes))

  def _check_inputs(self, images, labels):
    if images.ndim != 4:
      raise ValueError(
          f"images must be rank 4 (B, H, W, C); got shape {images.shape}")
    if not (jnp.issubdtype(images.dtype, jnp.floating)
            or jnp.issubdtype(images.dtype, jnp.integer)):
      raise ValueError(
          f"images must have a float or integer dtype; got {images.dtype}")
    if labels.ndim == 0 or labels.shape[0] != images.shape[0]:
      raise ValueError(
          f"labels and images must have the same batch size; got labels "
          f"{labels.shape} and images {images.shape}")
    if jnp.issubdtype(labels.dtype, jnp.integer):
      if labels.ndim != 1:
        raise ValueError(
            f"integer labels must have shape (B,); got {labels.shape}")
      if self.num_classes is None:
        raise ValueError(
            "integer labels need num_classes (e.g. mixup(num_classes=10)); "
            "or pass (B, K) float labels")
    elif jnp.issubdtype(labels.dtype, jnp.floating):
      if labels.ndim != 2:
        raise ValueError(
            f"float labels must have shape (B, K); got {labels.shape}")
      if self.num_classes is not None and labels.shape[1] != self.num_classes:
        raise ValueError(
            f"labels have {labels.shape[1]} classes but num_classes="
            f"{self.num_classes}")
    else:
      raise ValueError(
          f"labels must be int (B,) or float (B, K); got dtype {labels.dtype}")

  def __call__(self, key: jax.Array, images: jax.Array,
               labels: jax.Array) -> MixResult:
    """Mixes ``images`` and ``labels``.

    Args:
      key: a PRNG key.
      images: ``(B, H, W, C)``, float or integer (uint8) dtype.
      labels: int ``(B,)`` (needs ``num_classes``) or float ``(B, K)``.

    Returns:
      A :class:`MixResult`.
    """
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    self._check_inputs(images, labels)
    batch_size, height, width, _ = images.shape
    targets = _mixing.soft_labels(labels, self.num_classes,
                                  self.label_smoothing)
    index = jnp.arange(batch_size, dtype=jnp.int32)
    if self.sampler is None:
      return MixResult(images, targets, jnp.ones(batch_size, jnp.float32),
                       index, jnp.ones((batch_size, height, width), jnp.float32))
    partner_key, mask_key = jax.random.split(key)
    partner = _pairing.partner_index(partner_key, batch_size, self.partner,
                                     involution=self.mode == "pair")
    # The means come from the mask geometry, not a reduction over the masks,
    # so under jit the masks stay fused into the blend.
    masks, lam = _modes.draw_masks(self.sampler, mask_key, (height, width),
                                   self.mode, partner)
    # Mixing with yourself is no mixing: keep such samples exact.
    alone = partner == index
    masks = jnp.where(alone[:, None, None], 1.0, masks)
    lam = jnp.where(alone, 1.0, lam)
    take = lambda x: _pairing.take_partner(x, self.partner, partner)
    return MixResult(
        images=_mixing.blend(images, take(images), masks),
        labels=_mixing.mix_labels(targets, take(targets), lam),
        lam=lam,
        partner=partner,
        mask=masks,
    )
