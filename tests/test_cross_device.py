"""Partners across devices (issue 9 item 2) on 8 fake CPU devices."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax
from msda_jax import _paste

K = 5
DEVICES = 8
LOCAL = 4


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == DEVICES, "conftest should give 8 CPU devices"
  return msda_jax.data_mesh()


def _batch(labels="int"):
  # NumPy (eager jax.random would compile a program per call site).
  b = DEVICES * LOCAL
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(b, 8, 6, 3)).astype(np.float32)
  ints = (np.arange(b) % K).astype(np.int32)
  if labels == "int":
    return images, ints
  floats = rng.dirichlet(np.ones(K), b).astype(np.float32)
  if labels == "float":
    return images, floats
  return images, {"cls": ints, "soft": floats}


@functools.cache
def _cross_fn(mixer):
  """One jitted cross-device mixer per mixer (mixers hash by value)."""
  return jax.jit(msda_jax.shard_mixer(mixer, msda_jax.data_mesh(), across_devices=True))


def _cross(mesh, mixer, images, labels, key=jax.random.key(7)):
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  args = jax.device_put((images, labels), sharding)
  return _cross_fn(mixer)(key, *args)


_paste_resized = jax.jit(jax.vmap(_paste.paste_resized))


@pytest.mark.parametrize("method, mode, partner", [
    ("cutmix", "elem", "flip"), ("mixup", "batch", "permute"),
    ("gmix", "elem", "roll"), ("resizemix", "elem", "permute")])
def test_partner_on_previous_device_and_global_blend(mesh, method, mode, partner):
  # Catches: a ring in the wrong direction or a wrong offset (partner_index
  # then names a sample other than the one blended), partners from the local
  # shard, and labels mixed with the local instead of the received targets.
  mixer = getattr(msda_jax, method)(num_classes=K, mode=mode, partner=partner)
  images, labels = _batch()
  out = _cross(mesh, mixer, images, labels)
  p = np.asarray(out.partner_index)
  device = np.arange(DEVICES * LOCAL) // LOCAL
  np.testing.assert_array_equal(p // LOCAL, (device - 1) % DEVICES)
  partner_images = images[p]
  if out.paste is not None:  # ResizeMix: the partner is resized and pasted.
    partner_images = np.asarray(_paste_resized(partner_images, out.paste))
  mask = np.asarray(out.mask)[..., None]
  np.testing.assert_allclose(
      out.images, mask * images + (1 - mask) * partner_images, atol=1e-5)
  onehot = np.eye(K)[labels]
  lam = np.asarray(out.lam)[:, None]
  np.testing.assert_allclose(out.labels, lam * onehot + (1 - lam) * onehot[p],
                             atol=1e-6)
  np.testing.assert_allclose(out.lam, np.asarray(out.mask).mean((1, 2)),
                             atol=1e-6)
  if mode == "batch":  # One λ per device, and devices draw different ones.
    lams = np.asarray(out.lam).reshape(DEVICES, LOCAL)
    assert (lams == lams[:, :1]).all() and len(set(lams[:, 0])) == DEVICES


@pytest.mark.parametrize("kind", ["float", "tree"])
def test_float_and_pytree_labels_follow_partner(mesh, kind):
  # Catches: float or per-head labels that are not moved with the images
  # (only the first leaf received, or heads swapped in the ring).
  nc = K if kind == "float" else {"cls": K}
  mixer = msda_jax.cutmix(num_classes=nc, partner="permute", label_smoothing=0.1)
  images, labels = _batch(kind)
  out = _cross(mesh, mixer, images, labels)
  p = np.asarray(out.partner_index)
  lam = np.asarray(out.lam)[:, None]
  smooth = lambda t: 0.9 * t + 0.1 / K
  floats = labels if kind == "float" else labels["soft"]
  got = out.labels if kind == "float" else out.labels["soft"]
  np.testing.assert_allclose(got, lam * smooth(floats) + (1 - lam) * smooth(floats[p]),
                             atol=1e-6)
  if kind == "tree":
    onehot = smooth(np.eye(K)[labels["cls"]])
    np.testing.assert_allclose(out.labels["cls"],
                               lam * onehot + (1 - lam) * onehot[p], atol=1e-6)


def test_same_masks_as_per_device_only_partner_moves(mesh):
  # Catches: a key not folded with the device index (all devices draw the
  # same masks) or a changed key contract: with 'flip' the masks and λ must be
  # exactly those of per-device pairing, only the partner shard changes.
  mixer = msda_jax.fmix(num_classes=K, partner="flip")
  images, labels = _batch()
  key = jax.random.key(3)
  cross = _cross(mesh, mixer, images, labels, key)
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  local = jax.jit(msda_jax.shard_mixer(mixer, mesh))(
      key, *jax.device_put((images, labels), sharding))
  np.testing.assert_array_equal(cross.mask, local.mask)
  np.testing.assert_array_equal(cross.lam, local.lam)
  shift = np.asarray(cross.partner_index) - np.asarray(local.partner_index)
  assert set(np.unique(shift)) == {-LOCAL, (DEVICES - 1) * LOCAL}
  masks = np.asarray(cross.mask).reshape(DEVICES, -1)
  assert len({m.tobytes() for m in masks}) == DEVICES


def test_hlo_has_collective_permute_and_no_all_gather(mesh):
  # Catches: an implementation that gathers the global batch (all-gather or
  # all-to-all) instead of moving one shard on a ring.
  mixer = msda_jax.cutmix(num_classes=K, partner="permute")
  images, labels = _batch()
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  fn = jax.jit(msda_jax.shard_mixer(mixer, mesh, across_devices=True))
  hlo = fn.lower(jax.random.key(0), *jax.device_put((images, labels), sharding)
                 ).compile().as_text()
  assert "collective-permute" in hlo
  for collective in ("all-gather", "all-to-all", "all-reduce"):
    assert collective not in hlo, collective


def test_pmap_equals_shard_map(mesh):
  # Catches: shard_mixer and per_device disagreeing (across_devices dropped
  # on one path, or a body that only works under shard_map).
  mixer = msda_jax.hmix(num_classes=K, partner="permute")
  images, labels = _batch()
  key = jax.random.key(11)
  fn = jax.pmap(msda_jax.per_device(mixer, across_devices=True),
                axis_name="data", in_axes=(None, 0, 0))
  out = fn(key, images.reshape(DEVICES, LOCAL, *images.shape[1:]),
           labels.reshape(DEVICES, LOCAL))
  ref = _cross(mesh, mixer, images, labels, key)
  out_images, out_labels, out_partner = map(
      np.asarray, (out.images, out.labels, out.partner_index))
  np.testing.assert_allclose(out_images.reshape(ref.images.shape), ref.images,
                             atol=1e-6)
  np.testing.assert_allclose(out_labels.reshape(ref.labels.shape), ref.labels,
                             atol=1e-6)
  np.testing.assert_array_equal(out_partner.reshape(-1), ref.partner_index)


def test_bad_options(mesh):
  # Catches: mode='pair' silently mixed one way (its pairs must be symmetric)
  # and a truthy non-bool flag accepted.
  with pytest.raises(ValueError, match="mode='pair'"):
    msda_jax.shard_mixer(msda_jax.mixup(num_classes=K, mode="pair"), mesh,
                         across_devices=True)
  with pytest.raises(ValueError, match="across_devices"):
    msda_jax.per_device(msda_jax.mixup(num_classes=K), across_devices="yes")
  # Per-device pairing still accepts mode='pair'.
  msda_jax.shard_mixer(msda_jax.mixup(num_classes=K, mode="pair"), mesh)


def test_none_mixer_passes_through(mesh):
  # Catches: the pass-through mixer reporting another device's sample as
  # partner (it has none: each sample is its own partner, λ = 1).
  images, labels = _batch()
  out = _cross(mesh, msda_jax.none(num_classes=K), images, labels)
  np.testing.assert_array_equal(out.partner_index, np.arange(DEVICES * LOCAL))
  np.testing.assert_array_equal(out.images, images)
