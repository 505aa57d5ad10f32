"""GridMix against the spec (shared/docs/methods.md, Part 2) and its reference."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msda_jax._engine import draw_lam
from msda_jax._gridmix import grid_cells, gridmix, gridmix_mask, gridmix_rule

K = 4
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
SHAPES = ((32, 32), (24, 40), (7, 3), (3, 7), (1, 1), (1, 5), (5, 1))


def _reference_mask(shape, lam, n_holes, aspect):
  """The reference's ``_get_gridmask`` (IlyaDobrynin/GridMixup), restated in
  NumPy with the grid over the whole image (the spec); 1 = original."""
  height, width = shape
  assert 1 <= n_holes <= width // 2  # the reference raises otherwise
  patch_w = math.ceil(width / n_holes)
  patch_h = int(patch_w * aspect)
  ratio = np.sqrt(1 - np.float64(lam))
  hole_w = min(max(int(patch_w * ratio), 1), patch_w - 1)
  hole_h = min(max(int(patch_h * ratio), 1), patch_h - 1)
  holes = np.zeros(shape, bool)
  for i in range(n_holes + 1):
    for j in range(math.ceil(height / patch_h) + 1):
      x1, y1 = min(patch_w * i, width), min(patch_h * j, height)
      holes[y1:min(y1 + hole_h, height), x1:min(x1 + hole_w, width)] = True
  return np.where(holes, 0.0, 1.0)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_range_no_nan_and_exact_mean(shape):
  # Catches: a division by zero or an empty clamp range on tiny images (cell
  # of 1 pixel: clip(·, 1, 0)), and a geometric mean that misses clipped
  # cells (the label would not be the realised mask mean).
  rule = jax.jit(lambda k, lam: gridmix_rule()(k, shape, lam))
  for i, lam in enumerate(EDGE_LAMS):
    mask, mean = rule(jax.random.key(i), lam)
    mask = np.asarray(mask)
    assert mask.shape == shape and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}, (shape, lam)
    np.testing.assert_allclose(mean, mask.mean(), atol=1e-6)
  if min(shape) >= 2:
    assert (mask == 0).any()  # every image of 2x2 or more gets holes


@pytest.mark.parametrize("shape, n_holes, aspect", [
    ((64, 64), 20, 1.0), ((64, 64), 8, 1.0), ((48, 80), 7, 1.0),
    ((48, 80), 5, 0.5), ((50, 36), 3, 1.7), ((13, 29), 2, 1.3),
])
def test_holes_and_cells_match_the_reference_formula(shape, n_holes, aspect):
  # Catches: hole side rounded up (ceil) or not clamped to [1, cell - 1],
  # holes at the wrong corner of the cell, the cell height taken from H
  # instead of cw * aspect, n_holes counted down the height, cells past the
  # border not clipped. λ = (k + 1/2) / 64 avoids ties where cell·sqrt(1-λ)
  # is an integer (float32 vs float64 rounding); 0 and 1 are exact ties.
  lams = np.concatenate([[0.0, 1.0], (np.arange(64) + 0.5) / 64]).astype(np.float32)
  masks = jax.jit(jax.vmap(
      lambda lam: gridmix_mask(jax.random.key(0), shape, lam, n_holes=n_holes,
                               aspect=aspect)))(jnp.asarray(lams))
  for lam, mask in zip(lams, np.asarray(masks)):
    np.testing.assert_array_equal(
        mask, _reference_mask(shape, lam, n_holes, aspect), err_msg=f"λ={lam}")


def test_cells_are_at_least_two_pixels_a_side():
  # Catches: 1-pixel cells (n_holes > W / 2, or int(cw · aspect) < 2), where
  # clip(side, 1, cell - 1) is empty: no holes, M ≡ 1, a silent "no mixing"
  # (the reference raises or divides by zero there).
  assert grid_cells((32, 32), 20, 1.0) == (2, 2)
  assert grid_cells((32, 32), 4, 0.1) == (2, 8)
  for lam in (0.1, 0.5, 0.9):
    np.testing.assert_array_equal(
        gridmix_mask(jax.random.key(0), (24, 40), lam, n_holes=99),
        _reference_mask((24, 40), lam, 20, 1.0))
  mask, mean = gridmix_rule(n_holes=4, aspect=0.1)(jax.random.key(0), (8, 32), 0.5)
  expected = np.ones((8, 32))
  expected[::2, (np.arange(32) % 8) < 5] = 0  # int(8 · sqrt(1/2)) = 5
  np.testing.assert_array_equal(mask, expected)
  np.testing.assert_allclose(mean, expected.mean(), atol=1e-7)
  # A 1-pixel-wide image still gets 2x2 cells, one hole pixel each.
  mask = np.asarray(gridmix_mask(jax.random.key(0), (6, 1), 0.5))
  np.testing.assert_array_equal(mask[:, 0], [0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_mixer_labels_are_the_mask_mean_and_masks_follow_the_key(mode):
  # Catches: labels mixed by the sampled λ instead of the mask mean, and the
  # default λ range (U(0.1, 0.9)) not applied (masks would differ from
  # gridmix_mask at the λ the key contract gives).
  mixer = gridmix(num_classes=K, mode=mode, n_holes=6, partner="permute")
  images = jnp.asarray(np.random.default_rng(0).uniform(size=(7, 24, 40, 3)), jnp.float32)
  labels = jnp.arange(7) % K
  key = jax.random.key(1)
  out = jax.jit(mixer)(key, images, labels)
  mask, p = np.asarray(out.mask, np.float64), np.asarray(out.partner_index)
  x = np.asarray(images, np.float64)
  np.testing.assert_allclose(out.images,
                             mask[..., None] * x + (1 - mask[..., None]) * x[p],
                             atol=1e-6)
  np.testing.assert_allclose(out.lam, mask.mean(axis=(1, 2)), atol=1e-6)
  y = np.eye(K)[np.asarray(labels)]
  lam = np.asarray(out.lam, np.float64)[:, None]
  np.testing.assert_allclose(out.labels, lam * y + (1 - lam) * y[p], atol=1e-6)
  if mode == "elem":
    _, mask_key = jax.random.split(key)
    for i, k in enumerate(jax.random.split(mask_key, 7)):
      if p[i] == i:
        continue
      lam_i = draw_lam(jax.random.uniform(k, (2,)), (0.1, 0.9))
      assert 0.1 <= float(lam_i) <= 0.9
      np.testing.assert_array_equal(out.mask[i],
                                    gridmix_mask(k, (24, 40), lam_i, n_holes=6))


def test_other_spatial_ranks_are_a_clear_error_at_trace_time():
  # Catches: a 1-D or 3-D batch silently mixed with a wrong mask, or failing
  # deep inside XLA with a shape error.
  mixer = jax.jit(gridmix(num_classes=K))
  for shape in [(4, 64, 3), (4, 6, 8, 8, 3)]:
    message = f"gridmix needs 2-D images (B, H, W, C); got spatial shape {shape[1:-1]}"
    with pytest.raises(ValueError, match=re.escape(message)):
      mixer(jax.random.key(0), jnp.zeros(shape), jnp.arange(4) % K)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_holes=0), "n_holes"), (dict(n_holes=2.5), "n_holes"),
    (dict(n_holes=True), "n_holes"), (dict(aspect=0.0), "aspect"),
    (dict(aspect=float("nan")), "aspect"), (dict(aspect="wide"), "aspect"),
    (dict(alpha=(0.9, 0.1)), "alpha"), (dict(alpha="x"), "alpha"),
    (dict(prob=2.0), "prob"), (dict(mode="sample"), "mode"),
])
def test_bad_options_are_clear_errors(kwargs, match):
  # Catches: a bad option accepted and failing later (or silently) under jit.
  with pytest.raises(ValueError, match=match):
    gridmix(**kwargs)
  if "n_holes" in kwargs or "aspect" in kwargs:
    with pytest.raises(ValueError, match=match):
      gridmix_mask(jax.random.key(0), (8, 8), 0.5, **kwargs)


def test_equal_by_value_and_readable_name():
  # Catches: a fresh closure per call (two equal configs would recompile a
  # jit that takes the mixer as a static argument).
  assert gridmix() == gridmix() and hash(gridmix()) == hash(gridmix())
  assert gridmix(n_holes=8) != gridmix() and gridmix(aspect=2) != gridmix()
  assert gridmix().name == "gridmix(alpha=(0.1, 0.9), prob=1, n_holes=20, aspect=1)"
