"""Dense targets (segmentation maps) mixed with the same masks as the images.

A mixer returns the masks it used (``MixResult.mask``), the partners
(``partner_index``) and, for ResizeMix, where the resized partner went
(``paste``). That is all a dense target needs, so any per-pixel target
composes with any method: ``mix_maps(result, maps)``.

- Binary masks (CutMix, GridMix, FMix, ResizeMix's box): each pixel takes the
  target of the image that owns it; exact.
- Soft masks (Mixup, HMix outside its box, GMix, SmoothMix): per-pixel soft
  targets ``M y + (1 - M) y_partner``, or the owner's target by ``M >= 0.5``
  on request (``hard=True``).
- ResizeMix: the partner's map is resized into the paste box by nearest
  neighbour, with the geometry of the image paste.
- PuzzleMix (``result.moves``): both maps have their blocks moved as the
  images' were, before the blend; exact.

The image-level label weight ``lam`` stays the mask mean. Mixing label maps
with the image's mask is what semi-supervised segmentation does with CutMix
(French et al., "Semi-supervised semantic segmentation needs strong, varied
perturbations", BMVC 2020); the unified mask view is Park, Yun & Chun,
NeurIPS 2022; ResizeMix is Qin et al., 2020.
"""

from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from msda_jax._blocks import move_blocks
from msda_jax._pairing import check_across, partner_rows
from msda_jax._types import MixResult, PasteBox

__all__ = ["mix_maps", "partner_maps", "paste_nearest", "shard_mix_maps"]


def paste_nearest(image: jax.Array, box: PasteBox) -> jax.Array:
  """The whole ``image`` resized to ``box.size`` by nearest neighbour, at ``box.start``.

  The geometry of :func:`msda_jax._paste.paste_resized` (which resizes
  images with ``jax.image.scale_and_translate``): output pixel ``i`` of an
  axis of length ``n`` inside the box reads input pixel
  ``floor((i - start + 0.5) * n / size)``, the one containing the point
  that output pixel's centre maps to. Computed in integers, so there are no
  rounding ties. Pixels outside the box hold clipped border reads (any
  valid value; the mask hides them). ``size`` and ``start`` may be traced;
  the output shape is static, so it runs under jit and vmap.

  Args:
    image: one sample ``(*spatial, *rest)``: a label map ``(*spatial)`` or
      per-pixel vectors ``(*spatial, K)``.
    box: a :class:`~msda_jax.PasteBox` of ``(n,)`` int arrays,
      ``n = len(spatial) <= image.ndim``.

  Returns:
    An array with the shape and dtype of ``image``.

  Example:
    >>> import jax.numpy as jnp
    >>> from msda_jax._types import PasteBox
    >>> row = jnp.arange(8)                       # a 1-D map, shrunk to 4 at 2
    >>> paste_nearest(row, PasteBox(jnp.array([2]), jnp.array([4]))).tolist()
    [0, 0, 1, 3, 5, 7, 7, 7]
  """
  start = jnp.asarray(box.start, jnp.int32)
  size = jnp.maximum(jnp.asarray(box.size, jnp.int32), 1)
  n = start.shape[-1]
  index = []
  for axis in range(n):
    full = image.shape[axis]
    i = jnp.arange(full, dtype=jnp.int32)
    source = ((2 * (i - start[axis]) + 1) * full) // (2 * size[axis])
    index.append(jnp.clip(source, 0, full - 1))
  return image[jnp.ix_(*index)]


def _check_maps(result, maps, where: str = "mix_maps") -> jax.Array:
  if not isinstance(result, MixResult):
    raise ValueError(
        f"{where}: result must be the MixResult a mixer returned; got "
        f"{type(result).__name__}")
  maps = jnp.asarray(maps)
  mask_shape = tuple(result.mask.shape)
  expected = (f"(B, *spatial) = {mask_shape} int (a label map) or "
              f"(B, *spatial, K) = {mask_shape + ('K',)} float (per-pixel "
              f"targets), with (B, *spatial) = result.mask.shape")
  if jnp.issubdtype(maps.dtype, jnp.integer):
    shape_ok = maps.shape == mask_shape
  elif jnp.issubdtype(maps.dtype, jnp.floating):
    shape_ok = (maps.ndim == len(mask_shape) + 1
                and maps.shape[:-1] == mask_shape)
  else:
    raise ValueError(
        f"{where}: maps must be {expected}; got dtype {maps.dtype} (cast a "
        f"boolean map to int32)")
  if not shape_ok:
    raise ValueError(
        f"{where}: maps must be {expected}; got {maps.dtype} maps of shape "
        f"{maps.shape}")
  return maps


def _check_options(maps, hard, num_classes, ignore_value):
  if not isinstance(hard, bool):
    raise ValueError(f"hard must be True or False; got {hard!r}")
  if num_classes is not None and (
      isinstance(num_classes, bool) or not isinstance(num_classes, int)
      or num_classes < 1):
    raise ValueError(
        f"num_classes must be None or a positive int; got {num_classes!r}")
  if ignore_value is not None and (
      isinstance(ignore_value, bool) or not isinstance(ignore_value, int)):
    raise ValueError(
        f"ignore_value must be None or an int label (e.g. 255); got "
        f"{ignore_value!r}")
  if jnp.issubdtype(maps.dtype, jnp.floating):
    if ignore_value is not None:
      raise ValueError(
          "ignore_value applies to int label maps; float maps carry per-pixel "
          "vectors (give an ignored pixel a zero vector instead); got "
          f"ignore_value={ignore_value!r} with {maps.dtype} maps")
    if num_classes is not None and num_classes != maps.shape[-1]:
      raise ValueError(
          f"maps have {maps.shape[-1]} classes (last axis) but num_classes="
          f"{num_classes}")
  elif not hard and num_classes is None:
    raise ValueError(
        "int maps mixed soft (hard=False) are one-hot encoded and need "
        "num_classes (e.g. mix_maps(out, maps, num_classes=21, "
        "ignore_value=255)); or pass hard=True to keep int maps")


def partner_maps(result: MixResult, maps: jax.Array, *,
                 across_devices: bool = False,
                 axis_name: str = "data") -> jax.Array:
  """Each sample's partner map, as its mixed image shows the partner.

  ``maps[result.partner_index]``, resized by nearest neighbour into the
  paste box when the partner was pasted resized (ResizeMix), its blocks
  moved by ``result.moves.partner`` when the mixer moved them (PuzzleMix's
  transport; the own map's move is :func:`mix_maps`'s). The building
  block of :func:`mix_maps`; use it for losses that mix per-pixel losses
  rather than targets (cross-entropy is linear in the target, so
  ``M ce(y) + (1 - M) ce(y_partner)`` equals the loss of the soft target
  without making it).

  ``partner_index`` is read modulo the batch size of ``maps``: a global
  index from :func:`~msda_jax.per_device` (``local + shard * local_batch``)
  becomes the local row inside ``shard_map`` or ``pmap``, and an index into
  the whole batch stays as it is. Pass the same ``across_devices`` as the
  mixer was given (:func:`~msda_jax.per_device`): with ``True`` (inside
  ``shard_map`` or ``pmap`` over ``axis_name``) the previous device's shard
  of ``maps`` comes over the same ``ppermute`` ring as the images did (one
  shard moved per device, no all-gather), and the paste box is applied to
  the rows received.

  Args:
    result: what a mixer returned for this batch (or this shard).
    maps: ``(B, *spatial)`` int or ``(B, *spatial, K)`` float, ``(B,
      *spatial) == result.mask.shape``.
    across_devices: the partners are on the previous device of the ring.
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    An array like ``maps``.

  Raises:
    ValueError: maps of the wrong shape or dtype for ``result``, or a
      non-bool ``across_devices``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = jax.jit(msda_jax.cutmix(num_classes=2))(
    ...     jax.random.key(0), jnp.zeros((2, 4, 4, 3)), jnp.array([0, 1]))
    >>> maps = jnp.stack([jnp.zeros((4, 4), int), jnp.ones((4, 4), int)])
    >>> partner_maps(out, maps)[:, 0, 0].tolist()    # flip: 0 <-> 1
    [1, 0]
  """
  maps = _check_maps(result, maps, "partner_maps")
  across_devices = check_across(across_devices, axis_name)
  partner = partner_rows(maps, result.partner_index,
                         across_devices=across_devices, axis_name=axis_name)
  if result.paste is not None:
    partner = jax.vmap(paste_nearest)(partner, result.paste)
  if result.moves is not None:
    partner = _moved(partner, result.moves.partner, result.mask.ndim)
  return partner


def _moved(maps, sources, mask_rank):
  """Each sample's map with its blocks moved (``_blocks.move_blocks``);
  int maps ``(B, *spatial)`` get a channel axis for the move."""
  plain = maps.ndim == mask_rank
  moved = jax.vmap(move_blocks)(maps[..., None] if plain else maps, sources)
  return moved[..., 0] if plain else moved


def mix_maps(result: MixResult, maps: jax.Array, *, hard: bool = False,
             num_classes: Optional[int] = None,
             ignore_value: Optional[int] = None, across_devices: bool = False,
             axis_name: str = "data") -> jax.Array:
  """Mixes per-pixel targets with the masks that mixed the images.

  ``result`` is what the mixer returned for the images; ``maps`` are the
  batch's dense targets in the same order. The partner's map is
  :func:`partner_maps` (resized into the paste box for ResizeMix); when the
  mixer moved blocks (PuzzleMix), the own map is moved by
  ``result.moves.own`` and the partner's by ``result.moves.partner``, as
  the images were, so the maps stay aligned with the mixed pixels.

  - ``hard=True``: each pixel takes the target of the image that owns it,
    its own where ``mask >= 0.5``, else the partner's. Int maps stay int
    (an ignore label is a label like any other: it passes through); float
    maps give the owner's vector. Exact for binary masks (CutMix, GridMix,
    FMix, ResizeMix); for soft masks the majority image wins (Mixup with
    λ ≥ 0.5: the whole own map).
  - ``hard=False``, float maps ``(B, *spatial, K)``: ``M y + (1 - M)
    y_partner`` per pixel, in float32, returned in the dtype of ``maps``.
  - ``hard=False``, int maps: one-hot over ``num_classes``, then as above;
    float32 ``(B, *spatial, K)``. A pixel whose label is ``ignore_value``
    contributes a zero vector, so where only one of the two images is
    ignored the target is the other's one-hot times its weight (own ignored:
    ``(1 - M) onehot(y_partner)``), and where both are, zeros. Each row thus
    sums to the known share of the pixel, the per-pixel loss weight, and the
    masked segmentation loss needs no separate weight:

        t = mix_maps(out, maps, num_classes=K, ignore_value=255)
        ce = optax.softmax_cross_entropy(logits, t)      # (B, *spatial) = w * CE(t / w)
        loss = ce.sum() / jnp.maximum(t.sum(), 1.0)      # t.sum(-1) is the weight w

    Labels outside ``[0, num_classes)`` also give zero vectors (this cannot
    be checked under jit).

  Sharded batches: with the whole batch under ``jax.jit`` (e.g. the output
  of :func:`~msda_jax.shard_mixer` and globally sharded maps) this is right
  but ``maps[partner_index]`` is a global gather, which moves maps between
  devices. :func:`shard_mix_maps` mixes every shard where it lives; inside
  your own ``shard_map`` or ``pmap``, call ``mix_maps`` on the local result
  of :func:`~msda_jax.per_device` and the local maps (the global partner
  indices are read modulo the local batch), with ``across_devices`` as given
  to ``per_device`` (with ``True`` the previous device's maps come over the
  ring; with ``False`` partners are local rows: a cross-device result mixed
  that way takes wrong rows).

  Args:
    result: the :class:`~msda_jax.MixResult` of the images.
    maps: ``(B, *spatial)`` int label maps or ``(B, *spatial, K)`` float
      per-pixel targets, ``(B, *spatial) == result.mask.shape`` (1 to 3
      spatial axes).
    hard: keep one owner per pixel (see above) instead of soft targets.
    num_classes: K for soft mixing of int maps (required there); checked
      against the last axis of float maps; unused by hard int maps.
    ignore_value: the label of unlabelled pixels in int maps (e.g. 255):
      zero vectors when mixed soft; hard mixing passes it through anyway.
    across_devices: partners on the previous device (inside ``shard_map``
      or ``pmap``; see above).
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    ``hard=True``: an array like ``maps``. ``hard=False``: float
    ``(B, *spatial, K)`` soft targets.

  Raises:
    ValueError: maps of the wrong shape or dtype for ``result``, options
      that do not fit the maps, or a non-bool ``across_devices``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> images, labels = jnp.zeros((2, 8, 8, 3)), jnp.array([0, 1])
    >>> maps = jnp.stack([jnp.zeros((8, 8), jnp.int32),
    ...                   jnp.full((8, 8), 255, jnp.int32)])  # sample 1 unlabelled
    >>> out = jax.jit(msda_jax.cutmix(num_classes=3))(jax.random.key(1), images, labels)
    >>> hard = mix_maps(out, maps, hard=True)                 # int (2, 8, 8)
    >>> bool(jnp.all(hard == jnp.where(out.mask >= 0.5, maps, maps[::-1])))
    True
    >>> soft = mix_maps(out, maps, num_classes=3, ignore_value=255)
    >>> labelled = soft.sum(-1).mean((1, 2))   # each row sums to its labelled share
    >>> soft.shape, bool(jnp.allclose(labelled, jnp.stack([out.lam[0], 1 - out.lam[1]])))
    ((2, 8, 8, 3), True)
  """
  maps = _check_maps(result, maps)
  _check_options(maps, hard, num_classes, ignore_value)
  partner = partner_maps(result, maps, across_devices=across_devices,
                         axis_name=axis_name)
  if result.moves is not None:
    maps = _moved(maps, result.moves.own, result.mask.ndim)
  mask = result.mask
  is_int = jnp.issubdtype(maps.dtype, jnp.integer)
  if hard:
    own = mask >= 0.5
    if not is_int:
      own = own[..., None]
    return jnp.where(own, maps, partner)
  if is_int:
    def one_hot(m):
      if ignore_value is not None:
        # int32 first: -1 would wrap to a real class in uint8 / uint16 maps.
        m = jnp.where(m == ignore_value, -1, m.astype(jnp.int32))
      return jax.nn.one_hot(m, num_classes, dtype=jnp.float32)
    maps, partner, dtype = one_hot(maps), one_hot(partner), jnp.float32
  else:
    dtype = maps.dtype
  weight = mask[..., None].astype(jnp.float32)
  mixed = (weight * maps.astype(jnp.float32)
           + (1.0 - weight) * partner.astype(jnp.float32))
  return mixed.astype(dtype)


def shard_mix_maps(mesh: Mesh, *, axis_name: str = "data", hard: bool = False,
                   num_classes: Optional[int] = None,
                   ignore_value: Optional[int] = None,
                   across_devices: bool = False) -> Callable:
  """:func:`mix_maps` for batches sharded along ``axis_name``, with no all-gather.

  The companion of :func:`~msda_jax.shard_mixer`: pass the same
  ``across_devices`` as it was given. With ``False`` partners live on the
  same device and each device mixes its own maps under ``jax.shard_map`` (no
  traffic); with ``True`` every device receives the previous device's shard
  of the maps on the ring that brought it the partner images (one
  ``collective-permute`` of a shard, no all-gather), and ResizeMix's paste
  box is applied to the received rows. Call the result inside (or outside)
  ``jax.jit`` with the mixer's output and maps laid out as
  ``NamedSharding(mesh, P(axis_name))``; the output is sharded the same way
  and equals ``mix_maps`` on the whole batch.

  Args:
    mesh: the mesh the images were mixed on.
    axis_name: the batch axis.
    hard, num_classes, ignore_value: as in :func:`mix_maps`.
    across_devices: as given to :func:`~msda_jax.shard_mixer`.

  Returns:
    ``fn(result, maps) -> mixed maps`` on the global batch.

  Raises:
    ValueError: an ``axis_name`` not in ``mesh`` or a non-bool
      ``across_devices``; ``fn`` raises as :func:`mix_maps` does.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mesh = msda_jax.data_mesh()
    >>> b = 2 * len(jax.devices())
    >>> mixer = msda_jax.cutmix(num_classes=4)
    >>> out = jax.jit(msda_jax.shard_mixer(mixer, mesh, across_devices=True))(
    ...     jax.random.key(0), jnp.zeros((b, 8, 8, 3)), jnp.zeros(b, jnp.int32))
    >>> mix = jax.jit(shard_mix_maps(mesh, hard=True, across_devices=True))
    >>> mix(out, jnp.zeros((b, 8, 8), jnp.int32)).shape == (b, 8, 8)
    True
  """
  if axis_name not in mesh.axis_names:
    raise ValueError(
        f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  across_devices = check_across(across_devices, axis_name)
  batch = PartitionSpec(axis_name)

  def local(result, maps):
    return mix_maps(result, maps, hard=hard, num_classes=num_classes,
                    ignore_value=ignore_value, across_devices=across_devices,
                    axis_name=axis_name)

  def fn(result: MixResult, maps: jax.Array) -> jax.Array:
    maps = _check_maps(result, maps, "shard_mix_maps")
    _check_options(maps, hard, num_classes, ignore_value)
    return jax.shard_map(local, mesh=mesh, in_specs=(batch, batch),
                         out_specs=batch)(result, maps)

  return fn
