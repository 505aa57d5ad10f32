"""Mixer factories, one per method: options in, pure mixer out.

Reference: Park, Yun & Chun, "A Unified Analysis of Mixed Sample Data
Augmentation: A Loss Function Perspective", NeurIPS 2022.
"""

from typing import Optional

from msda_jax import _masks
from msda_jax._engine import Alpha, mask_mixer, method_name
from msda_jax._mixer import Mixer

__all__ = ["mixup", "cutmix", "hmix", "gmix", "none"]


def mixup(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
          partner: str = "flip", label_smoothing: float = 0.0,
          num_classes=None) -> Mixer:
  """Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018).

  Every pixel (time step, voxel) gets weight λ. Returns a :class:`Mixer`.

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
    >>> mix = jax.jit(msda_jax.mixup(alpha=0.2, num_classes=10))
    >>> out = mix(jax.random.key(0), jnp.zeros((8, 32, 32, 3)), jnp.arange(8))
    >>> out.images.shape, out.labels.shape
    ((8, 32, 32, 3), (8, 10))
  """
  return mask_mixer(_masks.mixup_rule(), alpha=alpha, mode=mode, prob=prob,
                    partner=partner, label_smoothing=label_smoothing,
                    num_classes=num_classes, name=method_name("mixup", alpha, prob))


def cutmix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
           partner: str = "flip", label_smoothing: float = 0.0,
           num_classes=None, minmax: Optional[tuple[float, float]] = None,
           exact_box: bool = False) -> Mixer:
  """CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong
  Classifiers with Localizable Features", ICCV 2019).

  A box of area ``(1 - λ) H W`` (clipped at the border) is pasted from the
  partner; the label weight is the realised mask mean (timm's
  ``correct_lam``). Works for sequences ``(B, T, C)`` and volumes
  ``(B, D, H, W, C)`` too: the box then has volume ``(1 - λ) prod(shape)``.
  Returns a :class:`Mixer`.

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
    minmax: optional ``(a, b)``: box sides uniform in ``[aH, bH)`` and
      ``[aW, bW)``, box fully inside, λ ignored for the geometry (timm).
    exact_box: False (default) rounds the box as the CutMix authors and the
      paper's reference do, ``[c - cut // 2, c + cut // 2)`` per axis (an
      odd ``cut`` loses a pixel); True as timm 1.0.31's ``rand_bbox``,
      ``[c - cut // 2, c + (cut + 1) // 2)``, exactly ``cut`` wide, which
      matches timm's label weights (mean 0.689 vs 0.701 at 32x32, λ ~ U(0, 1)).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = jax.jit(msda_jax.cutmix(num_classes=10, partner='permute'))
    >>> out = mix(jax.random.key(0), jnp.zeros((7, 32, 32, 3), jnp.uint8),
    ...           jnp.arange(7))
    >>> out.images.dtype, out.lam.shape
    (dtype('uint8'), (7,))
  """
  minmax = _masks.check_minmax(minmax)
  exact_box = _masks.check_exact_box(exact_box)
  # A minmax box is always its drawn size: exact_box changes nothing there.
  named_exact = True if exact_box and minmax is None else None
  return mask_mixer(_masks.cutmix_rule(minmax=minmax, exact_box=exact_box),
                    alpha=alpha, mode=mode, prob=prob, partner=partner,
                    label_smoothing=label_smoothing, num_classes=num_classes,
                    name=method_name("cutmix", alpha, prob, minmax=minmax,
                               exact_box=named_exact))


def hmix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
         partner: str = "flip", label_smoothing: float = 0.0,
         num_classes=None, r: float = 0.5, exact_box: bool = False) -> Mixer:
  """HMix (Park, Yun & Chun, NeurIPS 2022): a CutMix box inside a Mixup blend.

  The box has area ``r (1 - λ) H W`` (volume ``r (1 - λ) prod(shape)`` for
  sequences and volumes); outside it the images blend with ratio
  ``μ = λ / λ_box``, so the label weight is exactly λ. Returns a
  :class:`Mixer`.

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
    r: share of ``1 - λ`` given to the box, in [0, 1] (0 is Mixup).
    exact_box: the box rounding, as in :func:`cutmix` (False: the paper's
      reference rule; True: timm 1.0.31's exact box).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = jax.jit(msda_jax.hmix(r=0.5, num_classes=10))
    >>> out = mix(jax.random.key(0), jnp.zeros((8, 24, 40, 1)), jnp.arange(8))
    >>> out.mask.shape
    (8, 24, 40)
  """
  r = _masks.check_r(r)
  exact_box = _masks.check_exact_box(exact_box)
  return mask_mixer(_masks.hmix_rule(r=r, exact_box=exact_box), alpha=alpha,
                    mode=mode, prob=prob, partner=partner,
                    label_smoothing=label_smoothing, num_classes=num_classes,
                    name=method_name("hmix", alpha, prob, r=f"{r:g}",
                               exact_box=exact_box or None))


def gmix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
         partner: str = "flip", label_smoothing: float = 0.0,
         num_classes=None) -> Mixer:
  """GMix (Park, Yun & Chun, NeurIPS 2022): a Gaussian blob from the partner.

  The image with the smaller share takes a soft Gaussian blob of area
  ``min(λ, 1 - λ) H W`` at a random pixel; the label weight is the realised
  mask mean. Non-square images work, and so do sequences and volumes (an
  n-D blob of mass ``min(λ, 1 - λ) prod(shape)``). Returns a :class:`Mixer`.

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
    >>> mix = jax.jit(msda_jax.gmix(num_classes=10, mode='pair'))
    >>> out = mix(jax.random.key(0), jnp.zeros((8, 32, 32, 3)), jnp.arange(8))
    >>> bool((out.lam >= 0).all() & (out.lam <= 1).all())
    True
  """
  return mask_mixer(_masks.gmix_rule(), alpha=alpha, mode=mode, prob=prob,
                    partner=partner, label_smoothing=label_smoothing,
                    num_classes=num_classes, name=method_name("gmix", alpha, prob))


def none(*, mode: str = "elem", partner: str = "flip",
         label_smoothing: float = 0.0,
         num_classes: Optional[int] = None) -> Mixer:
  """The pass-through mixer: images unchanged, labels made (B, K) and smoothed.

  Use it for a baseline run with the same training code.

  Args:
    mode: accepted for symmetry with the other factories (and so the result
      can join a :func:`choice`).
    partner: likewise.
    label_smoothing: ε, applied to the targets.
    num_classes: K, needed for integer labels.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = msda_jax.none(num_classes=3)(jax.random.key(0),
    ...                                    jnp.ones((2, 4, 4, 1)), jnp.array([0, 2]))
    >>> out.labels.tolist(), bool((out.images == 1).all())
    ([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], True)
  """
  return Mixer(None, mode=mode, partner=partner,
               label_smoothing=label_smoothing, num_classes=num_classes,
               name="none")


