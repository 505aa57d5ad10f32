"""pair_weights: the paper's pixel-pair weight E[(1 - M_k)(1 - M_l)] by offset.

Checked against the spec's table (shared/docs/methods.md, Part 1), closed forms
(Mixup: E[(1 - λ)²]; CutMix: an exact enumeration of the spec's box rule),
deterministic masks (every pixel pair counted once), and the honesty of the
reported standard errors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax
from msda_jax._pair_weights import PairWeights, pair_weights

KEY = jax.random.key(0)
SHAPE = (32, 32)
TABLE_OFFSETS = (0, 1, 2, 4, 8, 16, 24)
# The spec's table: 32x32, λ ~ U(0, 1), horizontal offsets TABLE_OFFSETS.
TABLE = {
    "mixup": (msda_jax.mixup_mask,
              (.330, .330, .330, .330, .330, .330, .330)),
    "cutmix": (msda_jax.cutmix_mask,
               (.294, .287, .279, .263, .222, .117, .030)),
    "hmix r=.5": (functools.partial(msda_jax.hmix_mask, r=0.5),
                  (.368, .367, .365, .360, .348, .330, .320)),
    "gmix": (msda_jax.gmix_mask,
             (.429, .427, .425, .418, .398, .365, .364)),
}
# 2^16 masks: standard errors 0.0007 (CutMix) to 0.0015 (GMix), so the
# 0.01 tolerance is not eaten by noise (the table itself is off by up to
# 0.0054 from the exact CutMix values: see test_cutmix_matches_exact_values).
TABLE_SAMPLES = 1 << 16
# Beyond the table, in the same runs: vertical, diagonal and negative offsets.
EXTRA_OFFSETS = ((4, 0), (16, 0), (3, 4), (-3, 4), (7, -11), (-31, -31))
OFFSETS = tuple((0, d) for d in TABLE_OFFSETS) + EXTRA_OFFSETS
IN_TABLE = slice(0, len(TABLE_OFFSETS))


@pytest.fixture(scope="module")
def table_runs():
  """The four methods of the table, one compiled run each."""
  return {name: pair_weights(KEY, mask_fn, SHAPE, offsets=OFFSETS,
                             num_samples=TABLE_SAMPLES)
          for name, (mask_fn, _) in TABLE.items()}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_reproduces_the_spec_table(table_runs, name):
  # Catches: M used instead of 1 - M (CutMix's weight would be ~0.7 and grow
  # with distance), a wrong λ law.
  w = table_runs[name]
  mean, stderr = w.mean[IN_TABLE], w.stderr[IN_TABLE]
  assert stderr.max() < 0.0016, stderr
  np.testing.assert_allclose(mean, TABLE[name][1], atol=0.01)
  if name == "mixup":
    np.testing.assert_allclose(w.mean, w.mean[0], rtol=1e-5)  # flat
    # The closed form E[(1 - λ)²] = 1/3 for λ ~ U(0, 1).
    assert abs(w.mean[0] - 1 / 3) < 3 * w.stderr[0], (w.mean[0], w.stderr[0])
  else:
    assert np.all(np.diff(mean[:-1]) < 0), mean  # decays with distance


def _exact_cutmix(shape, offsets):
  """E[(1 - M_k)(1 - M_{k+d})] for the spec's CutMix rule, λ ~ U(0, 1).

  s = sqrt(1 - λ) has P(s <= t) = t², the box sides are floor(n s), rows
  [c - side // 2, c + side // 2) clipped, the centre uniform per axis. The box
  indicator is a product over axes, and so is the pair average: enumerate the
  intervals of s on which the sides are constant, and each axis's centres.
  """
  cuts = sorted({c / n for n in shape for c in range(n + 1)})
  total = np.zeros(len(offsets))
  for low, high in zip(cuts[:-1], cuts[1:]):
    mid = (low + high) / 2
    term = np.ones(len(offsets))
    for axis, n in enumerate(shape):
      side = int(np.floor(n * mid))
      factor = np.zeros(len(offsets))
      for centre in range(n):
        inside = np.zeros(n)
        inside[max(centre - side // 2, 0):max(centre + side // 2, 0)] = 1.0
        for i, offset in enumerate(offsets):
          d = offset[axis]
          pairs = inside[max(0, -d):n - max(0, d)] * inside[max(0, d):n - max(0, -d)]
          factor[i] += pairs.mean() / n
      term *= factor
    total += (high ** 2 - low ** 2) * term
  return total


def test_cutmix_matches_exact_values(table_runs):
  # Exact values from the spec's rule, including vertical, diagonal and
  # negative offsets. Catches a wrong pair slicing for negative or vertical
  # offsets, M for 1 - M, and dishonestly small standard errors.
  w = table_runs["cutmix"]
  exact = _exact_cutmix(SHAPE, OFFSETS)
  assert exact[-1] == 0.0  # only a full-image box covers opposite corners
  np.testing.assert_array_less(np.abs(w.mean - exact), 3 * w.stderr + 1e-7)
  # The spec's table row is up to 0.0054 below the exact values.
  np.testing.assert_allclose(exact[IN_TABLE], TABLE["cutmix"][1], atol=0.006)


def test_gmix_is_isotropic(table_runs):
  # GMix's blob is round: on a square grid vertical and horizontal offsets
  # weigh alike, and so do (3, 4) and (-3, 4). Catches the row offset
  # applied with the wrong sign or ignored.
  w = table_runs["gmix"]
  by_offset = dict(zip(map(tuple, w.offsets.tolist()), zip(w.mean, w.stderr)))
  for a, b in (((0, 4), (4, 0)), ((0, 16), (16, 0)), ((3, 4), (-3, 4))):
    (ma, sa), (mb, sb) = by_offset[a], by_offset[b]
    assert abs(ma - mb) < 3 * np.hypot(sa, sb), (a, b, ma, mb)
  # Distance 5 lies between distances 4 and 8.
  assert by_offset[(0, 8)][0] < by_offset[(3, 4)][0] < by_offset[(0, 4)][0]


def _beta_second_moment(alpha):
  # λ ~ Beta(α, α): E[λ] = 1/2, Var λ = 1 / (4 (2α + 1)), and 1 - λ has the
  # same law, so E[(1 - λ)²] = 1/4 + 1 / (4 (2α + 1)) = (α + 1) / (2 (2α + 1)).
  return (alpha + 1) / (2 * (2 * alpha + 1))


@pytest.mark.parametrize("method, alpha, expected", [
    (msda_jax.mixup_mask, 0.2, _beta_second_moment(0.2)),      # 0.4286
    # λ ~ U(a, b): E[(1 - λ)²] = ((1 - a)³ - (1 - b)³) / (3 (b - a)).
    (msda_jax.mixup_mask, (0.2, 0.6), (0.8 ** 3 - 0.4 ** 3) / (3 * 0.4)),
    # A mixer uses its own α and prob: prob = 1/2 halves the weight.
    (msda_jax.mixup(alpha=0.5, prob=0.5), None, _beta_second_moment(0.5) / 2),
    (msda_jax.none(), None, 0.0),
])
def test_mixup_matches_its_closed_form(method, alpha, expected):
  # Catches: alpha not passed on to λ (α = 0.2 would give 1/3), a mixer's
  # own α or prob ignored (1/3 or 0.375 instead of 0.1875), M for 1 - M with
  # asymmetric λ bounds (E[λ²] = 0.1733 for U(0.2, 0.6) instead of 0.4133).
  # (α = 1, λ ~ U(0, 1), 1/3: in test_reproduces_the_spec_table.)
  w = pair_weights(KEY, method, (4, 6), offsets=[0, 3, (2, -5)],
                   num_samples=1 << 14, alpha=alpha)
  np.testing.assert_allclose(w.mean, w.mean[0], rtol=1e-5)  # flat
  if expected == 0.0:
    assert np.all(w.mean == 0) and np.all(w.stderr == 0)
  else:
    assert abs(w.mean[0] - expected) < 3 * w.stderr[0], (w.mean, w.stderr)
    assert w.stderr[0] < 0.004


SMALL = dict(method=msda_jax.cutmix_mask, shape=(8, 8),
             offsets=(0, 3, (2, -5)), num_samples=1000)


def test_chunk_size_does_not_change_the_estimate():
  # Sample i uses fold_in(key, i) whatever the chunk size. Catches padded
  # samples counted in a last, partial chunk (1000 = 7 x 137 + 41 =
  # 142 x 7 + 6), keys drawn per chunk, and a merge that drops the
  # between-chunk spread (chunks of 7 would lose a seventh of the variance).
  sevens = pair_weights(KEY, **dict(SMALL, chunk_size=7))
  part = pair_weights(KEY, **dict(SMALL, chunk_size=137))
  np.testing.assert_allclose(part.mean, sevens.mean, rtol=1e-5)
  np.testing.assert_allclose(part.stderr, sevens.stderr, rtol=1e-3)
  assert sevens.num_samples == part.num_samples == 1000
  assert np.all(part.stderr > 0.001)


def test_standard_errors_are_honest():
  # 40 independent keys: the estimates scatter with the reported standard
  # error. Catches stderr = std / N (30x too small) or std not divided by
  # sqrt(N) (30x too large).
  runs = [pair_weights(jax.random.key(100 + seed), **dict(SMALL, chunk_size=137))
          for seed in range(40)]
  scatter = np.std([w.mean for w in runs], axis=0, ddof=1)
  reported = np.sqrt(np.mean([np.square(w.stderr) for w in runs], axis=0))
  # With 40 replicates the sample std is within ±11% (1σ) of the truth.
  np.testing.assert_array_less(0.7 * reported, scatter)
  np.testing.assert_array_less(scatter, 1.35 * reported)


def _fixed(pattern):
  """A mask generator that always returns ``1 - pattern``."""
  def mask_fn(key, shape, lam):
    del key, lam
    return 1.0 - jnp.asarray(pattern, jnp.float32).reshape(shape)
  return mask_fn


def _brute_force(partner, offset):
  """Mean of partner[k] * partner[k + offset] over every pair in the grid."""
  values = []
  for k in np.ndindex(partner.shape):
    l = tuple(a + d for a, d in zip(k, offset))
    if all(0 <= a < n for a, n in zip(l, partner.shape)):
      values.append(partner[k] * partner[l])
  return np.mean(values)


@pytest.mark.parametrize("shape, offsets", [
    ((9,), [0, 1, 4, -4, 8, -8]),
    ((5, 7), [0, 1, -1, 6, (1, 0), (-1, 0), (4, -6), (-2, 3), (0, -3)]),
    ((3, 4, 5), [0, 2, (1, 0, 0), (2, -3, 1), (-1, 1, -4), (0, 3, 0)]),
])
def test_every_pixel_pair_counted_once_in_1d_2d_3d(shape, offsets):
  # A fixed, asymmetric partner weight P; the estimate must be the brute-force
  # average of P_k P_{k+d}, exactly, with zero spread. Catches an off-by-one
  # in the slices (n - d - 1, or d + 1), a sign error for negative offsets
  # (P is not mirror-symmetric), an int offset put on the wrong axis, and
  # the average taken over the whole grid instead of the valid pairs.
  size = int(np.prod(shape))
  partner = (np.arange(size) % 7 + 1.0).reshape(shape) / 8.0
  partner *= np.linspace(0.3, 1.0, shape[-1])
  w = pair_weights(KEY, _fixed(partner), shape, offsets=offsets,
                   num_samples=5, chunk_size=2)
  full = [(0,) * (len(shape) - 1) + (d,) if isinstance(d, int) else d
          for d in offsets]
  assert isinstance(w, PairWeights) and isinstance(w.mean, np.ndarray)
  assert w.mean.dtype == w.stderr.dtype == np.float64
  assert w.offsets.tolist() == [list(d) for d in full]
  expected = [_brute_force(partner, d) for d in full]
  np.testing.assert_allclose(w.mean, expected, rtol=1e-5)
  np.testing.assert_allclose(w.stderr, 0.0, atol=1e-6)


def test_a_choice_mixer_averages_its_methods(table_runs):
  # The pair weight is linear in the law of the mask: a 1:3 choice of CutMix
  # and Mixup weighs 1/4 CutMix + 3/4 Mixup. Catches a mixer's sampler
  # bypassed (e.g. only the first method of a choice used).
  mixed = pair_weights(KEY, msda_jax.choice(
      [msda_jax.cutmix(), msda_jax.mixup()], probs=[0.25, 0.75]),
                       SHAPE, offsets=OFFSETS, num_samples=1 << 14)
  cut = table_runs["cutmix"]
  expected = 0.25 * cut.mean + 0.75 / 3
  tolerance = 3 * np.hypot(mixed.stderr, 0.25 * cut.stderr)
  np.testing.assert_array_less(np.abs(mixed.mean - expected), tolerance)


@pytest.mark.parametrize("kwargs, match", [
    (dict(offsets=[]), "offsets"),
    (dict(offsets=3), "offsets"),
    (dict(offsets=[1.5]), "offsets"),
    (dict(offsets=[(1, 2, 3)]), "offsets"),
    (dict(offsets=[32]), "offset"),
    (dict(offsets=[(0, -32)]), "offset"),
    (dict(offsets=[0], num_samples=1), "num_samples"),
    (dict(offsets=[0], num_samples=10.0), "num_samples"),
    (dict(offsets=[0], chunk_size=0), "chunk_size"),
    (dict(offsets=[0], alpha=-1.0), "alpha"),
    (dict(offsets=[0], alpha=0.5, method=msda_jax.mixup()), "alpha"),
    (dict(offsets=[0], method="cutmix"), "method"),
    (dict(offsets=[0], shape=(0, 4)), "shape"),
    (dict(offsets=[0], shape=(2, 2, 2, 2)), "shape"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
  # Catches a bad argument that would otherwise give a silent wrong answer
  # (an offset past the border averages over no pair: NaN) or fail in XLA.
  kwargs = dict(dict(method=msda_jax.cutmix_mask, shape=SHAPE), **kwargs)
  method, shape = kwargs.pop("method"), kwargs.pop("shape")
  with pytest.raises(ValueError, match=match):
    pair_weights(KEY, method, shape, **kwargs)
