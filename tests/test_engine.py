"""The extension point: a user's mask generator becomes a first-class mixer."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax
from msda_jax import _engine

K = 4
SHAPE = (6, 10)


def _stripe(key, shape, lam):
  """A user's method: the partner takes a random vertical stripe."""
  width = jnp.round((1.0 - lam) * shape[1])
  left = jnp.floor(jax.random.uniform(key) * (shape[1] - width + 1))
  cols = jnp.arange(shape[1])
  inside = (cols >= left) & (cols < left + width)
  return jnp.broadcast_to(jnp.where(inside, 0.0, 1.0), shape)


def _stripe_on_uniforms(u, shape, lam):
  width = jnp.round((1.0 - lam) * shape[1])
  left = jnp.floor(u[0] * (shape[1] - width + 1))
  cols = jnp.arange(shape[1])
  inside = (cols >= left) & (cols < left + width)
  mask = jnp.broadcast_to(jnp.where(inside, 0.0, 1.0), shape)
  return mask, 1.0 - width / shape[1]


def _batch(b=8):
  images = jax.random.uniform(jax.random.key(0), (b, *SHAPE, 3))
  return images, jnp.arange(b) % K


USER_MASKS = {
    "plain": _stripe,
    "with_mean": lambda k, s, l: (_stripe(k, s, l), jnp.mean(_stripe(k, s, l))),
    "uniform": msda_jax.uniform_mask(_stripe_on_uniforms, num_uniforms=1),
}


def _user_mixer(kind, mode):
  return msda_jax.mask_mixer(USER_MASKS[kind], mode=mode, num_classes=K,
                             partner="permute")


PROB_USER = msda_jax.mask_mixer(_stripe, num_classes=K, prob=0.5)

# The key contract's cases: (mixer, n uniforms of the mask, alpha, the public
# generator on a sample key and λ).
KEY_CASES = [
    (msda_jax.mask_mixer(_stripe, alpha=0.5), 0, 0.5,
     lambda k, lam: _stripe(_engine.mask_key(k), SHAPE, lam)),
    (msda_jax.cutmix(alpha=1.0), 2, 1.0,
     lambda k, lam: msda_jax.cutmix_mask(k, SHAPE, lam)),
    (msda_jax.hmix(alpha=0.3, r=0.75), 2, 0.3,
     lambda k, lam: msda_jax.hmix_mask(k, SHAPE, lam, r=0.75)),
    (msda_jax.gmix(alpha=(0.2, 0.6)), 2, (0.2, 0.6),
     lambda k, lam: msda_jax.gmix_mask(k, SHAPE, lam)),
]


@functools.cache
def _outputs():
  """Every jitted mixer call of this file's tests, in one jit (compiling is
  most of their time, and one program compiles faster than several)."""
  images, labels = _batch()
  big_images, big_labels = _batch(800)
  both = msda_jax.choice([PROB_USER, msda_jax.cutmix(num_classes=K)],
                         probs=[0.5, 0.5])
  lam_images, lam_labels = _batch(4000)
  b = 4  # key contract: even, so nobody pairs with itself
  zeros, eye_labels = jnp.zeros((b, *SHAPE, 1)), jnp.eye(2)[jnp.zeros(b, jnp.int32)]
  keys = {n: jax.random.key(n) for n in range(8)}

  def run(keys, images, labels, big_images, big_labels, lam_images, lam_labels,
          zeros, eye_labels):
    out = {}
    for kind in USER_MASKS:
      for mode in msda_jax.MODES:
        out[kind, mode] = _user_mixer(kind, mode)(keys[1], images, labels)
    out["prob"] = PROB_USER(keys[2], big_images, big_labels)
    out["choice"] = both(keys[3], big_images, big_labels)
    out["alpha_bounds"] = msda_jax.mixup(alpha=(0.1, 0.9), num_classes=K)(
        keys[0], lam_images[:, :1, :1], lam_labels).lam
    out["labels_none"] = msda_jax.cutmix()(keys[0], images, None)
    # The key contract: each mixer's masks, and the public generator on
    # sample key k = split(mask_key, B)[i] with λ from its uniforms.
    sample_keys = jax.random.split(jax.random.split(keys[7])[1], b)
    for i, (mixer, n, alpha, generator) in enumerate(KEY_CASES):
      extra = 0 if isinstance(alpha, tuple) or alpha == 1.0 else 1
      lam = jax.vmap(lambda k: _engine.draw_lam(
          jax.random.uniform(k, (2 + n + extra,)), alpha))(sample_keys)
      out["key", i] = (mixer(keys[7], zeros, eye_labels).mask,
                       jax.vmap(generator)(sample_keys, lam))
    return list(out), list(out.values())

  names = []

  def values(*args):
    got_names, got = run(*args)
    names[:] = got_names
    return got

  got = jax.jit(values)(keys, images, labels, big_images, big_labels,
                        lam_images, lam_labels, zeros, eye_labels)
  return images, labels, dict(zip(names, got))


@pytest.mark.parametrize("mode", msda_jax.MODES)
@pytest.mark.parametrize("kind", sorted(USER_MASKS))
def test_user_mask_mixes_images_and_labels_by_the_mask(kind, mode):
  # Catches: a user's mask not applied, or labels mixed by the sampled λ
  # instead of the realised mask mean. (mask_mixer(USER_MASKS[kind], mode,
  # partner='permute') on _batch() with key 1, jitted in _outputs.)
  images, labels, outs = _outputs()
  out = outs[kind, mode]
  mask, p = np.asarray(out.mask, np.float64), np.asarray(out.partner_index)
  x = np.asarray(images, np.float64)
  np.testing.assert_allclose(out.images,
                             mask[..., None] * x + (1 - mask[..., None]) * x[p],
                             atol=1e-6)
  np.testing.assert_allclose(out.lam, mask.mean(axis=(1, 2)), atol=1e-6)
  onehot = np.eye(K)[np.asarray(labels)]
  lam = np.asarray(out.lam)[:, None]
  np.testing.assert_allclose(out.labels, lam * onehot + (1 - lam) * onehot[p],
                             atol=1e-6)
  assert set(np.unique(mask)) <= {0.0, 1.0}
  assert (mask == 0).any()  # the stripes are really there


def test_user_mask_with_prob_choice_and_sharding():
  # Catches: a user mixer that cannot join choice / shard_mixer, or prob
  # ignored for user masks. (The first two calls are in _outputs.)
  images, labels = _batch(800)
  outs = _outputs()[2]
  rate = float(jnp.mean(outs["prob"].lam < 1))
  assert 0.45 < rate < 0.55, rate  # 800 flips: sd 0.018
  assert outs["choice"].images.shape == images.shape
  mesh = msda_jax.data_mesh()
  sharded = jax.jit(msda_jax.shard_mixer(PROB_USER, mesh))
  images, labels = _batch(16)
  out = sharded(jax.random.key(4), images, labels)
  # per-device pairing: partners stay on their device (2 samples each)
  np.testing.assert_array_equal(np.asarray(out.partner_index) // 2,
                                np.arange(16) // 2)


def test_key_contract_public_generator_reproduces_the_mixers_mask():
  # The documented contract: sample key k = split(mask_key, B)[i]; λ from
  # u = uniform(k, (2 + n + e,)); a plain mask_fn gets mask_key(k), a
  # uniform mask (and every built-in generator) gets k itself.
  # Catches: key paths that drift apart from the documentation.
  # (Key 7, B = 4, both sides under jit in _outputs.)
  outs = _outputs()[2]
  for i, (mixer, _, _, _) in enumerate(KEY_CASES):
    masks, generated = outs["key", i]
    for j in range(4):
      np.testing.assert_allclose(masks[j], generated[j], atol=1e-6,
                                 err_msg=mixer.name)


def test_alpha_bounds_draw_uniform_lambda():
  # Catches: (low, high) read as a Beta α, or the bounds ignored.
  # (mixup(alpha=(0.1, 0.9)) on 4000 1x1 images, key 0, in _outputs.)
  lam = np.asarray(_outputs()[2]["alpha_bounds"])
  assert lam.shape == (4000,)
  assert lam.min() >= 0.1 and lam.max() <= 0.9
  # U(0.1, 0.9): mean 0.5, variance 0.8² / 12 = 0.0533 (sd of the mean 0.004)
  assert abs(lam.mean() - 0.5) < 0.015 and abs(lam.var() - 0.0533) < 0.005


@pytest.mark.parametrize("out, match", [
    (lambda k, s, l: jnp.ones((3, 3)), "shape"),
    (lambda k, s, l: (jnp.ones(s), 1.0, 2.0, 3.0), "tuple of 4"),
])
def test_bad_mask_fn_outputs_are_clear_errors(out, match):
  # Catches: a wrong-shaped user mask broadcast silently into the blend.
  images, labels = _batch()
  with pytest.raises(ValueError, match=match):
    msda_jax.mask_mixer(out, num_classes=K)(jax.random.key(0), images, labels)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=(0.5, 0.2)), "alpha"),
    (dict(alpha="x"), "alpha"), (dict(prob=1.5), "prob"),
    (dict(mode="all"), "mode"), (dict(partner="next"), "partner"),
])
def test_bad_options_name_the_argument(kwargs, match):
  with pytest.raises(ValueError, match=match):
    msda_jax.mask_mixer(_stripe, **kwargs)
  with pytest.raises(ValueError, match="callable"):
    msda_jax.mask_mixer("cutmix")
  with pytest.raises(ValueError, match="num_uniforms"):
    msda_jax.uniform_mask(_stripe_on_uniforms, num_uniforms=-1)


def test_user_mixers_compare_by_value():
  # Catches: mixers compared by closure identity (a static-arg jit would
  # then recompile for every equal mixer).
  a = msda_jax.mask_mixer(functools.partial(_stripe), alpha=0.5)
  b = msda_jax.mask_mixer(functools.partial(_stripe), alpha=0.5)
  assert a == b and hash(a) == hash(b)
  assert a != msda_jax.mask_mixer(functools.partial(_stripe), alpha=0.4)
  u = lambda: msda_jax.uniform_mask(_stripe_on_uniforms, num_uniforms=1)
  assert msda_jax.mask_mixer(u()) == msda_jax.mask_mixer(u())


def test_labels_none_mixes_images_only():
  # Catches: dense-only users forced to invent image labels, or None
  # skipping the image checks.
  images, _, outs = _outputs()
  out = outs["labels_none"]   # cutmix()(key 0, images, None) under jit
  assert out.labels is None and out.images.shape == images.shape
  with pytest.raises(ValueError, match="rank 3 to 5"):
    msda_jax.cutmix()(jax.random.key(0), images[..., 0, 0], None)


@pytest.mark.parametrize("factory", [msda_jax.mixup, msda_jax.cutmix,
                                     msda_jax.hmix, msda_jax.gmix, msda_jax.fmix])
def test_factories_name_bad_alpha_clearly(factory):
  # Catches: the readable name built before alpha is checked (an IndexError
  # or a float() error instead of a message naming alpha).
  for bad in [(0.2,), "x", (0.9, 0.1)]:
    with pytest.raises(ValueError, match="alpha"):
      factory(alpha=bad)


def test_numpy_ints_are_accepted_as_num_classes():
  # Catches: num_classes checked with isinstance(int) (np.int64 from a
  # dataset's metadata refused).
  assert msda_jax.mixup(num_classes=np.int64(10)).num_classes == 10
  with pytest.raises(ValueError, match="num_classes"):
    msda_jax.mixup(num_classes=np.float64(2.5))
