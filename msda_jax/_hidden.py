"""Hidden features mixed with the partners and masks that mixed the images.

A mixer's :class:`~msda_jax.MixResult` holds everything a mix of hidden
states needs: the partners (``partner_index``), the per-pixel weights
(``mask``) and the per-sample weights (``lam``). :func:`mix_hidden` mixes
features ``h`` of a hidden layer with them::

    h_mixed = m * h + (1 - m) * h[partner]

with ``m`` the mask averaged down to the grid of ``h`` (area averaging over
blocks) for spatial features ``(B, *grid, C)``, and ``m = lam`` for feature
vectors ``(B, C)``. The labels stay ``result.labels``: the mean of the
averaged mask is the mask mean, so the label weight of ``h_mixed`` is still
``lam``.

- Manifold Mixup is ``mix_hidden`` of a Mixup result at a hidden layer: the
  constant mask ``λ`` averages to ``λ`` on any grid (Verma, Lamb, Beckham,
  Najafi, Mitliagkas, Lopez-Paz & Bengio, "Manifold Mixup: Better
  Representations by Interpolating Hidden States", ICML 2019).
- A box mask (CutMix) gives PatchUp-style hidden CutMix, a box of feature
  cells from the partner (Faramarzi, Amini, Badrinaaraayanan, Verma &
  Chandar, "PatchUp: A Feature-Space Block-Level Regularization Technique
  for Convolutional Neural Networks", AAAI 2022); a box that does not align
  with the grid gives fractional weights in the cells it cuts.

In Manifold Mixup the network sees the *clean* images up to the mixing
layer: draw the result with a mixer, feed ``images`` (not
``result.images``) to the lower layers, mix their output here and train the
upper layers on ``result.labels``.

PuzzleMix (``result.moves`` not None) moved blocks of both images before
the blend: spatial features whose grid the transport grid divides have
their cells moved the same way (own by ``moves.own``, partner by
``moves.partner``); a coarser grid, whose cells would cut the moved blocks,
raises a ValueError; vectors ``(B, C)`` are mixed with ``lam`` (a moved
image keeps its whole content).

ResizeMix (``result.paste`` not None) pastes the whole partner resized into
its box: the partner that shows there is not ``h[partner]`` at those cells,
and no resize of features is defined, so spatial features raise a
ValueError; feature vectors ``(B, C)`` are mixed with ``lam`` (the resized
partner keeps its whole content, which a pooled vector describes).
"""

from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from msda_jax._blocks import move_blocks
# The ring rows live in _pairing (shared with _dense); _transmix imports
# these names from here.
from msda_jax._pairing import check_across as _check_across
from msda_jax._pairing import partner_rows as _partner_rows
from msda_jax._types import MixResult

__all__ = ["hidden_mask", "mix_hidden", "partner_hidden", "shard_mix_hidden",
           "block_mean"]


def block_mean(mask: jax.Array, grid: tuple[int, ...]) -> jax.Array:
  """``(B, *spatial)`` masks averaged over blocks down to ``(B, *grid)``.

  Every ``grid[i]`` divides ``spatial[i]``; cell ``g`` of the output is the
  mean of the ``spatial[i] // grid[i]`` pixels per axis it covers (area
  averaging), in float32.

  Example:
    >>> import jax.numpy as jnp
    >>> block_mean(jnp.array([[[1., 1., 0., 0.], [1., 0., 0., 0.]]]), (1, 2)).tolist()
    [[[0.75, 0.0]]]
  """
  batch, spatial = mask.shape[0], mask.shape[1:]
  split = [batch]
  for full, cells in zip(spatial, grid):
    split += [cells, full // cells]
  axes = tuple(range(2, 2 * len(spatial) + 1, 2))
  return jnp.mean(mask.astype(jnp.float32).reshape(split), axis=axes)


def _check_result(result, where: str) -> MixResult:
  if not isinstance(result, MixResult):
    raise ValueError(
        f"{where}: result must be the MixResult a mixer returned; got "
        f"{type(result).__name__}")
  return result


def _check_hidden(result, h, where: str) -> jax.Array:
  """``h`` as an array, checked against ``result.mask``; returns it."""
  result = _check_result(result, where)
  h = jnp.asarray(h)
  mask_shape = tuple(result.mask.shape)
  rank = len(mask_shape) - 1
  expected = (f"h must be (B, *grid, C) features with {rank} grid axes, each "
              f"dividing the image's spatial axes {mask_shape[1:]}, or (B, C) "
              f"vectors, with B = {mask_shape[0]} (result.mask.shape = "
              f"{mask_shape})")
  if not jnp.issubdtype(h.dtype, jnp.floating):
    raise ValueError(f"{where}: {expected}; got {h.dtype} h of shape {h.shape} "
                     f"(features must be float)")
  if h.ndim not in (2, rank + 2):
    raise ValueError(f"{where}: {expected}; got h of shape {h.shape} (rank "
                     f"{h.ndim}, expected {rank + 2} or 2)")
  if h.shape[0] != mask_shape[0]:
    raise ValueError(f"{where}: {expected}; got h of shape {h.shape} (batch "
                     f"{h.shape[0]}, not {mask_shape[0]})")
  grid = h.shape[1:-1]
  if any(g < 1 or full % g for g, full in zip(grid, mask_shape[1:])):
    raise ValueError(f"{where}: {expected}; got h of shape {h.shape}: its grid "
                     f"{grid} does not divide {mask_shape[1:]}")
  if grid and result.paste is not None:
    raise ValueError(
        f"{where}: result pastes the partner resized into a box (ResizeMix, "
        f"or a choice that includes it), so the partner shown there is not "
        f"h[partner] and spatial features cannot be mixed with its mask; got "
        f"h of shape {h.shape} with result.mask.shape = {mask_shape}. Mix "
        f"pooled (B, C) features (weight lam) or use a masking method")
  if grid and result.moves is not None:
    blocks = tuple(result.moves.own.shape[1:])
    if len(blocks) != len(grid) or any(g % t for g, t in zip(grid, blocks)):
      raise ValueError(
          f"{where}: result moved blocks of a {blocks} grid before the blend "
          f"(PuzzleMix's transport); features can follow the move only when "
          f"that grid divides theirs, and h of shape {h.shape} has the grid "
          f"{grid}. Mix features of a grid that {blocks} divides, or pooled "
          f"(B, C) features (weight lam), or use transport=False")
  return h


def _moved(result, h, which: str):
  """Spatial ``h`` with its cells moved as the ``which`` ('own' or
  'partner') image's blocks were; vectors and unmoved results as they are."""
  if result.moves is None or h.ndim == 2:
    return h
  return jax.vmap(move_blocks)(h, getattr(result.moves, which))


def hidden_mask(result: MixResult, h: jax.Array) -> jax.Array:
  """The weight of each sample's own features in :func:`mix_hidden`.

  ``result.mask`` averaged over blocks down to the grid of ``h`` (float32
  ``(B, *grid)``) for spatial features ``(B, *grid, C)``; ``result.lam``
  (``(B,)``) for feature vectors ``(B, C)``.

  Args:
    result: what a mixer returned for this batch (or this shard).
    h: the features, as in :func:`mix_hidden` (only the shape is used).

  Returns:
    float32 ``(B, *grid)`` or ``(B,)``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = jax.jit(msda_jax.mixup(num_classes=2))(
    ...     jax.random.key(0), jnp.zeros((2, 8, 8, 3)), jnp.array([0, 1]))
    >>> m = hidden_mask(out, jnp.zeros((2, 2, 2, 16)))   # Mixup: λ in every cell
    >>> m.shape, bool(jnp.allclose(m, out.lam[:, None, None]))
    ((2, 2, 2), True)
  """
  h = _check_hidden(result, h, "hidden_mask")
  if h.ndim == 2:
    return result.lam.astype(jnp.float32)
  return block_mean(result.mask, h.shape[1:-1])


def partner_hidden(result: MixResult, h: jax.Array, *,
                   across_devices: bool = False,
                   axis_name: str = "data") -> jax.Array:
  """Each sample's partner features: ``h[result.partner_index]``.

  When the mixer moved blocks (PuzzleMix's transport, ``result.moves``),
  spatial features have their cells moved by ``result.moves.partner``, as
  the partner image was (the own features' move is :func:`mix_hidden`'s).

  ``partner_index`` is read modulo the batch of ``h``, as in
  :func:`~msda_jax.partner_maps`: a global index from
  :func:`~msda_jax.per_device` becomes the local row inside ``shard_map`` or
  ``pmap``. With ``across_devices=True`` (call it inside ``shard_map`` or
  ``pmap`` over ``axis_name``, on the result of ``per_device(mixer,
  across_devices=True)``) the previous device's shard of ``h`` comes over
  the same ``ppermute`` ring as the images did (one shard moved per device,
  no all-gather).

  Args:
    result: what a mixer returned for this batch (or this shard).
    h: ``(B, *grid, C)`` or ``(B, C)`` float features (see
      :func:`mix_hidden`).
    across_devices: the partners are on the previous device of the ring.
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    An array like ``h``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = jax.jit(msda_jax.cutmix(num_classes=2, partner='roll'))(
    ...     jax.random.key(0), jnp.zeros((3, 4, 4, 1)), jnp.array([0, 1, 0]))
    >>> partner_hidden(out, jnp.arange(3.0)[:, None]).ravel().tolist()  # roll
    [2.0, 0.0, 1.0]
  """
  h = _check_hidden(result, h, "partner_hidden")
  across_devices = _check_across(across_devices, axis_name)
  partner = _partner_rows(h, result.partner_index,
                          across_devices=across_devices, axis_name=axis_name)
  return _moved(result, partner, "partner")


def mix_hidden(result: MixResult, h: jax.Array, *, across_devices: bool = False,
               axis_name: str = "data") -> jax.Array:
  """Mixes hidden features with the partners and mask of ``result``.

  ``m * h + (1 - m) * h[partner]`` with ``m`` = :func:`hidden_mask` (the
  mask averaged down to the grid of ``h``, or ``lam`` for vectors) broadcast
  over channels and the partner rows :func:`partner_hidden`. Computed in
  float32 and returned in the dtype of ``h`` (bfloat16 features stay
  bfloat16). At the image's own resolution this is the image blend itself.

  Manifold Mixup (Verma et al., ICML 2019) is ``mix_hidden`` of a Mixup
  result at a hidden layer; a CutMix result gives PatchUp-style hidden
  CutMix. The labels of the mixed features are ``result.labels``.

  Sharded batches: under ``jax.jit`` on the whole batch (the output of
  :func:`~msda_jax.shard_mixer` and globally sharded ``h``) this is right but
  ``h[partner_index]`` is a global gather; :func:`shard_mix_hidden` mixes
  every shard where it lives. Inside your own ``shard_map`` or ``pmap``,
  call it on the local result of :func:`~msda_jax.per_device` and the local
  ``h``, with ``across_devices`` as given to ``per_device`` (with ``True``
  the previous device's ``h`` comes over the ring; with ``False`` partners
  are local rows: a cross-device result mixed that way takes wrong rows).

  Args:
    result: the :class:`~msda_jax.MixResult` of the batch.
    h: float features ``(B, *grid, C)``, channels last, with as many grid
      axes as the images have spatial axes, each dividing the image's
      (``(B, 8, 8, C)`` for ``(B, 32, 32, 3)`` images), or vectors
      ``(B, C)``; ``B == result.mask.shape[0]``.
    across_devices: partners on the previous device (inside ``shard_map``
      or ``pmap``; see above).
    axis_name: the mapped batch axis (with ``across_devices``).

  Returns:
    The mixed features, shape and dtype of ``h``.

  Raises:
    ValueError: ``h`` of the wrong batch, rank or dtype, a grid that does
      not divide the image, spatial ``h`` with a ResizeMix result, or a
      non-bool ``across_devices``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> out = jax.jit(msda_jax.mixup(num_classes=2))(    # Manifold Mixup
    ...     jax.random.key(0), jnp.zeros((2, 8, 8, 3)), jnp.array([0, 1]))
    >>> h = jnp.stack([jnp.zeros((2, 2, 4)), jnp.ones((2, 2, 4))])
    >>> mixed = mix_hidden(out, h)                        # (2, 2, 2, 4)
    >>> bool(jnp.allclose(mixed[0], 1 - out.lam[0]))      # λ·0 + (1 - λ)·1
    True
  """
  h = _check_hidden(result, h, "mix_hidden")
  across_devices = _check_across(across_devices, axis_name)
  weight = hidden_mask(result, h)
  weight = weight.reshape(*weight.shape, *[1] * (h.ndim - weight.ndim))
  partner = partner_hidden(result, h, across_devices=across_devices,
                           axis_name=axis_name)
  h = _moved(result, h, "own")
  mixed = (weight * h.astype(jnp.float32)
           + (1.0 - weight) * partner.astype(jnp.float32))
  return mixed.astype(h.dtype)


def shard_mix_hidden(mesh: Mesh, *, axis_name: str = "data",
                     across_devices: bool = False) -> Callable:
  """:func:`mix_hidden` for batches sharded along ``axis_name``.

  The companion of :func:`~msda_jax.shard_mixer`: give it the same
  ``across_devices``. With ``False`` partners live on the same device and
  each device mixes its own features (no traffic); with ``True`` every
  device receives the previous device's shard of ``h`` on the ring that
  brought it the partner images (one ``collective-permute`` of a shard, no
  all-gather). Call the result inside (or outside) ``jax.jit`` with the
  mixer's output and ``h`` laid out as ``NamedSharding(mesh,
  P(axis_name))``; the output is sharded the same way and equals
  ``mix_hidden`` on the whole batch.

  Args:
    mesh: the mesh the images were mixed on.
    axis_name: the batch axis.
    across_devices: as given to :func:`~msda_jax.shard_mixer`.

  Returns:
    ``fn(result, h) -> mixed features`` on the global batch.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mesh = msda_jax.data_mesh()
    >>> b = 2 * len(jax.devices())
    >>> mixer = msda_jax.mixup(num_classes=4)
    >>> out = jax.jit(msda_jax.shard_mixer(mixer, mesh, across_devices=True))(
    ...     jax.random.key(0), jnp.zeros((b, 8, 8, 3)), jnp.zeros(b, jnp.int32))
    >>> mix = jax.jit(shard_mix_hidden(mesh, across_devices=True))
    >>> mix(out, jnp.zeros((b, 4, 4, 16))).shape == (b, 4, 4, 16)
    True
  """
  if axis_name not in mesh.axis_names:
    raise ValueError(
        f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  across_devices = _check_across(across_devices, axis_name)
  batch = PartitionSpec(axis_name)

  def local(result, h):
    return mix_hidden(result, h, across_devices=across_devices,
                      axis_name=axis_name)

  def fn(result: MixResult, h: jax.Array) -> jax.Array:
    h = _check_hidden(result, h, "shard_mix_hidden")
    devices = mesh.shape[axis_name]
    if h.shape[0] % devices:
      raise ValueError(
          f"shard_mix_hidden: the batch {h.shape[0]} of h (shape {h.shape}) "
          f"must divide into the {devices} devices of mesh axis {axis_name!r}")
    return jax.shard_map(local, mesh=mesh, in_specs=(batch, batch),
                         out_specs=batch)(result, h)

  return fn
