"""Mixers: labels, λ, determinism, jit, modes, pairing, dtypes, prob, choice.

Compiling is most of this file's time (a mixer is seconds of XLA work on a
CPU), so each test jits all its mixers in one function, and the tests that
look at the same mixers share one compiled call through a cache.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax
from msda_jax import _modes
from msda_jax import _paste

K = 5
FACTORIES = {
    "mixup": msda_jax.mixup,
    "cutmix": msda_jax.cutmix,
    "hmix": msda_jax.hmix,
    "gmix": msda_jax.gmix,
    "fmix": msda_jax.fmix,
    "gridmix": msda_jax.gridmix,
    "smoothmix": msda_jax.smoothmix,
    "resizemix": msda_jax.resizemix,
}


_paste_all = jax.jit(jax.vmap(_paste.paste_resized))


def _shown_partners(images, out):
  """Each sample's partner as its mix shows it: pasted resized for ResizeMix."""
  partners = np.asarray(images)[np.asarray(out.partner_index)]
  if out.paste is None:
    return np.asarray(partners, np.float64)
  return np.asarray(_paste_all(partners, out.paste), np.float64)
MODES = ("batch", "pair", "elem")


def _batch(b=6, h=12, w=10, c=3, dtype=np.float32, seed=0):
  """NumPy images and int labels (eager jax.random compiled a sampler per shape)."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(b, h, w, c)).astype(np.float32)
  if jnp.issubdtype(dtype, jnp.integer):
    images = np.round(images * 255)
  labels = rng.integers(0, K, size=b).astype(np.int32)
  return images.astype(dtype), labels


FOLLOW_KEY = 25  # elem: one sample paired with itself, one left unmixed by prob, six mixed


@functools.cache
def _follow(method):
  """One method's mixer in every mode on one batch (the elem one mixing with
  prob 0.7), all in one jit with the elem mixer's sampler run key by key (a
  loop, lax.map) on the per-sample keys: shared by the mask-following,
  jit-equals-eager, elem-loop and mode tests."""
  mixers = {mode: FACTORIES[method](num_classes=K, mode=mode, label_smoothing=0.1,
                                    partner="permute",
                                    prob=0.7 if mode == "elem" else 1.0)
            for mode in MODES}
  images, labels = _batch(b=8)

  @jax.jit
  def run(key, images, labels):
    outs = {mode: m(key, images, labels) for mode, m in mixers.items()}
    _, mask_key = jax.random.split(key)
    keys = jax.random.split(mask_key, len(images))
    # The sampler sample by sample: a loop (lax.map), each with its own key.
    draws = jax.lax.map(lambda k: mixers["elem"].sampler(k, images.shape[1:3]), keys)
    pasted = None
    if len(draws) == 3:  # the partner resized into each sample's own box
      pasted = jax.vmap(_paste.paste_resized)(
          images[outs["elem"].partner_index], draws[2])
    return outs, draws, pasted

  outs, draws, pasted = run(jax.random.key(FOLLOW_KEY), images, labels)
  return mixers, images, labels, outs, (draws, pasted)


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_images_labels_and_lam_follow_the_mask(method):
  _, images, labels, outs, _ = _follow(method)
  for mode in MODES:
    out = outs[mode]
    mask = np.asarray(out.mask, np.float64)
    partner = np.asarray(out.partner_index)
    x = np.asarray(images, np.float64)
    expected = (mask[..., None] * x
                + (1 - mask[..., None]) * _shown_partners(images, out))
    np.testing.assert_allclose(out.images, expected, atol=1e-5, err_msg=mode)
    np.testing.assert_allclose(out.lam, mask.mean(axis=(1, 2)), atol=1e-6,
                               err_msg=mode)
    smooth = 0.9 * np.eye(K)[np.asarray(labels)] + 0.1 / K
    lam = np.asarray(out.lam, np.float64)[:, None]
    np.testing.assert_allclose(out.labels, lam * smooth + (1 - lam) * smooth[partner],
                               atol=1e-6, err_msg=mode)
    np.testing.assert_allclose(np.asarray(out.labels).sum(axis=1), 1.0, atol=1e-6,
                               err_msg=mode)
    # The permutation really is a permutation.
    assert sorted(partner.tolist()) == list(range(len(partner))), mode


def test_float_labels_soft_and_multilabel_pass_through():
  images, _ = _batch(b=4)
  multi = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]], np.float32)
  out = jax.jit(msda_jax.cutmix())(jax.random.key(0), images, multi)
  lam = np.asarray(out.lam)[:, None]
  np.testing.assert_allclose(out.labels, lam * multi + (1 - lam) * multi[::-1],
                             atol=1e-6)


def test_label_smoothing_is_off_by_default():
  images, labels = _batch(b=1)
  out = jax.jit(msda_jax.mixup(num_classes=K))(jax.random.key(0), images, labels)
  np.testing.assert_array_equal(out.labels, np.eye(K)[np.asarray(labels)])


@functools.cache
def _gmix_step():
  """GMix, jitted and traced at most once (shared by the determinism and
  no-retrace tests)."""
  mixer = msda_jax.gmix(num_classes=K)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(key, images, labels):
    return mixer(key, images, labels)

  return step


def test_same_key_same_output_different_key_different_output():
  mixer = _gmix_step()
  images, labels = _batch()
  a = mixer(jax.random.key(0), images, labels)
  b = mixer(jax.random.key(0), images, labels)
  c = mixer(jax.random.key(1), images, labels)
  chex.assert_trees_all_equal(a, b)
  assert not np.allclose(a.images, c.images)
  assert not np.allclose(a.lam, c.lam)


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_jit_equals_eager(method):
  # The jitted side is the elem-mode mixer of _follow (compiled once).
  mixers, images, labels, outs, _ = _follow(method)
  eager = mixers["elem"](jax.random.key(FOLLOW_KEY), images, labels)
  chex.assert_trees_all_close(eager, outs["elem"], atol=1e-6)


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_elem_mode_is_a_loop_over_samples(method):
  # The elem mixer (prob 0.7) of _follow and its sampler run key by key.
  _, images, _, outs, (draws, pasted) = _follow(method)
  out = outs["elem"]
  shown = _shown_partners(images, out)
  images = np.asarray(images, np.float64)
  partners = np.asarray(out.partner_index)
  assert np.any(partners != np.arange(len(images)))
  for i in range(len(images)):
    partner = partners[i]
    mask = np.asarray(draws[0][i]) if partner != i else np.ones((12, 10))
    np.testing.assert_allclose(out.mask[i], mask, atol=1e-6)
    if len(draws) == 3 and partner != i:  # the partner is pasted in this box
      np.testing.assert_array_equal(out.paste.start[i], draws[2].start[i])
      np.testing.assert_array_equal(out.paste.size[i], draws[2].size[i])
      np.testing.assert_allclose(shown[i], pasted[i], atol=1e-5)
    elif len(draws) == 2:
      np.testing.assert_allclose(shown[i], images[partner], atol=1e-6)
    expected = mask[..., None] * images[i] + (1 - mask[..., None]) * shown[i]
    np.testing.assert_allclose(out.images[i], expected, atol=1e-5)


@functools.cache
def _mode_outputs():
  """CutMix in elem mode (prob 1), GMix in pair mode with flip pairing: one
  jit; with CutMix's batch mode and GMix's permute pair mode of _follow (on
  the same 8 samples, label smoothing 0.1)."""
  mixers = {"elem": msda_jax.cutmix(num_classes=K),
            "flip": msda_jax.gmix(num_classes=K, mode="pair", partner="flip")}
  _, images, labels, cut, _ = _follow("cutmix")
  outs = jax.jit(lambda k, x, y: {n: m(k, x, y) for n, m in mixers.items()})(
      jax.random.key(0), images, labels)
  outs["batch"] = cut["batch"]
  outs["permute"] = _follow("gmix")[3]["pair"]
  return np.asarray(labels), jax.tree.map(np.asarray, outs)


def test_batch_mode_one_mask_pair_mode_one_per_pair():
  labels, outs = _mode_outputs()
  out = outs["batch"]
  # One mask for every sample (a sample paired with itself keeps all of its
  # own image: its mask is ones).
  alone = out.partner_index == np.arange(8)
  assert alone.sum() < 7, alone
  shared = out.mask[~alone][0]
  assert all(np.array_equal(shared, m) for m in out.mask[~alone])
  np.testing.assert_array_equal(out.mask[alone], 1.0)
  assert not np.all(shared == 1.0)
  for partner, eps in (("flip", 0.0), ("permute", 0.1)):
    out = outs[partner]
    p = np.asarray(out.partner_index)
    np.testing.assert_array_equal(p[p], np.arange(8))  # symmetric pairing
    np.testing.assert_array_equal(out.mask, out.mask[p])  # shared mask
    # Both members swap content: pixel-wise weights of a pair sum to 1.
    target = (1 - eps) * np.eye(K)[labels] + eps / K
    np.testing.assert_allclose(out.labels + out.labels[p], target + target[p],
                               atol=1e-6)
    # Different pairs draw different masks: 4 pairs, 4 distinct masks.
    assert len({m.tobytes() for m in out.mask}) == 4, partner


def test_elem_mode_draws_different_masks_per_sample():
  out = _mode_outputs()[1]["elem"]
  assert len({m.tobytes() for m in out.mask}) == 8


ODD_SIZES = (1, 3, 7)


@functools.cache
def _odd_outputs():
  """HMix with every pairing on batches of 1, 3 and 7, one jit; 'permute'
  under keys 0 and 9 (vmapped: one compiled mixer)."""
  mixers = {p: msda_jax.hmix(num_classes=K, partner=p) for p in msda_jax.PARTNERS}
  batches = {b: _batch(b=b) for b in ODD_SIZES}

  @jax.jit
  def run(seeds, batches):
    keys = jax.vmap(jax.random.key)(seeds)
    outs = {}
    for b, (x, y) in batches.items():
      outs[b] = {p: m(keys[0], x, y) for p, m in mixers.items() if p != "permute"}
      outs[b]["permute"] = jax.vmap(mixers["permute"], in_axes=(0, None, None))(
          keys, x, y)
    return outs

  outs = jax.tree.map(np.asarray, run(np.array([0, 9]), batches))
  return batches, outs


@pytest.mark.parametrize("batch_size", ODD_SIZES)
def test_odd_and_tiny_batches(batch_size):
  batches, outs = _odd_outputs()
  images, labels = batches[batch_size]
  outs = dict(outs[batch_size])
  outs["permute"] = jax.tree.map(lambda x: x[0], outs["permute"])
  for partner, out in outs.items():
    assert out.images.shape == images.shape, partner
    p = np.asarray(out.partner_index)
    assert sorted(p.tolist()) == list(range(batch_size)), partner
    self_paired = p == np.arange(batch_size)
    # A sample paired with itself is returned exactly as it was.
    np.testing.assert_array_equal(np.asarray(out.images)[self_paired],
                                  np.asarray(images)[self_paired], err_msg=partner)
    np.testing.assert_array_equal(np.asarray(out.lam)[self_paired], 1.0,
                                  err_msg=partner)
    if batch_size == 1:
      np.testing.assert_array_equal(out.images, images, err_msg=partner)
      np.testing.assert_array_equal(out.labels, np.eye(K)[np.asarray(labels)],
                                    err_msg=partner)


def test_partner_patterns():
  # The batch of 7 of _odd_outputs: 'permute' under keys 0 and 9.
  outs = _odd_outputs()[1][7]
  np.testing.assert_array_equal(outs["flip"].partner_index, [6, 5, 4, 3, 2, 1, 0])
  np.testing.assert_array_equal(outs["roll"].partner_index, [6, 0, 1, 2, 3, 4, 5])
  a, b = outs["permute"].partner_index
  assert not np.array_equal(a, b)


def test_no_retrace_on_new_data():
  step = _gmix_step()
  for seed in range(3):
    images, labels = _batch(seed=seed)
    step(jax.random.key(seed), images, labels)
  # A same-shape call with different values did not retrace (else chex raises).


def test_uint8_rounds_and_never_wraps():
  images = np.stack([np.full((4, 4, 3), 255, np.uint8),
                     np.full((4, 4, 3), 0, np.uint8),
                     np.full((4, 4, 3), 254, np.uint8)])
  labels = np.arange(3, dtype=np.int32)
  mixers = {name: factory(num_classes=K) for name, factory in FACTORIES.items()}

  @jax.jit
  def run(key, images, labels):
    # Exact half-way values round to even, like jnp.round.
    half = msda_jax.blend(images[:1], images[1:2], jnp.full((1, 4, 4), 0.5))
    return {n: m(key, images, labels) for n, m in mixers.items()}, half

  outs, half = run(jax.random.key(0), images, labels)
  for name, out in outs.items():
    assert out.images.dtype == jnp.uint8, name
    mask = np.asarray(out.mask)[..., None]
    x = np.asarray(images, np.float64)
    expected = np.round(mask * x + (1 - mask) * x[::-1])
    np.testing.assert_array_equal(out.images, expected.astype(np.uint8),
                                  err_msg=name)
  assert int(half.ravel()[0]) == 128


def test_bfloat16_stays_bfloat16_blend_in_float32():
  images, labels = _batch(dtype=jnp.bfloat16)
  out = jax.jit(msda_jax.hmix(num_classes=K))(jax.random.key(0), images, labels)
  assert out.images.dtype == jnp.bfloat16
  mask = np.asarray(out.mask)[..., None]
  x = images.astype(np.float32)
  expected = (mask * x + (1 - mask) * x[::-1]).astype(jnp.bfloat16)
  np.testing.assert_array_equal(out.images, expected)


def test_any_channel_count_and_non_square():
  # A shape check: traced (jax.eval_shape), not compiled.
  mixer = msda_jax.gmix(num_classes=K)
  batches = [_batch(b=4, h=9, w=17, c=channels) for channels in (1, 4)]
  outs = jax.eval_shape(lambda k, bs: [mixer(k, *b) for b in bs], jax.random.key(0),
                        batches)
  for channels, out in zip((1, 4), outs):
    assert out.images.shape == (4, 9, 17, channels)


PROBS = (0.0, 0.3)


@functools.cache
def _prob_outputs():
  """Mixup with each prob in every mode, vmapped over 40 keys: one jit."""
  mixers = {mode: [msda_jax.mixup(num_classes=K, prob=prob, mode=mode)
                   for prob in PROBS] for mode in MODES}
  images, labels = _batch(b=64, h=2, w=2, c=1)
  run = jax.jit(lambda ks, x, y: {
      mode: [jax.vmap(m, in_axes=(0, None, None))(ks, x, y) for m in ms]
      for mode, ms in mixers.items()})
  outs = run(jax.random.split(jax.random.key(0), 40), images, labels)
  return images, jax.tree.map(np.asarray, outs)


@pytest.mark.parametrize("mode", MODES)
def test_prob_is_the_rate_of_mixing(mode):
  images, outs = _prob_outputs()
  for prob, out in zip(PROBS, outs[mode]):
    mixed = np.asarray(out.lam < 1.0)  # λ ~ U(0,1) is < 1 a.s. when mixed
    unmixed = ~mixed
    np.testing.assert_array_equal(
        np.asarray(out.images)[unmixed],
        np.broadcast_to(images, out.images.shape)[unmixed])
    if mode == "batch":
      mixed = mixed[:, 0]
    rate = mixed.mean()
    stderr = np.sqrt(prob * (1 - prob) / mixed.size) + 1e-9
    assert abs(rate - prob) < 5 * stderr + (0.08 if mode != "elem" else 0.0), (
        prob, rate)


def test_choice_rate_is_prob_not_prob_squared():
  # GMix and Mixup masks always have a pixel below 1 when mixed (a CutMix box
  # can be empty on a tiny image, which would hide a mix).
  parts = [msda_jax.gmix(num_classes=K, prob=0.5),
           msda_jax.mixup(num_classes=K, prob=0.5)]
  mixer = msda_jax.choice(parts, probs=[0.5, 0.5])
  b = 2048
  images, labels = _batch(b=b, h=4, w=4, c=1)
  out = jax.jit(mixer)(jax.random.key(0), images, labels)
  mixed = np.asarray(out.mask).reshape(b, -1).min(axis=1) < 1
  np.testing.assert_array_equal(mixed, np.asarray(out.lam) < 1)
  assert abs(mixed.mean() - 0.5) < 0.05, mixed.mean()  # 4.5 standard errors


def test_choice_elem_mode_each_sample_draws_its_method():
  mixer = msda_jax.choice([msda_jax.cutmix(num_classes=K),
                           msda_jax.mixup(num_classes=K)], probs=[0.3, 0.7])
  images, labels = _batch(b=400, h=6, w=6, c=1)
  out = jax.jit(mixer)(jax.random.key(0), images, labels)
  masks = np.asarray(out.mask).reshape(400, -1)
  binary = np.all((masks == 0) | (masks == 1), axis=1)
  constant = np.all(masks == masks[:, :1], axis=1)
  self_paired = np.asarray(out.partner_index) == np.arange(400)
  # Every sample is either a CutMix box or a Mixup constant...
  assert np.all(binary | constant)
  # ...and about 30% are CutMix (a box that is not the whole image).
  cut = binary & ~constant & ~self_paired
  assert 0.22 < cut.mean() < 0.36, cut.mean()


def test_choice_closes_the_algebra():
  inner = msda_jax.choice([msda_jax.hmix(num_classes=K), msda_jax.gmix(num_classes=K)])
  outer = msda_jax.choice([inner, msda_jax.none(num_classes=K)], probs=[0.5, 0.5])
  assert isinstance(outer, msda_jax.Mixer)
  images, labels = _batch()
  out = jax.jit(outer)(jax.random.key(0), images, labels)
  assert out.images.shape == images.shape


def test_choice_rejects_mismatched_mixers_and_bad_probs():
  with pytest.raises(ValueError, match="mode"):
    msda_jax.choice([msda_jax.mixup(mode="batch"), msda_jax.cutmix(mode="elem")])
  with pytest.raises(ValueError, match="sum to 1"):
    msda_jax.choice([msda_jax.mixup(), msda_jax.cutmix()], probs=[0.5, 0.6])
  with pytest.raises(ValueError, match="one weight per mixer"):
    msda_jax.choice([msda_jax.mixup(), msda_jax.cutmix()], probs=[1.0])
  with pytest.raises(ValueError, match=r"probs\[1\] must be in \[0, 1\]"):
    msda_jax.choice([msda_jax.mixup(), msda_jax.cutmix()], probs=[0.5, -0.5])
  with pytest.raises(ValueError, match="non-empty"):
    msda_jax.choice([])


def test_none_passes_images_through():
  images, labels = _batch(dtype=jnp.uint8)
  out = jax.jit(msda_jax.none(num_classes=K, label_smoothing=0.2))(
      jax.random.key(0), images, labels)
  np.testing.assert_array_equal(out.images, images)
  np.testing.assert_allclose(out.labels, 0.8 * np.eye(K)[labels] + 0.2 / K, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=-1.0), "alpha"),
    (dict(prob=1.5), "prob"), (dict(mode="sample"), "mode must be one of"),
    (dict(partner="shuffle"), "partner must be one of"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(num_classes=0), "num_classes"),
    (dict(mode="pair", partner="roll"), "pair"),
])
def test_bad_options_are_clear_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    msda_jax.mixup(**kwargs)


def test_bad_inputs_are_clear_errors():
  mixer = msda_jax.cutmix(num_classes=K)
  images, labels = _batch()
  with pytest.raises(ValueError, match="rank 3 to 5"):
    mixer(jax.random.key(0), images[..., 0, 0], labels)
  with pytest.raises(ValueError, match="rank 3 to 5"):
    mixer(jax.random.key(0), images[:, None, None], labels)
  with pytest.raises(ValueError, match="same batch size"):
    mixer(jax.random.key(0), images, labels[:3])
  with pytest.raises(ValueError, match="num_classes"):
    msda_jax.cutmix()(jax.random.key(0), images, labels)
  with pytest.raises(ValueError, match="num_classes"):
    mixer(jax.random.key(0), images, np.ones((6, K + 1), np.float32))
  with pytest.raises(ValueError, match="dtype"):
    mixer(jax.random.key(0), images > 0.5, labels)


def test_documented_key_contract_for_modes():
  # _modes documents that elem mode gives sample i the i-th split key.
  sampler = msda_jax.gmix().sampler
  key = jax.random.key(5)
  # The mode's masks, and the sampler key by key (a loop: lax.map), one jit.
  # Both are Draws (mask, mean, paste, moves); the contract is on the first two.
  drawn, one_by_one = jax.jit(lambda k: (
      _modes.draw_masks(sampler, k, (6, 6), "elem", jnp.arange(4)[::-1]),
      jax.lax.map(lambda ki: sampler(ki, (6, 6)), jax.random.split(k, 4))))(key)
  (masks, means), (one_masks, one_means) = drawn[:2], one_by_one[:2]
  for i in range(4):
    mask, mean = one_masks[i], one_means[i]
    # Same key, same mask; two XLA programs may round differently (FMA).
    np.testing.assert_allclose(masks[i], mask, rtol=0, atol=1e-6)
    np.testing.assert_allclose(means[i], mean, rtol=0, atol=1e-6)
