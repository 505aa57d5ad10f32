"""FMix masks against the spec (shared/docs/methods.md, Part 2, "FMix").

Every test names, in a comment, the plausible bug it is there to catch.

Note on the reference: the spec is the paper's definition (a complex Gaussian
per real-FFT bin). The ecs-vlc/FMix code reshapes its (..., 2) real/imaginary
array into the last axis before ``irfftn``, which interleaves them as
consecutive last-axis bins; its masks are measurably rougher along the last
axis (fraction of equal horizontal neighbours at offset 4, 32x32, λ = 0.5:
0.56 against 0.77 for the definition). ``_numpy_fmix`` below follows the
definition, as ``fmix_mask`` does.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msda_jax import _fmix
from msda_jax._fmix import fmix_draw, fmix_mask
from jax.extend.random import threefry2x32_p

SHAPES = ((64,), (32, 32), (24, 40), (8, 12, 10), (15, 9), (41,), (1,))
SOFT_SHAPES = ((64,), (24, 40), (8, 12, 10))
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
# A batched draw with seed s uses the first keys of split(key(s), BATCH).
BATCH = 512


def _k_bounds(lam, size):
  """floor and ceil of λN, computed in float32 as the generator does."""
  scaled = np.float32(lam) * np.float32(size)
  return int(np.floor(scaled)), int(np.ceil(scaled))


def _keys(seed):
  return jax.random.split(jax.random.key(seed), BATCH)


def _request(shape, lams, seed=0, decay_power=3.0, max_soft=0.0):
  return (tuple(shape), float(decay_power), float(max_soft), int(seed),
          tuple(np.asarray(lams, np.float32).tolist()))


# Every batched draw a test reads, as its _batch arguments. Compiling is
# most of this file's time, and one program for all of them (and for every
# jitted helper below) compiles in about half the time of one per
# (shape, options): _programs builds it once; _batch reads its results.
MEAN_SHAPES = ((64,), (32, 32), (24, 40), (8, 12, 10))
TOP_K_SHAPES = ((32, 32), (24, 40), (8, 12, 10))
SPECTRUM_SHAPES = ((32, 32), (24, 40), (8, 12, 10), (64,), (5, 7))
TIE_SHAPES = ((32, 32), (7, 5), (4, 5, 6))
EARLY_STOP_CASES = ((0, (12, 10)), (1, (37,)), (2, (4, 5, 6)))
EXTREME_LAMS = [0.0, 1.0, 1e-6, 1 - 1e-6] * 8
SOFT_LAMS = [0.5, 0.1, 0.95, 0.4]
VMAP_LAMS = np.array([0.0, 0.2, 0.5, 0.5, 0.8, 1.0], np.float32)
_PLAN = (
    [_request(s, EDGE_LAMS * 4) for s in SHAPES]
    + [_request(s, EXTREME_LAMS, max_soft=soft) for s in SOFT_SHAPES for soft in (0.0, 0.3)]
    + [_request(s, [0.31] * 400) for s in MEAN_SHAPES]
    + [_request(s, np.linspace(0.0, 1.0, 41, dtype=np.float32), seed=1) for s in MEAN_SHAPES]
    + [_request(s, [1.0, 0.0, 0.77], seed=3) for s in ((41,), (24, 40))]
    + [_request(s, np.linspace(0.05, 0.95, 16)) for s in MEAN_SHAPES]
    + [_request(s, [0.4] * 3, seed=4) for s in TOP_K_SHAPES]
    + [_request((32, 32), [0.5] * 200, decay_power=d) for d in (2.0, 3.0, 5.0)]
    + [_request(s, [0.5] * 500, seed=11) for s in MEAN_SHAPES]
    + [_request(s, SOFT_LAMS, seed=5, max_soft=soft) for s in SOFT_SHAPES
       for soft in (0.0, 0.3)]
    + [_request((24, 40), np.linspace(0.0, 1.0, 65), seed=2, max_soft=soft)
       for soft in (0.0, 1e-9)]
    + [_request((24, 40), VMAP_LAMS, seed=9)]
    + [_request((32, 32), [1.5, -0.5, 7.0, -3.0])]
)


def _key_data(key):
  return np.asarray(jax.random.key_data(key))


@functools.cache
def _programs():
  """Every planned draw, and the jitted helpers' results, from one jit.

  Keys go in as data (no constant folding of the hash or the FFT)."""
  groups = {}
  for request in dict.fromkeys(_PLAN):
    groups.setdefault(request[:3], []).append(request)
  seeds = sorted({r[3] for r in _PLAN} | {4, 21})
  keys = {seed: _key_data(_keys(seed)) for seed in seeds}
  # Each group padded to the same batch: XLA compiles identical kernels
  # once, so equal shapes across groups roughly halve the compile time.
  padded = 1280
  draws_in = []
  for requests in groups.values():
    assert sum(len(r[4]) for r in requests) <= padded
    data = np.zeros((padded, 2), np.uint32)
    lams = np.full((padded,), 0.5, np.float32)
    start = 0
    for r in requests:
      data[start:start + len(r[4])] = keys[r[3]][:len(r[4])]
      lams[start:start + len(r[4])] = r[4]
      start += len(r[4])
    draws_in.append((data, lams))
  seed_keys = np.stack([_key_data(jax.random.key(s)) for s in range(8)])
  extra_in = dict(
      seed_keys=seed_keys, top_k_keys=keys[4][:3], normal_keys=keys[21],
      lam=np.float32(0.37), half=np.float32(0.5),
      zero=np.zeros((1,), np.uint32), counter=np.arange(1000, dtype=np.uint32),
      seed=np.array([0x13198A2E, 0x03707344], np.uint32))
  configs = list(groups)

  def run(draws_in, extra):
    wrap = jax.random.wrap_key_data
    draws = []
    for (shape, decay, soft), (data, lams) in zip(configs, draws_in):
      draws.append(jax.vmap(lambda k, l, shape=shape, decay=decay, soft=soft: fmix_draw(
          k, shape, l, decay_power=decay, max_soft=soft))(wrap(data), lams))
    key = lambda s: wrap(extra["seed_keys"][s])
    out = {}
    for shape in SPECTRUM_SHAPES:
      for seed in range(3):
        out["spectrum", shape, seed] = _fmix._spectrum(key(seed), shape, 3.0)
        out["g", shape, seed] = _fmix._low_freq_image(key(seed), shape, 3.0)
    for shape in TOP_K_SHAPES:
      for i in range(3):
        spectrum_key = jax.random.split(wrap(extra["top_k_keys"][i]))[1]
        out["top_k_g", shape, i] = _fmix._low_freq_image(spectrum_key, shape, 3.0)
    for shape in TIE_SHAPES:
      out["g", shape, 0] = _fmix._low_freq_image(key(0), shape, 3.0)
    for seed, shape in EARLY_STOP_CASES:
      out["g", shape, seed] = _fmix._low_freq_image(key(seed), shape, 3.0)
    out["big_g"] = _fmix._low_freq_image(key(0), (224, 224), 20.0)
    out["big_draw"] = fmix_draw(key(0), (224, 224), extra["half"], decay_power=20.0)
    for shape, soft in (((24, 40), 0.0), ((24, 40), 0.2)):
      out["jit", shape, soft] = fmix_draw(key(7), shape, extra["lam"], max_soft=soft)
    out["normals"] = jax.vmap(lambda k: _fmix._complex_normals(k, (16, 9)))(
        wrap(extra["normal_keys"]))
    zero = extra["zero"]
    out["known_answer"] = _fmix._threefry_2x32((zero[0], zero[0]), zero)
    seed, counter = extra["seed"], extra["counter"]
    out["ours"] = _fmix._threefry_2x32((seed[0], seed[1]), counter)
    out["theirs"] = threefry2x32_p.bind(seed[0], seed[1], counter, jnp.zeros_like(counter))
    names[:] = list(out)
    return draws, [out[name] for name in names]

  names = []
  draws, extra = jax.jit(run)(draws_in, extra_in)
  results = {}
  for (masks, means), requests in zip(draws, groups.values()):
    masks, means, start = np.asarray(masks), np.asarray(means), 0
    for r in requests:
      results[r] = masks[start:start + len(r[4])], means[start:start + len(r[4])]
      start += len(r[4])
  return results, dict(zip(names, jax.tree.map(np.asarray, extra)))


def _raw(shape, lams, seed=0, decay_power=3.0, max_soft=0.0):
  """The float32 masks and means of _programs for keys _keys(seed)[:len(lams)]."""
  request = _request(shape, lams, seed, decay_power, max_soft)
  results = _programs()[0]
  assert request in results, "add this draw to _PLAN"
  return results[request]


def _batch(shape, lams, seed=0, decay_power=3.0, max_soft=0.0):
  """Masks (float64) and means for keys ``_keys(seed)[:len(lams)]``, vmapped and jitted."""
  masks, means = _raw(shape, lams, seed, decay_power, max_soft)
  return np.asarray(masks, np.float64), np.asarray(means)


def _extra(*name):
  """A jitted helper's result from _programs, e.g. _extra("g", shape, seed)."""
  return _programs()[1][name if len(name) > 1 else name[0]]


def _equal_neighbours(masks, offsets=(1, 4)):
  """(num_masks, stats): per mask, the fraction of pixel pairs at each offset
  along each axis that hold the same value; high means smooth."""
  columns = []
  for axis in range(1, masks.ndim):
    moved = np.moveaxis(masks, axis, -1)
    for d in offsets:
      if moved.shape[-1] > d:
        same = moved[..., d:] == moved[..., :-d]
        columns.append(same.reshape(len(masks), -1).mean(axis=1))
  return np.stack(columns, axis=1)


def _frequencies(shape, variant=None):
  """Radial frequency on the real-FFT grid; ``variant`` plants a known bug."""
  axes = []
  for n in shape[:-1]:
    # 'unfolded': the upper half of fftfreq left positive (0 .. (n-1)/n).
    axes.append(np.arange(n) / n if variant == "unfolded" else np.fft.fftfreq(n))
  last = shape[-1]
  # 'last_fftfreq': fftfreq over the rfft bin count instead of rfftfreq.
  axes.append(np.fft.fftfreq(last // 2 + 1) if variant == "last_fftfreq"
              else np.fft.rfftfreq(last))
  squared = 0.0
  for i, f in enumerate(axes):
    squared = squared + np.square(
        f.reshape([-1 if j == i else 1 for j in range(len(shape))]))
  return np.sqrt(squared)


def _numpy_fmix(rng, shape, lam, decay_power=3.0, variant=None):
  """The spec's algorithm in NumPy: spectrum, irfftn, argsort, binarise."""
  freqs = _frequencies(shape, variant)
  scale = 1.0 / np.maximum(freqs, 1.0 / max(shape)) ** decay_power
  spectrum = (rng.standard_normal(freqs.shape)
              + 1j * rng.standard_normal(freqs.shape)) * scale
  g = np.fft.irfftn(spectrum, shape, axes=tuple(range(len(shape))))
  size = g.size
  k = math.ceil(lam * size) if rng.random_sample() > 0.5 else math.floor(lam * size)
  mask = np.zeros(size)
  mask[np.argsort(-g.ravel(), kind="stable")[:k]] = 1.0
  return mask.reshape(shape)


def _z_scores(a, b):
  """Two-sample z of the per-column means of (num_masks, stats) arrays."""
  se = np.sqrt(a.var(axis=0) / len(a) + b.var(axis=0) / len(b))
  return (a.mean(axis=0) - b.mean(axis=0)) / np.maximum(se, 1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_range_no_nan(shape):
  # Bugs: irfftn without its shape argument (an odd last axis comes back one
  # short: (15, 9) -> (15, 8)); a 0/0 or log(0) at λ = 0 or 1 giving NaN;
  # a mean that is not a float32 scalar; N = 1 (f_min = 1, one bin).
  masks, means = _raw(shape, EDGE_LAMS * 4)
  num = len(EDGE_LAMS * 4)
  assert masks.shape == (num,) + shape and masks.dtype == np.float32
  assert means.shape == (num,) and means.dtype == np.float32
  masks, means = _batch(shape, EDGE_LAMS * 4)
  assert np.isfinite(masks).all() and np.isfinite(means).all(), shape
  assert masks.min() >= 0.0 and masks.max() <= 1.0, shape


@pytest.mark.parametrize("shape", SOFT_SHAPES)
def test_lambda_extremes(shape):
  # Bugs: λ = 0 or 1 leaving a pixel on or off (an off-by-one in the
  # threshold), a k outside [0, N] from ceil(λN) at λ just under 1; a 0/0
  # in the ramp when its width is 0 at the extremes.
  size = math.prod(shape)
  for soft in (0.0, 0.3):
    masks, means = _batch(shape, EXTREME_LAMS, max_soft=soft)
    assert (masks[0::4] == 0).all() and (means[0::4] == 0).all()
    assert (masks[1::4] == 1).all() and (means[1::4] == 1).all()
    assert set(masks[2::4].sum(axis=tuple(range(1, len(shape) + 1)))) <= {0, 1}
    assert set(masks[3::4].sum(axis=tuple(range(1, len(shape) + 1)))) <= {
        size - 1, size}


@pytest.mark.parametrize("shape", MEAN_SHAPES)
def test_mean_is_k_over_n_with_a_fair_coin(shape):
  # Bugs: mean returned as λ instead of the realised k / N; k always
  # floor(λN) (the coin lost) or drawn with the wrong probability; a
  # threshold that keeps k + 1 pixels; the mean averaged from a soft mask.
  size = math.prod(shape)
  lam = 0.31   # λN is not an integer for any of the shapes
  masks, means = _batch(shape, [lam] * 400)
  low, high = _k_bounds(lam, size)
  assert low < high
  counts = masks.reshape(len(masks), -1).sum(axis=1)
  np.testing.assert_array_equal(counts, np.round(means.astype(np.float64) * size))
  assert set(counts) <= {low, high}
  # Within an ulp of k / N (k * float32(1 / N)).
  np.testing.assert_allclose(means, counts / size, rtol=2.5e-7, atol=0)
  # Binomial(400, 1/2): sd 10, so 150..250 is 5 sd.
  assert 150 < (counts == high).sum() < 250, (counts == high).sum()
  # Other λ: every count is floor or ceil of λN.
  lams = np.linspace(0.0, 1.0, 41, dtype=np.float32)
  masks, means = _batch(shape, lams, seed=1)
  counts = masks.reshape(len(masks), -1).sum(axis=1)
  for lam, count, mean in zip(lams, counts, means):
    assert count in _k_bounds(lam, size), (lam, count)
    assert round(float(mean) * size) == count


def test_mean_is_the_same_under_jit_vmap_and_eager():
  # Bug: mean computed as k / N, which XLA divides through a reciprocal under
  # jit but not eagerly: an ulp apart, and 0.99999994 at λ = 1 for N = 41.
  for shape in ((41,), (24, 40)):
    lams = [1.0, 0.0, 0.77]
    _, batched = _batch(shape, lams, seed=3)
    eager = [fmix_draw(k, shape, l)[1] for k, l in zip(_keys(3), lams)]
    np.testing.assert_array_equal(batched, np.asarray(eager))
    assert batched[0] == 1.0 and batched[1] == 0.0


@pytest.mark.parametrize("shape", MEAN_SHAPES)
def test_binary_without_max_soft(shape):
  # Bug: the soft ramp (or g itself) leaking into the default binary mask.
  masks, _ = _batch(shape, np.linspace(0.05, 0.95, 16))
  assert set(np.unique(masks)) <= {0.0, 1.0}


@pytest.mark.parametrize("shape", TOP_K_SHAPES)
def test_mask_is_the_top_k_of_the_low_frequency_image(shape):
  # Bugs: the k smallest instead of the largest (M = 1 on the wrong side),
  # or a threshold unrelated to g. White-box: the spectrum key is the second
  # half of the split, as in fmix_mask.
  masks, _ = _batch(shape, [0.4] * 3, seed=4)
  for i, mask in enumerate(masks):   # g of jax.random.split(_keys(4)[i])[1]
    g = _extra("top_k_g", shape, i)
    assert g[mask == 1].min() >= g[mask == 0].max()


@functools.cache
def _ranked():
  """The ties test's _top_k and _ramp (width 0) on every tied field and k,
  and _top_k on every k of the early-stop fields: one jit."""
  ties = []
  for shape in TIE_SHAPES:
    cases = _tie_cases(shape)
    ties.append((np.stack([_tied(shape, levels) for levels, _ in cases]),
                 np.array([k for _, k in cases], np.int32)))
  early = [(_extra("g", shape, seed), np.arange(math.prod(shape) + 1, dtype=np.int32))
           for seed, shape in EARLY_STOP_CASES]

  def run(ties, early):
    both = lambda g, k: (_fmix._top_k(g, k), _fmix._ramp(g, k, jnp.int32(0)))
    return ([jax.vmap(both)(g, k) for g, k in ties],
            [jax.vmap(_fmix._top_k, in_axes=(None, 0))(g, k) for g, k in early])

  tie_runs, early_runs = jax.jit(run)(ties, early)
  return (dict(zip(TIE_SHAPES, jax.tree.map(np.asarray, tie_runs))),
          dict(zip(EARLY_STOP_CASES, map(np.asarray, early_runs))))


def _tied(shape, levels):
  """g (key 0) rounded to a few levels: many exact ties."""
  g = _extra("g", shape, 0)
  return np.round(g / g.std() * levels) if levels > 1 else np.zeros_like(g)


def _tie_cases(shape):
  size = math.prod(shape)
  return [(levels, k) for levels in (3, 12, 1)
          for k in sorted({0, 1, size // 3, size // 2, size - 1, size})]


@pytest.mark.parametrize("shape", TIE_SHAPES)
def test_ties_are_ranked_exactly(shape):
  # Bugs: a threshold test g >= t that keeps every pixel tied with the k-th
  # (more than k ones, mean != k / N); ties broken differently from a stable
  # descending argsort (then the soft path, which sorts, disagrees).
  top_k, ramp = _ranked()[0][shape]
  for i, (levels, k) in enumerate(_tie_cases(shape)):
    tied = _tied(shape, levels)
    size = tied.size
    order = np.argsort(-tied.ravel(), kind="stable")
    expected = np.zeros(size)
    expected[order[:k]] = 1.0
    got = np.asarray(top_k[i], np.float64)
    np.testing.assert_array_equal(got.ravel(), expected, err_msg=f"{levels} {k}")
    np.testing.assert_array_equal(ramp[i].ravel(), expected, err_msg=f"{levels} {k}")


@pytest.mark.parametrize("shape", SPECTRUM_SHAPES)
def test_low_frequency_image_is_irfftn_of_the_spec_spectrum(shape):
  # Bugs: frequencies on the wrong axis or with the wrong function (fftfreq on
  # the last axis, rfftfreq elsewhere, a transposed grid for non-square
  # shapes); a wrong decay; a Hermitian fix that changes g.
  decay = 3.0
  scale = _fmix._frequency_scale(shape, decay)
  # The spec's scale, bin by bin with explicit index arithmetic.
  expected = np.empty(scale.shape)
  for index in np.ndindex(*scale.shape):
    f = [(i if i < (n + 1) // 2 else i - n) / n
         for i, n in zip(index[:-1], shape[:-1])] + [index[-1] / shape[-1]]
    expected[index] = 1.0 / max(math.sqrt(sum(x * x for x in f)),
                                1.0 / max(shape)) ** decay
  # Ours is the spec's scale times the constant f_min^δ (same ranking).
  np.testing.assert_allclose(scale, expected * max(shape) ** -decay, rtol=1e-6)
  for seed in range(3):   # key jax.random.key(seed), under jit
    spectrum = np.asarray(_extra("spectrum", shape, seed), np.complex128)
    g = np.asarray(_extra("g", shape, seed), np.float64)
    want = np.fft.irfftn(spectrum, shape, axes=tuple(range(len(shape))))
    np.testing.assert_allclose(g, want, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("shape", SPECTRUM_SHAPES)
def test_last_axis_zero_and_nyquist_planes_are_hermitian(shape):
  # Bug: the Hermitian fix dropped. NumPy and ducc ignore the non-Hermitian
  # part of these planes (so the CPU result does not change), but cuFFT's
  # c2r output is undefined for it: GPU masks would silently differ.
  spectrum = _extra("spectrum", shape, 0)   # key jax.random.key(0)
  planes = [0] + ([spectrum.shape[-1] - 1] if shape[-1] % 2 == 0 else [])
  for j in planes:
    plane = spectrum[..., j]
    axes = tuple(range(plane.ndim))
    mirror = np.roll(np.flip(plane, axes), 1, axes) if axes else plane
    np.testing.assert_allclose(plane, np.conj(mirror), atol=1e-6)
  # And the other bins keep their independent imaginary parts.
  assert np.abs(spectrum.imag).max() > 0


def test_mask_is_low_frequency():
  # Bug: the 1/f^δ scale missing (a white spectrum binarises to salt and
  # pepper, ~0.5 equal neighbours at λ = 0.5).
  masks, means = _batch((32, 32), [0.5] * 200)
  fmix = _equal_neighbours(masks, offsets=(1,)).mean()
  rng = np.random.default_rng(0)
  shuffled = np.stack([rng.permutation(m.ravel()).reshape(m.shape) for m in masks])
  random = _equal_neighbours(shuffled, offsets=(1,)).mean()
  assert fmix > 0.9 and random < 0.55, (fmix, random)


def test_decay_power_sets_smoothness():
  # Bugs: decay_power ignored, or applied with the wrong sign. (A flipped sign
  # makes near-Nyquist checkerboards, which agree at even offsets: offset 4
  # alone still rises with δ, so offset 1 is checked too.)
  # Per mask, offsets 1 and 4 each averaged over both axes; 200 masks per δ.
  # The rises measured: 2 -> 3, z = 23 and 15; 3 -> 5, z = 9 and 7.
  means, errors = [], []
  for decay in (2.0, 3.0, 5.0):
    masks, _ = _batch((32, 32), [0.5] * 200, decay_power=decay)
    stats = _equal_neighbours(masks, offsets=(1, 4))   # (200, [v1, v4, h1, h4])
    stats = (stats[:, :2] + stats[:, 2:]) / 2
    means.append(stats.mean(axis=0))
    errors.append(stats.std(axis=0) / math.sqrt(len(stats)))
  for i in range(len(means) - 1):
    rise = means[i + 1] - means[i]
    assert (rise > 4 * np.hypot(errors[i], errors[i + 1])).all(), means


@pytest.mark.parametrize("shape", [(32, 32), (24, 40), (64,), (8, 12, 10)])
def test_statistics_match_a_numpy_reference(shape):
  # Bugs: δ off by one, frequencies unfolded or from the wrong function on an
  # axis, axes swapped in a 3-D grid: anything that changes the law of the
  # mask. Our JAX masks and the spec's algorithm in NumPy (different random
  # streams) must agree on the mean fraction of equal neighbours at offsets 1
  # and 4 along every axis, over 500 masks each at λ = 0.5. The tolerance:
  # |z| < 4 per statistic, z the two-sample difference of means over its
  # standard error (sd / sqrt(500) each); measured |z| <= 1.8. The same test
  # against planted bugs in the NumPy reference gives a largest |z| of 6.8 to
  # 48 (below), so it has the power to see them.
  num = 500
  ours, _ = _batch(shape, [0.5] * num, seed=11)
  ours = _equal_neighbours(ours)

  def reference(**kwargs):
    rng = np.random.RandomState(0)
    return _equal_neighbours(
        np.stack([_numpy_fmix(rng, shape, 0.5, **kwargs) for _ in range(num)]))

  z = _z_scores(ours, reference())
  assert np.abs(z).max() < 4, z
  bugs = [dict(decay_power=2.0), dict(variant="last_fftfreq")]
  if len(shape) > 1:
    bugs.append(dict(variant="unfolded"))
  for bug in bugs:
    z = _z_scores(ours, reference(**bug))
    assert np.abs(z).max() > 4, (bug, z)


@pytest.mark.parametrize("shape", SOFT_SHAPES)
def test_soft_ramp(shape):
  # Bugs: the ramp spread over s instead of 2s pixels, reversed (0 to 1),
  # centred off rank k, or sorted by a different order than the binary
  # path; soft = max_soft without the min with λ and 1 - λ; a soft mean that
  # is not the mask's mean.
  size = math.prod(shape)
  max_soft = 0.3
  lams = SOFT_LAMS
  soft_masks, soft_means = _batch(shape, lams, seed=5, max_soft=max_soft)
  hard_masks, hard_means = _batch(shape, lams, seed=5)
  for lam, soft, hard, soft_mean, hard_mean in zip(
      lams, soft_masks, hard_masks, soft_means, hard_means):
    s = int(np.float32(min(max_soft, lam, 1 - lam)) * np.float32(size))
    k = round(float(hard_mean) * size)
    inside = soft[(soft > 0) & (soft < 1)]
    assert inside.size == 2 * s - 2, (lam, inside.size, s)
    ranked = np.sort(soft.ravel())[::-1]
    np.testing.assert_allclose(ranked[k - s:k + s], np.linspace(1, 0, 2 * s),
                               atol=1e-6)
    assert (ranked[:k - s] == 1).all() and (ranked[k + s:] == 0).all()
    # Same key, same coin and g: the binary mask is the soft one above 1/2.
    np.testing.assert_array_equal(hard, (soft > 0.5).astype(np.float64))
    assert soft_mean == hard_mean
    assert abs(float(soft_mean) - soft.mean()) < 1e-6


def test_soft_path_with_zero_width_is_the_binary_mask():
  # Bug: the two rankings (bit search for the binary mask, a sort for the
  # ramp) disagree on order or ties; a 0/0 when the ramp is empty.
  lams = np.linspace(0.0, 1.0, 65)
  soft, _ = _batch((24, 40), lams, seed=2, max_soft=1e-9)   # int(1e-9 N) = 0
  hard, _ = _batch((24, 40), lams, seed=2)
  np.testing.assert_array_equal(soft, hard)


def test_jit_equals_eager():
  # Bugs: trace-time randomness (NumPy RNG at trace), a Python branch on a
  # concrete λ that jit cannot take, a different key split under jit.
  # Binary masks and means are bit-identical; soft ramp values may differ by
  # an ulp (XLA divides through a reciprocal in some fusions, not others).
  # The jitted draws are in _programs (λ traced); one shape, so that the
  # eager ops compile once for both (and for the other eager tests).
  for shape, soft in (((24, 40), 0.0), ((24, 40), 0.2)):
    key = jax.random.key(7)
    eager = fmix_draw(key, shape, 0.37, max_soft=soft)
    jitted = _extra("jit", shape, soft)
    np.testing.assert_allclose(np.asarray(eager[0]), np.asarray(jitted[0]),
                               rtol=0, atol=0 if soft == 0 else 2e-7)
    np.testing.assert_array_equal(np.asarray(eager[1]), np.asarray(jitted[1]))


def test_vmap_over_keys_and_lams():
  # Bugs: batch axes mixed up (one sample's λ or key used for another), a
  # shape check that reads the batch axis, a coin shared across the batch.
  shape = (24, 40)
  lams = VMAP_LAMS
  masks, means = _batch(shape, lams, seed=9)
  keys = _keys(9)
  for i in range(6):
    mask, mean = fmix_draw(keys[i], shape, lams[i])
    np.testing.assert_array_equal(masks[i], np.asarray(mask))
    assert means[i] == mean
  assert not np.array_equal(masks[2], masks[3])   # same λ, different keys


def test_traced_lam_is_clipped():
  # Bug: a traced λ outside [0, 1] gives k < 0 or k > N (a NaN or
  # out-of-range count) instead of being clipped like the other masks.
  masks, means = _batch((32, 32), [1.5, -0.5, 7.0, -3.0])
  for mask, mean, value in zip(masks, means, (1.0, 0.0, 1.0, 0.0)):
    assert (mask == value).all() and mean == value


@pytest.mark.parametrize("shape", [(), (0,), (4, 0), (2, 3, 4, 5), (32.0, 32),
                                   ("a", 3), None, 32, (True, 4)])
def test_bad_shape_is_a_value_error(shape):
  # Bug: an unchecked shape failing deep inside the FFT (or silently making
  # a 4-D mask) instead of a ValueError naming the argument.
  with pytest.raises(ValueError, match="shape must be a tuple of 1 to 3 positive ints"):
    fmix_draw(jax.random.key(0), shape, 0.5)


@pytest.mark.parametrize("decay_power", [0, -1.0, float("nan"), float("inf"),
                                         "3", None, True])
def test_bad_decay_power_is_a_value_error(decay_power):
  # Bug: δ <= 0 accepted (a white or inverted spectrum), NaN/inf accepted.
  with pytest.raises(ValueError, match=r"decay_power must be .*> 0"):
    fmix_draw(jax.random.key(0), (8, 8), 0.5, decay_power=decay_power)


@pytest.mark.parametrize("max_soft", [-0.1, 0.5, 0.7, float("nan"), None])
def test_bad_max_soft_is_a_value_error(max_soft):
  # Bug: max_soft >= 0.5 accepted (a ramp wider than the image).
  with pytest.raises(ValueError, match=r"max_soft must be .*\[0, 0.5\)"):
    fmix_draw(jax.random.key(0), (8, 8), 0.5, max_soft=max_soft)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan"), np.float32(2.0)])
def test_bad_concrete_lam_is_a_value_error(lam):
  # Bug: a host λ outside [0, 1] silently clipped (hides a caller's bug).
  with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
    fmix_draw(jax.random.key(0), (8, 8), lam)


def test_large_decay_power_does_not_overflow():
  # Bug: the spec's 1 / max(f, f_min)^δ taken literally in float32
  # overflows (224^20 > 3.4e38): inf and NaN in g. The mask alone cannot
  # show it (NaN keys still rank to exactly k pixels), so g is checked.
  # Both under jit (_programs), key 0.
  g = _extra("big_g")
  assert np.isfinite(g).all() and g.std() > 0
  mask, mean = _extra("big_draw")
  assert mask.sum() == round(float(mean) * mask.size)


def test_fmix_mask_is_the_draws_mask():
  # Catches: the public generator drifting from what the mixers use.
  # (24, 40): the eager ops of the other eager tests.
  key = jax.random.key(3)
  np.testing.assert_array_equal(fmix_mask(key, (24, 40), 0.4),
                                fmix_draw(key, (24, 40), 0.4)[0])


def test_threefry_is_the_published_hash():
  # Bugs: a wrong rotation constant, key-schedule parity or injection order
  # in the hand-written hash (weaker random bits than JAX's PRNG, silently).
  # Random123's known answer for key 0, counter 0, and JAX's own threefry
  # on a range of counters under another key (all in _programs).
  words = _extra("known_answer")
  assert [int(w[0]) for w in words] == [0x6B200159, 0x99BA4EFE]
  ours, theirs = _extra("ours"), _extra("theirs")
  assert len(ours[0]) == 1000
  for a, b in zip(ours, theirs):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_complex_normals_are_independent_standard_normals():
  # Bugs: the normal transform off by a factor (erfinv without sqrt(2): var
  # 1/2), the real and imaginary parts from the same word (correlation 1),
  # neighbouring bins from overlapping counters (correlation between
  # entries), or a bias in the bits-to-uniform step (mean != 0).
  z = _extra("normals")   # vmapped over _keys(21), in _programs
  parts = np.stack([z.real, z.imag], axis=-1).reshape(-1, 2).astype(np.float64)
  assert len(parts) == 73_728  # sd of a mean ~ 0.0037, of a var ~ 0.0052
  assert np.abs(parts.mean(axis=0)).max() < 0.02
  assert np.abs(parts.var(axis=0) - 1).max() < 0.03
  assert abs(np.corrcoef(parts.T)[0, 1]) < 0.02
  flat = z.real.reshape(len(z), -1)
  assert abs(np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]) < 0.2   # 512 masks
  assert abs(np.corrcoef(flat[:, :-1].ravel(), flat[:, 1:].ravel())[0, 1]) < 0.02
  # Tails of N(0, 1): P(|x| > 2) = 0.0455, P(|x| > 3) = 0.0027.
  assert abs((np.abs(parts) > 2).mean() - 0.0455) < 0.003
  assert abs((np.abs(parts) > 3).mean() - 0.0027) < 0.0008
  assert np.abs(np.unique(z.real)).size > 0.9 * z.real.size   # not discrete


def test_early_stop_gives_the_top_k_of_distinct_values():
  # Bugs in the early stop: stopping when count >= k (not == k) keeps too
  # many pixels; stopping on the candidate's count before it is accepted,
  # or returning the previous threshold, gives the wrong set. Every k of
  # three random fields against a stable argsort (_top_k vmapped over k).
  for seed, shape in EARLY_STOP_CASES:
    g = _extra("g", shape, seed)
    size = g.size
    ks = np.arange(size + 1, dtype=np.int32)
    got = _ranked()[1][seed, shape].reshape(size + 1, -1)
    order = np.argsort(-g.ravel(), kind="stable")
    for k in ks:
      expected = np.zeros(size, bool)
      expected[order[:k]] = True
      np.testing.assert_array_equal(got[k], expected, err_msg=f"{shape} k={k}")
