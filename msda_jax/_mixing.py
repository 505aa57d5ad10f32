"""The one blend kernel and label mixing.

``x_mix = M * x + (1 - M) * x_partner`` with ``M`` broadcast over channels;
``y_mix = λ_eff * y + (1 - λ_eff) * y_partner`` with ``λ_eff = mean(M)``.
"""

from typing import Optional

import jax
import jax.numpy as jnp

__all__ = ["blend", "soft_labels", "mix_labels"]


def blend(images: jax.Array, partner_images: jax.Array,
          masks: jax.Array) -> jax.Array:
  """Blends each image with its partner: ``M x + (1 - M) x_partner``.

  dtype rules: float32 in, float32 out; other float types (bfloat16, float16)
  are blended in float32 and cast back; integer images (uint8) are blended in
  float32, rounded to nearest and clipped to the dtype's range, so there is no
  wrap-around. Where ``M == 1`` the output is exactly the input.

  Args:
    images: ``(B, H, W, C)``.
    partner_images: same shape and dtype as ``images``.
    masks: ``(B, H, W)`` float32 weights of ``images``.

  Returns:
    ``(B, H, W, C)`` with the dtype of ``images``.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.full((1, 2, 2, 3), 200, jnp.uint8)
    >>> y = jnp.full((1, 2, 2, 3), 101, jnp.uint8)
    >>> blend(x, y, jnp.full((1, 2, 2), 0.5)).ravel()[0]
    Array(150, dtype=uint8)
  """
  dtype = images.dtype
  weight = masks[..., None].astype(jnp.float32)
  mixed = (weight * images.astype(jnp.float32)
           + (1.0 - weight) * partner_images.astype(jnp.float32))
  if jnp.issubdtype(dtype, jnp.integer):
    info = jnp.iinfo(dtype)
    mixed = jnp.clip(jnp.round(mixed), info.min, info.max)
  return mixed.astype(dtype)


def soft_labels(labels: jax.Array, *, num_classes: Optional[int] = None,
                label_smoothing: float = 0.0) -> jax.Array:
  """Turns labels into ``(B, K)`` float32 targets, then smooths them.

  Integer labels ``(B,)`` become one-hot over ``num_classes``; float labels
  ``(B, K)`` (one-hot, soft or multi-label) are used as they are. Smoothing
  is ``(1 - ε) y + ε / K``. An integer label outside ``[0, K)`` gives a row
  of NaN (not ``jax.nn.one_hot``'s silent zeros), so a loss on it is NaN;
  the :class:`Mixer` raises on such labels already when they are concrete.

  Example:
    >>> import jax.numpy as jnp
    >>> soft_labels(jnp.array([1]), num_classes=4, label_smoothing=0.2)
    Array([[0.05, 0.85, 0.05, 0.05]], dtype=float32)
    >>> soft_labels(jnp.array([7]), num_classes=4)
    Array([[nan, nan, nan, nan]], dtype=float32)
  """
  if jnp.issubdtype(labels.dtype, jnp.integer):
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    in_range = (labels >= 0) & (labels < num_classes)
    targets = jnp.where(in_range[:, None], targets, jnp.nan)
  else:
    targets = labels.astype(jnp.float32)
  if label_smoothing:
    targets = (1.0 - label_smoothing) * targets + label_smoothing / targets.shape[-1]
  return targets


def mix_labels(targets: jax.Array, partner_targets: jax.Array,
               lam: jax.Array) -> jax.Array:
  """``λ y + (1 - λ) y_partner`` per sample; ``lam`` is ``(B,)``.

  Example:
    >>> import jax.numpy as jnp
    >>> mix_labels(jnp.eye(2), jnp.eye(2)[::-1], jnp.array([0.75, 0.75]))
    Array([[0.75, 0.25],
           [0.25, 0.75]], dtype=float32)
  """
  lam = lam[:, None]
  return lam * targets + (1.0 - lam) * partner_targets
