"""The mask generators against the spec (shared/docs/methods.md)."""

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
}
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
SHAPES = ((32, 32), (24, 40), (7, 3), (1, 1))


@pytest.mark.parametrize("name", sorted(MASK_FNS))
@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_range_no_nan(name, shape):
  fn = jax.jit(MASK_FNS[name], static_argnums=1)
  for i, lam in enumerate(EDGE_LAMS):
    mask = np.asarray(fn(jax.random.key(i), shape, lam))
    assert mask.shape == shape and mask.dtype == np.float32
    assert np.isfinite(mask).all(), (name, lam)
    assert mask.min() >= 0.0 and mask.max() <= 1.0, (name, lam)


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


def test_masks_take_traced_lambda_and_vmap():
  keys = jax.random.split(jax.random.key(0), 5)
  lams = jnp.linspace(0, 1, 5)
  for fn in MASK_FNS.values():
    masks = jax.jit(jax.vmap(lambda k, l: fn(k, (12, 20), l)))(keys, lams)
    assert masks.shape == (5, 12, 20)


@pytest.mark.parametrize("bad", [(0, 4), (4,), "ab", (4, -1)])
def test_bad_shape_is_a_clear_error(bad):
  with pytest.raises(ValueError, match="shape"):
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
