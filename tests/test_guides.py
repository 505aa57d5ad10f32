"""Guides in the engine: masks that look at per-sample data (issue 15, item 1)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import msda_jax
from msda_jax import _engine, _pairing

K = 4
SHAPE = (4, 6)
B = 8


def _peak(g):
  return jnp.arange(g.size) == jnp.argmax(g.ravel())


def _marks(key, shape, lam, guide, partner_guide):
  """A guided generator whose mask shows what it was given: 1/2 off at its
  own guide's peak, 1/4 at the partner's, λ/8 at a pixel drawn from the key
  (so a wrong guide, a swapped guide, a wrong λ or key all show)."""
  pixel = jnp.arange(guide.size) == jax.random.randint(key, (), 0, guide.size)
  mask = 1.0 - 0.5 * _peak(guide) - 0.25 * _peak(partner_guide) - (
      0.125 * lam * pixel)
  return mask.reshape(shape)


def _peaks(key, shape, lam, guide, partner_guide):
  del key, lam
  return (1.0 - 0.5 * _peak(guide) - 0.25 * _peak(partner_guide)).reshape(shape)


def _marks_on_uniforms(u, shape, lam, guide, partner_guide, *, scale):
  mask = 1.0 - scale * _peak(partner_guide) - 0.1 * u[0] * _peak(guide)
  return mask.reshape(shape)


def _own_peak_guide(images):  # A default guide: the images' first channel.
  return images[..., 0]


def _batch(b=B):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(b, *SHAPE, 3)).astype(np.float32)
  guide = rng.permutation(b * np.prod(SHAPE)).reshape(b, *SHAPE)
  return images, np.arange(b) % K, guide.astype(np.float32)


def _reference(mixer, key, guide, alpha, kind="plain", n_uniforms=0,
               **options):
  """The documented key and view contract, computed with the public pieces:
  per-sample keys split from the mask key, λ from draw_lam, the mask from
  the generator at that key with the view each mode gives."""
  partner_key, mask_key = jax.random.split(key)
  b = guide.shape[0]
  index = np.asarray(_pairing.partner_index(
      partner_key, b, mixer.partner, involution=mixer.mode == "pair"))
  keys = jax.random.split(mask_key, b)
  extra = 0 if alpha == 1.0 else 1
  masks = []
  for i in range(b):
    view = {"elem": i, "pair": min(i, index[i]), "batch": 0}[mixer.mode]
    k = mask_key if mixer.mode == "batch" else keys[view]
    u = jax.random.uniform(k, (2 + n_uniforms + extra,))
    lam = _engine.draw_lam(u, alpha)
    if kind == "plain":
      mask = _marks(_engine.mask_key(k), SHAPE, lam, guide[view],
                    guide[index[view]])
    else:
      mask = _marks_on_uniforms(u[2:2 + n_uniforms], SHAPE, lam, guide[view],
                                guide[index[view]], **options)
    # Paired with itself: left unmixed (the mixer's rule for every method).
    masks.append(np.ones(SHAPE) if index[i] == i else np.asarray(mask))
  return index, np.stack(masks)


MODES = ("elem", "pair", "batch")


def _guided(mode, **kw):
  return msda_jax.guided_mask_mixer(_marks, mode=mode, alpha=0.5,
                                    partner="permute", num_classes=K, **kw)


UNIFORM = msda_jax.guided_mask_mixer(
    msda_jax.uniform_mask(_marks_on_uniforms, num_uniforms=1, scale=0.75),
    num_classes=K)


@functools.cache
def _outputs():
  """Every mixer call of the contract tests, in one jit."""
  images, labels, guide = _batch()
  defaulted = _guided("elem", default_guide=_own_peak_guide)
  both = msda_jax.choice([_guided("elem"), msda_jax.cutmix(
      alpha=0.5, partner="permute", num_classes=K)], probs=[0.5, 0.5])

  def run(key, images, labels, guide):
    return dict(
        modes={m: _guided(m)(key, images, labels, guide=guide) for m in MODES},
        uniform=UNIFORM(key, images, labels, guide=guide),
        default=defaulted(key, images, labels),
        default_given=defaulted(key, images, labels,
                                guide=_own_peak_guide(images)),
        choice=both(key, images, labels, guide=guide),
        cutmix_guided=msda_jax.cutmix(alpha=0.5, partner="permute",
                                      num_classes=K)(
                                          key, images, labels, guide=guide),
        cutmix_plain=msda_jax.cutmix(alpha=0.5, partner="permute",
                                     num_classes=K)(key, images, labels),
        heads=_guided("elem")(key, images, {"a": labels, "b": labels % 2},
                              guide=guide),
    )
  return jax.jit(run)(jax.random.key(3), images, labels, guide)


@pytest.mark.parametrize("mode", MODES)
def test_key_and_view_contract(mode):
  # Catches: the guides not reaching the generator, guide and partner_guide
  # swapped, the partner's guide taken from the wrong sample (not
  # partner_index), a mode giving a draw the view of another sample than
  # documented (pair: the lower index; batch: sample 0), and the mask key or
  # λ of a guided draw differing from a plain mask_mixer's.
  _, _, guide = _batch()
  out = _outputs()["modes"][mode]
  index, masks = _reference(_guided(mode), jax.random.key(3), guide, 0.5)
  np.testing.assert_array_equal(np.asarray(out.partner_index), index)
  np.testing.assert_allclose(np.asarray(out.mask), masks, atol=1e-6)
  np.testing.assert_allclose(np.asarray(out.lam), masks.mean(axis=(1, 2)),
                             atol=1e-6)


def test_uniform_mask_generator_gets_guides_after_its_uniforms():
  # Catches: a guided uniform_mask called without its guides, or with its
  # options or uniforms misplaced (the fast path's layout).
  _, _, guide = _batch()
  out = _outputs()["uniform"]
  index, masks = _reference(UNIFORM, jax.random.key(3), guide, 1.0,
                            kind="uniform", n_uniforms=1, scale=0.75)
  np.testing.assert_array_equal(np.asarray(out.partner_index), index)
  np.testing.assert_allclose(np.asarray(out.mask), masks, atol=1e-6)


def test_default_guide_is_used_when_no_guide_is_given():
  # Catches: the default guide ignored, or computed from the wrong batch.
  outs = _outputs()
  chex.assert_trees_all_close(outs["default"], outs["default_given"])


def test_choice_passes_guides_only_to_guided_mixers():
  # Catches: choice dropping the guide (its guided draws would fail or use
  # none), or passing it to a guide-free sampler; and a guide changing what a
  # guide-free mixer does.
  outs = _outputs()
  out = outs["choice"]
  masks = np.asarray(out.mask)
  # Each sample took either the guided mask (values 0.5 / 0.75 / ...) or a
  # CutMix box (only 0 and 1); with 8 samples both occur for this key.
  boxed = np.all(np.isin(masks, (0.0, 1.0)), axis=(1, 2))
  assert 0 < boxed.sum() < B
  chex.assert_trees_all_equal(outs["cutmix_guided"], outs["cutmix_plain"])


def test_label_heads_mix_with_the_guided_lam():
  # Catches: pytree labels broken by the guided path.
  out = _outputs()["heads"]
  assert set(out.labels) == {"a", "b"}
  lam = np.asarray(out.lam)
  labels = _batch()[1]
  p = np.asarray(out.partner_index)
  expect = lam[:, None] * np.eye(K)[labels] + (1 - lam[:, None]) * np.eye(K)[labels[p]]
  np.testing.assert_allclose(np.asarray(out.labels["a"]), expect, atol=1e-6)


def test_missing_and_malformed_guides_raise_clear_errors():
  # Catches: a guided mixer silently running on no guide, guide shapes that
  # do not fit the images reaching XLA, and a partner_guide given where it
  # has no meaning.
  images, labels, guide = _batch()
  mixer = _guided("elem")
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="guide="):
    jax.eval_shape(lambda: mixer(key, images, labels))
  with pytest.raises(ValueError, match=r"\(8, 5, 6\).*\(8, 4, 6, 3\)"):
    jax.eval_shape(lambda: mixer(key, images, labels,
                                 guide=np.zeros((B, 5, 6), np.float32)))
  with pytest.raises(ValueError, match=r"guide.*\(4, 4, 6\)"):
    jax.eval_shape(lambda: mixer(key, images, labels, guide=guide[:4]))
  with pytest.raises(ValueError, match="float"):
    jax.eval_shape(lambda: mixer(key, images, labels,
                                 guide=guide.astype(np.int32)))
  with pytest.raises(ValueError, match="partner_guide"):
    jax.eval_shape(lambda: mixer.mix_with(key, images, labels,
                                          partner_guide=guide))
  with pytest.raises(ValueError, match="partner_guide="):
    jax.eval_shape(lambda: mixer.mix_with(key, images, labels, images, labels,
                                          guide=guide))
  # A guide-free mixer ignores a guide, but not a malformed one.
  with pytest.raises(ValueError, match="guide"):
    jax.eval_shape(lambda: msda_jax.cutmix(num_classes=K)(
        key, images, labels, guide=np.zeros((B, 9, 9), np.float32)))
  # A choice whose guided mixers have different defaults needs a guide.
  two = msda_jax.choice([_guided("elem", default_guide=_own_peak_guide),
                         _guided("elem", default_guide=lambda x: x[..., 1])])
  with pytest.raises(ValueError, match="guide="):
    jax.eval_shape(lambda: two(key, images, labels))
  with pytest.raises(ValueError, match="default_guide"):
    msda_jax.guided_mask_mixer(_marks, default_guide="spectral")


def test_guided_mixers_compare_by_value():
  # Catches: a guided mixer that is not hashable or equal to its rebuild (a
  # jit with it as a static argument would recompile every step).
  assert _guided("elem") == _guided("elem")
  assert hash(_guided("elem")) == hash(_guided("elem"))
  assert _guided("elem") != msda_jax.mask_mixer(
      lambda k, s, l: _marks(k, s, l, jnp.zeros(s), jnp.zeros(s)))
  assert _guided("elem").guided and not msda_jax.cutmix().guided


@pytest.mark.parametrize("across", [False, True])
def test_sharded_partner_guides_travel_with_the_partner(across):
  # Catches: under shard_mixer the guide not sharded with the batch, and with
  # across_devices the partner's guide not sent on the ring with its shard
  # (a draw would see its own device's guide for a partner of another), and
  # a schedule with a guide (both extra arguments of the shard_map).
  images, labels, guide = _batch(16)
  mixer = msda_jax.guided_mask_mixer(
      _peaks, alpha=lambda step: 0.5 + 0 * step, num_classes=K)
  mesh = msda_jax.data_mesh()
  mix = jax.jit(msda_jax.shard_mixer(mixer, mesh, across_devices=across))
  put = lambda x: jax.device_put(x, NamedSharding(mesh, P("data")))
  out = mix(jax.random.key(5), put(images), put(labels), 3, put(guide))
  partner = np.asarray(out.partner_index)
  expect = np.stack([_peaks(None, SHAPE, None, guide[i], guide[partner[i]])
                     for i in range(16)])
  np.testing.assert_allclose(np.asarray(out.mask), expect, atol=1e-6)
  local = 16 // len(jax.devices())
  devices = np.arange(16) // local
  moved = partner // local != devices
  assert moved.all() if across else not moved.any()


def _swap_halves(key, shape, lam, guide, partner_guide):
  """A guided generator that moves blocks: the own image's two halves swap,
  the partner's stay; the partner shows in the right half (by the guide's
  peak column, so the draw depends on the guide)."""
  del key, lam
  right = jnp.argmax(jnp.max(partner_guide, axis=0)) >= shape[1] // 2
  mask = jnp.where(jnp.arange(shape[1]) < shape[1] // 2, 1.0, 0.0)
  mask = jnp.broadcast_to(jnp.where(right, mask, 1.0 - mask), shape)
  moves = msda_jax.BlockMoves(own=jnp.array([[1, 0]]),
                              partner=jnp.array([[0, 1]]))
  return mask, jnp.mean(mask), moves


def test_block_moves_are_applied_before_the_blend():
  # Catches: BlockMoves ignored (no transport), applied to the wrong image or
  # after the blend, kept for samples paired with themselves or left unmixed
  # by prob (they must stay exactly the input), and lost in a choice with a
  # method that moves nothing.
  images, labels, guide = _batch()
  moving = msda_jax.guided_mask_mixer(_swap_halves, partner="permute",
                                      num_classes=K, prob=0.7)
  both = msda_jax.choice([moving, msda_jax.cutmix(partner="permute",
                                                  prob=0.7, num_classes=K)])
  key = jax.random.key(2)
  out, mixed = jax.jit(lambda k, x, y, g: (moving(k, x, y, guide=g),
                                           both(k, x, y, guide=g)))(
      key, images, labels, guide)
  half = SHAPE[1] // 2
  swapped = np.concatenate([images[:, :, half:], images[:, :, :half]], axis=2)
  p = np.asarray(out.partner_index)
  m = np.asarray(out.mask)[..., None]
  moved = np.asarray(out.moves.own)[:, 0, 0] == 1  # this sample's halves swapped
  expect = np.where(moved[:, None, None, None],
                    m * swapped + (1 - m) * images[p], images)
  np.testing.assert_allclose(np.asarray(out.images), expect, atol=1e-6)
  unmixed = (np.asarray(out.lam) == 1.0)
  assert unmixed.any() and moved.any()
  assert not (moved & unmixed).any()  # unmixed or alone: nothing moved
  np.testing.assert_array_equal(np.asarray(out.images)[unmixed], images[unmixed])
  # In the choice, samples that drew CutMix carry the identity moves.
  own = np.asarray(mixed.moves.own).reshape(B, 2)
  assert {tuple(r) for r in own} <= {(0, 1), (1, 0)}
  with pytest.raises(ValueError, match="BlockMoves"):
    bad = msda_jax.guided_mask_mixer(
        lambda k, s, l, g, pg: (jnp.ones(s), 1.0, msda_jax.BlockMoves(
            jnp.zeros((3, 3), int), jnp.zeros((3, 3), int))), num_classes=K)
    jax.eval_shape(lambda: bad(key, images, labels, guide=guide))
