"""λ ~ Beta(α, α): the law of the loop-free sampler, its keys and its cost.

How the law is tested. float32 has a spacing of 6e-8 just below 1, so a
perfect sampler returns 1.0 for every exact draw within 3e-8 of 1 (about 2%
of draws for α = 0.2), an atom a plain KS test of λ flags. By symmetry the
small side ``m = min(λ, 1 - λ)`` has the exact law ``P(m <= t) = 2 I_t(α, α)``
for t <= 1/2 (I the regularised incomplete Beta function), and is rounded
only on the λ > 1/2 side, at the same 6e-8 scale. So we test

- the law of m above ``T0 = 1e-6`` (KS against the conditional law: the
  rounding moves that CDF by under 1e-3, well below the KS noise of 3e-3);
- the mass of m below T0 and 1e-3 (binomial z-tests);
- the side: P(λ < 1/2) = 1/2, and the same law of m on both sides;
- the deep tail on the λ < 1/2 side, where λ = m is not rounded at all:
  P(λ < t) = I_t(α, α) down to t = 1e-30 (catches a cancelling
  ``(1 - sqrt(1 - u)) / 2``, which returns 0 for every m below 3e-8).

Sample size. Against a sampler with α' = 1.1α the largest CDF gap of m above
T0 is D = 0.013 (α = 0.1) to 0.03 (α = 0.5), so with N = 2^17 draws
``sqrt(N) D`` is 3.8 to 10 and the KS p-value falls below 1e-6 (checked for
every α below, with the same keys, by ``test_wrong_alpha_is_rejected``).
Correct draws must give p > 1e-3 (fixed keys, so this is deterministic).
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import msda_jax
from msda_jax import _lam
from msda_jax import _masks
from msda_jax._engine import MethodSampler

ALPHAS = (0.1, 0.2, 0.5, 0.8, 2.0, 5.0)
N = 1 << 17
T0 = 1e-6
P_ACCEPT = 1e-3   # correct draws must have a p-value above this
P_REJECT = 1e-6   # wrong draws must have a p-value below this
Z_MAX = 4.0


def _keys(alpha):
  return jax.random.split(jax.random.key(int(round(alpha * 1000))), N)


@functools.lru_cache(maxsize=None)
def _draws(alpha: float) -> np.ndarray:
  """N draws of ``sample_lam(key, alpha)`` with a Python-float alpha."""
  fn = jax.jit(jax.vmap(lambda k: _lam.sample_lam(k, alpha)))
  return np.asarray(fn(_keys(alpha)), np.float64)


_traced = jax.jit(jax.vmap(_lam.sample_lam, in_axes=(0, None)))


def _m_cdf(t, alpha):
  """P(min(λ, 1 - λ) <= t) for λ ~ Beta(alpha, alpha)."""
  t = np.minimum(np.asarray(t, np.float64), 0.5)
  return np.minimum(2.0 * stats.beta.cdf(t, alpha, alpha), 1.0)


def _ks_small_side(lam, alpha) -> float:
  """KS p-value of m = min(λ, 1 - λ), given m >= T0, against Beta(α, α)."""
  m = np.minimum(lam, 1.0 - lam)
  f0 = _m_cdf(T0, alpha)
  cdf = lambda t: (_m_cdf(t, alpha) - f0) / (1.0 - f0)
  return stats.kstest(m[m >= T0], cdf).pvalue


def _z(count, n, p) -> float:
  return (count - n * p) / np.sqrt(n * p * (1.0 - p))


def _check_law(lam, alpha):
  """Every check of the module docstring, on draws ``lam`` of Beta(α, α)."""
  n = lam.size
  assert np.all(np.isfinite(lam)) and lam.min() >= 0.0 and lam.max() <= 1.0
  p = _ks_small_side(lam, alpha)
  assert p > P_ACCEPT, f"KS of min(λ, 1-λ) vs Beta({alpha}): p = {p:.3g}"
  m = np.minimum(lam, 1.0 - lam)
  for t in (T0, 1e-3):
    prob = float(_m_cdf(t, alpha))
    if min(n * prob, n * (1 - prob)) >= 20:
      z = _z(np.sum(m < t), n, prob)
      assert abs(z) < Z_MAX, f"P(m < {t:g}): z = {z:.2f}"
  z = _z(np.sum(lam < 0.5), n, 0.5)
  assert abs(z) < Z_MAX, f"P(λ < 1/2): z = {z:.2f}"


@pytest.mark.parametrize("alpha", ALPHAS)
def test_small_side_follows_the_exact_beta_law(alpha):
  _check_law(_draws(alpha), alpha)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_both_sides_have_the_same_law(alpha):
  # A sign that depends on the draw (not only a fair coin) breaks this.
  lam = _draws(alpha)
  m = np.minimum(lam, 1.0 - lam)
  low, high = m[(lam < 0.5) & (m >= T0)], m[(lam > 0.5) & (m >= T0)]
  assert stats.ks_2samp(low, high).pvalue > P_ACCEPT


@pytest.mark.parametrize("alpha", (0.1, 0.2))
def test_deep_tail_is_exact_without_cancellation(alpha):
  lam = _draws(alpha)
  checked = 0
  for t in (1e-9, 1e-18, 1e-30):
    prob = float(stats.beta.cdf(t, alpha, alpha))
    if N * prob < 20:
      continue
    z = _z(np.sum(lam < t), N, prob)
    assert abs(z) < Z_MAX, f"P(λ < {t:g}) = {prob:.3g}: z = {z:.2f}"
    checked += 1
  assert checked >= 1


@pytest.mark.parametrize("alpha", ALPHAS)
def test_wrong_alpha_is_rejected(alpha):
  # The power of the statistic above, shown on the same keys: a sampler
  # with 1.1 α, or one that draws every λ uniformly (α = 1, the old
  # behaviour to avoid), must fail it.
  wrong = np.asarray(_traced(_keys(alpha), 1.1 * alpha), np.float64)
  assert _ks_small_side(wrong, alpha) < P_REJECT
  uniform = np.asarray(
      jax.jit(jax.vmap(lambda k: _lam.sample_lam(k, 1.0)))(_keys(alpha)),
      np.float64)
  assert _ks_small_side(uniform, alpha) < P_REJECT


@pytest.mark.parametrize("alpha", ALPHAS)
def test_traced_alpha_matches_python_float(alpha):
  traced = np.asarray(_traced(_keys(alpha), jnp.float32(alpha)), np.float64)
  np.testing.assert_allclose(traced, _draws(alpha), rtol=1e-5, atol=3e-7)


def test_alpha_one_fast_path_is_the_plain_uniform():
  key = jax.random.key(3)
  assert _lam.sample_lam(key, 1.0) == jax.random.uniform(key, ())
  assert _lam.sample_lam(key, 1) == jax.random.uniform(key, ())
  # A traced α = 1 takes the Beta construction: still Beta(1, 1).
  lam = np.asarray(_traced(_keys(1.0), jnp.float32(1.0)), np.float64)
  assert stats.kstest(lam, "uniform").pvalue > P_ACCEPT


@pytest.mark.parametrize("jit", (False, True))
def test_edge_cases_are_finite(jit):
  eps = 2.0 ** -23  # the spacing of jax.random.uniform's float32 output
  u = np.array([0.0, eps, 0.25, 0.5 - eps, 0.5, 0.5 + eps, 0.75, 1 - eps],
               np.float32)
  u_radius, u_angle = np.meshgrid(u, u)
  fn = jax.jit(_lam.beta_from_uniforms) if jit else _lam.beta_from_uniforms
  for alpha in (1e-38, 1e-3, 0.1, 0.8, 5.0, 1e30):
    lam = np.asarray(fn(u_radius, u_angle, alpha))
    assert np.all(np.isfinite(lam)), alpha
    assert lam.min() >= 0.0 and lam.max() <= 1.0, alpha
    # W = 1 (u_radius = 0) and cos θ = 0 (u_angle = 1/2) give T = 0: λ = 1/2.
    assert np.all(lam[:, 0] == 0.5) and np.all(lam[4, :] == 0.5), alpha
    if alpha == 0.1:
      # c = 1 (u_angle = 0) at the smallest W (u_radius = 1 - eps): λ within
      # float32 of 1, and 0 at u_angle = 1 - eps. Read off the grid (an
      # elementwise function), so the eager run compiles one shape only.
      assert u_radius[0, 7] == u_radius[7, 7] == 1 - eps
      assert u_angle[0, 7] == 0.0 and u_angle[7, 7] == 1 - eps
      assert lam[0, 7] == 1.0 and lam[7, 7] == 0.0


def test_sampler_key_contract_for_alpha_not_one():
  # One threefry call: u = uniform(key, (3 + n,)); λ from u[0] and u[-1],
  # the coin u[1] < prob and the rule's uniforms u[2:2 + n] stay in place.
  rule = _masks.cutmix_rule()
  n = rule.num_uniforms
  sampler = MethodSampler(rule, alpha=0.8, prob=0.5)

  def by_hand(key):
    u = jax.random.uniform(key, (3 + n,))
    lam = _lam.beta_from_uniforms(u[0], u[-1], 0.8)
    mask, mean = rule.from_uniforms(u[2:2 + n], (8, 8), lam)
    return jnp.where(u[1] < 0.5, mask, 1.0), jnp.where(u[1] < 0.5, mean, 1.0)

  want, got = jax.tree.map(np.asarray, jax.jit(lambda key: (
      jax.vmap(by_hand)(jax.random.split(key, 16)),
      jax.vmap(lambda k: sampler(k, (8, 8)))(jax.random.split(key, 16))))(
          jax.random.key(0)))
  assert 0 < np.mean(want[1] < 1) < 1  # both branches of the coin
  np.testing.assert_allclose(got[0], want[0], atol=1e-6)
  np.testing.assert_allclose(got[1], want[1], atol=1e-6)


def test_mixup_elem_lam_follows_the_beta_law():
  # Through the public mixer: Mixup's realised λ (its mask mean) per sample.
  mixer = msda_jax.mixup(alpha=0.8, num_classes=10)
  assert mixer.mode == "elem"
  images = np.zeros((N, 1, 1, 1), np.float32)
  labels = np.zeros((N,), np.int32)
  out = jax.jit(mixer)(jax.random.key(11), images, labels)
  _check_law(np.asarray(out.lam, np.float64), 0.8)


def _while_ops(mixer) -> int:
  images = np.zeros((8, 8, 8, 3), np.float32)
  labels = np.arange(8, dtype=np.int32) % 10

  def fn(key, images, labels):
    out = mixer(key, images, labels)
    return out.images, out.labels

  hlo = jax.jit(fn).lower(jax.random.key(0), images, labels).compile().as_text()
  return len(re.findall(r"\bwhile\(", hlo))


def test_alpha_not_one_adds_no_loops_to_the_compiled_mixer():
  # A rejection sampler shows up as extra while loops (52 vs 6 before).
  def timm(alpha):
    return msda_jax.choice([msda_jax.cutmix(alpha=1.0, num_classes=10),
                            msda_jax.mixup(alpha=alpha, num_classes=10)])

  for build in (lambda a: msda_jax.mixup(alpha=a, num_classes=10), timm):
    base = _while_ops(build(1.0))
    assert base >= 1  # the threefry loops: the count is not vacuous
    assert _while_ops(build(0.8)) <= base


def test_timm_recipe_runs_sharded_in_elem_mode():
  # timm's recipe (CutMix α = 1 or Mixup α = 0.8) through shard_mixer: a
  # vmapped lax.switch in choice failed inside shard_map ("pvary is a
  # invariant->variant collective"). Same result as the per-device body.
  from jax.sharding import NamedSharding, PartitionSpec as P
  mixer = msda_jax.choice([msda_jax.cutmix(alpha=1.0, num_classes=10),
                           msda_jax.mixup(alpha=0.8, num_classes=10)])
  mesh = msda_jax.data_mesh()
  count = mesh.devices.size
  # NumPy inputs and slices (eager ones compiled a program each).
  images = np.random.default_rng(1).uniform(size=(2 * count, 8, 8, 3)).astype(
      np.float32)
  labels = np.arange(2 * count, dtype=np.int32) % 10
  sharded = jax.device_put((images, labels), NamedSharding(mesh, P("data")))
  key = jax.random.key(2)
  out = jax.tree.map(np.asarray,
                     jax.jit(msda_jax.shard_mixer(mixer, mesh))(key, *sharded))
  # The per-device body on each device's rows, with the device index folded
  # into the key: one jit, a loop over devices (lax.map).
  shards = images.reshape(count, 2, 8, 8, 3), labels.reshape(count, 2)
  ref = jax.tree.map(np.asarray, jax.jit(lambda key, x, y: jax.lax.map(
      lambda a: mixer(jax.random.fold_in(key, a[0]), a[1], a[2]),
      (jnp.arange(count), x, y)))(key, *shards))
  for d in range(count):
    rows = slice(2 * d, 2 * d + 2)
    np.testing.assert_allclose(out.images[rows], ref.images[d], atol=1e-6)
    np.testing.assert_allclose(out.lam[rows], ref.lam[d], atol=1e-6)
