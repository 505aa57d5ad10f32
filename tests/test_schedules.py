"""Schedules: α, prob and choice weights as functions of the training step."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax

K = 4
OFF_AT = 10


def off_after(step):
  return jnp.where(step < OFF_AT, 1.0, 0.0)


def _batch(b=8, h=6, w=6):
  # NumPy: eager jax.random and comparisons compile a program per shape.
  images = np.random.default_rng(0).uniform(size=(b, h, w, 3)).astype(np.float32)
  return images, (np.arange(b) % K).astype(np.int32)


def _np(out):
  """A MixResult (or any pytree) as NumPy, so checks on it compile nothing."""
  return jax.tree.map(np.asarray, out)


def test_prob_schedule_is_read_at_the_step_without_retracing():
  # Catches: the schedule evaluated once at trace time (or at step 0) and
  # baked into the compiled function, the step ignored, or a retrace per step.
  mixer = msda_jax.mixup(prob=off_after, num_classes=K)
  images, labels = _batch()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def mix(step):
    return mixer(jax.random.key(1), images, labels, step=step)

  on, off = _np(mix(jnp.asarray(3))), _np(mix(jnp.asarray(12)))
  mix(jnp.asarray(OFF_AT))  # A third step: still one trace.
  # prob 1: every sample is blended (λ ~ U(0, 1) is < 1 almost surely).
  assert bool((on.lam < 1).all()), on.lam
  # prob 0: the batch passes through unchanged.
  assert bool((off.lam == 1).all()) and bool((off.images == images).all())


def test_prob_schedule_fraction_mixed_follows_the_value():
  # Catches: the coin compared with the wrong side (u > prob) or with the
  # prob of another step: a 0.25 schedule must mix about a quarter.
  mixer = msda_jax.mixup(prob=lambda s: 0.25 + 0.5 * (s >= 5), num_classes=K)
  images, labels = _batch(b=4096, h=1, w=1)
  mix = jax.jit(lambda step: mixer(jax.random.key(2), images, labels, step=step))
  low = float(np.mean(np.asarray(mix(0).lam) < 1))
  high = float(np.mean(np.asarray(mix(7).lam) < 1))
  # Binomial SE at n=4096: 0.007; 0.03 is > 4 SE and far below 0.5.
  assert abs(low - 0.25) < 0.03 and abs(high - 0.75) < 0.03, (low, high)


def _alpha_schedule(s):
  return jnp.where(s < OFF_AT, 0.2, 4.0)


@functools.cache
def _alpha_scheduled_lam():
  """One compiled λ draw for both steps of the α-schedule test."""
  mixer = msda_jax.mixup(alpha=_alpha_schedule, num_classes=K)
  images, labels = _batch(b=8192, h=1, w=1)
  return jax.jit(lambda s: mixer(jax.random.key(3), images, labels, step=s).lam)


@pytest.mark.parametrize("step, alpha, tol", [(3, 0.2, 0.004), (12, 4.0, 0.0015)])
def test_alpha_schedule_gives_beta_of_the_scheduled_alpha(step, alpha, tol):
  # Catches: α taken from another step, or the Beta path not fed the traced
  # α. Var Beta(α, α) = 1 / (4 (2α + 1)); n = 8192 gives SE 0.001 at
  # α = 0.2 and 0.0004 at α = 4, so tol is 4 SE, and α = 0.25 (var 0.1667)
  # or α = 3 (var 0.0357) would fail.
  var = float(np.var(np.asarray(_alpha_scheduled_lam()(step))))
  assert abs(var - 1 / (4 * (2 * alpha + 1))) < tol, var


def test_scheduled_alpha_of_one_is_uniform():
  # Catches: a traced α == 1 mishandled by the Beta path (λ = 1/2, or NaN);
  # U(0, 1) has mean 1/2 and variance 1/12 (SE 0.0009 at n = 8192).
  mixer = msda_jax.mixup(alpha=optax.constant_schedule(1.0), num_classes=K)
  images, labels = _batch(b=8192, h=1, w=1)
  lam = np.asarray(jax.jit(lambda s: mixer(jax.random.key(4), images, labels, step=s).lam)(0))
  assert abs(float(np.var(lam)) - 1 / 12) < 0.004
  assert abs(float(np.mean(lam)) - 0.5) < 0.02


def test_optax_linear_schedule_ramps_alpha():
  # Catches: an optax schedule (a closure of jnp ops on a traced int) that
  # does not work as an α: the ramp 0.2 -> 4 must show at its two ends.
  schedule = optax.linear_schedule(0.2, 4.0, transition_steps=100)
  mixer = msda_jax.mixup(alpha=schedule, num_classes=K)
  images, labels = _batch(b=8192, h=1, w=1)
  mix = jax.jit(lambda s: jnp.var(mixer(jax.random.key(5), images, labels,
                                        step=s).lam))
  assert abs(float(mix(0)) - 1 / 5.6) < 0.004
  assert abs(float(mix(100)) - 1 / 36) < 0.0015


def test_scheduled_mixer_without_step_is_a_clear_error():
  # Catches: a missing step silently read as step 0, or a TypeError deep
  # inside the trace instead of a message naming step=.
  images, labels = _batch()
  scheduled = [
      msda_jax.mixup(prob=off_after, num_classes=K),
      msda_jax.cutmix(alpha=lambda s: 0.5, num_classes=K),
      msda_jax.choice([msda_jax.cutmix(num_classes=K),
                       msda_jax.mixup(prob=off_after, num_classes=K)]),
      msda_jax.choice([msda_jax.cutmix(num_classes=K),
                       msda_jax.mixup(num_classes=K)],
                      probs=lambda s: jnp.array([1.0, 0.0])),
  ]
  for mixer in scheduled:
    assert mixer.scheduled
    with pytest.raises(ValueError, match="step="):
      mixer(jax.random.key(0), images, labels)
    with pytest.raises(ValueError, match="step="):
      jax.jit(mixer)(jax.random.key(0), images, labels)


def _two_argument_sampler(key, shape):  # A user's sampler: no step.
  del key
  return jnp.full(shape, 0.5), jnp.asarray(0.5)


def test_unscheduled_mixer_ignores_step():
  # Catches: a step passed to an unscheduled mixer reaching a sampler that
  # does not take one (TypeError), or changing its draws. All mixers, with
  # and without a step, in one jit (eager dispatch compiles every op).
  images, labels = _batch()
  mixers = (msda_jax.cutmix(num_classes=K), msda_jax.fmix(num_classes=K),
            msda_jax.none(num_classes=K),
            msda_jax.Mixer(_two_argument_sampler, num_classes=K),
            msda_jax.choice([msda_jax.cutmix(num_classes=K),
                             msda_jax.mixup(num_classes=K)]))
  for mixer in mixers:
    assert not mixer.scheduled
  outs = jax.jit(lambda k, x, y: [
      (m(k, x, y), m(k, x, y, step=7)) for m in mixers])(
          jax.random.key(0), images, labels)
  for plain, stepped in outs:
    chex.assert_trees_all_equal(plain, stepped)


def test_fixed_prob_zero_passes_through_and_scheduled_zero_still_draws():
  # Catches: a scheduled prob compared with 0 at build time (a callable is
  # never == 0, but `not prob` style checks would drop it), and a fixed 0
  # losing its pass-through.
  assert msda_jax.mixup(prob=0.0, num_classes=K).sampler is None
  mixer = msda_jax.mixup(prob=lambda s: 0.0, num_classes=K)
  assert mixer.sampler is not None
  images, labels = _batch()
  out = _np(jax.jit(lambda k, x, y: mixer(k, x, y, step=0))(
      jax.random.key(0), images, labels))
  assert bool((out.lam == 1).all()) and bool((out.images == images).all())


def test_equality_and_names_with_schedules():
  # Catches: schedules breaking hashing (jit with the mixer static) or value
  # equality of fixed mixers, and names that crash on a callable.
  sched = optax.linear_schedule(1.0, 0.0, 10)
  a = msda_jax.mixup(prob=sched, num_classes=K)
  assert a == msda_jax.mixup(prob=sched, num_classes=K)
  assert hash(a) == hash(msda_jax.mixup(prob=sched, num_classes=K))
  assert a != msda_jax.mixup(prob=lambda s: sched(s), num_classes=K)
  assert a.name == "mixup(alpha=1, prob=schedule)"
  assert msda_jax.hmix(alpha=sched, num_classes=K).name.startswith(
      "hmix(alpha=schedule, prob=1")
  c = msda_jax.choice([msda_jax.cutmix(num_classes=K),
                       msda_jax.mixup(num_classes=K)],
                      probs=lambda s: jnp.array([1.0, 1.0]))
  assert c.name.endswith("probs=schedule)")


def test_choice_weight_schedule_switches_method():
  # Catches: the weight schedule ignored (fixed weights, or evaluated at
  # step 0). CutMix masks are binary; Mixup masks are one λ per sample.
  images, labels = _batch(b=16)
  mixer = msda_jax.choice(
      [msda_jax.cutmix(num_classes=K), msda_jax.mixup(num_classes=K)],
      probs=lambda s: jnp.where(s < OFF_AT, jnp.array([1.0, 0.0]),
                                jnp.array([0.0, 1.0])))
  mix = jax.jit(chex.assert_max_traces(
      lambda s: mixer(jax.random.key(6), images, labels, step=s), n=1))
  early, late = _np(mix(jnp.asarray(0))), _np(mix(jnp.asarray(20)))
  assert bool(((early.mask == 0) | (early.mask == 1)).all())
  flat = late.mask.reshape(16, -1)
  assert bool((flat == flat[:, :1]).all())       # one weight per sample
  assert bool(((flat > 0) & (flat < 1)).any())   # and it is a blend


def test_choice_weight_schedule_of_wrong_length_raises():
  # Catches: a weight vector of the wrong length silently broadcast.
  mixer = msda_jax.choice(
      [msda_jax.cutmix(num_classes=K), msda_jax.mixup(num_classes=K)],
      probs=lambda s: jnp.ones(3))
  images, labels = _batch()
  # Under jit: the check is on the traced weights' shape, so it raises while
  # tracing, before anything compiles (eager dispatch would compile the ops
  # before it).
  with pytest.raises(ValueError, match="one weight per mixer"):
    jax.jit(lambda k, x, y: mixer(k, x, y, step=0))(jax.random.key(0), images, labels)


@pytest.mark.parametrize("across", [False, True])
def test_shard_mixer_passes_the_step(across):
  # Catches: shard_mixer / per_device dropping the step (a scheduled mixer
  # then fails or reads a stale value) or retracing on a new step.
  chex.clear_trace_counter()  # The lambda below is counted per code object.
  mesh = msda_jax.data_mesh()
  n = len(jax.devices())
  images, labels = _batch(b=2 * n)
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  images, labels = jax.device_put((images, labels), sharding)
  mix_fn = msda_jax.shard_mixer(
      msda_jax.mixup(prob=off_after, num_classes=K), mesh,
      across_devices=across)
  mix = jax.jit(chex.assert_max_traces(
      lambda s: mix_fn(jax.random.key(7), images, labels, s), n=1))
  on, off = _np(mix(jnp.asarray(3))), _np(mix(jnp.asarray(12)))
  assert bool((on.lam < 1).all()) and bool((off.lam == 1).all())
  with pytest.raises(ValueError, match="step="):
    mix_fn(jax.random.key(7), images, labels)


def test_config_schedules_become_step_schedules():
  # Catches: msda.prob_schedule left in the dict (from_config rejects or
  # ignores it) or its epoch boundary not converted to steps.
  import ml_collections  # pylint: disable=import-outside-toplevel
  from train import train  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict(dict(msda=dict(
      method='mixup', prob=1.0, num_classes=None,
      prob_schedule=dict(kind='off_after_epoch', epoch=2))))
  mixer = msda_jax.from_config(train.msda_config(config, K, 10))
  images, labels = _batch()
  mix = jax.jit(lambda s: mixer(jax.random.key(0), images, labels, step=s).lam)
  assert bool((np.asarray(mix(19)) < 1).all()) and bool((np.asarray(mix(20)) == 1).all())
  with pytest.raises(ValueError, match="prob_schedule"):
    train.mix_schedule(dict(kind='cosine'), 10)
