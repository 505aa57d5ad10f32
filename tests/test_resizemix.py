"""ResizeMix against the spec (shared/docs/methods.md, Part 2): the box, the
label, the pasted partner (against PIL's bilinear resize), dtypes, modes,
prob, choice, sharding, and the mask-only path left without resize ops."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from PIL import Image
from scipy import stats

import msda_jax
from msda_jax._paste import paste_resized
from msda_jax._resizemix import resizemix, resizemix_mask, resizemix_rule
from msda_jax._types import PasteBox

K = 4
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
SHAPE = (24, 40)


def _batch(b=8, dtype=jnp.float32, seed=0, extremes=False):
  images = np.random.default_rng(seed).uniform(size=(b, *SHAPE, 3)).astype(np.float32)
  if dtype == jnp.uint8:
    images = np.round(images * 255)
  if extremes:  # uint8: no wrap-around at 0 and 255
    images[0], images[-1] = 255, 0
  # Cast in NumPy (ml_dtypes for bfloat16): an eager cast would compile.
  return jnp.asarray(images.astype(dtype)), jnp.arange(b) % K


def _pil_resize(image, size):
  """The whole ``image`` (H, W, C) resized to ``size`` by PIL's bilinear
  filter (antialiased when shrinking), per channel in float32."""
  h, w = (int(s) for s in size)
  return np.stack([np.asarray(Image.fromarray(np.asarray(image[..., c], np.float32), "F")
                              .resize((w, h), Image.BILINEAR))
                   for c in range(image.shape[-1])], axis=-1)


def _reference_box(key, shape, scale=(0.1, 0.8)):
  """The spec's box from the key contract's uniforms: τ = u[0] in the scale
  range; size floor(shape τ); centre floor(u[1:3] shape), shifted inside."""
  u = np.asarray(jax.random.uniform(key, (5,)))[2:]
  size = np.asarray(shape)
  tau = np.float32(scale[0]) + np.float32(scale[1] - scale[0]) * u[0]
  side = np.floor(size.astype(np.float32) * tau).astype(int)
  center = np.minimum(np.floor(u[1:3] * size.astype(np.float32)), size - 1).astype(int)
  start = np.clip(center - side // 2, 0, size - side)
  return start, side


def _check_mixed(out, images, where=""):
  """Every sample: the original outside its box, the partner resized inside,
  label weight 1 - box area / (H W); unmixed samples exact. Samples of
  another method (an identity box but a mask below 1) are skipped."""
  x = np.asarray(images, np.float32)
  got = np.asarray(out.images, np.float32)
  mask, starts, sizes = (np.asarray(a) for a in (out.mask, *out.paste))
  for i, p in enumerate(np.asarray(out.partner_index)):
    (top, left), (h, w) = starts[i], sizes[i]
    inside = np.zeros(SHAPE, bool)
    inside[top:top + h, left:left + w] = True
    if (h, w) == SHAPE and p != i and (mask[i] < 1).any():
      continue  # another method's sample (inside a choice)
    if p == i or (h, w) == SHAPE:  # unmixed: nothing pasted
      np.testing.assert_array_equal(got[i], x[i], err_msg=f"{where} sample {i}")
      assert out.lam[i] == 1.0 and (mask[i] == 1).all()
      continue
    np.testing.assert_array_equal(mask[i], np.where(inside, 0.0, 1.0))
    np.testing.assert_array_equal(got[i][~inside], x[i][~inside])
    tol = 1e-5 if images.dtype == jnp.float32 else (1.0 if images.dtype == jnp.uint8 else 0.02)
    np.testing.assert_allclose(got[i][top:top + h, left:left + w], _pil_resize(x[p], (h, w)),
                               atol=tol, err_msg=f"{where} sample {i}")
    np.testing.assert_allclose(out.lam[i], 1 - h * w / (SHAPE[0] * SHAPE[1]), atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32), SHAPE, (7, 3), (4, 4), (1, 1), (1, 9)])
def test_mask_shape_dtype_range_box_inside_and_exact_mean(shape):
  # Catches: a box clipped instead of shifted (size or partner cut at the
  # border), NaN or a negative start on tiny images (a box of size 0), a mean
  # that is not 1 - box area / (H W), and λ leaking into the geometry.
  rule = jax.jit(lambda k, lam: resizemix_rule()(k, shape, lam))
  for seed in range(20):
    key = jax.random.key(seed)
    first = None
    for lam in EDGE_LAMS:
      mask, mean, box = rule(key, lam)
      mask, start, size = np.asarray(mask), np.asarray(box.start), np.asarray(box.size)
      assert mask.shape == shape and mask.dtype == np.float32
      assert np.all(start >= 0) and np.all(start + size <= shape), (start, size)
      expected = np.ones(shape, np.float32)
      expected[start[0]:start[0] + size[0], start[1]:start[1] + size[1]] = 0
      np.testing.assert_array_equal(mask, expected)
      np.testing.assert_allclose(mean, 1 - size.prod() / np.prod(shape), atol=1e-6)
      first = mask if first is None else first
      np.testing.assert_array_equal(mask, first)  # λ is ignored
    ref_start, ref_size = _reference_box(key, shape)
    np.testing.assert_array_equal(start, ref_start)
    np.testing.assert_array_equal(size, ref_size)


def test_tau_range_gives_the_box_area_distribution():
  # τ ~ U(0.1, 0.8): on 1000 x 1000 the side over the image side is τ to
  # 1e-3, so a KS test against U(0.1, 0.8) and E[area / HW] = E[τ²] = 0.2433
  # check the range. Catches: τ ~ U(0, 1) or U(0.1, 0.9), a τ per axis (the
  # box must keep the image's aspect ratio), area from τ instead of τ².
  n, shape = 4000, (1000, 1000)
  boxes = jax.jit(jax.vmap(lambda k: resizemix_rule()(k, shape, 0.5)[2]))(
      jax.random.split(jax.random.key(0), n))
  size = np.asarray(boxes.size)
  np.testing.assert_array_equal(size[:, 0], size[:, 1])
  tau = (size[:, 0] + 0.5) / 1000
  assert stats.kstest(tau, stats.uniform(0.1, 0.7).cdf).pvalue > 1e-3
  area = size.prod(axis=1) / 1e6
  assert abs(area.mean() - 0.2433) < 4 * area.std() / np.sqrt(n)
  # Custom scale, and a non-square image keeps its aspect ratio.
  boxes = jax.jit(jax.vmap(lambda k: resizemix_rule(scale=(0.5, 0.5))(k, (40, 24), 0.5)[2]))(
      jax.random.split(jax.random.key(1), 50))
  np.testing.assert_array_equal(np.asarray(boxes.size), np.tile([20, 12], (50, 1)))


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_pasted_partner_is_the_whole_partner_resized_into_the_box(mode):
  # Catches: the partner pasted unresized (a crop, as CutMix), the original
  # resized instead of the partner, a box off by one pixel (translation), no
  # antialiasing (PIL's bilinear is antialiased), H and W swapped, labels
  # mixed by the sampled λ instead of the box area; with prob < 1, an
  # unmixed sample still pasted (its box must become the identity).
  mixer = jax.jit(resizemix(num_classes=K, mode=mode, partner="permute", prob=0.7))
  images, labels = _batch(b=16)
  unmixed = 0
  for seed in range(3):
    key = jax.random.key(seed)
    out = mixer(key, images, labels)
    _check_mixed(out, images, mode)
    y, p = np.eye(K)[np.asarray(labels)], np.asarray(out.partner_index)
    lam = np.asarray(out.lam, np.float64)[:, None]
    np.testing.assert_allclose(out.labels, lam * y + (1 - lam) * y[p], atol=1e-6)
    unmixed += int((lam == 1).sum())
    sizes = np.asarray(out.paste.size)[lam[:, 0] < 1]
    if mode == "batch":
      assert len({tuple(s) for s in sizes}) <= 1
    if mode == "pair":  # one box per pair
      np.testing.assert_array_equal(out.paste.size, np.asarray(out.paste.size)[p])
  assert 0 < unmixed < 48  # both kinds were seen
  if mode == "elem":  # the boxes of mixed samples are the key contract's
    _, mask_key = jax.random.split(key)
    masks = jax.jit(jax.vmap(lambda k: resizemix_mask(k, SHAPE, 0.5)))(
        jax.random.split(mask_key, 16))
    mixed = np.asarray(out.lam) < 1
    np.testing.assert_array_equal(np.asarray(out.mask)[mixed], np.asarray(masks)[mixed])
    assert len({tuple(s) for s in np.asarray(out.paste.size)[mixed]}) > 5


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16])
def test_uint8_and_bfloat16(dtype):
  # Catches: uint8 truncated instead of rounded (mean error 0.5) or wrapped,
  # a dtype change, bf16 resized in bf16 (weights rounded to bf16: results
  # off by an ulp or more, where resizing in float32 rounds once).
  images, labels = _batch(dtype=dtype, extremes=dtype == jnp.uint8)
  out = jax.jit(resizemix(num_classes=K))(jax.random.key(2), images, labels)
  assert out.images.dtype == dtype
  _check_mixed(out, images, str(dtype))
  x = np.asarray(images, np.float32)
  got, starts, sizes = (np.asarray(a) for a in (out.images, *out.paste))
  same = []
  for i, p in enumerate(np.asarray(out.partner_index)):
    (top, left), (h, w) = starts[i], sizes[i]
    box = got[i, top:top + h, left:left + w]
    if dtype == jnp.uint8:  # float32 resize, then round once
      expected = np.round(_pil_resize(x[p], (h, w))).astype(np.uint8)
    else:
      expected = _pil_resize(x[p], (h, w)).astype(dtype)  # ml_dtypes: round to nearest even
    np.testing.assert_allclose(box.astype(np.float32), expected.astype(np.float32),
                               atol=1.0 if dtype == jnp.uint8 else 2 ** -8)
    same.append((box == expected).ravel())
  # PIL's float32 resize differs from ours by ~1e-6: a handful of values
  # round the other way.
  assert np.concatenate(same).mean() > 0.99, np.concatenate(same).mean()


def test_inside_choice_the_cutmix_branch_is_exactly_cutmix():
  # choice pads CutMix's draws with an identity PasteBox. Catches: that box
  # not the identity (the partner would be resized or shifted), or the
  # identity paste not exact (CutMix samples would blur or shift).
  images, labels = _batch(b=32)
  mixer = msda_jax.choice([resizemix(num_classes=K), msda_jax.cutmix(num_classes=K)])
  out = jax.jit(mixer)(jax.random.key(3), images, labels)
  x, p = np.asarray(images), np.asarray(out.partner_index)
  size = np.asarray(out.paste.size)
  cut = np.all(size == SHAPE, axis=1) & (np.asarray(out.lam) < 1)
  assert 5 < cut.sum() < 27, cut.sum()
  mask = np.asarray(out.mask)[..., None]
  assert set(np.unique(mask)) <= {0.0, 1.0}
  np.testing.assert_array_equal(np.asarray(out.images)[cut],
                                np.where(mask == 1, x, x[p])[cut])
  np.testing.assert_array_equal(np.asarray(out.paste.start)[cut], 0)
  _check_mixed(out, images, "choice")  # the ResizeMix samples


def test_shard_mixer_equals_per_shard_mixing():
  # Catches: a paste that does not follow the per-device key and pairing
  # (partners and boxes drawn on the global batch), or one needing an
  # all-gather.
  mesh = msda_jax.data_mesh()
  devices, local = jax.device_count(), 3
  assert devices == 8
  images, _ = _batch(b=devices * local)
  images = np.asarray(images)
  labels = np.arange(devices * local, dtype=np.int32) % K
  mixer = resizemix(num_classes=K, partner="permute")
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  fn = jax.jit(msda_jax.shard_mixer(mixer, mesh))
  args = (jax.random.key(4), *jax.device_put((images, labels), sharding))
  compiled = fn.lower(*args).compile()
  out = jax.tree.map(np.asarray, compiled(*args))  # NumPy: no eager slicing of shards
  single = jax.jit(mixer)
  for d in range(devices):
    rows = slice(d * local, (d + 1) * local)
    ref = single(jax.random.fold_in(jax.random.key(4), d), images[rows], labels[rows])
    np.testing.assert_allclose(out.images[rows], ref.images, atol=1e-6)
    np.testing.assert_allclose(out.labels[rows], ref.labels, atol=1e-6)
    np.testing.assert_array_equal(out.paste.size[rows], ref.paste.size)
    np.testing.assert_array_equal(out.partner_index[rows], ref.partner_index + d * local)
  hlo = compiled.as_text()
  for collective in ("all-gather", "all-to-all", "collective-permute", "all-reduce"):
    assert collective not in hlo, collective


def _jaxpr(mixer, *args):
  """The mixer's jaxpr as text (nested jaxprs included)."""
  return str(jax.make_jaxpr(mixer)(*args))


def test_mask_only_mixers_trace_no_resize():
  # The paste path must be absent from mask-only methods: a resize is two
  # dense contractions per sample (dot_general), several times the blend.
  # Catches: the mixer pasting (an identity box) for every method.
  images, labels = _batch()
  args = (jax.random.key(0), images, labels)
  assert "dot_general" in _jaxpr(resizemix(num_classes=K), *args)
  for factory in (msda_jax.cutmix, msda_jax.mixup, msda_jax.hmix):
    assert "dot_general" not in _jaxpr(factory(num_classes=K), *args), factory
  hlo = jax.jit(msda_jax.cutmix(num_classes=K)).lower(*args).compile().as_text()
  assert not re.search(r" (dot|convolution)\(", hlo)


def test_paste_resized_edge_cases():
  # Catches: NaN from an empty box (scale 0: 0 · inf inside the weights; run
  # eagerly under debug_nans so intermediates are checked), the identity box
  # not bit-exact (bf16/uint8 round trips), content leaking outside the box.
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(6, 9, 2)), jnp.float32)
  with jax.debug_nans(True):
    empty = paste_resized(x[:3, :4, :1], PasteBox(jnp.array([1, 2]), jnp.array([0, 2])))
  assert np.isfinite(np.asarray(empty)).all()
  paste = jax.jit(lambda image, start, size: paste_resized(image, PasteBox(start, size)))
  for dtype in (jnp.float32, jnp.bfloat16, jnp.uint8):
    image = (x * 255).astype(dtype)
    same = paste(image, jnp.zeros(2, jnp.int32), jnp.array([6, 9]))
    np.testing.assert_array_equal(np.asarray(same), np.asarray(image))
  y = np.asarray(paste(x, jnp.array([1, 2]), jnp.array([4, 7])))
  outside = np.ones((6, 9), bool)
  outside[1:5, 2:9] = False
  np.testing.assert_array_equal(y[outside], 0.0)
  np.testing.assert_allclose(y[1:5, 2:9], _pil_resize(np.asarray(x), (4, 7)), atol=1e-5)


def test_other_spatial_ranks_and_bad_options_are_clear_errors():
  # Catches: 1-D / 3-D batches pasted wrongly or failing inside XLA; a scale
  # outside (0, 1] accepted (a box larger than the image).
  mixer = jax.jit(resizemix(num_classes=K))
  for shape in [(4, 64, 3), (4, 6, 8, 8, 3)]:
    message = f"resizemix needs 2-D images (B, H, W, C); got spatial shape {shape[1:-1]}"
    with pytest.raises(ValueError, match=re.escape(message)):
      mixer(jax.random.key(0), jnp.zeros(shape), jnp.arange(4) % K)
  for scale in [(0.0, 0.5), (0.5, 0.4), (0.5, 1.2), 0.5, "ab", (0.1, 0.2, 0.3)]:
    with pytest.raises(ValueError, match="scale must be a pair"):
      resizemix(scale=scale)
    with pytest.raises(ValueError, match="scale must be a pair"):
      resizemix_mask(jax.random.key(0), (8, 8), 0.5, scale=scale)
  with pytest.raises(ValueError, match="prob"):
    resizemix(prob=1.5)


def test_equal_by_value_and_readable_name():
  # Catches: a fresh closure per call (a jit with the mixer static would
  # recompile for an equal config).
  assert resizemix() == resizemix() and hash(resizemix()) == hash(resizemix())
  assert resizemix(scale=[0.2, 0.5]) == resizemix(scale=(0.2, 0.5)) != resizemix()
  assert resizemix(prob=0.5).name == "resizemix(prob=0.5, scale=(0.1, 0.8))"
