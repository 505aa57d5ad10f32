"""The mask generators against the spec (shared/docs/methods.md)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax

MASK_FNS = {
    "mixup": msda_jax.mixup_mask,
    "cutmix": msda_jax.cutmix_mask,
    "cutmix_minmax": lambda k, s, l: msda_jax.cutmix_mask(k, s, l, minmax=(0.2, 0.8)),
    "hmix": msda_jax.hmix_mask,
    "hmix_r1": lambda k, s, l: msda_jax.hmix_mask(k, s, l, r=1.0),
    "gmix": msda_jax.gmix_mask,
    "cutmix_exact": lambda k, s, l: msda_jax.cutmix_mask(k, s, l, exact_box=True),
    "hmix_r1_exact": lambda k, s, l: msda_jax.hmix_mask(k, s, l, r=1.0,
                                                        exact_box=True),
    "fmix": msda_jax.fmix_mask,
    "gridmix": msda_jax.gridmix_mask,
    "smoothmix": msda_jax.smoothmix_mask,
    "resizemix": msda_jax.resizemix_mask,
}
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
SHAPES = ((32, 32), (24, 40), (7, 3), (1, 1))


@functools.cache
def _draws(name):
  """One generator, traced λ, in one jit: per shape of SHAPES, the masks at
  EDGE_LAMS (key i for the i-th λ), vmapped; and a vmap over λ in [0, 1] on
  a (12, 20) image. Compiling is most of these tests' time."""
  fn = MASK_FNS[name]
  keys = jax.vmap(jax.random.key)(jnp.arange(len(EDGE_LAMS)))
  lams = jnp.asarray(EDGE_LAMS, jnp.float32)

  @jax.jit
  def draw(keys, lams, vmap_keys, vmap_lams):
    edges = {shape: jax.vmap(lambda k, l: fn(k, shape, l))(keys, lams)
             for shape in SHAPES}
    return edges, jax.vmap(lambda k, l: fn(k, (12, 20), l))(vmap_keys, vmap_lams)

  return draw(keys, lams, jax.random.split(jax.random.key(0), 5),
              jnp.linspace(0, 1, 5))


@pytest.mark.parametrize("name", sorted(MASK_FNS))
def test_shape_dtype_range_no_nan(name):
  edges, _ = _draws(name)
  for shape in SHAPES:
    for lam, mask in zip(EDGE_LAMS, np.asarray(edges[shape])):
      assert mask.shape == shape and mask.dtype == np.float32
      assert np.isfinite(mask).all(), (name, shape, lam)
      assert mask.min() >= 0.0 and mask.max() <= 1.0, (name, shape, lam)


def test_mixup_is_constant_lambda():
  mask = msda_jax.mixup_mask(jax.random.key(0), (5, 9), 0.37)
  np.testing.assert_array_equal(mask, np.full((5, 9), 0.37, np.float32))


def _box_of_zeros(mask):
  rows = np.flatnonzero((mask == 0).any(axis=1))
  cols = np.flatnonzero((mask == 0).any(axis=0))
  return rows, cols


@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
def test_cutmix_binary_one_clipped_box(shape):
  height, width = shape
  for seed in range(30):
    key_lam, key = jax.random.split(jax.random.key(seed))
    lam = float(jax.random.uniform(key_lam))
    mask = np.asarray(msda_jax.cutmix_mask(key, shape, lam))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    if (mask == 1).all():
      continue
    rows, cols = _box_of_zeros(mask)
    # The zero region is exactly the rectangle spanned by its rows and columns.
    expected = np.ones(shape, np.float32)
    expected[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = 0
    np.testing.assert_array_equal(mask, expected)
    assert len(rows) == rows.max() - rows.min() + 1
    # Its sides never exceed the unclipped box: 2 * (floor(H s) // 2).
    side = math.sqrt(1 - lam)
    assert len(rows) <= 2 * (math.floor(height * side) // 2)
    assert len(cols) <= 2 * (math.floor(width * side) // 2)


def test_cutmix_unclipped_box_matches_the_ratio():
  # Small boxes rarely clip; whenever the box is inside, its area is fixed.
  shape, lam = (64, 64), 0.9
  cut = math.floor(64 * math.sqrt(1 - lam)) // 2 * 2
  seen = 0
  for seed in range(40):
    mask = np.asarray(msda_jax.cutmix_mask(jax.random.key(seed), shape, lam))
    rows, cols = _box_of_zeros(mask)
    if 0 < rows.min() and rows.max() < 63 and 0 < cols.min() and cols.max() < 63:
      assert (len(rows), len(cols)) == (cut, cut)
      seen += 1
  assert seen > 10


def test_cutmix_minmax_box_fully_inside_and_sized():
  for seed in range(30):
    mask = np.asarray(msda_jax.cutmix_mask(jax.random.key(seed), (40, 20), 0.5,
                                           minmax=(0.25, 0.5)))
    rows, cols = _box_of_zeros(mask)
    assert 10 <= len(rows) < 20 and 5 <= len(cols) < 10
    assert (mask == 0).sum() == len(rows) * len(cols)


@pytest.mark.parametrize("r", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
def test_hmix_two_values_and_exact_mean(r, shape):
  for seed in range(20):
    key_lam, key = jax.random.split(jax.random.key(seed))
    lam = float(jax.random.uniform(key_lam))
    mask = np.asarray(msda_jax.hmix_mask(key, shape, lam, r=r))
    values = np.unique(mask)
    assert len(values) <= 2
    if len(values) == 2:
      assert values[0] == 0.0
    assert abs(mask.mean() - lam) < 1e-5, (r, lam)
  if r == 0.0:  # r = 0 is Mixup.
    np.testing.assert_allclose(
        msda_jax.hmix_mask(jax.random.key(0), shape, 0.3, r=0.0),
        msda_jax.mixup_mask(jax.random.key(0), shape, 0.3), atol=1e-6)


def test_hmix_box_is_where_the_partner_is():
  mask = np.asarray(msda_jax.hmix_mask(jax.random.key(3), (32, 32), 0.4, r=0.5))
  mu = mask.max()
  assert 0.4 < mu < 1.0  # outside the box the original weighs more than λ
  rows, cols = _box_of_zeros(mask)
  assert (mask == 0).sum() == len(rows) * len(cols) > 0


@pytest.mark.parametrize("shape", [(32, 32), (24, 40), (40, 24)])
@pytest.mark.parametrize("lam", [0.1, 0.3, 0.7, 0.9])
def test_gmix_blob_smooth_centered_on_the_smaller_share(shape, lam):
  mask = np.asarray(msda_jax.gmix_mask(jax.random.key(7), shape, lam))
  # The extreme sits at one pixel, which is 1 (original in the blob, λ < .5)
  # or 0 (partner in the blob, λ > .5); far pixels take the other value.
  extreme = mask.max() if lam < 0.5 else mask.min()
  assert extreme == (1.0 if lam < 0.5 else 0.0)
  cy, cx = np.argwhere(mask == extreme)[0]
  rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
  small = min(lam, 1 - lam)
  blob = np.exp(-math.pi * ((rows - cy) ** 2 + (cols - cx) ** 2)
                / (small * shape[0] * shape[1]))
  expected = blob if lam < 0.5 else 1 - blob
  np.testing.assert_allclose(mask, expected, atol=1e-6)
  # Smooth: neighbouring pixels differ by much less than the full range.
  assert np.abs(np.diff(mask, axis=0)).max() < 0.5
  assert np.abs(np.diff(mask, axis=1)).max() < 0.5
  # The blob carries the smaller share: mask mean is on λ's side of 1/2.
  assert (mask.mean() < 0.5) == (lam < 0.5)


@pytest.mark.parametrize("name", sorted(MASK_FNS))
def test_masks_take_traced_lambda_and_vmap(name):
  # Compiled with the shape test's draws (_draws).
  _, masks = _draws(name)
  assert masks.shape == (5, 12, 20)


@pytest.mark.parametrize("bad", [(0, 4), (), (4, 4, 4, 4), "ab", (4, -1),
                                 (4.5, 4), None])
def test_bad_shape_is_a_clear_error(bad):
  # Catches a shape of the wrong rank or with a zero, negative or fractional
  # size reaching XLA (a crash deep inside, or 4.5 silently read as 4).
  with pytest.raises(ValueError, match=r"shape must be a tuple of 1 to 3 positive ints"):
    msda_jax.cutmix_mask(jax.random.key(0), bad, 0.5)


@pytest.mark.parametrize("name", sorted(MASK_FNS))
def test_concrete_lambda_outside_unit_interval_is_an_error(name):
  with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
    MASK_FNS[name](jax.random.key(0), (8, 8), 1.5)


def test_bad_r_and_minmax_are_clear_errors():
  with pytest.raises(ValueError, match=r"r must be in \[0, 1\]"):
    msda_jax.hmix_mask(jax.random.key(0), (8, 8), 0.5, r=1.5)
  with pytest.raises(ValueError, match="minmax"):
    msda_jax.cutmix_mask(jax.random.key(0), (8, 8), 0.5, minmax=(0.8, 0.2))


# exact_box: the CutMix authors' box rounding (default) vs timm 1.0.31's.

def _cut(size, lam, r=1.0):
  # floor(size * sqrt(r (1 - λ))) as the library computes it, in float32.
  ratio = np.sqrt(np.float32(r) * (np.float32(1) - np.float32(lam)))
  return int(np.floor(np.float32(size) * ratio))


def test_exact_box_unclipped_side_is_exactly_the_cut():
  # Catches exact_box ignored (odd cuts one pixel short), the extra pixel put
  # on the wrong rule or side twice (even cuts one too long), and the
  # default rule changed (its unclipped side is 2 (cut // 2)). CutMix and
  # HMix with r = 1 (the same box), square and not; one jit for all.
  lams = (0.7, 0.83, 0.9, 0.95)
  keys = jax.random.split(jax.random.key(5), 100)
  runs = [(generator, shape, exact) for generator in ("cutmix", "hmix_r1")
          for shape in ((32, 32), (24, 40)) for exact in (True, False)]

  @jax.jit
  def draw(lam):
    return [jax.vmap(lambda k: MASK_FNS[g + ("_exact" if e else "")](k, s, lam))(keys)
            for g, s, e in runs]

  all_masks = jax.vmap(draw)(jnp.asarray(lams))
  parities = set()
  for (generator, shape, exact), masks_by_lam in zip(runs, all_masks):
    for lam, masks in zip(lams, masks_by_lam):
      cuts = [_cut(s, lam) for s in shape]
      parities.update(c % 2 for c in cuts)
      sides = cuts if exact else [2 * (c // 2) for c in cuts]
      where = (generator, shape, exact, lam)
      seen = 0
      for mask in np.asarray(masks):
        rows, cols = _box_of_zeros(mask)
        if (rows.min() == 0 or cols.min() == 0 or rows.max() == shape[0] - 1
            or cols.max() == shape[1] - 1):
          continue  # touches the border: possibly clipped
        assert [len(rows), len(cols)] == sides, where
        assert (mask == 0).sum() == sides[0] * sides[1], where
        seen += 1
      assert seen >= 5, where
  assert parities == {0, 1}  # both odd and even cuts were checked


def test_box_is_the_rule_applied_at_the_drawn_centre():
  # Catches the extra pixel of exact_box put below the centre instead of
  # above (same sizes, same label-weight law, but not timm's box), and any
  # off-by-one in either rule's placement or clipping. The centre comes from
  # the documented key contract: u = uniform(key, (2 + 2,))[2:], the pixel
  # floor(u * (H, W)); then rows [cy - cut // 2, cy + cut // 2) (reference)
  # or [cy - cut // 2, cy + (cut + 1) // 2) (timm 1.0.31's rand_bbox),
  # clipped, and columns likewise.
  shape, lam = (24, 40), 0.7  # cuts 13 and 21: odd, where the rules differ
  keys = jax.random.split(jax.random.key(8), 40)
  draw = jax.jit(jax.vmap(lambda k: (
      jax.random.uniform(k, (4,))[2:],
      msda_jax.cutmix_mask(k, shape, lam),
      msda_jax.cutmix_mask(k, shape, lam, exact_box=True))))
  for u, default, exact in zip(*(np.asarray(a) for a in draw(keys))):
    for mask, extra in ((default, 0), (exact, 1)):
      expected = np.ones(shape, np.float32)
      bounds = []
      for size, u_axis in zip(shape, u):
        center = min(int(np.floor(u_axis * np.float32(size))), size - 1)
        cut = _cut(size, lam)
        bounds.append(slice(int(np.clip(center - cut // 2, 0, size)),
                            int(np.clip(center + (cut + extra) // 2, 0, size))))
      expected[tuple(bounds)] = 0
      np.testing.assert_array_equal(mask, expected)


def _timm_cutmix_label_weights(rng, count, height, width):
  """timm 1.0.31's CutMix label weight (rand_bbox + correct_lam), in NumPy.

  λ ~ U(0, 1) (Beta(1, 1)); cut = int(size sqrt(1 - λ)) per axis; centre
  uniform over the pixels; rows [cy - cut // 2, cy + (cut + 1) // 2) clipped
  to the image, columns likewise; weight 1 - clipped area / (H W).
  """
  lam = rng.uniform(size=count)
  ratio = np.sqrt(1 - lam)
  area = np.ones(count)
  for size in (height, width):
    cut = (size * ratio).astype(np.int64)
    center = rng.integers(0, size, size=count)
    low = np.clip(center - cut // 2, 0, size)
    high = np.clip(center + (cut + 1) // 2, 0, size)
    area *= high - low
  return 1 - area / (height * width)


def test_exact_box_matches_timms_label_weight_distribution():
  # Catches exact_box=True not matching timm 1.0.31 (and proves the test's
  # power: the reference rounding, exact_box=False, must fail it). The two
  # rules' label-weight laws differ by a KS distance of 0.027 (mean 0.689 vs
  # 0.701, sd 0.19); with 40k samples each the two-sample KS test rejects
  # that at p ~ 1e-11 while equal laws give p ~ U(0, 1) (conservative, the
  # weights being discrete); the mean's standard error is 0.001. (With 1M
  # samples ours and timm's agree: KS p = 0.68, means 0.6902 and 0.6899.)
  scipy_stats = pytest.importorskip("scipy.stats")
  count, size = 40_000, 32
  timm = _timm_cutmix_label_weights(np.random.default_rng(0), count, size, size)
  images = jnp.zeros((count, size, size, 1), jnp.float32)
  labels = jnp.zeros((count, 2), jnp.float32)
  mixers = {exact_box: msda_jax.cutmix(exact_box=exact_box, alpha=1.0, mode="elem")
            for exact_box in (True, False)}
  lams = jax.jit(lambda k, x, y: {e: m(k, x, y).lam for e, m in mixers.items()})(
      jax.random.key(1), images, labels)  # both rules in one jit
  weights = {e: np.asarray(lam, np.float64) for e, lam in lams.items()}
  # Thresholds: equal laws fail p > 1e-3 one time in 1000 (were the keys or
  # NumPy's generator to change); these keys give p = 0.025 (1e-11 for the
  # reference rounding). Means: within 3.5 standard errors.
  assert scipy_stats.ks_2samp(weights[True], timm).pvalue > 1e-3
  assert abs(weights[True].mean() - timm.mean()) < 0.0045
  assert abs(weights[True].mean() - 0.689) < 0.0035  # the spec's figure
  # The mutation: the reference rounding is measurably different.
  assert scipy_stats.ks_2samp(weights[False], timm).pvalue < 1e-6
  assert abs(weights[False].mean() - timm.mean()) > 0.0045
  assert abs(weights[False].mean() - 0.701) < 0.0035  # the spec's figure


def test_exact_box_is_validated_named_and_distinct():
  # Catches a truthy non-bool accepted silently, and two different mixers
  # with the same name (or comparing equal, so a jit cache would mix them).
  for bad in ("yes", 1, None):
    with pytest.raises(ValueError, match="exact_box must be True or False"):
      msda_jax.cutmix(exact_box=bad)
    with pytest.raises(ValueError, match="exact_box must be True or False"):
      msda_jax.hmix_mask(jax.random.key(0), (8, 8), 0.5, exact_box=bad)
  assert msda_jax.cutmix().name == "cutmix(alpha=1, prob=1)"
  assert msda_jax.cutmix(exact_box=True).name == (
      "cutmix(alpha=1, prob=1, exact_box=True)")
  assert "exact_box=True" in msda_jax.hmix(exact_box=True).name
  assert msda_jax.cutmix(exact_box=True) != msda_jax.cutmix()
  assert msda_jax.hmix(exact_box=True) == msda_jax.hmix(exact_box=True)
  assert msda_jax.hmix(exact_box=False) == msda_jax.hmix()
