"""Dense targets: label maps and per-pixel vectors mixed with the images' masks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax
from msda_jax._dense import mix_maps, partner_maps, paste_nearest, shard_mix_maps

K = 4
IGNORE = 255


# Compiled once per option set and shape (eager dispatch compiles every op).
_mix = jax.jit(mix_maps, static_argnames=("hard", "num_classes", "ignore_value"))


@functools.cache
def _jit_mixer(method, **options):
  """One jitted mixer per configuration, shared by every test (a fresh jax.jit
  of the same mixer would trace, lower and load it again)."""
  if method == "paste":
    mixer = msda_jax.mask_mixer(_paste_box, num_classes=K, **options)
  elif method == "moving":
    mixer = msda_jax.mask_mixer(_moving_blocks, num_classes=K, **options)
  elif method == "resizemix":
    from msda_jax._resizemix import resizemix
    mixer = resizemix(num_classes=K, **options)
  else:
    mixer = getattr(msda_jax, method)(num_classes=K, **options)
  return jax.jit(mixer)


def _batch(b=6, spatial=(9, 7), seed=0, ignore_frac=0.2):
  """Images, image labels, int maps in [0, K) with some IGNORE, float maps."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(b, *spatial, 3)).astype(np.float32)
  labels = np.arange(b, dtype=np.int32) % K
  maps = rng.integers(0, K, (b, *spatial)).astype(np.int32)
  maps[rng.uniform(size=maps.shape) < ignore_frac] = IGNORE
  soft = rng.dirichlet(np.ones(K), (b, *spatial)).astype(np.float32)
  return images, labels, maps, soft


def _one_hot(maps, ignore=IGNORE):
  m = np.asarray(maps)
  out = (m[..., None] == np.arange(K)).astype(np.float64)
  out[m == ignore] = 0.0
  return out


@pytest.fixture(scope="module")
def pasted():
  """A batch mixed by the test ResizeMix: images, labels, maps, soft, out."""
  images, labels, maps, soft = _batch()
  return images, labels, maps, soft, _jit_mixer("paste", partner="permute")(
      jax.random.key(7), images, labels)


def _paste_box(key, shape, lam):
  """A test ResizeMix: the whole partner shrunk into a random box."""
  del lam
  full = jnp.asarray(shape, jnp.int32)
  u = jax.random.uniform(key, (2, len(shape)))
  size = jnp.maximum((full * (0.3 + 0.5 * u[0])).astype(jnp.int32), 1)
  start = jnp.floor(u[1] * (full - size + 1)).astype(jnp.int32)
  inside = jnp.ones(shape, bool)
  for axis, n in enumerate(shape):
    i = jnp.arange(n).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    inside &= (i >= start[axis]) & (i < start[axis] + size[axis])
  mask = jnp.where(inside, 0.0, 1.0)
  return mask, jnp.mean(mask), msda_jax.PasteBox(start, size)


def _moving_blocks(key, shape, lam):
  """A test PuzzleMix: a soft mask, and blocks of a 2 x 3 grid moved in both
  images before the blend (own reversed, partner's rows rotated)."""
  del key
  cols = jnp.linspace(0.1, 0.9, shape[1])
  mask = jnp.broadcast_to(jnp.clip(cols + lam - 0.5, 0.0, 1.0), shape)
  moves = msda_jax.BlockMoves(own=jnp.array([[5, 4, 3], [2, 1, 0]]),
                              partner=jnp.array([[1, 2, 0], [4, 5, 3]]))
  return mask, jnp.mean(mask), moves


def _nearest_reference(image, start, size):
  """NumPy: pixel i of the box reads round((i - start + 0.5) * n / size - 0.5)."""
  out = np.asarray(image)
  for axis, n in enumerate(np.asarray(image).shape[:len(start)]):
    i = np.arange(n, dtype=np.float64)
    centre = (i - start[axis] + 0.5) * n / size[axis] - 0.5
    source = np.clip(np.floor(centre + 0.5), 0, n - 1).astype(int)
    out = np.take(out, source, axis=axis)
  return out


def _in_box(shape, start, size):
  inside = np.ones(shape, bool)
  for axis, n in enumerate(shape):
    i = np.arange(n).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    inside &= (i >= start[axis]) & (i < start[axis] + size[axis])
  return inside


@pytest.mark.parametrize("spatial", [(9, 7), (11,), (4, 5, 6)])
def test_cutmix_hard_maps_take_the_owner_label(spatial):
  # Bugs: reading the partner as the reversed batch instead of partner_index
  # ('permute'), swapping own/partner, a threshold that flips binary pixels,
  # a wrong spatial broadcast for (B, T) or (B, D, H, W) maps.
  images, labels, maps, _ = _batch(spatial=spatial)
  out = _jit_mixer("cutmix", partner="permute")(jax.random.key(1), images, labels)
  mixed = np.asarray(_mix(out, maps, hard=True))
  mask = np.asarray(out.mask)
  assert set(np.unique(mask)) <= {0.0, 1.0}
  assert 0 < mask.mean() < 1  # both owners occur
  m, p = np.asarray(maps), np.asarray(out.partner_index)
  assert not np.array_equal(p, np.arange(len(p))[::-1])  # not a flip
  for b in range(len(p)):
    owner = np.where(mask[b] == 1.0, b, p[b])
    expected = np.take_along_axis(m, owner[None], axis=0)[0]
    np.testing.assert_array_equal(mixed[b], expected)
  assert mixed.dtype == maps.dtype


def test_hard_ignore_value_passes_through_in_uint8():
  # Bugs: integer maps blended like images (255 and a class averaged into a
  # made-up label), cast to another dtype, or clipped to num_classes.
  images, labels, maps, _ = _batch()
  maps = maps.astype(jnp.uint8)
  # The CutMix of test_cutmix_hard_maps_take_the_owner_label (one program).
  out = _jit_mixer("cutmix", partner="permute")(jax.random.key(2), images, labels)
  mixed = np.asarray(_mix(out, maps, hard=True, num_classes=K,
                              ignore_value=IGNORE))
  assert mixed.dtype == np.uint8
  assert set(np.unique(mixed)) <= set(range(K)) | {IGNORE}
  owner_ignored = np.where(np.asarray(out.mask) == 1.0, np.asarray(maps),
                           np.asarray(maps)[np.asarray(out.partner_index)]) == IGNORE
  assert owner_ignored.any()
  np.testing.assert_array_equal(mixed == IGNORE, owner_ignored)


@pytest.mark.parametrize("method", ["mixup", "gmix", "hmix"])
def test_soft_float_maps_are_the_per_pixel_blend(method):
  # Bugs: mixing by the image-level lam instead of the per-pixel mask (GMix,
  # HMix), M and 1 - M swapped, the wrong partner.
  images, labels, _, soft = _batch()
  out = _jit_mixer(method, partner="roll")(jax.random.key(3), images, labels)
  mixed = np.asarray(_mix(out, soft))
  mask = np.asarray(out.mask, np.float64)[..., None]
  y = np.asarray(soft, np.float64)
  expected = mask * y + (1 - mask) * y[np.asarray(out.partner_index)]
  np.testing.assert_allclose(mixed, expected, atol=1e-6)
  assert mixed.dtype == np.float32
  if method != "mixup":  # the mask really varies over pixels
    assert np.ptp(mask.reshape(len(mask), -1), axis=1).max() > 0.1


def test_hard_float_maps_take_the_owner_vector_for_soft_masks():
  # Bugs: the threshold M > 0.5 (a 0.5 pixel must stay its own), or hard
  # ignored for float maps (returning the blend).
  images, labels, _, soft = _batch()
  # The GMix of test_soft_float_maps_are_the_per_pixel_blend (one program).
  out = _jit_mixer("gmix", partner="roll")(jax.random.key(4), images, labels)
  out = out._replace(mask=np.asarray(out.mask).copy())
  out.mask[:, 0, 0] = 0.5
  mixed = np.asarray(_mix(out, soft, hard=True))
  own = np.asarray(out.mask)[..., None] >= 0.5
  y = np.asarray(soft)
  p = np.asarray(out.partner_index)
  assert (p != np.arange(len(p))).all()
  np.testing.assert_array_equal(mixed, np.where(own, y, y[p]))
  np.testing.assert_array_equal(mixed[:, 0, 0], y[:, 0, 0])


@pytest.mark.parametrize("ignore", [IGNORE, 0])
def test_soft_int_maps_one_hot_with_ignored_share_dropped(ignore):
  # Bugs: ignore pixels one-hot encoded as a class (visible when the ignore
  # label is inside [0, K), e.g. 0 = unlabelled), a half-ignored pixel
  # renormalised to sum 1 instead of carrying its known share, lam used
  # instead of the mask.
  images, labels, maps, _ = _batch()
  maps = np.where(maps == IGNORE, ignore, maps)
  out = _jit_mixer("gmix", partner="roll")(jax.random.key(5), images, labels)
  mixed = np.asarray(_mix(out, maps, num_classes=K, ignore_value=ignore))
  mask = np.asarray(out.mask, np.float64)
  p = np.asarray(out.partner_index)
  own, par = _one_hot(maps, ignore), _one_hot(maps, ignore)[p]
  np.testing.assert_allclose(
      mixed, mask[..., None] * own + (1 - mask[..., None]) * par, atol=1e-6)
  m = np.asarray(maps)
  known = mask * (m != ignore) + (1 - mask) * (m[p] != ignore)
  np.testing.assert_allclose(mixed.sum(-1), known, atol=1e-6)
  # Half-ignored pixels carry only the labelled image's share.
  half = ((m == ignore) != (m[p] == ignore)) & (mask > 0.01) & (mask < 0.99)
  assert half.sum() > 10
  assert (known[half] < 0.99).all() and (known[half] > 0.01).all()


def test_the_masked_loss_from_the_docstring_is_the_mean_over_known_pixels():
  # Bug: a target whose row sums are not the known share makes
  # sum(ce) / sum(t) differ from the plain mean over labelled pixels
  # when nothing is mixed (prob=0).
  images, labels, maps, _ = _batch()
  out = _jit_mixer("cutmix", prob=0.0)(jax.random.key(0), images, labels)
  t = np.asarray(_mix(out, maps, num_classes=K, ignore_value=IGNORE), np.float64)
  logits = np.random.default_rng(9).normal(size=t.shape)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -(t * logp).sum(-1)                        # optax.softmax_cross_entropy
  loss = ce.sum() / max(t.sum(), 1.0)
  valid = maps != IGNORE
  own = np.take_along_axis(logp, np.where(valid, maps, 0)[..., None], -1)[..., 0]
  np.testing.assert_allclose(loss, -(own * valid).sum() / valid.sum(), rtol=1e-9)


@pytest.mark.parametrize("method", ["cutmix", "paste"])
def test_lam_is_the_mask_mean_and_the_own_share_of_the_map(method, pasted):
  # Bugs: maps mixed with a different mask than the images (the image-level
  # lam then no longer equals each map's own-class share).
  images, labels, _, _, out = pasted
  b = len(labels)
  if method == "cutmix":
    out = _jit_mixer("cutmix", partner="permute")(jax.random.key(6), images, labels)
  mask = np.asarray(out.mask, np.float64)
  np.testing.assert_allclose(out.lam, mask.mean(axis=(1, 2)), atol=1e-6)
  maps = np.broadcast_to(np.arange(b, dtype=np.int32)[:, None, None], mask.shape)
  mixed = np.asarray(_mix(out, maps, num_classes=b))
  own_share = mixed[np.arange(b), ..., np.arange(b)].mean(axis=(1, 2))
  np.testing.assert_allclose(own_share, out.lam, atol=1e-6)


@pytest.mark.parametrize("spatial", [(9, 7), (17,), (5, 8, 6)])
def test_paste_box_holds_the_nearest_resized_partner_map(spatial):
  # Bugs: the partner's map not resized (plain gather), a half-pixel shift
  # (floor((i - start) * n / size)), start ignored, axes mixed up.
  images, labels, maps, soft = _batch(spatial=spatial)
  out = _jit_mixer("paste", partner="permute")(jax.random.key(7), images, labels)
  starts, sizes = np.asarray(out.paste.start), np.asarray(out.paste.size)
  assert (sizes < np.asarray(spatial)).all()
  mixed = np.asarray(_mix(out, maps, hard=True))
  mixed_soft = np.asarray(_mix(out, soft))
  p, mask = np.asarray(out.partner_index), np.asarray(out.mask)
  maps, soft = np.asarray(maps), np.asarray(soft)
  assert (p != np.arange(len(p))).sum() >= 4
  for b in range(len(p)):
    inside = _in_box(spatial, starts[b], sizes[b]) & (p[b] != b)  # alone: unmixed
    np.testing.assert_array_equal(inside, mask[b] == 0.0)
    ref = _nearest_reference(maps[p[b]], starts[b], sizes[b])
    np.testing.assert_array_equal(mixed[b][inside], ref[inside])
    np.testing.assert_array_equal(mixed[b][~inside], maps[b][~inside])
    ref_soft = _nearest_reference(soft[p[b]], starts[b], sizes[b])
    np.testing.assert_allclose(mixed_soft[b][inside], ref_soft[inside], atol=1e-6)


def test_constant_partner_map_stays_constant_in_the_box(pasted):
  # Bug: reads outside the partner (unclipped or wrapped indices) bring in
  # another sample's labels or garbage.
  out = pasted[-1]
  b = out.mask.shape[0]
  maps = np.broadcast_to(np.arange(1, b + 1, dtype=np.int32)[:, None, None], out.mask.shape)
  mixed = np.asarray(_mix(out, maps, hard=True))
  mask, p = np.asarray(out.mask), np.asarray(out.partner_index)
  assert (mask == 0).any()
  for i in range(b):
    assert (mixed[i][mask[i] == 0] == p[i] + 1).all()
    assert (mixed[i][mask[i] == 1] == i + 1).all()


def test_nearest_paste_matches_the_image_paste_geometry():
  # Bug: a nearest rule that disagrees with paste_resized (the image), e.g.
  # a box anchored at its centre or a scale of full / (size - 1): labels
  # would then be shifted against the pixels they describe.
  from msda_jax._paste import paste_resized
  n = 40
  ramp = np.arange(n, dtype=np.float32)
  paste_image, paste_map = jax.jit(paste_resized), jax.jit(paste_nearest)
  worst = 0
  for start, size in [(3, 17), (0, 40), (10, 8), (21, 19), (5, 31)]:
    box = msda_jax.PasteBox(jnp.array([start]), jnp.array([size]))
    image = np.asarray(paste_image(ramp[:, None], box))[:, 0]
    nearest = np.asarray(paste_map(np.arange(n), box))
    i = np.arange(n)
    centre = (i - start + 0.5) * n / size - 0.5   # continuous source coordinate
    # Away from the source border (the resize renormalises there) and from
    # ties, the resized ramp is the source coordinate it read, to within the
    # discretised antialiasing kernel's asymmetry (< 0.1 pixel).
    far = ((i >= start) & (i < start + size) & (centre > n / size + 1)
           & (centre < n - 2 - n / size) & (np.abs(centre % 1 - 0.5) > 0.15))
    assert far.sum() >= size // 2
    np.testing.assert_allclose(image[far], centre[far], atol=0.1)
    np.testing.assert_array_equal(nearest[far], np.floor(image[far] + 0.5))
    worst = max(worst, np.abs(nearest[far] - image[far]).max())
  assert worst < 0.5


def test_partner_maps_is_the_pasted_partner(pasted):
  # Bug: partner_maps returning the mixed map or the unpasted partner.
  _, _, maps, _, out = pasted
  par = np.asarray(jax.jit(partner_maps)(out, maps))
  maps, p = np.asarray(maps), np.asarray(out.partner_index)
  starts, sizes = np.asarray(out.paste.start), np.asarray(out.paste.size)
  for b in range(len(p)):
    ref = _nearest_reference(maps[p[b]], starts[b], sizes[b])
    np.testing.assert_array_equal(par[b], ref)


def test_jit_equals_eager_and_options_are_static(pasted):
  # Bug: Python control flow on traced values (fails under jit) or results
  # that differ between the compiled and eager paths.
  _, _, maps, _, out = pasted
  options = dict(num_classes=K, ignore_value=IGNORE)  # the longest path
  fn = jax.jit(functools.partial(mix_maps, **options))
  np.testing.assert_allclose(fn(out, maps), mix_maps(out, maps, **options), atol=1e-6)


@pytest.mark.parametrize("maps_shape, dtype, options, match", [
    ((5, 9, 7), jnp.int32, {}, r"maps must be \(B, \*spatial\) = \(6, 9, 7\)"),
    ((6, 9, 8), jnp.int32, dict(hard=True), r"maps must be .*got int32 maps of shape \(6, 9, 8\)"),
    ((6, 9, 7), jnp.float32, {}, r"\(B, \*spatial, K\)"),
    ((6, 9, 7, K), jnp.int32, dict(hard=True), r"maps must be"),
    ((6, 9, 7), jnp.bool_, dict(hard=True), r"maps must be .*dtype bool"),
    ((6, 9, 7), jnp.int32, {}, r"num_classes"),
    ((6, 9, 7, K), jnp.float32, dict(ignore_value=255), r"ignore_value"),
    ((6, 9, 7, K), jnp.float32, dict(num_classes=3), r"num_classes=3"),
    ((6, 9, 7), jnp.int32, dict(hard=1), r"hard must be"),
    ((6, 9, 7), jnp.int32, dict(num_classes=0), r"num_classes must be"),
    ((6, 9, 7), jnp.int32, dict(num_classes=K, ignore_value=2.5), r"ignore_value must be"),
])
def test_bad_inputs_are_clear_value_errors(maps_shape, dtype, options, match):
  # Bug: a shape mismatch broadcast silently (a (B, H, W) float map read as
  # K = W vectors) or a crash deep inside XLA instead of a named argument.
  images, labels, _, _ = _batch()
  out = _jit_mixer("cutmix", partner="permute")(jax.random.key(0), images, labels)
  with pytest.raises(ValueError, match=match):
    mix_maps(out, np.zeros(maps_shape, dtype), **options)


def test_result_must_be_a_mix_result():
  with pytest.raises(ValueError, match="result must be the MixResult"):
    mix_maps((jnp.zeros((2, 3)),), jnp.zeros((2, 3), jnp.int32), hard=True)


# Sharded batches: 8 fake CPU devices (conftest.py).
DEVICES, LOCAL = 8, 3


@functools.cache
def _sharded_steps(method):
  """The sharded paths and the per-shard reference, each one compiled program."""
  mesh = msda_jax.data_mesh()
  mixer = (msda_jax.cutmix(num_classes=K, partner="permute") if method == "cutmix"
           else msda_jax.mask_mixer(_paste_box, num_classes=K, partner="permute"))
  options = dict(num_classes=K, ignore_value=IGNORE)
  mix, local_mix = msda_jax.shard_mixer(mixer, mesh), shard_mix_maps(mesh, **options)
  batch = PartitionSpec("data")

  # Mixing inside the user's own shard_map with per_device (global indices,
  # local maps).
  def body(k, x, y, m):
    return mix_maps(msda_jax.per_device(mixer)(k, x, y), m, hard=True)
  inside = jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(), batch, batch, batch),
                         out_specs=batch)

  def sharded(k, x, y, m):
    out = mix(k, x, y)
    return (mix_maps(out, m, **options), mix_maps(out, m, hard=True), local_mix(out, m),
            inside(k, x, y, m))

  def single(k, x, y, m):
    ref = mixer(k, x, y)
    return mix_maps(ref, m, **options), mix_maps(ref, m, hard=True)
  return mesh, jax.jit(sharded), jax.jit(single)


@pytest.mark.parametrize("method", ["cutmix", "paste"])
def test_sharded_mixing_equals_per_shard_mixing(method):
  # Bugs: global partner indices used as local rows inside shard_map (wrong
  # rows, silently clamped), or the global gather giving other results than
  # mixing each shard on its own.
  mesh, sharded, single = _sharded_steps(method)
  assert jax.device_count() == DEVICES
  images, labels, maps, _ = _batch(b=DEVICES * LOCAL, spatial=(8, 6))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  images_s, labels_s, maps_s = jax.device_put((images, labels, maps), sharding)
  key = jax.random.key(11)
  global_soft, global_hard, local_soft, inside = sharded(key, images_s, labels_s, maps_s)
  assert local_soft.sharding.is_equivalent_to(sharding, local_soft.ndim)
  global_soft, global_hard, local_soft, inside = map(
      np.asarray, (global_soft, global_hard, local_soft, inside))
  for d in range(DEVICES):
    rows = slice(d * LOCAL, (d + 1) * LOCAL)
    soft, hard = single(jax.random.fold_in(key, d), images[rows], labels[rows], maps[rows])
    np.testing.assert_allclose(global_soft[rows], soft, atol=1e-6)
    np.testing.assert_allclose(local_soft[rows], soft, atol=1e-6)
    np.testing.assert_array_equal(global_hard[rows], hard)
    np.testing.assert_array_equal(inside[rows], hard)


def test_shard_mix_maps_moves_no_data_between_devices():
  # Bug: shard_mix_maps falling back to the global gather (an all-gather or
  # collective-permute in the compiled step).
  mesh = msda_jax.data_mesh()
  mixer = msda_jax.cutmix(num_classes=K, partner="permute")
  images, labels, maps, _ = _batch(b=DEVICES * LOCAL, spatial=(8, 6))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  images, labels, maps = jax.device_put((images, labels, maps), sharding)
  mix = msda_jax.shard_mixer(mixer, mesh)
  mix_m = shard_mix_maps(mesh, hard=True)
  step = jax.jit(lambda k, x, y, m: mix_m(mix(k, x, y), m))
  hlo = step.lower(jax.random.key(0), images, labels, maps).compile().as_text()
  for collective in ("all-gather", "all-to-all", "collective-permute", "all-reduce"):
    assert collective not in hlo, collective


def _across_step():
  """shard_mixer(across_devices=True) of a per-sample choice of CutMix (an
  identity paste box) and ResizeMix, and the three map mixes: one program."""
  from msda_jax._resizemix import resizemix
  mesh = msda_jax.data_mesh()
  mixer = msda_jax.choice([msda_jax.cutmix(num_classes=K, partner="permute"),
                           resizemix(num_classes=K, partner="permute")])
  mix = msda_jax.shard_mixer(mixer, mesh, across_devices=True)
  hard = shard_mix_maps(mesh, hard=True, across_devices=True)
  soft = shard_mix_maps(mesh, num_classes=K, ignore_value=IGNORE, across_devices=True)
  soft_float = shard_mix_maps(mesh, across_devices=True)

  def step(k, x, y, m, f):
    out = mix(k, x, y)
    return out, hard(out, m), soft(out, m), soft_float(out, f)
  return mesh, jax.jit(step)


def test_shard_mix_maps_across_devices_takes_the_previous_devices_maps():
  # Catches: across_devices ignored (partner maps read from the local shard at
  # partner_index % local, the rows of another sample: 0.96 max error), a
  # ring turned the other way, the paste box applied before the rows arrive
  # (or not at all), and the global gather (an all-gather) instead of the ring.
  # One compile: the choice mixes CutMix and ResizeMix samples in one batch.
  mesh, step = _across_step()
  assert jax.device_count() == DEVICES
  images, labels, maps, soft = _batch(b=DEVICES * LOCAL, spatial=(8, 6))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  args = jax.device_put((images, labels, maps, soft), sharding)
  key = jax.random.key(5)
  compiled = step.lower(key, *args).compile()  # One trace and compile.
  out, hard_t, soft_t, float_t = compiled(key, *args)
  p, mask = np.asarray(out.partner_index), np.asarray(out.mask, np.float64)
  device = np.arange(DEVICES * LOCAL) // LOCAL
  np.testing.assert_array_equal(p // LOCAL, (device - 1) % DEVICES)
  # The global formula: the partner's map resized into the paste box (the
  # identity box for CutMix samples).
  starts, sizes = np.asarray(out.paste.start), np.asarray(out.paste.size)
  assert 0 < np.mean(np.any(sizes != (8, 6), axis=1)) < 1  # Both methods drawn.
  partner, partner_soft = (
      np.stack([_nearest_reference(m[q], a, z) for q, a, z in zip(p, starts, sizes)])
      for m in (maps, soft))
  np.testing.assert_array_equal(hard_t, np.where(mask >= 0.5, maps, partner))
  w = mask[..., None]
  np.testing.assert_allclose(soft_t, w * _one_hot(maps) + (1 - w) * _one_hot(partner),
                             atol=1e-6)
  np.testing.assert_allclose(float_t, w * soft + (1 - w) * partner_soft, atol=1e-6)
  assert soft_t.sharding.is_equivalent_to(sharding, soft_t.ndim)
  hlo = compiled.as_text()
  assert "collective-permute" in hlo
  for collective in ("all-gather", "all-to-all", "all-reduce"):
    assert collective not in hlo, collective


def test_shard_mix_maps_bad_axis_name():
  with pytest.raises(ValueError, match="axis_name"):
    shard_mix_maps(msda_jax.data_mesh(), axis_name="batch")
  with pytest.raises(ValueError, match="across_devices"):
    shard_mix_maps(msda_jax.data_mesh(), across_devices="yes")


def test_resizemix_maps_take_the_nearest_resized_partner():
  # Bug: the ResizeMix paste box not honoured for maps (the partner's map
  # unresized in the box while its image is resized).
  images, labels, maps, _ = _batch(b=6, spatial=(16, 12), ignore_frac=0.1)
  out = _jit_mixer("resizemix", partner="permute")(jax.random.key(12), images, labels)
  assert out.paste is not None
  mixed = np.asarray(_mix(out, maps, hard=True))
  mask = np.asarray(out.mask)
  np.testing.assert_allclose(out.lam, mask.mean(axis=(1, 2)), atol=1e-6)
  p, maps = np.asarray(out.partner_index), np.asarray(maps)
  starts, sizes = np.asarray(out.paste.start), np.asarray(out.paste.size)
  for b in range(6):
    inside = mask[b] < 0.5
    np.testing.assert_array_equal(
        inside, _in_box((16, 12), starts[b], sizes[b]) & (p[b] != b))
    ref = _nearest_reference(maps[p[b]], starts[b], sizes[b])
    np.testing.assert_array_equal(mixed[b][inside], ref[inside])
    np.testing.assert_array_equal(mixed[b][~inside], maps[b][~inside])


def test_ignore_value_in_uint8_maps_is_not_a_class():
  # Catches: -1 for ignored pixels written in the maps' own dtype (uint8
  # wraps it to 255, a real class when num_classes > 255).
  # Jitted: the wrap happens in the compiled path as well as eagerly.
  out = jax.jit(msda_jax.mixup())(jax.random.key(0), jnp.zeros((2, 2, 2, 1)), None)
  maps = jnp.array([[[255, 3], [3, 3]], [[3, 3], [3, 3]]], jnp.uint8)
  t = np.asarray(_mix(out, maps, num_classes=300, ignore_value=255))
  m = np.asarray(out.mask)
  # Pixel (0, 0, 0): own label ignored, partner's (sample 1) is 3.
  np.testing.assert_allclose(t[0, 0, 0, 255], 0.0)
  np.testing.assert_allclose(t[0, 0, 0].sum(), 1 - m[0, 0, 0], atol=1e-6)


def test_moved_blocks_carry_the_maps_with_them():
  # Bugs: maps mixed where the pixels were before the transport (the own or
  # the partner's move not applied to the maps, or each applied to the other
  # map), so a PuzzleMix segmentation target would not match its image.
  from msda_jax._blocks import move_blocks
  images, labels, maps, _ = _batch(spatial=(8, 6))
  out = _jit_mixer("moving", partner="permute")(jax.random.key(2), images,
                                                labels)
  p = np.asarray(out.partner_index)
  assert (p != np.arange(len(p))).any()
  # Float maps that are the images themselves mix into the mixed images.
  np.testing.assert_allclose(np.asarray(_mix(out, images)),
                             np.asarray(out.images), atol=1e-6)
  # Int maps, hard: the owner's label at the moved position.
  move = jax.vmap(lambda m, s: move_blocks(m[..., None], s)[..., 0])
  own = np.asarray(move(maps, out.moves.own))
  theirs = np.asarray(move(maps[p], out.moves.partner))
  np.testing.assert_array_equal(
      np.asarray(_mix(out, maps, hard=True)),
      np.where(np.asarray(out.mask) >= 0.5, own, theirs))
  np.testing.assert_array_equal(np.asarray(partner_maps(out, maps)), theirs)
