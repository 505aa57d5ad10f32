"""Mixing on 8 fake CPU devices: per-shard results, on-device partners, pmap."""

import chex
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax

K = 4
DEVICES = 8
LOCAL = 3  # odd, so one sample per device pairs with itself under 'flip'


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == DEVICES, "conftest should give 8 CPU devices"
  return msda_jax.data_mesh()


def _batch():
  # NumPy: slicing and reshaping jax arrays eagerly compiles a program each.
  b = DEVICES * LOCAL
  images = np.random.default_rng(0).uniform(size=(b, 8, 6, 3)).astype(np.float32)
  labels = (np.arange(b) % K).astype(np.int32)
  return images, labels


@pytest.mark.parametrize("method, partner", [
    ("gmix", "flip"), ("gmix", "permute"), ("fmix", "permute"),
    ("gridmix", "flip"), ("smoothmix", "flip"), ("resizemix", "permute")])
def test_sharded_equals_per_shard_single_device(mesh, method, partner):
  # Catches: a method whose draws ignore the device's folded key, or whose
  # partner (or pasted partner) crosses devices.
  # Few holes: at 8x6 the default 20 give every λ the same 1-pixel holes.
  options = dict(n_holes=2) if method == "gridmix" else {}
  mixer = getattr(msda_jax, method)(num_classes=K, partner=partner, **options)
  images, labels = _batch()
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  images_s, labels_s = jax.device_put((images, labels), sharding)
  key = jax.random.key(42)
  out = jax.jit(msda_jax.shard_mixer(mixer, mesh))(key, images_s, labels_s)
  assert out.images.sharding.is_equivalent_to(sharding, 4)
  out = jax.tree.map(np.asarray, out)
  single = jax.jit(mixer)
  masks = []
  for d in range(DEVICES):
    rows = slice(d * LOCAL, (d + 1) * LOCAL)
    ref = single(jax.random.fold_in(key, d), images[rows], labels[rows])
    np.testing.assert_allclose(out.images[rows], ref.images, atol=1e-5)
    np.testing.assert_allclose(out.labels[rows], ref.labels, atol=1e-6)
    np.testing.assert_array_equal(out.partner_index[rows], ref.partner_index + d * LOCAL)
    masks.append(np.asarray(ref.mask))
  # Partners stay on their device...
  np.testing.assert_array_equal(np.asarray(out.partner_index) // LOCAL,
                                np.arange(DEVICES * LOCAL) // LOCAL)
  # ...and devices draw different masks (all 8 for continuous masks; the
  # grid's and the paste box's few discrete sizes at 8x6 may repeat).
  distinct = len({mask.tobytes() for mask in masks})
  assert distinct == DEVICES if method in ("gmix", "fmix") else distinct > 1


def test_shard_mixer_needs_no_collective(mesh):
  mixer = msda_jax.cutmix(num_classes=K, partner="permute")
  images, labels = _batch()
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  fn = jax.jit(msda_jax.shard_mixer(mixer, mesh))
  hlo = fn.lower(jax.random.key(0), *jax.device_put((images, labels), sharding)
                 ).compile().as_text()
  for collective in ("all-gather", "all-to-all", "collective-permute", "all-reduce"):
    assert collective not in hlo, collective


def test_jit_on_sharded_batch_without_shard_map(mesh):
  # Plain jit over a sharded batch also works (XLA partitions the global mix).
  mixer = msda_jax.hmix(num_classes=K)
  images, labels = _batch()
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  out = jax.jit(mixer)(jax.random.key(0), *jax.device_put((images, labels), sharding))
  ref = jax.jit(mixer)(jax.random.key(0), images, labels)
  chex.assert_trees_all_close(out, ref, atol=1e-6)


def test_pmap_compatibility_path(mesh):
  del mesh
  mixer = msda_jax.cutmix(num_classes=K)
  images, labels = _batch()
  fn = jax.pmap(msda_jax.per_device(mixer), axis_name="data", in_axes=(None, 0, 0))
  key = jax.random.key(3)
  out = fn(key, images.reshape(DEVICES, LOCAL, 8, 6, 3), labels.reshape(DEVICES, LOCAL))
  out = jax.tree.map(np.asarray, out)
  single = jax.jit(mixer)
  for d in range(DEVICES):
    rows = slice(d * LOCAL, (d + 1) * LOCAL)
    ref = single(jax.random.fold_in(key, d), images[rows], labels[rows])
    np.testing.assert_allclose(out.images[d], ref.images, atol=1e-6)
    np.testing.assert_array_equal(out.partner_index[d], ref.partner_index + d * LOCAL)


def test_bad_axis_name_is_a_clear_error(mesh):
  with pytest.raises(ValueError, match="axis_name"):
    msda_jax.shard_mixer(msda_jax.mixup(), mesh, axis_name="batch")
