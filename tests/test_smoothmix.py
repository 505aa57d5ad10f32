"""SmoothMix against the spec (shared/docs/methods.md, Part 2)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from msda_jax._masks import gmix_mask
from msda_jax._smoothmix import smoothmix, smoothmix_mask, smoothmix_rule

K = 4
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)
SHAPES = ((32, 32), (24, 40), (7, 3), (1, 1), (1, 5), (5, 1))


def _reference_mask(shape, center, lam):
  """The spec's window, in float64: M = 1 - exp(-(Δi²/2σy² + Δj²/2σx²)) with
  σ = (H, W) · sqrt((1 - λ) / 2π) (our documented choice of what λ sets)."""
  sigma = np.asarray(shape, np.float64) * np.sqrt((1 - np.float64(lam)) / (2 * np.pi))
  i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
  return 1 - np.exp(-((i - center[0]) ** 2 / (2 * sigma[0] ** 2)
                      + (j - center[1]) ** 2 / (2 * sigma[1] ** 2)))


def _center(key, shape):
  """The centre the key contract gives: uniforms 2 and 3 of the key, scaled."""
  u = np.asarray(jax.random.uniform(key, (4,)))[2:]
  return np.minimum(np.floor(u * np.asarray(shape, np.float32)), np.asarray(shape) - 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_range_no_nan_and_exact_mean(shape):
  # Catches: 0/0 at λ = 1 (σ = 0 at the centre pixel), and a separable mean
  # that is not the mask's mean (e.g. mean(row) + mean(col) - 1).
  rule = jax.jit(lambda k, lam: smoothmix_rule()(k, shape, lam))
  for i, lam in enumerate(EDGE_LAMS):
    mask, mean = rule(jax.random.key(i), lam)
    mask = np.asarray(mask)
    assert mask.shape == shape and mask.dtype == np.float32
    assert np.isfinite(mask).all(), (shape, lam)
    assert mask.min() >= 0.0 and mask.max() <= 1.0, (shape, lam)
    np.testing.assert_allclose(mean, mask.mean(), atol=1e-6)
    if lam == 1.0:
      np.testing.assert_array_equal(mask, 1.0)  # an empty window
    elif lam < 1.0:
      assert mask.min() == 0.0  # the partner owns the window's centre


def test_no_nan_even_in_intermediates():
  # Catches: a 0/0 at λ = 1 (σ = 0) hidden by a select: the output is fine
  # but a user's run with jax_debug_nans stops. Eager, so every op is checked.
  with jax.debug_nans(True):
    smoothmix_mask(jax.random.key(0), (5, 7), 1.0).block_until_ready()


@pytest.mark.parametrize("shape", [(32, 32), (24, 40), (40, 24)])
def test_window_matches_the_documented_rule(shape):
  # Catches: σ from H on both axes (wrong on non-square images), the axes of
  # σ swapped, σ² missing its 2π, M = g instead of 1 - g, a centre not from
  # the key contract's uniforms.
  for seed, lam in enumerate([0.0, 0.2, 0.5, 0.8, 0.97]):
    key = jax.random.key(seed)
    mask = smoothmix_mask(key, shape, lam)
    np.testing.assert_allclose(
        mask, _reference_mask(shape, _center(key, shape), np.float32(lam)),
        atol=2e-6, err_msg=f"λ={lam}")


def test_window_spread_and_mass_follow_lambda():
  # The documented choice: the partner's full-plane mass is (1 - λ) H W and
  # σ follows the image's aspect ratio, σy/H = σx/W = sqrt((1 - λ) / 2π).
  # On a 120 x 200 image with λ ≥ 0.97 and the centre ≥ 4.5σ from the border,
  # the window is untruncated to 1e-4, so the partner weight's sum and second
  # moments measure mass and σ. Catches: σ = size·sqrt((1-λ)/π) (mass 2x),
  # σ isotropic in pixels (σx/W off by 200/120), λ ignored (mass constant).
  shape = np.array([120, 200])
  found = 0
  for seed in range(200):
    key = jax.random.key(seed)
    center = _center(key, shape)
    lam = 0.97 + 0.025 * (seed % 4) / 3
    sigma = np.asarray(shape) * np.sqrt((1 - lam) / (2 * np.pi))
    if np.any(center < 4.5 * sigma) or np.any(shape - 1 - center < 4.5 * sigma):
      continue
    found += 1
    weight = 1 - np.asarray(smoothmix_mask(key, (120, 200), lam), np.float64)
    np.testing.assert_allclose(weight.sum(), (1 - lam) * 120 * 200, rtol=1e-3)
    i, j = np.meshgrid(np.arange(120), np.arange(200), indexing="ij")
    var_i = (weight * (i - center[0]) ** 2).sum() / weight.sum()
    var_j = (weight * (j - center[1]) ** 2).sum() / weight.sum()
    # Discrete variance of a sampled Gaussian: σ² up to O(e^{-2π²σ²}).
    np.testing.assert_allclose(np.sqrt([var_i, var_j]), sigma, rtol=2e-3)
  assert found >= 20, found


def test_centre_is_uniform_over_the_pixels():
  # Catches: a centre drawn from floor(u · (size - 1)) (last row/column never
  # hit) or from the middle only. The centre is the mask's unique 0 pixel
  # (λ = 0.999). 3000 draws over 6 x 10 pixels: 50 per cell expected.
  shape = (6, 10)
  masks = jax.jit(jax.vmap(lambda k: smoothmix_mask(k, shape, 0.999)))(
      jax.random.split(jax.random.key(0), 3000))
  flat = np.asarray(masks).reshape(3000, -1)
  assert np.all((flat == 0).sum(axis=1) == 1)
  counts = np.bincount(flat.argmin(axis=1), minlength=60)
  assert stats.chisquare(counts).pvalue > 1e-3, counts.reshape(shape)


def test_square_images_at_lambda_above_half_are_gmix():
  # GMix's blob exp(-π d² / (λ' H W)) with λ' = 1 - λ is this window on a
  # square image: same mass rule, same centre from the same key. Catches a
  # mass rule that drifted from GMix's (e.g. (1 - λ) H² / 2π in σ, not σ²).
  for seed, lam in enumerate([0.5, 0.7, 0.95]):
    key = jax.random.key(seed)
    np.testing.assert_allclose(smoothmix_mask(key, (24, 24), lam),
                               gmix_mask(key, (24, 24), lam), atol=1e-6)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_mixer_labels_are_the_mask_mean_and_masks_follow_the_key(mode):
  # Catches: labels mixed by the sampled λ instead of the realised mean (which
  # the border pulls toward 1), a mask that does not blend the partner in.
  mixer = smoothmix(num_classes=K, mode=mode, partner="permute")
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
      if p[i] != i:  # α = 1: λ is the key's first uniform
        lam_i = jax.random.uniform(k, (4,))[0]
        np.testing.assert_allclose(out.mask[i], smoothmix_mask(k, (24, 40), lam_i),
                                   atol=1e-6)


def test_other_spatial_ranks_are_a_clear_error_at_trace_time():
  # Catches: a 1-D or 3-D batch mixed with a wrong mask or failing in XLA.
  mixer = jax.jit(smoothmix(num_classes=K))
  for shape in [(4, 64, 3), (4, 6, 8, 8, 3)]:
    message = f"smoothmix needs 2-D images (B, H, W, C); got spatial shape {shape[1:-1]}"
    with pytest.raises(ValueError, match=re.escape(message)):
      mixer(jax.random.key(0), jnp.zeros(shape), jnp.arange(4) % K)
  with pytest.raises(ValueError, match="lam must be in"):
    smoothmix_mask(jax.random.key(0), (8, 8), 1.5)


def test_equal_by_value_readable_name_and_bad_options():
  # Catches: a fresh closure per call (recompiles), options not validated.
  assert smoothmix() == smoothmix() and hash(smoothmix()) == hash(smoothmix())
  assert smoothmix(alpha=0.5) != smoothmix()
  assert smoothmix(alpha=(0.0, 0.6)).name == "smoothmix(alpha=(0, 0.6), prob=1)"
  for kwargs in [dict(alpha=0.0), dict(alpha="x"), dict(prob=-0.1)]:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
      smoothmix(**kwargs)
