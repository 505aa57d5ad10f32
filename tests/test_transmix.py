"""TransMix: labels re-mixed by the class token's attention on each image's pixels."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax
from msda_jax._transmix import attention_lam, patch_grid, transmix_labels

K, B, SPATIAL = 4, 6, (8, 8)
LABELS = (np.arange(B) % K).astype(np.int32)

# One compiled program per option set and shape (eager dispatch compiles every op).
_transmix = jax.jit(transmix_labels, static_argnames=(
    "num_classes", "label_smoothing", "area_weight", "grid"))
_attention_lam = jax.jit(attention_lam, static_argnames=("grid",))


@functools.cache
def _result(method, mode="elem", partner="flip", spatial=SPATIAL, smoothing=0.0):
  """The MixResult of one jitted mixer on a fixed batch (compiled once)."""
  mixer = getattr(msda_jax, method)(num_classes=K, mode=mode, partner=partner,
                                    label_smoothing=smoothing)
  images = np.random.default_rng(0).uniform(size=(B, *spatial, 3)).astype(np.float32)
  return jax.jit(mixer)(jax.random.key(2), images, LABELS)


def _attention(p, seed=0, scale=3.7):
  """Positive, not normalised (the function must normalise it)."""
  return (scale * np.random.default_rng(seed).uniform(0.05, 1.0, (B, p))).astype(np.float32)


def _targets(labels, k=K, smoothing=0.0):
  onehot = np.eye(k)[labels] if labels.ndim == 1 else np.asarray(labels, np.float64)
  return (1 - smoothing) * onehot + smoothing / onehot.shape[1]


def _reference(out, attention, targets, grid, area_weight=0.5):
  """NumPy, float64: λ_att over row-major patches, then the re-mixed labels."""
  mask = np.asarray(out.mask, np.float64)
  factor = [full // g for full, g in zip(mask.shape[1:], grid)]
  cells = np.stack([mask[(slice(None),) + tuple(
      slice(c * f, (c + 1) * f) for c, f in zip(cell, factor))].reshape(B, -1).mean(1)
      for cell in np.ndindex(*grid)], axis=1)          # (B, P), row-major cells
  a = np.asarray(attention, np.float64)
  a = a / a.sum(1, keepdims=True)
  lam_att = (a * cells).sum(1)
  lam = (area_weight * np.asarray(out.lam, np.float64) + (1 - area_weight) * lam_att)[:, None]
  p = np.asarray(out.partner_index)
  return lam * targets + (1 - lam) * targets[p], lam_att


@pytest.mark.parametrize("method, mode, partner", [
    ("cutmix", "elem", "flip"), ("cutmix", "batch", "roll"), ("hmix", "pair", "permute")])
def test_labels_are_the_attention_weighted_mix_of_numpy(method, mode, partner):
  # Catches: attention not normalised (λ_att scaled by Σa), the partner's share
  # 1 - m taken for the own one, patches flattened column-major (the wrong cell
  # under each attention entry), the partner's label assumed to be a flip, and
  # the area λ left out.
  out = _result(method, mode, partner)
  a = _attention(16)
  expected, lam_att = _reference(out, a, _targets(LABELS), (4, 4))
  np.testing.assert_allclose(_transmix(out, a, LABELS, num_classes=K), expected, atol=1e-6)
  np.testing.assert_allclose(_attention_lam(out, a), lam_att, atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixup_labels_are_unchanged(smoothing):
  # Catches: anything that moves Mixup's labels (its constant mask makes
  # λ_att = λ: the reference's CutMix-only switch needs no flag here), and
  # label smoothing dropped or applied twice.
  out = _result("mixup", partner="permute", smoothing=smoothing)
  a = _attention(16, seed=1)
  np.testing.assert_allclose(_attention_lam(out, a), out.lam, atol=1e-6)
  np.testing.assert_allclose(
      _transmix(out, a, LABELS, num_classes=K, label_smoothing=smoothing),
      out.labels, atol=1e-6)


def test_area_weight_one_is_the_area_label_zero_the_attention_alone():
  # Catches: area_weight given to λ_att instead of the area λ (the default 0.5
  # cannot tell them apart).
  out = _result("cutmix")
  a = _attention(16, seed=2)
  np.testing.assert_allclose(_transmix(out, a, LABELS, num_classes=K, area_weight=1.0),
                             out.labels, atol=1e-6)
  expected, _ = _reference(out, a, _targets(LABELS), (4, 4), area_weight=0.0)
  np.testing.assert_allclose(_transmix(out, a, LABELS, num_classes=K, area_weight=0.0),
                             expected, atol=1e-6)


def test_attention_on_the_pasted_patches_only_gives_the_partner_label():
  # Catches: λ_att measuring the partner's pixels as the sample's own (TransMix:
  # a class token looking only at the pasted box sees only the partner).
  out = _result("cutmix")
  mask = np.ones((B, *SPATIAL), np.float32)
  mask[:, 2:6, 4:8] = 0.0                    # patches (1, 2), (1, 3), (2, 2), (2, 3)
  out = out._replace(mask=mask, lam=mask.mean((1, 2)))
  on_box = np.zeros((B, 4, 4), np.float32)
  on_box[:, 1:3, 2:4] = 1.0
  a = on_box.reshape(B, 16)
  np.testing.assert_allclose(_attention_lam(out, a), np.zeros(B), atol=1e-7)
  y = _transmix(out, a, LABELS, num_classes=K, area_weight=0.0)
  np.testing.assert_allclose(y, np.eye(K)[LABELS][::-1], atol=1e-7)  # flip's


def test_patch_grid_square_inference_and_explicit_grids():
  # Catches: a grid guessed for non-square images (e.g. (sqrt P, sqrt P)), a
  # class token entry (P + 1) silently accepted, and explicit grids that do not
  # fit passed through.
  assert patch_grid((8, 8), 16) == (4, 4)
  assert patch_grid((224, 448), 392) == (14, 28)
  assert patch_grid((8, 12), 6) == (2, 3)                 # 4 x 4 patches
  assert patch_grid((8, 12), 12, grid=(4, 3)) == (4, 3)   # 2 x 4 patches
  assert patch_grid((12,), 3) == (3,)
  for spatial, p in [((8, 12), 12), ((8, 8), 17), ((8, 8), 0)]:
    with pytest.raises(ValueError, match="grid="):
      patch_grid(spatial, p)
  for grid, match in [((3, 4), "divide"), ((4, 4), "16 patches"), ((12,), "2 positive"),
                      ((4.0, 3), "positive ints")]:
    with pytest.raises(ValueError, match=match):
      patch_grid((8, 12), 12, grid=grid)


def test_non_square_image_inferred_and_explicit_grids_match_numpy():
  # Catches: the patch grid of a non-square image taken transposed, or an
  # explicit grid ignored.
  out = _result("cutmix", partner="roll", spatial=(8, 12))
  for p, grid, given in [(6, (2, 3), None), (12, (4, 3), (4, 3))]:
    a = _attention(p, seed=p)
    expected, lam_att = _reference(out, a, _targets(LABELS), grid)
    np.testing.assert_allclose(_transmix(out, a, LABELS, num_classes=K, grid=given),
                               expected, atol=1e-6)
    np.testing.assert_allclose(_attention_lam(out, a, grid=given), lam_att, atol=1e-6)


def test_pytree_heads_and_float_labels():
  # Catches: heads other than the first mixed with the area λ or left unmixed,
  # per-head num_classes ignored, and smoothing missing on float heads.
  out = _result("cutmix", partner="roll")
  a = _attention(16, seed=3)
  soft = np.random.default_rng(4).dirichlet(np.ones(3), B).astype(np.float32)
  labels = {"fine": LABELS, "coarse": LABELS % 2, "soft": soft}
  fn = jax.jit(lambda out, a, y: transmix_labels(
      out, a, y, num_classes={"fine": K, "coarse": 2}, label_smoothing=0.1))
  got = fn(out, a, labels)
  assert set(got) == set(labels)
  for name, k in [("fine", K), ("coarse", 2), ("soft", 3)]:
    expected, _ = _reference(out, a, _targets(labels[name], k, 0.1), (4, 4))
    np.testing.assert_allclose(got[name], expected, atol=1e-6, err_msg=name)
  expected, _ = _reference(out, a, _targets(soft), (4, 4))
  np.testing.assert_allclose(_transmix(out, a, soft), expected, atol=1e-6)


def test_jit_equals_eager_and_bf16_attention_is_read_in_float32():
  # Catches: shape logic that needs concrete values, and bf16 attention summed
  # in bf16.
  out = _result("cutmix")
  a = _attention(16, seed=5).astype(jnp.bfloat16)
  eager = transmix_labels(out, a, LABELS, num_classes=K)
  np.testing.assert_allclose(eager, _transmix(out, a, LABELS, num_classes=K), atol=1e-6)
  expected, _ = _reference(out, np.asarray(a, np.float32), _targets(LABELS), (4, 4))
  np.testing.assert_allclose(eager, expected, atol=1e-6)
  assert eager.dtype == jnp.float32


@pytest.mark.parametrize("call, match", [
    (lambda o: transmix_labels(o, np.ones((B + 1, 16), np.float32), LABELS, num_classes=K),
     r"\(6, P\)"),
    (lambda o: transmix_labels(o, np.ones((B, 4, 4), np.float32), LABELS, num_classes=K),
     r"\(6, 4, 4\)"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.int32), LABELS, num_classes=K),
     "float"),
    (lambda o: transmix_labels(o, np.ones((B, 17), np.float32), LABELS, num_classes=K),
     "class token"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS, num_classes=K,
                               grid=(16, 1)), "divide"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS, num_classes=K,
                               area_weight=1.5), "area_weight"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS, num_classes=K,
                               area_weight=True), "area_weight"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS), "num_classes"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS[:4], num_classes=K),
     "batch size"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), None), "unmixed"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS, num_classes=K,
                               label_smoothing=1.0), "label_smoothing"),
    (lambda o: transmix_labels(tuple(o), np.ones((B, 16), np.float32), LABELS,
                               num_classes=K), "MixResult"),
    (lambda o: transmix_labels(o, np.ones((B, 16), np.float32), LABELS, num_classes=K,
                               across_devices=1), "across_devices"),
])
def test_bad_inputs_are_clear_value_errors(call, match):
  # Catches: attention of the wrong batch, rank or dtype, attention with the
  # class token's own entry, a grid that does not divide the image, an
  # area_weight outside [0, 1] (or a bool), integer labels without num_classes,
  # labels of another batch, no labels, bad smoothing, a tuple for a result,
  # and a truthy non-bool flag, each without a message naming the argument.
  with pytest.raises(ValueError, match=match):
    call(_result("cutmix"))


DEVICES, LOCAL = 8, 3


def test_across_devices_labels_come_from_the_previous_device():
  # Catches: partner labels read from the local shard inside shard_map (the
  # global index modulo the shard names a local row, not the previous
  # device's sample that was pasted in).
  assert jax.device_count() == DEVICES
  mesh = msda_jax.data_mesh()
  mixer = msda_jax.cutmix(num_classes=K, partner="permute")
  b = DEVICES * LOCAL
  rng = np.random.default_rng(6)
  images = rng.uniform(size=(b, *SPATIAL, 3)).astype(np.float32)
  labels = (np.arange(b) % K).astype(np.int32)
  a = (rng.uniform(0.05, 1.0, (b, 16))).astype(np.float32)
  batch = PartitionSpec("data")

  def body(k, x, y, a):
    out = msda_jax.per_device(mixer, across_devices=True)(k, x, y)
    return out, transmix_labels(out, a, y, num_classes=K, across_devices=True)
  step = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(),) + (batch,) * 3,
                               out_specs=batch))
  args = jax.device_put((images, labels, a), NamedSharding(mesh, batch))
  out, got = step(jax.random.key(1), *args)
  p = np.asarray(out.partner_index)
  np.testing.assert_array_equal(p // LOCAL, (np.arange(b) // LOCAL - 1) % DEVICES)
  mask = np.asarray(out.mask, np.float64)
  cells = mask.reshape(b, 4, 2, 4, 2).mean((2, 4)).reshape(b, 16)
  lam_att = (a * cells).sum(1) / a.sum(1)
  lam = (0.5 * np.asarray(out.lam) + 0.5 * lam_att)[:, None]
  onehot = np.eye(K)[labels]
  np.testing.assert_allclose(got, lam * onehot + (1 - lam) * onehot[p], atol=1e-6)
