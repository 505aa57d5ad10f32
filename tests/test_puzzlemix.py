"""PuzzleMix as a mixer: solved masks, transport applied, guides, configs.

The solver and the energy are tested in tests/test_puzzle.py; here, what the
mixer does with them.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax
from msda_jax import _blocks, _engine, _puzzle, _pairing
from msda_jax._puzzlemix import puzzlemix_guide

K = 3
H = W = 16
B = 8


def _blob_batch(b=B, seed=0):
  """Flat images with one bright 4x4 square each, their saliency the square."""
  rng = np.random.default_rng(seed)
  images = np.full((b, H, W, 3), 0.2, np.float32)
  saliency = np.full((b, H, W), 0.01, np.float32)
  corners = rng.integers(0, H - 4, (b, 2))
  for i, (r, c) in enumerate(corners):
    images[i, r:r + 4, c:c + 4] = 0.9
    saliency[i, r:r + 4, c:c + 4] = 1.0
  return images, np.arange(b) % K, saliency


FIXED = msda_jax.puzzlemix(num_classes=K, block_num=4, partner="permute")
RANDOM_BLOCKS = msda_jax.puzzlemix(num_classes=K, transport=False)
# Two quadrants per side, transport on 4 x 4: the blob batch's labellings
# already keep every salient block where it is (its plans are identities),
# so a crafted pair makes transport move blocks of both images.
COARSE_OPTIONS = dict(block_num=2, t_eps=0.1)
COARSE_ALPHA = (0.4, 0.6)
COARSE = msda_jax.puzzlemix(num_classes=K, partner="flip", alpha=COARSE_ALPHA,
                            **COARSE_OPTIONS)


def _crafted_pair():
  """Sample 1 salient in the top-left quadrant; sample 0 in the bottom-right
  one and in a 4x4 corner of the top-left one: each mask gives that quadrant
  to sample 1, so sample 0's corner must travel (own plan of sample 0,
  partner plan of sample 1)."""
  images = np.random.default_rng(1).uniform(size=(2, H, W, 3)).astype(
      np.float32)
  saliency = np.full((2, H, W), 0.01, np.float32)
  saliency[0, :4, :4] = saliency[0, 8:, 8:] = 1.0
  saliency[1, :8, :8] = 1.0
  return images, np.arange(2) % K, saliency


@functools.cache
def _outputs():
  images, labels, saliency = _blob_batch()
  guide = {"saliency": saliency, "image": images}
  pair_images, pair_labels, pair_saliency = _crafted_pair()
  pair_guide = {"saliency": pair_saliency, "image": pair_images}

  def run(key, images, labels, guide):
    return dict(
        crafted=COARSE(key, pair_images, pair_labels, guide=pair_guide),
        fixed=FIXED(key, images, labels, guide=guide),
        default=FIXED(key, images, labels),
        default_given=FIXED(key, images, labels,
                            guide=puzzlemix_guide(images)),
        random=RANDOM_BLOCKS(key, images, labels, guide=guide),
        cutmix=msda_jax.cutmix(num_classes=K, partner="permute")(
            key, images, labels),
        choice=msda_jax.choice([FIXED, msda_jax.saliencymix(
            num_classes=K, partner="permute")])(key, images, labels,
                                                guide=guide),
    )
  return jax.jit(run)(jax.random.key(4), images, labels, guide)


def _check_follows_generator(out, batch, partner, alpha=1.0, **options):
  images, labels, saliency = batch
  b = len(labels)
  partner_key, mask_key = jax.random.split(jax.random.key(4))
  p = np.asarray(_pairing.partner_index(partner_key, b, partner))
  np.testing.assert_array_equal(np.asarray(out.partner_index), p)

  # The generator by hand at each sample's key, λ and views, vmapped in one
  # jit (the engine's key layout: tests/test_engine.py).
  def by_hand(key, saliency, image, partner_saliency, partner_image):
    lam = _engine.draw_lam(jax.random.uniform(key, (3,)), alpha)
    return _puzzle.puzzlemix_mask(
        _engine.mask_key(key), (H, W), lam,
        {"saliency": saliency, "image": image},
        {"saliency": partner_saliency, "image": partner_image}, **options)
  masks, means, (own, theirs) = jax.tree.map(np.asarray, jax.jit(jax.vmap(
      by_hand))(jax.random.split(mask_key, b), saliency, images, saliency[p],
                images[p]))
  mixed = p != np.arange(b)
  np.testing.assert_array_equal(np.asarray(out.mask)[mixed], masks[mixed])
  np.testing.assert_allclose(np.asarray(out.lam)[mixed], means[mixed],
                             atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out.moves.own)[mixed], own[mixed])
  np.testing.assert_array_equal(np.asarray(out.moves.partner)[mixed],
                                theirs[mixed])
  for i in np.flatnonzero(mixed):
    moved = _blocks.move_blocks(images[i], own[i])
    shown = _blocks.move_blocks(images[p[i]], theirs[i])
    m = masks[i][..., None]
    np.testing.assert_allclose(
        np.asarray(out.images[i]),
        m * np.asarray(moved) + (1 - m) * np.asarray(shown), atol=1e-6)
  lam = np.asarray(out.lam)[:, None]
  y = np.eye(K)[labels]
  np.testing.assert_allclose(np.asarray(out.labels),
                             lam * y + (1 - lam) * y[p], atol=1e-6)


def test_mixer_mask_and_images_follow_the_generator_and_its_moves():
  # Catches: the mixer's draw differing from puzzlemix_mask at the sample's
  # key and λ with its guide and its partner's (guides swapped or from the
  # wrong sample), the transport plans not applied, or applied to the wrong
  # image (own plan on the partner; seen: dropping the own plan in the mixer
  # fails on the crafted pair only), and labels not weighted by the mask mean.
  outs = _outputs()
  _check_follows_generator(outs["fixed"], _blob_batch(), "permute",
                           block_num=4)
  crafted = outs["crafted"]
  identity = np.arange(16).reshape(4, 4)
  # The crafted pair is there to move blocks: it must, in both plans.
  assert np.any(np.asarray(crafted.moves.own[0]) != identity)
  assert np.any(np.asarray(crafted.moves.partner[1]) != identity)
  _check_follows_generator(crafted, _crafted_pair(), "flip", COARSE_ALPHA,
                           **COARSE_OPTIONS)


def test_mixed_images_keep_more_saliency_than_cutmix():
  # Catches: a solver or transport that ignores the guide (a random or box
  # mask): PuzzleMix's mixed image must keep more of both images' salient
  # squares than CutMix's box at the same keys.
  outs = _outputs()
  _, _, saliency = _blob_batch()

  def kept(out):
    p = np.asarray(out.partner_index)
    m = np.asarray(out.mask)
    own, theirs = saliency, saliency[p]
    if out.moves is not None:
      move = lambda s, perm: np.asarray(_blocks.move_blocks(
          jnp.asarray(s)[..., None], perm))[..., 0]
      own = np.stack([move(own[i], out.moves.own[i]) for i in range(B)])
      theirs = np.stack([move(theirs[i], out.moves.partner[i])
                         for i in range(B)])
    return (m * own + (1 - m) * theirs).sum() / (saliency.sum() / B * 2 * B)
  puzzle, box = kept(outs["fixed"]), kept(outs["cutmix"])
  # Measured at these keys: 0.81 vs 0.69 of both images' saliency kept.
  assert puzzle > box + 0.06, (puzzle, box)


def test_block_counts_are_the_references_random_powers_of_two():
  # Catches: a fixed block count where the reference draws 2 ** randint(1, 5)
  # per sample, and a count outside {2, 4, 8, 16}.
  masks = np.asarray(_outputs()["random"].mask)
  found = set()
  for mask in masks:
    for n in (2, 4, 8, 16):  # the coarsest grid the mask is constant on
      blocks = mask.reshape(n, H // n, n, W // n)
      if np.all(blocks == blocks[:, :1, :, :1]):
        found.add(n)
        break
  assert found <= {2, 4, 8, 16} and len(found) >= 2, found


def test_default_guide_is_the_spectral_residual_and_the_images():
  # Catches: the default guide built from something else (or unscaled uint8
  # pixels), so model-free PuzzleMix would be a different method.
  outs = _outputs()
  chex.assert_trees_all_equal(outs["default"], outs["default_given"])
  g = puzzlemix_guide(jnp.full((1, 4, 4, 3), 255, jnp.uint8))
  np.testing.assert_allclose(np.asarray(g["image"]), 1.0)


def test_choice_with_saliencymix_shares_the_dict_guide():
  # Catches: a choice of two guided methods failing on one guide layout
  # (SaliencyMix reads the dict's 'saliency').
  out = _outputs()["choice"]
  assert out.moves is not None and out.labels.shape == (B, K)
  np.testing.assert_allclose(np.asarray(out.lam),
                             np.asarray(out.mask).mean(axis=(1, 2)), atol=1e-6)


def test_config_and_option_errors():
  # Catches: options not reachable from a config, and bad options reaching
  # the trace (a float block count, a negative weight) instead of a clear
  # error naming them; images that are not 2-D.
  mixer = msda_jax.from_config(dict(method="puzzlemix", num_classes=K,
                                    block_num=4, transport=False))
  assert mixer == msda_jax.puzzlemix(num_classes=K, block_num=4,
                                     transport=False)
  for name, value in (("block_num", 2.5), ("beta", -1.0), ("t_size", 0),
                      ("iterations", True), ("transport", 1)):
    with pytest.raises(ValueError, match=name):
      msda_jax.puzzlemix(**{name: value})
  with pytest.raises(ValueError, match="puzzlemix"):
    jax.eval_shape(lambda: FIXED(jax.random.key(0), jnp.zeros((2, 16, 3)),
                                 jnp.zeros(2, jnp.int32)))
