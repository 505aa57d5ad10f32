"""Mixers compare and hash by value, so a jit with the mixer static compiles once."""

import functools

import jax
import jax.numpy as jnp
import pytest

import msda_jax
from msda_jax._config import BUILTIN_METHODS


def _band(key, shape, lam, *, w):
  """A user's mask: the partner takes the first ``w`` columns."""
  del key, lam
  return (jnp.arange(shape[-1]) >= w) * jnp.ones(shape)


def _band_u(u, shape, lam, *, w):
  del u
  return _band(None, shape, lam, w=w)


@pytest.mark.parametrize("method", sorted(BUILTIN_METHODS))
def test_every_factory_builds_equal_and_equally_hashed_mixers(method):
  # Catches a sampler or mask rule compared by identity (two calls of the
  # same factory would differ and recompile every static jit).
  factory = BUILTIN_METHODS[method]
  a, b = factory(num_classes=10), factory(num_classes=10)
  assert a is not b and a == b and hash(a) == hash(b)
  assert a != factory(num_classes=11)


def test_different_options_are_not_equal():
  # Catches an option left out of the comparison (a jit would then reuse
  # the compiled mixer of another option: silently wrong masks).
  base = msda_jax.hmix(num_classes=10)
  for other in (msda_jax.hmix(r=0.3, num_classes=10),
                msda_jax.hmix(alpha=0.4, num_classes=10),
                msda_jax.hmix(prob=0.5, num_classes=10),
                msda_jax.hmix(mode="pair", num_classes=10),
                msda_jax.hmix(partner="roll", num_classes=10),
                msda_jax.hmix(label_smoothing=0.1, num_classes=10),
                msda_jax.gmix(num_classes=10)):
    assert base != other, other.name
  # The sampler itself tells them apart (not only the readable name).
  same_name = lambda **kw: msda_jax.mask_mixer(
      functools.partial(_band, w=2), name="band", **kw)
  assert same_name(prob=0.5) != same_name() == same_name(prob=1.0)
  assert same_name(alpha=0.5) != same_name()
  assert msda_jax.cutmix(minmax=(0.2, 0.8)) != msda_jax.cutmix()
  assert msda_jax.cutmix(minmax=(0.2, 0.8)) == msda_jax.cutmix(minmax=[0.2, 0.8])
  assert msda_jax.mixup(num_classes=dict(a=1, b=2)) == msda_jax.mixup(
      num_classes=dict(b=2, a=1))


def test_choice_compares_by_value():
  # Catches ChoiceSampler compared by identity, or probs left out.
  build = lambda p: msda_jax.choice(
      [msda_jax.cutmix(num_classes=3), msda_jax.mixup(alpha=0.8, num_classes=3)],
      probs=[p, 1 - p])
  assert build(0.5) == build(0.5) and hash(build(0.5)) == hash(build(0.5))
  assert build(0.5) != build(0.25)
  nested = lambda: msda_jax.choice([build(0.5), msda_jax.none(num_classes=3)])
  assert nested() == nested()


def test_from_config_equals_the_factory():
  # Catches from_config building something the factory would not (another
  # default, an option dropped): equal mixers are the same mixer.
  cfg = dict(method="hmix", alpha=0.4, r=0.3, mode="pair", prob=0.8,
             partner="permute", label_smoothing=0.1, num_classes=10,
             minmax=None)
  assert msda_jax.from_config(cfg) == msda_jax.hmix(
      alpha=0.4, r=0.3, mode="pair", prob=0.8, partner="permute",
      label_smoothing=0.1, num_classes=10)


def test_user_masks_built_the_same_way_are_equal():
  # Catches a functools.partial (or uniform_mask) compared by identity: a
  # user's factory would then recompile on every call.
  a = msda_jax.mask_mixer(functools.partial(_band, w=2), num_classes=4)
  b = msda_jax.mask_mixer(functools.partial(_band, w=2), num_classes=4)
  assert a == b and hash(a) == hash(b)
  assert a != msda_jax.mask_mixer(functools.partial(_band, w=3), num_classes=4)
  u = lambda w: msda_jax.mask_mixer(
      msda_jax.uniform_mask(_band_u, num_uniforms=0, w=w), num_classes=4)
  assert u(2) == u(2) and hash(u(2)) == hash(u(2)) and u(2) != u(3)
  # An unhashable option cannot be compared by value: the mixer still
  # hashes (by identity) and equals itself.
  odd = msda_jax.mask_mixer(functools.partial(_band, w=[2]), num_classes=4)
  assert odd == odd and isinstance(hash(odd), int)


@pytest.mark.parametrize("make", [
    lambda: msda_jax.hmix(r=0.3, num_classes=4),
    lambda: msda_jax.choice([msda_jax.cutmix(num_classes=4),
                             msda_jax.mixup(num_classes=4)]),
    lambda: msda_jax.mask_mixer(functools.partial(_band, w=2), num_classes=4),
    lambda: msda_jax.from_config(dict(method="gmix", num_classes=4)),
], ids=["hmix", "choice", "user_partial", "from_config"])
def test_jit_with_the_mixer_static_traces_once_for_equal_mixers(make):
  # Catches a mixer compared by identity: each separately built (equal)
  # mixer would retrace and recompile the training step.
  traces = []

  def step(mixer, key, images, labels):
    traces.append(mixer.name)
    return mixer(key, images, labels).labels

  jitted = jax.jit(step, static_argnums=0)
  images, labels = jnp.ones((4, 6, 6, 1)), jnp.arange(4) % 4
  first = jitted(make(), jax.random.key(0), images, labels)
  second = jitted(make(), jax.random.key(0), images, labels)
  assert len(traces) == 1
  assert jnp.array_equal(first, second)
  jitted(msda_jax.none(num_classes=4), jax.random.key(0), images, labels)
  assert len(traces) == 2  # A different mixer does trace (the counter works).
