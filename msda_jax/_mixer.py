"""The mixer: a pure function ``(key, images, labels) -> MixResult``."""

import dataclasses
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from msda_jax import _mixing
from msda_jax import _modes
from msda_jax import _pairing
from msda_jax import _blocks
from msda_jax import _paste
from msda_jax._types import MaskSampler, MixResult, identity_moves

__all__ = ["Mixer"]

SPATIAL_RANKS = (1, 2, 3)


def _check_label_smoothing(value) -> float:
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ValueError(
        f"label_smoothing must be a float in [0, 1); got {value!r}") from None
  if not 0.0 <= value < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1); got {value!r}")
  return value


def _check_one_num_classes(value) -> Optional[int]:
  if value is None:
    return None
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or int(value) != value or int(value) < 1):
    raise ValueError(
        f"num_classes must be None, a positive int, or one per integer label "
        f"head (a dict or sequence of them); got {value!r}")
  return int(value)


def _check_num_classes(value):
  """None, an int, or a frozen per-head structure (hashable)."""
  if (isinstance(value, tuple) and value
      and all(isinstance(v, tuple) and len(v) == 2 for v in value)):
    value = dict(value)  # The frozen dict itself (a Mixer rebuilt by choice).
  if isinstance(value, Mapping):
    return tuple(sorted((k, _check_one_num_classes(v)) for k, v in value.items()))
  if isinstance(value, Sequence) and not isinstance(value, str):
    return tuple(_check_one_num_classes(v) for v in value)
  return _check_one_num_classes(value)


def _per_head(num_classes, labels) -> list:
  """``num_classes`` for each leaf of ``labels``, in ``jax.tree.leaves`` order.

  An int (or None) is K for every integer head; with several heads it is not
  imposed on float heads (``(B, K')`` targets are used as they are), while a
  single float ``(B, K)`` array must have K columns. A dict (frozen as sorted
  pairs) names top-level heads of dict labels, a sequence gives one entry per
  top-level head of tuple/list labels; an entry serves every leaf below its
  head, and a head the dict omits gets None (fine for float heads, an error
  naming the head for integer ones).
  """
  def top_index(key):  # The entry a top-level key selects.
    if isinstance(key, jax.tree_util.DictKey):
      return key.key
    if isinstance(key, jax.tree_util.SequenceKey):
      return key.idx
    if isinstance(key, jax.tree_util.GetAttrKey) and hasattr(labels, "_fields"):
      return labels._fields.index(key.name)  # A namedtuple of heads.
    raise ValueError(
        f"per-head num_classes needs labels that are a dict, tuple or list of "
        f"heads; got labels of type {type(labels).__name__}")

  flat = jax.tree_util.tree_flatten_with_path(labels)[0]
  if not isinstance(num_classes, tuple):
    if len(flat) == 1 and not flat[0][0]:
      return [num_classes]  # One array: a float one is checked against K.
    return [num_classes if jnp.issubdtype(jnp.result_type(leaf), jnp.integer)
            else None for _, leaf in flat]
  named = bool(num_classes) and isinstance(num_classes[0], tuple)
  shapes = jax.tree.map(jnp.shape, labels)
  if named:
    given = dict(num_classes)
    if not isinstance(labels, Mapping):
      raise ValueError(
          f"num_classes is a dict {given} (one per named head), so labels "
          f"must be a dict of heads; got labels {shapes}")
    extra = [k for k in given if k not in labels]
    if extra:
      raise ValueError(
          f"num_classes names head(s) {extra} that labels do not have; labels "
          f"have heads {sorted(labels)} (labels {shapes})")
    return [given.get(top_index(path[0])) for path, _ in flat]
  if not isinstance(labels, (tuple, list)):
    raise ValueError(
        f"num_classes is a sequence {list(num_classes)} (one per head), so "
        f"labels must be a tuple or list of heads; got labels {shapes}")
  if len(num_classes) != len(labels):
    raise ValueError(
        f"num_classes has {len(num_classes)} entries {list(num_classes)} but "
        f"labels have {len(labels)} heads (labels {shapes}); give one entry "
        f"per head")
  return [num_classes[top_index(path[0])] for path, _ in flat]


# The most offending label values a ValueError lists.
_MAX_LISTED = 10


def _check_label_range(head, num_classes, where):
  """Integer labels outside ``[0, K)`` raise when they are concrete.

  Traced labels (under jit) cannot be read: `soft_labels` turns their targets
  into NaN instead, so the loss shows them.
  """
  if isinstance(head, jax.core.Tracer):
    return
  values = np.asarray(head)
  bad = values[(values < 0) | (values >= num_classes)]
  if bad.size:
    listed = list(dict.fromkeys(bad.tolist()))  # Unique, in batch order.
    more = f" and {len(listed) - _MAX_LISTED} more" if len(
        listed) > _MAX_LISTED else ""
    raise ValueError(
        f"labels{where} contain values outside [0, {num_classes}): "
        f"{listed[:_MAX_LISTED]}{more} (num_classes={num_classes})")


def _check_head(head, num_classes, batch_size, where):
  if jnp.issubdtype(head.dtype, jnp.integer):
    if head.ndim != 1:
      raise ValueError(
          f"integer labels{where} must have shape (B,); got {head.shape}")
    if num_classes is None:
      per_head = (" (an int for every integer head, or an entry for this "
                  "head in a per-head dict / sequence)" if where else "")
      raise ValueError(
          f"integer labels{where} need num_classes{per_head} (e.g. "
          f"mixup(num_classes=10)); or pass (B, K) float labels")
    _check_label_range(head, num_classes, where)
  elif jnp.issubdtype(head.dtype, jnp.floating):
    if head.ndim != 2:
      raise ValueError(
          f"float labels{where} must have shape (B, K); got {head.shape}")
    if num_classes is not None and head.shape[1] != num_classes:
      raise ValueError(
          f"labels{where} have {head.shape[1]} classes but num_classes="
          f"{num_classes}")
  else:
    raise ValueError(
        f"labels{where} must be int (B,) or float (B, K); got dtype "
        f"{head.dtype}")
  if head.shape[0] != batch_size:
    raise ValueError(
        f"labels{where} and images must have the same batch size; got labels "
        f"{head.shape} and images of batch size {batch_size}")


# Channel counts that make an axis-1 of images look like NCHW's channel axis.
_CHANNEL_COUNTS = (1, 3, 4)


def _warn_if_channels_first(shape):
  """Warns for ``(B, C, H, W)`` / ``(B, C, D, H, W)``-looking images.

  Axis 1 of 1, 3 or 4 entries, smaller than every later axis, is almost
  surely a channel axis in the PyTorch layout; the mixer would then mask
  across channels and mix along the last spatial axis as if it were colour.
  Rank 3 ``(B, T, C)`` is left alone: ``(B, 1, F)`` is a legitimate
  one-step sequence.
  """
  if len(shape) not in (4, 5):
    return
  channels, rest = shape[1], shape[2:]
  if channels in _CHANNEL_COUNTS and all(channels < n for n in rest):
    order = ", ".join(["0", *map(str, range(2, len(shape))), "1"])
    warnings.warn(
        f"images of shape {tuple(shape)} look channels-first (NCHW): axis 1 "
        f"has {channels} entries, fewer than the spatial axes after it. The "
        f"mixer expects channels last, (B, *spatial, C); transpose with "
        f"images.transpose({order}).", UserWarning, stacklevel=4)


def _check_guide(guide, images_shape, where: str = "guide"):
  """``guide`` as a pytree of float ``(B, *grid)`` / ``(B, *grid, C)`` arrays.

  ``grid`` has the images' spatial rank and no axis longer than theirs.
  """
  guide = jax.tree.map(jnp.asarray, guide)
  leaves = jax.tree_util.tree_flatten_with_path(guide)[0]
  if not leaves:
    raise ValueError(f"{where} must be an array or a pytree of arrays; got "
                     f"{guide!r}")
  batch, spatial = images_shape[0], tuple(images_shape[1:-1])
  for path, leaf in leaves:
    name = where + jax.tree_util.keystr(path)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      raise ValueError(f"{name} must be a float array; got dtype {leaf.dtype}")
    grid = tuple(leaf.shape[1:1 + len(spatial)])
    if (leaf.ndim - 1 not in (len(spatial), len(spatial) + 1)
        or leaf.shape[0] != batch
        or any(g > s for g, s in zip(grid, spatial))):
      raise ValueError(
          f"{name} has shape {tuple(leaf.shape)}, which does not fit images "
          f"of shape {tuple(images_shape)}: a guide is (B, *grid) or (B, "
          f"*grid, C) with B = {batch} and a grid of {len(spatial)} axes no "
          f"longer than the spatial shape {spatial}")
  return guide


@dataclasses.dataclass(frozen=True)
class Mixer:
  """Mixes a batch: ``mixer(key, images, labels) -> MixResult``.

  Made by :func:`mask_mixer` (every built-in factory, :func:`mixup`,
  :func:`cutmix`, ..., goes through it), :func:`none`, :func:`choice` or
  :func:`from_config`. A mixer is immutable, compares equal and hashes by
  value (``hmix() == hmix()``, so a jit with the mixer as a static argument
  compiles once); calling it is pure and jit-able.

  Integer labels outside ``[0, num_classes)`` raise a ValueError naming
  them when the call is eager; under jit (traced labels) the targets of such
  a sample are NaN (all K entries), and so are the mixed labels of every
  sample that took it as a partner, so the loss turns NaN at once instead of
  silently ignoring the sample. To fail with the offending step under jit,
  wrap the call: ``checkify.checkify(f, errors=checkify.float_checks)``
  reports the first NaN the loss computes from them. Images that look
  channels-first (``(B, C, H, W)`` with C of 1, 3 or 4 and smaller than H
  and W; likewise rank 5) get a UserWarning saying how to transpose.

  Keys: ``partner_key, mask_key = jax.random.split(key)``; ``partner_key``
  draws the 'permute' pairing, ``mask_key`` the masks (see ``_modes``, and
  ``_engine`` for one sample).

  Attributes:
    sampler: draws one sample's mask and its mean,
      ``sampler(key, shape) -> Draw`` (a mask and its mean, and a paste box
      or block moves for methods that have them; a user's sampler may
      return ``(mask, mean)``);
      None for the pass-through mixer. A sampler with a true ``scheduled``
      attribute is called ``sampler(key, shape, step)``.
    mode: 'batch', 'pair' or 'elem'.
    partner: the pairing strategy, 'flip', 'roll' or 'permute'.
    label_smoothing: ε applied to the targets before mixing.
    num_classes: K for integer labels (an int for every integer head, or
      one per head); None if labels come as ``(B, K)``.
    name: a readable description.
  """

  sampler: Optional[MaskSampler]
  mode: str = "elem"
  partner: str = "flip"
  label_smoothing: float = 0.0
  num_classes: Any = None
  name: str = "mixer"

  def __post_init__(self):
    _modes.check_mode(self.mode)
    _pairing.check_partner(self.partner, symmetric=self.mode == "pair")
    object.__setattr__(self, "label_smoothing",
                       _check_label_smoothing(self.label_smoothing))
    object.__setattr__(self, "num_classes",
                       _check_num_classes(self.num_classes))

  def _check_inputs(self, images, labels):
    if images.ndim - 2 not in SPATIAL_RANKS:
      raise ValueError(
          f"images must be (B, T, C), (B, H, W, C) or (B, D, H, W, C) (rank "
          f"3 to 5: batch, spatial axes, channels); got shape {images.shape}")
    if not (jnp.issubdtype(images.dtype, jnp.floating)
            or jnp.issubdtype(images.dtype, jnp.integer)):
      raise ValueError(
          f"images must have a float or integer dtype; got {images.dtype}")
    _warn_if_channels_first(images.shape)
    if labels is None:
      return []
    heads = jax.tree_util.tree_flatten_with_path(labels)[0]
    if not heads:
      raise ValueError(f"labels must be an array or a pytree of arrays; got {labels!r}")
    num_classes = _per_head(self.num_classes, labels)
    for (path, head), k in zip(heads, num_classes):
      where = f" {jax.tree_util.keystr(path)}" if path else ""
      if head.ndim == 0:
        raise ValueError(
            f"labels{where} and images must have the same batch size; got "
            f"a scalar label and images {images.shape}")
      _check_head(head, k, images.shape[0], where)
    return num_classes

  @property
  def scheduled(self) -> bool:
    """Whether the mixer has a schedule (α, ``prob`` or choice weights) and
    so must be called with ``step=``."""
    return bool(getattr(self.sampler, "scheduled", False))

  @property
  def guided(self) -> bool:
    """Whether the mixer's masks look at guides (see
    :func:`~msda_jax.guided_mask_mixer`); its calls then take ``guide=``."""
    return bool(getattr(self.sampler, "guided", False))

  def __call__(self, key: jax.Array, images: jax.Array, labels, *,
               step=None, guide=None) -> MixResult:
    """Mixes ``images`` and ``labels``.

    Args:
      key: a PRNG key.
      images: ``(B, *spatial, C)`` with 1 to 3 spatial axes (``(B, T, C)``,
        ``(B, H, W, C)``, ``(B, D, H, W, C)``), float or integer dtype.
      labels: int ``(B,)`` (needs ``num_classes``) or float ``(B, K)``, or a
        pytree of such heads, each mixed with the same λ; or None when
        only dense targets are mixed (:func:`mix_maps`), then
        ``MixResult.labels`` is None.
      step: the training step (an int or a traced int array), required by
        a :attr:`scheduled` mixer, which evaluates its schedules at it
        inside the trace (a new step does not retrace); ignored otherwise.
      guide: None, or per-sample data a :attr:`guided` mixer's masks look
        at: a float array ``(B, *grid)`` (``grid`` of the images' spatial
        rank, no axis longer than theirs; a trailing channel axis allowed),
        or a pytree of them. A guided mixer given none uses its method's
        default guide (e.g. the spectral-residual saliency of the images),
        or raises if it has none; a mixer that needs no guide ignores it.

    Returns:
      A :class:`MixResult`.

    Example:
      >>> import jax, jax.numpy as jnp, msda_jax
      >>> mix = jax.jit(msda_jax.mixup(
      ...     prob=lambda step: jnp.where(step < 100, 1.0, 0.0), num_classes=2))
      >>> out = mix(jax.random.key(0), jnp.zeros((2, 4, 4, 1)),
      ...           jnp.array([0, 1]), step=jnp.asarray(200))
      >>> out.lam.tolist()                  # mixing is off after step 100
      [1.0, 1.0]
    """
    return self.mix_with(key, images, labels, step=step, guide=guide)

  def mix_with(self, key: jax.Array, images: jax.Array, labels,
               partner_images: Optional[jax.Array] = None,
               partner_labels: Any = None, *, step=None, guide=None,
               partner_guide=None) -> MixResult:
    """Mixes ``images`` with partners from ``partner_images`` (default: itself).

    The mixer's body. ``mixer(key, x, y)`` is ``mixer.mix_with(key, x, y)``;
    with another batch of the same shape (e.g. another device's shard,
    :func:`shard_mixer` with ``across_devices=True``) sample ``i`` is mixed
    with ``partner_images[p[i]]``, ``p`` the mixer's pairing, and
    ``partner_index`` is the index ``p[i]`` into that batch.

    Args:
      key: a PRNG key.
      images: as in ``__call__``.
      labels: as in ``__call__``.
      partner_images: None, or a batch like ``images``.
      partner_labels: its labels, like ``labels`` (with ``partner_images``).
      step: the training step, as in ``__call__``.
      guide: as in ``__call__``.
      partner_guide: the guides of ``partner_images``, like ``guide`` (a
        guided mixer given ``guide`` needs it; given neither, it uses its
        default guide of each batch).

    Returns:
      A :class:`MixResult`.

    Example:
      >>> import jax, jax.numpy as jnp, msda_jax
      >>> mixer = msda_jax.mixup(num_classes=2)
      >>> out = mixer.mix_with(jax.random.key(0), jnp.zeros((2, 4, 4, 1)),
      ...                      jnp.array([0, 0]), jnp.ones((2, 4, 4, 1)),
      ...                      jnp.array([1, 1]))
      >>> bool(jnp.allclose(out.images[..., 0].mean(axis=(1, 2)), 1 - out.lam))
      True
    """
    if self.scheduled:
      if step is None:
        raise ValueError(
            f"mixer {self.name} has a schedule (alpha, prob or choice "
            f"weights): call it with step=, e.g. mixer(key, images, labels, "
            f"step=state.step)")
      step = jnp.asarray(step)
      if step.ndim != 0:
        raise ValueError(f"step must be a scalar; got shape {step.shape}")
    else:
      step = None  # Unscheduled: the step changes nothing.
    images = jnp.asarray(images)
    labels = jax.tree.map(jnp.asarray, labels)
    num_classes = self._check_inputs(images, labels)
    batch_size, spatial = images.shape[0], images.shape[1:-1]
    own_batch = partner_images is None
    if not own_batch:
      partner_images = jnp.asarray(partner_images)
      partner_labels = jax.tree.map(jnp.asarray, partner_labels)
      if partner_images.shape != images.shape:
        raise ValueError(
            f"partner_images must have the shape of images {images.shape}; "
            f"got {partner_images.shape}")
      self._check_inputs(partner_images, partner_labels)
      if self.mode == "pair":
        raise ValueError(
            "mode='pair' mixes both members of a pair with one mask, which "
            "needs partners from the same batch; use mode 'elem' or 'batch'")
    elif partner_guide is not None:
      raise ValueError(
          "partner_guide is the guide of partner_images; without "
          "partner_images the partners' guides come from guide itself")
    guide, partner_guide = self._guides(images, partner_images, guide,
                                        partner_guide)

    def targets_of(tree):
      leaves, treedef = jax.tree.flatten(tree)
      return jax.tree.unflatten(treedef, [
          _mixing.soft_labels(y, num_classes=k,
                              label_smoothing=self.label_smoothing)
          for y, k in zip(leaves, num_classes)])

    targets = targets_of(labels)
    index = jnp.arange(batch_size, dtype=jnp.int32)
    if self.sampler is None:
      return MixResult(images, targets, jnp.ones(batch_size, jnp.float32),
                       index, jnp.ones((batch_size, *spatial), jnp.float32))
    partner_key, mask_key = jax.random.split(key)
    partner = _pairing.partner_index(partner_key, batch_size, self.partner,
                                     involution=self.mode == "pair")
    # The means come from the mask geometry, not a reduction over the masks,
    # so under jit the masks stay fused into the blend.
    take = lambda x: _pairing.take_partner(x, self.partner, partner)
    shown_guide = None
    if guide is not None:
      shown_guide = jax.tree.map(
          take, guide if partner_guide is None else partner_guide)
    draw = _modes.draw_masks(self.sampler, mask_key, spatial, self.mode,
                             partner, step=step, guide=guide,
                             partner_guide=shown_guide)
    masks, lam, paste, moves = draw
    if own_batch:
      # Mixing with yourself is no mixing: keep such samples exact.
      alone = partner == index
      masks = jnp.where(alone.reshape(-1, *[1] * len(spatial)), 1.0, masks)
      lam = jnp.where(alone, 1.0, lam)
      if moves is not None:
        still = identity_moves(moves.own.shape[1:])
        moves = jax.tree.map(
            lambda m, i: jnp.where(alone.reshape(-1, *[1] * (m.ndim - 1)), i, m),
            moves, still)
      partner_images, partner_targets = images, targets
    else:
      partner_targets = targets_of(partner_labels)
    shown = take(partner_images)
    own = images
    if paste is not None:
      shown = jax.vmap(_paste.paste_resized)(shown, paste)
    if moves is not None:
      own = jax.vmap(_blocks.move_blocks)(images, moves.own)
      shown = jax.vmap(_blocks.move_blocks)(shown, moves.partner)
    return MixResult(
        images=_mixing.blend(own, shown, masks),
        labels=jax.tree.map(lambda t, p: _mixing.mix_labels(t, take(p), lam),
                            targets, partner_targets),
        lam=lam,
        partner_index=partner,
        mask=masks,
        paste=paste,
        moves=moves,
    )

  def _guides(self, images, partner_images, guide, partner_guide):
    """The checked guides of the batch and of ``partner_images`` (None for
    a mixer that needs none), defaults filled in."""
    if guide is not None:
      guide = _check_guide(guide, images.shape)
    if partner_guide is not None:
      partner_guide = _check_guide(partner_guide, images.shape,
                                   "partner_guide")
    if not self.guided:
      return None, None  # Checked above, then ignored.
    default = getattr(self.sampler, "default_guide", None)
    own_batch = partner_images is None
    if guide is None:
      if default is None:
        raise ValueError(
            f"mixer {self.name} looks at guides and its method has no default "
            f"guide: call it with guide= (per-sample data the mask sees, a "
            f"float array (B, *spatial) such as a saliency map, or a pytree "
            f"of them)")
      guide = _check_guide(default(images), images.shape,
                           "the default guide")
      if not own_batch and partner_guide is None:
        partner_guide = _check_guide(default(partner_images), images.shape,
                                     "the default guide")
    if not own_batch and partner_guide is None:
      raise ValueError(
          f"mixer {self.name} looks at guides: with partner_images and guide "
          f"it needs partner_guide= too (the partners' guides)")
    return guide, partner_guide
