"""TransMix: labels re-mixed by where a vision transformer looks.

CutMix labels an image by the area of each part; a ViT's class token may
attend to the partner's box far more (or less) than its area. TransMix
(Chen, Xie, Liu, Liu & Yuille, "TransMix: Attend to Mix for Vision
Transformers", CVPR 2022; code: github.com/Beckschen/TransMix) takes the
class token's attention ``a`` over the ``P`` patches of the *mixed* image
(its last block, averaged over heads) and weights each sample's own label
by the attention that falls on its own pixels::

    λ_att = Σ_p a_p m_p / Σ_p a_p         m_p = the mask's mean over patch p
    λ'    = area_weight · lam + (1 - area_weight) · λ_att
    y'    = λ' y + (1 - λ') y_partner

with ``area_weight = 0.5`` as in the reference. The reference applies it
to its CutMix branch only: for Mixup the mask is the constant λ, so
``λ_att = λ`` and the labels do not change (here that holds for any
method, nothing needs switching off). ``m_p`` is the exact area mean of
the mask over the patch; the reference downsamples its box by nearest
neighbour, which is the same for boxes on the patch grid.
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from msda_jax import _mixer, _mixing
from msda_jax._hidden import _check_across, _check_result, _partner_rows, block_mean
from msda_jax._types import MixResult

__all__ = ["attention_lam", "patch_grid", "transmix_labels"]


def patch_grid(spatial: tuple[int, ...], num_patches: int,
               grid: Optional[tuple[int, ...]] = None) -> tuple[int, ...]:
  """The patch grid of ``num_patches`` patches over an image of ``spatial``.

  With ``grid`` None, the grid of *square* patches (side ``s`` on every
  axis, as a ViT's ``16 x 16``): ``s ** n = prod(spatial) / P`` fixes ``s``,
  so there is at most one, and it must divide every axis (``(224, 224)``
  with 196 patches: ``(14, 14)``; ``(224, 448)`` with 392: ``(14, 28)``).
  Non-square patches need an explicit ``grid``, which is checked: one
  entry per spatial axis, each dividing it, their product ``P``.

  Example:
    >>> patch_grid((224, 448), 392)
    (14, 28)
  """
  spatial = tuple(int(s) for s in spatial)
  n, total = len(spatial), int(np.prod(spatial))
  hint = (f"the class token's attention over the patches of the mixed image "
          f"(without its own entry); the mask's spatial shape is {spatial}")
  if grid is not None:
    if (isinstance(grid, (str, bytes)) or not hasattr(grid, "__len__")
        or len(grid) != n
        or any(isinstance(g, bool) or not isinstance(g, (int, np.integer))
               or g < 1 for g in grid)):
      raise ValueError(
          f"grid must be None or {n} positive ints, one patch count per "
          f"spatial axis of {spatial}; got {grid!r}")
    grid = tuple(int(g) for g in grid)
    if any(full % g for full, g in zip(spatial, grid)):
      raise ValueError(
          f"grid {grid} must divide the mask's spatial shape {spatial}")
    if int(np.prod(grid)) != num_patches:
      raise ValueError(
          f"grid {grid} has {int(np.prod(grid))} patches but attention has "
          f"{num_patches}; attention must be {hint}")
    return grid
  side = round((total / num_patches) ** (1.0 / n)) if num_patches > 0 else 0
  if side < 1 or side ** n * num_patches != total or any(
      full % side for full in spatial):
    raise ValueError(
        f"attention has {num_patches} patches, which do not tile the mask's "
        f"spatial shape {spatial} with square patches; pass grid= (patches "
        f"per axis, e.g. for non-square patches). attention must be {hint}")
  return tuple(full // side for full in spatial)


def _check_attention(result: MixResult, attention, grid, where):
  attention = jnp.asarray(attention)
  batch = result.mask.shape[0]
  if (attention.ndim != 2 or attention.shape[0] != batch
      or not jnp.issubdtype(attention.dtype, jnp.floating)):
    raise ValueError(
        f"{where}: attention must be float (B, P) = ({batch}, P), the class "
        f"token's attention over P patches, with B from result.mask.shape = "
        f"{tuple(result.mask.shape)}; got {attention.dtype} attention of "
        f"shape {attention.shape}")
  return attention, patch_grid(result.mask.shape[1:], attention.shape[1], grid)


def attention_lam(result: MixResult, attention: jax.Array, *,
                  grid: Optional[tuple[int, ...]] = None) -> jax.Array:
  """``λ_att``: the share of the class token's attention on each sample's own pixels.

  ``Σ_p a_p m_p / Σ_p a_p`` with ``m_p`` the mean of ``result.mask`` over
  patch ``p`` (row-major over the patch grid, as a ViT flattens its
  patches). ``attention`` must be non-negative with a positive sum per
  sample (a softmax row, any scale).

  Args:
    result: the :class:`~msda_jax.MixResult` of the batch.
    attention: float ``(B, P)``, the class token's attention over the ``P``
      patches of the mixed image (e.g. ``attn[:, :, 0, 1:].mean(1)`` of the
      last block: heads averaged, the class token's own entry dropped).
    grid: the patch grid; None infers the square-patch grid (see
      :func:`patch_grid`).

  Returns:
    float32 ``(B,)``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = jax.jit(msda_jax.mixup(num_classes=2))(
    ...     jax.random.key(0), jnp.zeros((2, 8, 8, 3)), jnp.array([0, 1]))
    >>> a = jax.random.uniform(jax.random.key(1), (2, 16))
    >>> bool(jnp.allclose(attention_lam(out, a), out.lam))   # Mixup: λ_att = λ
    True
  """
  _check_result(result, "attention_lam")
  attention, grid = _check_attention(result, attention, grid, "attention_lam")
  cells = block_mean(result.mask, grid).reshape(attention.shape)
  attention = attention.astype(jnp.float32)
  return jnp.sum(attention * cells, axis=1) / jnp.sum(attention, axis=1)


def _check_area_weight(value) -> float:
  try:
    weight = float(value)
  except (TypeError, ValueError):
    weight = None
  if isinstance(value, bool) or weight is None or not 0.0 <= weight <= 1.0:
    raise ValueError(
        f"area_weight must be a float in [0, 1] (the weight of the area "
        f"λ; 0.5 in the reference, 1 keeps the area labels); got {value!r}")
  return weight


def transmix_labels(result: MixResult, attention: jax.Array, labels, *,
                    num_classes=None, label_smoothing: float = 0.0,
                    area_weight: float = 0.5,
                    grid: Optional[tuple[int, ...]] = None,
                    across_devices: bool = False, axis_name: str = "data"):
  """TransMix labels: the batch's labels re-mixed with attention-weighted λ.

  ``λ' = area_weight · result.lam + (1 - area_weight) · λ_att`` (see
  :func:`attention_lam`) and ``y' = λ' y + (1 - λ') y[partner]`` for every
  head of ``labels``, after the same one-hot and smoothing as the mixer
  (pass the mixer's ``num_classes`` and ``label_smoothing``). Returns the
  labels, with the structure of ``result.labels``; the image-level ``lam``
  of ``result`` is unchanged (``λ'`` is not a mask mean). With a Mixup result
  ``λ_att = λ``, so these are ``result.labels``.

  Sharded batches: on the whole batch under ``jax.jit`` the partner labels
  are a gather of ``(B, K)`` rows (small). Inside your own ``shard_map`` or
  ``pmap`` on the local result of :func:`~msda_jax.per_device`, pass its
  ``across_devices``: with ``True`` the previous device's labels come over
  the ring.

  Args:
    result: the :class:`~msda_jax.MixResult` of the batch.
    attention: float ``(B, P)``, the class token's attention over the ``P``
      patches of ``result.images`` (see :func:`attention_lam`).
    labels: the batch's *unmixed* labels, as given to the mixer: int
      ``(B,)`` (needs ``num_classes``), float ``(B, K)``, or a pytree of
      such heads (``num_classes`` an int or one per head, as the mixers
      take it).
    num_classes: as given to the mixer.
    label_smoothing: ε, as given to the mixer (applied before mixing).
    area_weight: the weight of the area λ in ``[0, 1]``; 0.5 as in the
      reference, 1 gives ``result.labels`` back, 0 the attention alone.
    grid: the patch grid; None infers the square-patch grid
      (:func:`patch_grid`).
    across_devices: partners on the previous device (see above).
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    float32 soft labels like ``result.labels``: ``(B, K)`` per head.

  Raises:
    ValueError: attention of the wrong shape, patches that do not tile the
      image, labels that do not fit ``num_classes``, or bad options.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mixer = msda_jax.cutmix(num_classes=3)
    >>> images, labels = jnp.zeros((2, 8, 8, 3)), jnp.array([0, 2])
    >>> out = jax.jit(mixer)(jax.random.key(0), images, labels)
    >>> a = jax.random.uniform(jax.random.key(1), (2, 16))  # a 4 x 4 patch grid
    >>> y = transmix_labels(out, a, labels, num_classes=3)
    >>> lam = 0.5 * out.lam + 0.5 * attention_lam(out, a)
    >>> own, partner = jnp.eye(3)[0], jnp.eye(3)[2]        # sample 0, flip: 1
    >>> bool(jnp.allclose(y[0], lam[0] * own + (1 - lam[0]) * partner))
    True
  """
  _check_result(result, "transmix_labels")
  area_weight = _check_area_weight(area_weight)
  label_smoothing = _mixer._check_label_smoothing(label_smoothing)
  across_devices = _check_across(across_devices, axis_name)
  attention, grid = _check_attention(result, attention, grid, "transmix_labels")
  if labels is None:
    raise ValueError(
        "transmix_labels: labels must be the batch's unmixed labels (an array "
        "or a pytree of heads); got None")
  labels = jax.tree.map(jnp.asarray, labels)
  heads = jax.tree_util.tree_flatten_with_path(labels)[0]
  if not heads:
    raise ValueError(
        f"labels must be an array or a pytree of arrays; got {labels!r}")
  per_head = _mixer._per_head(_mixer._check_num_classes(num_classes), labels)
  batch = result.mask.shape[0]
  for (path, head), k in zip(heads, per_head):
    where = f" {jax.tree_util.keystr(path)}" if path else ""
    if head.ndim == 0:
      raise ValueError(
          f"labels{where} must have the batch {batch} of result.mask.shape "
          f"{tuple(result.mask.shape)}; got a scalar label")
    _mixer._check_head(head, k, batch, where)
  lam = (area_weight * result.lam.astype(jnp.float32) + (1.0 - area_weight)
         * attention_lam(result, attention, grid=grid))
  leaves, treedef = jax.tree.flatten(labels)
  targets = jax.tree.unflatten(treedef, [
      _mixing.soft_labels(y, num_classes=k, label_smoothing=label_smoothing)
      for y, k in zip(leaves, per_head)])
  partner = _partner_rows(targets, result.partner_index,
                          across_devices=across_devices, axis_name=axis_name)
  return jax.tree.map(lambda t, p: _mixing.mix_labels(t, p, lam), targets,
                      partner)
