"""Hidden features mixed with the images' partners and block-averaged masks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax
from msda_jax._dense import mix_maps
from msda_jax._hidden import (block_mean, hidden_mask, mix_hidden, partner_hidden,
                              shard_mix_hidden)

K, B, SPATIAL, C = 4, 6, (8, 6), 5

# One compiled program per input shape (eager dispatch compiles every op).
_mix = jax.jit(mix_hidden)


@jax.jit
def _all(out, h):
  return mix_hidden(out, h), partner_hidden(out, h), hidden_mask(out, h)


@functools.cache
def _result(method, mode="elem", partner="flip", spatial=SPATIAL, b=B):
  """The MixResult of one jitted mixer on a fixed batch (compiled once)."""
  mixer = getattr(msda_jax, method)(num_classes=K, mode=mode, partner=partner)
  rng = np.random.default_rng(len(spatial))
  images = rng.uniform(size=(b, *spatial, 3)).astype(np.float32)
  return images, jax.jit(mixer)(jax.random.key(5), images, np.arange(b) % K)


def _features(shape, seed=0, dtype=np.float32):
  return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _reference(out, h):
  """NumPy, float64: m h + (1 - m) h[partner], m the mask's block means (or λ)."""
  mask, h = np.asarray(out.mask, np.float64), np.asarray(h, np.float64)
  p = np.asarray(out.partner_index)
  if h.ndim == 2:
    m = np.asarray(out.lam, np.float64)
  else:
    grid = h.shape[1:-1]
    factor = [full // g for full, g in zip(mask.shape[1:], grid)]
    m = np.zeros((h.shape[0], *grid))
    for cell in np.ndindex(*grid):
      block = (slice(None),) + tuple(slice(c * f, (c + 1) * f)
                                     for c, f in zip(cell, factor))
      m[(slice(None),) + cell] = mask[block].reshape(h.shape[0], -1).mean(1)
  m = m.reshape(*m.shape, *[1] * (h.ndim - m.ndim))
  return m * h + (1 - m) * h[p], m, p


@pytest.mark.parametrize("method, mode, partner, grid", [
    ("cutmix", "elem", "flip", (4, 3)), ("cutmix", "elem", "roll", (2, 2)),
    ("hmix", "batch", "permute", (4, 3)), ("cutmix", "pair", "permute", (1, 3))])
def test_block_averaged_mask_and_partner_rows_match_numpy(method, mode, partner, grid):
  # Catches: the mask subsampled (strided or nearest) instead of averaged over
  # blocks, the block reshape splitting an axis as (factor, cells) (a strided
  # average), the partner rows assumed to be a flip (roll and permute then take
  # the wrong rows), and the own / partner weights swapped.
  _, out = _result(method, mode, partner)
  h = _features((B, *grid, C))
  expected, m, p = _reference(out, h)
  mixed, partner, weight = _all(out, h)
  np.testing.assert_allclose(mixed, expected, atol=1e-5)
  np.testing.assert_allclose(weight, m[..., 0], atol=1e-6)
  np.testing.assert_array_equal(partner, h[p])
  # The label weight of the mixed features is still λ: the block means keep
  # the mask mean.
  np.testing.assert_allclose(m.reshape(B, -1).mean(1), out.lam, atol=1e-5)


def test_manifold_mixup_is_lam_h_plus_one_minus_lam_partner():
  # Catches: a Mixup mask not reduced to λ on a coarse grid, or λ given to the
  # partner (Verma et al.: h' = λ h + (1 - λ) h[partner]).
  _, out = _result("mixup", partner="permute")
  h = _features((B, 4, 3, C), seed=1)
  lam, p = np.asarray(out.lam)[:, None, None, None], np.asarray(out.partner_index)
  np.testing.assert_allclose(_mix(out, h), lam * h + (1 - lam) * h[p], atol=1e-5)


def test_vectors_mix_with_lam_as_a_one_cell_grid():
  # Catches: (B, C) vectors weighted by something other than λ (a pixel of the
  # mask, 1 - λ), or a vector path that disagrees with a 1 x 1 grid.
  _, out = _result("cutmix", partner="roll")
  h = _features((B, C), seed=2)
  expected, _, _ = _reference(out, h)
  np.testing.assert_allclose(_mix(out, h), expected, atol=1e-5)
  np.testing.assert_allclose(_mix(out, h), _mix(out, h[:, None, None])[:, 0, 0],
                             atol=1e-6)
  np.testing.assert_array_equal(hidden_mask(out, h), out.lam)


def test_at_image_resolution_it_is_the_image_blend():
  # Catches: a kernel that drifts from the image blend (mix_hidden of the images
  # themselves must give the mixed images, and of float maps mix_maps).
  images, out = _result("cutmix", "pair", "permute")
  np.testing.assert_allclose(_mix(out, images), out.images, atol=1e-6)
  h = _features((B, *SPATIAL, C), seed=3)
  np.testing.assert_allclose(_mix(out, h), jax.jit(mix_maps)(out, h), atol=1e-6)


def test_bf16_features_stay_bf16_and_are_mixed_in_float32():
  # Catches: bf16 features returned as float32 (a dtype change downstream), or
  # mixed in bf16 (a rounding per operation instead of one at the end).
  _, out = _result("hmix", "batch", "permute")
  h = _features((B, 4, 3, C), seed=4).astype(jnp.bfloat16)
  got = _mix(out, h)
  assert got.dtype == jnp.bfloat16 and got.shape == h.shape
  expected, _, _ = _reference(out, np.asarray(h, np.float32))
  np.testing.assert_allclose(np.asarray(got, np.float32), expected,
                             rtol=2.0 ** -8, atol=1e-6)
  vectors = _mix(out, h[:, 0, 0])
  assert vectors.dtype == jnp.bfloat16


def test_sequences_mix_on_a_coarser_time_grid():
  # Catches: a grid check or reshape written for 2-D images only.
  _, out = _result("cutmix", partner="roll", spatial=(12,))
  h = _features((B, 3, C), seed=5)
  expected, _, _ = _reference(out, h)
  np.testing.assert_allclose(_mix(out, h), expected, atol=1e-5)


def test_jit_equals_eager():
  # Catches: shape logic that needs concrete values (fails or differs under jit).
  _, out = _result("cutmix")
  h = _features((B, 4, 3, C), seed=6)
  np.testing.assert_allclose(mix_hidden(out, h), _mix(out, h), atol=1e-6)


def test_resizemix_spatial_features_raise_vectors_mix_with_lam():
  # Catches: ResizeMix's box mask silently applied to unresized partner features
  # (a CutMix labelled as ResizeMix), and vectors refused for it.
  # The check reads only result.paste: a CutMix result with a paste box (the
  # identity) stands for ResizeMix's without compiling its resize.
  _, out = _result("cutmix")
  out = out._replace(paste=msda_jax.PasteBox(
      np.zeros((B, 2), np.int32), np.tile(np.int32(SPATIAL), (B, 1))))
  with pytest.raises(ValueError, match="ResizeMix"):
    mix_hidden(out, np.zeros((B, 4, 3, C), np.float32))
  h = _features((B, C), seed=7)
  expected, _, _ = _reference(out, h)
  np.testing.assert_allclose(_mix(out, h), expected, atol=1e-5)


@pytest.mark.parametrize("shape, dtype, match", [
    ((B + 1, 4, 3, C), np.float32, "batch 7"),
    ((B, 3, 3, C), np.float32, "does not divide"),
    ((B, 16, 3, C), np.float32, "does not divide"),
    ((B, 4, C), np.float32, "rank 3"),
    ((B, 4, 3, 2, C), np.float32, "rank 5"),
    ((B, 4, 3, C), np.int32, "must be float")])
def test_bad_features_are_value_errors_naming_both_shapes(shape, dtype, match):
  # Catches: a wrong batch (a silent broadcast or clamped gather), a grid that
  # does not divide the image (a reshape error or a silent truncation), the
  # wrong rank and integer features, each without a message naming h's shape
  # and the mask's.
  _, out = _result("cutmix")
  with pytest.raises(ValueError, match=match) as error:
    mix_hidden(out, np.zeros(shape, dtype))
  assert str(shape) in str(error.value) and str((B, *SPATIAL)) in str(error.value)


def test_bad_arguments_are_value_errors():
  # Catches: a tuple mistaken for a result, and a truthy non-bool flag.
  _, out = _result("cutmix")
  with pytest.raises(ValueError, match="MixResult"):
    mix_hidden(tuple(out), np.zeros((B, C), np.float32))
  with pytest.raises(ValueError, match="across_devices"):
    mix_hidden(out, np.zeros((B, C), np.float32), across_devices="yes")
  with pytest.raises(ValueError, match="axis_name"):
    shard_mix_hidden(msda_jax.data_mesh(), axis_name="batch")


def test_block_mean_docstring_geometry():
  # Catches: block means over the wrong axes for a 1 x 2 grid of 2 x 2 blocks.
  mask = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
  np.testing.assert_allclose(block_mean(mask, (1, 2)), [[[2.5, 4.5]]])


# Sharded batches: 8 fake CPU devices (conftest.py).
DEVICES, LOCAL = 8, 3


@functools.cache
def _sharded(across):
  """Mixer and hidden mix on the mesh, and the same inside one shard_map."""
  mesh = msda_jax.data_mesh()
  mixer = msda_jax.cutmix(num_classes=K, partner="permute")
  mix = msda_jax.shard_mixer(mixer, mesh, across_devices=across)
  mix_h = shard_mix_hidden(mesh, across_devices=across)
  batch = PartitionSpec("data")

  def body(k, x, y, h):  # The per-device form, in the user's own shard_map.
    out = msda_jax.per_device(mixer, across_devices=across)(k, x, y)
    return (mix_hidden(out, h, across_devices=across),
            partner_hidden(out, h, across_devices=across))
  inside = jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(),) + (batch,) * 3,
                         out_specs=batch)

  def step(k, x, y, h):
    out = mix(k, x, y)
    return out, mix_h(out, h), inside(k, x, y, h)
  return mesh, jax.jit(step)


def _sharded_batch(mesh):
  rng = np.random.default_rng(9)
  images = rng.uniform(size=(DEVICES * LOCAL, *SPATIAL, 3)).astype(np.float32)
  labels = (np.arange(DEVICES * LOCAL) % K).astype(np.int32)
  h = _features((DEVICES * LOCAL, 4, 3, C), seed=10)
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return (images, labels, h), jax.device_put((images, labels, h), sharding)


@pytest.mark.parametrize("across", [True, False])
def test_sharded_features_take_the_partner_named_by_partner_index(across):
  # Catches (across=True): partner features read from the local shard (the
  # global index taken modulo the shard is a wrong local row), a ring turned
  # the other way (features of the next device, not the previous one the
  # images came from), the global gather (an all-gather) instead of the ring,
  # and the per-device form disagreeing with shard_mix_hidden.
  # (across=False): global indices used as local rows of the wrong shard, and
  # any traffic between devices.
  mesh, step = _sharded(across)
  assert jax.device_count() == DEVICES
  (_, _, h), args = _sharded_batch(mesh)
  key = jax.random.key(3)
  out, mixed, (inside, partner) = step(key, *args)
  p = np.asarray(out.partner_index)
  device = np.arange(DEVICES * LOCAL) // LOCAL
  previous = (device - 1) % DEVICES if across else device
  np.testing.assert_array_equal(p // LOCAL, previous)
  expected, _, _ = _reference(out, h)
  np.testing.assert_allclose(mixed, expected, atol=1e-5)
  np.testing.assert_allclose(inside, expected, atol=1e-5)
  np.testing.assert_array_equal(partner, h[p])
  assert mixed.sharding.is_equivalent_to(args[2].sharding, mixed.ndim)
  hlo = step.lower(key, *args).compile().as_text()  # The persistent cache's.
  assert ("collective-permute" in hlo) == across
  for collective in ("all-gather", "all-to-all", "all-reduce"):
    assert collective not in hlo, collective


def test_pass_through_result_across_devices_reads_its_own_rows():
  # Catches: a sample whose partner is itself (the pass-through mixer reports
  # its own global index) read from the received shard of the previous device
  # (the weight 0 hides it in the mix, not in partner_hidden, nor 0 * inf).
  mesh = msda_jax.data_mesh()
  (_, _, h), (x, y, h_s) = _sharded_batch(mesh)
  batch = PartitionSpec("data")

  def body(k, x, y, h):
    out = msda_jax.per_device(msda_jax.none(num_classes=K), across_devices=True)(k, x, y)
    return partner_hidden(out, h, across_devices=True)
  partner = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(),) + (batch,) * 3,
                                  out_specs=batch))(jax.random.key(0), x, y, h_s)
  np.testing.assert_array_equal(partner, h)


def _np_moved(x, sources):
  """NumPy: cell block g of one sample's (rows, cols, C) x taken from block
  sources[g] (row-major) of a sources.shape grid."""
  grid = sources.shape
  fr, fc = x.shape[0] // grid[0], x.shape[1] // grid[1]
  out = np.empty_like(x)
  for g, s in enumerate(np.asarray(sources).ravel()):
    (gr, gc), (sr, sc) = divmod(g, grid[1]), divmod(int(s), grid[1])
    out[gr * fr:(gr + 1) * fr, gc * fc:(gc + 1) * fc] = (
        x[sr * fr:(sr + 1) * fr, sc * fc:(sc + 1) * fc])
  return out


def test_moved_blocks_move_the_features_or_raise():
  # Catches: features mixed where the image blocks were before PuzzleMix's
  # transport (own or partner move not applied, or swapped), a grid the
  # moved blocks do not tile mixed silently, and vectors refused.
  # The mix reads only result.moves: a CutMix result given moves on a 2 x 3
  # grid stands for PuzzleMix's without compiling its solver.
  _, out = _result("cutmix", partner="roll")
  rng = np.random.default_rng(8)
  own = np.stack([rng.permutation(6).reshape(2, 3) for _ in range(B)])
  theirs = np.stack([rng.permutation(6).reshape(2, 3) for _ in range(B)])
  out = out._replace(moves=msda_jax.BlockMoves(own.astype(np.int32),
                                               theirs.astype(np.int32)))
  h = _features((B, 4, 3, C), seed=9)
  _, m, p = _reference(out, h)
  moved = np.stack([_np_moved(h[i], own[i]) for i in range(B)])
  shown = np.stack([_np_moved(h[p[i]], theirs[i]) for i in range(B)])
  mixed, partner, _ = _all(out, h)
  np.testing.assert_allclose(partner, shown, atol=1e-6)
  np.testing.assert_allclose(mixed, m * moved + (1 - m) * shown, atol=1e-5)
  with pytest.raises(ValueError, match=r"moved blocks of a \(2, 3\) grid"):
    mix_hidden(out, np.zeros((B, 1, 3, C), np.float32))
  vectors = _features((B, C), seed=10)
  np.testing.assert_allclose(_mix(out, vectors), _reference(out, vectors)[0],
                             atol=1e-5)
