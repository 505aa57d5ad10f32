"""SmoothMix: the partner shows through a soft Gaussian window.

A window ``g = exp(-((i - cy)² / (2 σy²) + (j - cx)² / (2 σx²)))`` centred
on a pixel drawn uniformly from the image; ``M = 1 - g`` (the partner takes
the window), so the images meet along a smooth edge rather than a box's sharp
one. The label weight is the realised mask mean.

What λ controls. The de-facto code (OpenMixup ``smoothmix.py``) draws
``σ = U(0.25, 0.5) · H`` and ignores its own λ. Here λ sets the window the
way GMix does: ``σy = H sqrt((1 - λ) / 2π)`` and ``σx = W sqrt((1 - λ) / 2π)``,
so the window's full-plane mass ``2π σy σx`` is ``(1 - λ) H W``: λ is the
original's share before the border truncates the window, and the realised
mean (the label) is pulled toward 1 by that truncation. The window follows
the image's aspect ratio (the same shape in normalised coordinates), so
non-square images work. ``σ / H`` spans ``[0, 0.40]`` as λ goes from 1 to 0;
the reference's range ``[0.25, 0.5]`` is ``1 - λ`` in ``[0.39, 1.57]``, so its
lower part is ``alpha=(0.0, 0.6)`` (λ ~ U(0, 0.6), σ/H in [0.25, 0.40]). The
window's peak is always 1 (the centre pixel is pure partner), so as λ → 1 it
shrinks to that one pixel; at λ = 1 exactly it is empty (``M ≡ 1``).

The window is separable, ``g = row ⊗ col``: H + W exponentials, and
``mean(g) = mean(row) · mean(col)`` exactly, so the mask never has to be
reduced.

Reference: Lee, Zaheer, Astrid & Lee, "SmoothMix: a Simple Yet Effective
Data Augmentation to Train Robust Classifiers", CVPR Workshops 2020; code:
OpenMixup ``openmixup/models/augments/smoothmix.py``.
"""

import math

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax._engine import (Alpha, UniformMask, mask_mixer, method_name, uniform_mask)
from msda_jax._lam import as_lam
from msda_jax._mixer import Mixer

__all__ = ["smoothmix", "smoothmix_mask", "smoothmix_rule"]


def _smooth(u, shape, lam):
  height, width = _geometry.check_2d_shape(shape, "smoothmix")
  share = 1.0 - as_lam(lam)  # the window's full-plane mass / (H W)
  center = _geometry.center_from_uniform(u, (height, width)).astype(jnp.float32)

  def bump(size, c):
    # Δ² / (2σ²) with 2σ² = size² (1 - λ) / π is π d² / (1 - λ) for the
    # offset d = Δ / size in image sides; 0 everywhere for an empty window.
    d = (jnp.arange(size, dtype=jnp.float32) - c) / size
    value = jnp.exp(-math.pi * jnp.square(d) / jnp.maximum(share, 1e-30))
    return jnp.where(share > 0, value, 0.0)

  row, col = bump(height, center[0]), bump(width, center[1])
  window = row[:, None] * col[None, :]
  return ((1.0 - window).astype(jnp.float32),
          1.0 - jnp.mean(row) * jnp.mean(col))


def smoothmix_rule() -> UniformMask:
  """SmoothMix as a :class:`~msda_jax._engine.UniformMask` (2 uniforms: the centre)."""
  return uniform_mask(_smooth, num_uniforms=2)


def smoothmix_mask(key: jax.Array, shape: tuple[int, int], lam) -> jax.Array:
  """SmoothMix (Lee et al., CVPRW 2020): a soft Gaussian window of the partner.

  ``M = 1 - g`` with ``g`` a Gaussian window at a pixel drawn uniformly,
  ``σy = H sqrt((1 - λ) / 2π)``, ``σx = W sqrt((1 - λ) / 2π)``: its
  full-plane mass is ``(1 - λ) H W`` (the reference ignores λ and draws
  ``σ / H ~ U(0.25, 0.5)``; see the module docstring). The border truncates
  the window, so the mask mean is pulled toward 1. λ = 1 gives ``M ≡ 1``.

  Args:
    key: a PRNG key.
    shape: ``(H, W)``, static. Other spatial ranks raise a ValueError.
    lam: the mixing ratio λ in [0, 1].

  Returns:
    float32 ``(H, W)`` in [0, 1].

  Example:
    >>> import jax
    >>> m = smoothmix_mask(jax.random.key(0), (24, 40), 0.5)
    >>> m.shape, float(m.min()), bool(0.5 < m.mean() < 1)
    ((24, 40), 0.0, True)
  """
  return smoothmix_rule()(key, shape, lam)[0]


def smoothmix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
              partner: str = "flip", label_smoothing: float = 0.0,
              num_classes=None) -> Mixer:
  """SmoothMix (Lee, Zaheer, Astrid & Lee, "SmoothMix: a Simple Yet Effective
  Data Augmentation to Train Robust Classifiers", CVPR Workshops 2020).

  The partner takes a soft Gaussian window at a random pixel whose
  full-plane mass is ``(1 - λ) H W``, stretched with the image's aspect ratio
  (see :func:`smoothmix_mask` for what λ controls); the label weight is the
  realised mask mean. 2-D images only. Returns a :class:`Mixer`.

  Args:
    alpha: λ ~ Beta(α, α) for α > 0, or ``(low, high)`` for U(low, high).
    mode: 'elem' (one λ and mask per sample), 'pair' (per pair of partners)
      or 'batch' (one for the batch).
    prob: probability that a sample (the batch, in 'batch' mode; a pair, in
      'pair' mode) is mixed at all; otherwise it is left exactly as it was.
    partner: the pairing, 'flip' (i with B-1-i), 'roll' (i with i-1) or
      'permute' (keyed random pairing).
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels (one per head for pytree
      labels).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mixer = smoothmix(num_classes=10)
    >>> mixer.name
    'smoothmix(alpha=1, prob=1)'
    >>> out = jax.jit(mixer)(jax.random.key(0), jnp.zeros((4, 24, 40, 3)),
    ...                      jnp.arange(4))
    >>> out.mask.shape
    (4, 24, 40)
  """
  return mask_mixer(smoothmix_rule(), alpha=alpha, mode=mode, prob=prob,
                    partner=partner, label_smoothing=label_smoothing,
                    num_classes=num_classes,
                    name=method_name("smoothmix", alpha, prob))
