"""SaliencyMix: CutMix's box centred on the partner's most salient pixel."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax
from msda_jax import _engine

K = 5
H = W = 16
B = 8


def _box_reference(shape, lam, center):
  """The reference's saliency_bbox: side floor(size sqrt(1 - λ)), the box
  [c - cut // 2, c + cut // 2) per axis, clipped; 0 inside."""
  mask = np.ones(shape, np.float32)
  cut = np.floor(np.asarray(shape) * np.sqrt(1.0 - lam)).astype(int)
  lo = np.clip(np.asarray(center) - cut // 2, 0, shape)
  hi = np.clip(np.asarray(center) + cut // 2, 0, shape)
  mask[lo[0]:hi[0], lo[1]:hi[1]] = 0.0
  return mask


def _peaked_guides(b=B, grid=(H, W), seed=0):
  """One peak per sample at a known cell; returns guides and the cells."""
  rng = np.random.default_rng(seed)
  cells = np.stack([rng.integers(0, g, b) for g in grid], axis=1)
  guide = rng.uniform(0, 0.5, (b, *grid)).astype(np.float32)
  guide[np.arange(b), cells[:, 0], cells[:, 1]] = 1.0
  return guide, cells


def _blob_images(b=B, seed=1):
  """Flat grey images, each with one bright 4x4 square at a random place."""
  rng = np.random.default_rng(seed)
  images = np.full((b, H, W, 3), 0.5, np.float32)
  corners = rng.integers(0, H - 4, (b, 2))
  for i, (r, c) in enumerate(corners):
    images[i, r:r + 4, c:c + 4] = 1.0
  return images, corners


@functools.cache
def _outputs():
  images, _ = _blob_images()
  labels = np.arange(B) % K
  guide, _ = _peaked_guides()
  coarse, _ = _peaked_guides(grid=(4, 4))
  elem = msda_jax.saliencymix(num_classes=K, partner="permute")
  batch = msda_jax.saliencymix(num_classes=K, mode="batch")

  def run(key, images, labels, guide, coarse):
    return dict(
        elem=elem(key, images, labels, guide=guide),
        dict_guide=elem(key, images, labels, guide={"saliency": guide}),
        coarse=elem(key, images, labels, guide=coarse),
        batch=batch(key, images, labels, guide=guide),
        default=elem(key, images, labels),
        spectral=elem(key, images, labels,
                      guide=msda_jax.spectral_residual_saliency(images)),
    )
  return jax.jit(run)(jax.random.key(7), images, labels, guide, coarse)


def _drawn_lams(key, b=B):
  """λ of each sample by the key contract (α = 1: λ = u[0], no uniforms)."""
  _, mask_key = jax.random.split(key)
  keys = jax.random.split(mask_key, b)
  return np.asarray(jax.vmap(
      lambda k: _engine.draw_lam(jax.random.uniform(k, (2,)), 1.0))(keys))


def test_box_is_centred_on_the_partners_peak():
  # Catches: the box centred on the sample's own guide instead of its
  # partner's, a box of the wrong size (area λ instead of 1 - λ, or a
  # rounding that differs from the reference's), a λ that does not follow the
  # key contract, and labels not weighted by the realised (clipped) area.
  out = _outputs()["elem"]
  _, cells = _peaked_guides()
  lams = _drawn_lams(jax.random.key(7))
  partner = np.asarray(out.partner_index)
  for i in range(B):
    expect = (np.ones((H, W)) if partner[i] == i else
              _box_reference((H, W), lams[i], cells[partner[i]]))
    np.testing.assert_array_equal(np.asarray(out.mask[i]), expect)
  np.testing.assert_allclose(np.asarray(out.lam),
                             np.asarray(out.mask).mean(axis=(1, 2)), atol=1e-6)
  labels = np.arange(B) % K
  y = np.eye(K)[labels]
  lam = np.asarray(out.lam)[:, None]
  np.testing.assert_allclose(np.asarray(out.labels),
                             lam * y + (1 - lam) * y[partner], atol=1e-6)
  chex.assert_trees_all_equal(out, _outputs()["dict_guide"])


def test_a_coarse_guide_maps_each_cell_to_its_centre_pixel():
  # Catches: a coarse guide's argmax used as a pixel index (the box would sit
  # in the top-left corner) or mapped to a cell's corner instead of its centre.
  out = _outputs()["coarse"]
  _, cells = _peaked_guides(grid=(4, 4))
  lams = _drawn_lams(jax.random.key(7))
  partner = np.asarray(out.partner_index)
  for i in range(B):
    if partner[i] == i:
      continue
    center = cells[partner[i]] * 4 + 2  # cell of 4 pixels: its centre pixel
    np.testing.assert_array_equal(np.asarray(out.mask[i]),
                                  _box_reference((H, W), lams[i], center))


def test_batch_mode_is_the_references_one_box():
  # Catches: 'batch' mode drawing a box per sample, or from another sample's
  # view than sample 0's partner (the reference: one box from one image of
  # the permuted batch).
  out = _outputs()["batch"]
  _, cells = _peaked_guides()
  masks = np.asarray(out.mask)
  np.testing.assert_array_equal(masks, np.broadcast_to(masks[0], masks.shape))
  _, mask_key = jax.random.split(jax.random.key(7))
  lam = float(_engine.draw_lam(jax.random.uniform(mask_key, (2,)), 1.0))
  partner0 = int(out.partner_index[0])
  np.testing.assert_array_equal(masks[0],
                                _box_reference((H, W), lam, cells[partner0]))


def test_default_guide_is_the_spectral_residual_of_the_images():
  # Catches: the default guide computed from other data than the images (or
  # not at all), so a user without a model gets a different method.
  outs = _outputs()
  chex.assert_trees_all_equal(outs["default"], outs["spectral"])


def test_pasted_patch_holds_the_partners_salient_object():
  # Catches: a box that ignores the saliency (CutMix's random box): with one
  # bright square per image on a flat background, SaliencyMix's patch covers
  # the partner's square far more often than a random box of the same λ.
  images, corners = _blob_images(64, seed=3)
  labels = np.zeros(64, np.int32)
  key = jax.random.key(11)
  outs = jax.jit(lambda k, x, y: (
      msda_jax.saliencymix(num_classes=K)(k, x, y),
      msda_jax.cutmix(num_classes=K)(k, x, y)))(key, images, labels)

  def partner_square_shown(out):
    p = np.asarray(out.partner_index)
    shown = []
    for i in range(64):
      r, c = corners[p[i]]
      shown.append(1.0 - np.asarray(out.mask[i, r:r + 4, c:c + 4]).mean())
    return np.mean(shown)
  salient, random_box = map(partner_square_shown, outs)
  # Measured: 0.85 vs 0.42 (same keys, so the same λ per sample).
  assert salient > 0.75 and salient > random_box + 0.3, (salient, random_box)


@pytest.mark.parametrize("shape", [(12,), (4, 6, 8)])
def test_other_ranks(shape):
  # Catches: the box or the peak lookup written for 2-D only.
  guide = np.zeros(shape, np.float32)
  peak = tuple(s // 3 for s in shape)
  guide[peak] = 1.0
  mask, mean = msda_jax.saliencymix_mask(jax.random.key(0), shape, 0.6,
                                         None, guide)
  mask = np.asarray(mask)
  assert mask[peak] == 0.0
  np.testing.assert_allclose(float(mean), mask.mean(), atol=1e-6)
  assert 0.0 < mask.mean() < 1.0


def test_guide_errors_name_the_shapes():
  # Catches: a saliency map with a channel axis or of another rank reaching
  # argmax (a wrong centre, silently), and a dict guide without saliency.
  with pytest.raises(ValueError, match=r"\(16, 16\).*\(16, 16, 3\)"):
    msda_jax.saliencymix_mask(jax.random.key(0), (16, 16), 0.5, None,
                              jnp.zeros((16, 16, 3)))
  with pytest.raises(ValueError, match="'saliency'"):
    msda_jax.saliencymix_mask(jax.random.key(0), (16, 16), 0.5, None,
                              {"image": jnp.zeros((16, 16))})
  with pytest.raises(ValueError, match="exact_box"):
    msda_jax.saliencymix(exact_box="yes")
