"""Tests for ``python -m msda_jax.show``: the PNG grid of masks and mixes."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import msda_jax
from msda_jax import _paste, show
from msda_jax._types import PasteBox

PIL_image = pytest.importorskip("PIL.Image")
pytest.importorskip("skimage.data")

SIZE = 32
SEED = 0
ROWS = 1 + 8  # the photos and their partners, then one row per method
COLS = 6  # three masks, then three mixed images
NAMES = ("mixup", "cutmix", "hmix", "gmix", "fmix", "gridmix", "smoothmix",
         "resizemix")


@pytest.fixture(scope="module")
def gallery():
  return show.render_gallery(size=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
  path = tmp_path_factory.mktemp("show") / "grid.png"
  assert show.main(["--out", str(path), "--size", str(SIZE),
                    "--seed", str(SEED)]) == 0
  with PIL_image.open(path) as image:
    assert image.format == "PNG"
    assert image.mode == "RGB"
    return np.asarray(image).copy()


def _tile(png, row, col):
  top, left = show.tile_origin(row, col, SIZE)
  return png[top:top + SIZE, left:left + SIZE].astype(np.int32)


def _mask_tile(png, method, col):
  tile = _tile(png, 1 + NAMES.index(method), col)
  # Masks are drawn gray: the three channels agree.
  assert (tile == tile[..., :1]).all()
  return tile[..., 0]


def _mixed_tile(png, method, col):
  return _tile(png, 1 + NAMES.index(method), 3 + col)


def test_png_has_the_grid_dimensions(png):
  height = show.TITLE + ROWS * (show.CAPTION + SIZE + show.PAD)
  width = show.LABEL_WIDTH + COLS * (SIZE + show.PAD) + show.PAD
  assert png.shape == (height, width, 3)
  assert show.grid_shape(SIZE) == (height, width)
  # The last tile ends inside the picture.
  top, left = show.tile_origin(ROWS - 1, COLS - 1, SIZE)
  assert top + SIZE <= height and left + SIZE <= width


def test_png_is_the_rendered_gallery(png, gallery):
  np.testing.assert_array_equal(png, gallery.image)
  assert len(gallery.tiles) == ROWS * COLS
  assert sorted(gallery.lams) == sorted(NAMES)
  assert gallery.tiles[("resizemix mixed", 2)] == show.tile_origin(8, 5, SIZE)
  assert gallery.tiles[("partner", 0)] == show.tile_origin(0, 3, SIZE)


def test_header_row_holds_the_photos_then_their_partners(png):
  photos = show.load_photos(SIZE)
  for col in range(3):
    np.testing.assert_array_equal(_tile(png, 0, col), photos[col])
    # Above mixed column col: photo col's partner, the one on its left.
    np.testing.assert_array_equal(_tile(png, 0, 3 + col),
                                  photos[(col - 1) % 3])
  # Three different, non-flat photos.
  assert all(photos[c].std() > 20 for c in range(3))
  assert not np.array_equal(photos[0], photos[1])


def _runs(row):
  """Number of runs of equal values along a row."""
  return 1 + int(np.count_nonzero(np.diff(row)))


def test_mask_rows_have_each_methods_shape(png):
  # Catches a method's row drawn with another method's generator, or its
  # options lost (e.g. GridMix with one hole, FMix with soft edges).
  for col, lam in enumerate(show.LAMS):
    mixup = _mask_tile(png, "mixup", col)
    assert np.unique(mixup).tolist() == [round(255 * lam)]
    cutmix = _mask_tile(png, "cutmix", col)
    assert np.unique(cutmix).tolist() == [0, 255]  # a box, binary
    hmix = np.unique(_mask_tile(png, "hmix", col)).tolist()
    assert len(hmix) == 2 and hmix[0] == 0 and hmix[1] < 255  # {0, μ}
    gmix = _mask_tile(png, "gmix", col)
    assert len(np.unique(gmix)) > 20  # a smooth blob
    fmix = _mask_tile(png, "fmix", col)
    assert np.unique(fmix).tolist() == [0, 255]  # binary, any shape
    grid = _mask_tile(png, "gridmix", col)
    assert np.unique(grid).tolist() == [0, 255]
    assert max(_runs(r) for r in grid) >= 10  # many holes across a row
    smooth = _mask_tile(png, "smoothmix", col)
    # A soft window of the partner: pure partner at its centre.
    assert len(np.unique(smooth)) > 20 and smooth.min() <= 5
    resize = _mask_tile(png, "resizemix", col)
    assert np.unique(resize).tolist() == [0, 255]
    rows, cols = np.nonzero(resize == 0)  # one solid rectangle
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert box == rows.size


def test_mask_rows_differ_between_methods(png):
  rows = {name: np.stack([_mask_tile(png, name, c) for c in range(3)])
          for name in NAMES}
  for i, first in enumerate(NAMES):
    for second in NAMES[i + 1:]:
      assert np.abs(rows[first] - rows[second]).mean() > 5, (first, second)


def test_realised_lam_is_the_mask_mean(png, gallery):
  for name in NAMES:
    for col in range(3):
      mean = _mask_tile(png, name, col).mean() / 255.0
      assert abs(mean - float(gallery.lams[name][col])) < 3e-3, (name, col)
  # Mixup and HMix keep λ, FMix to one pixel; CutMix's box is one clipped box.
  np.testing.assert_allclose(gallery.lams["mixup"], show.LAMS, atol=1e-6)
  np.testing.assert_allclose(gallery.lams["hmix"], show.LAMS, atol=1e-5)
  np.testing.assert_allclose(gallery.lams["fmix"], show.LAMS,
                             atol=1 / SIZE ** 2 + 1e-6)


def test_mixed_tiles_blend_each_photo_with_its_partner(png):
  # ResizeMix blends with the whole partner shrunk into its box. Catches a
  # mixed tile made with another mask, partner or method, and ResizeMix
  # pasting the partner unresized.
  photos = show.load_photos(SIZE)
  paste = show.mix_photos(jax.random.key(SEED), photos)["resizemix"][3]
  for name in NAMES:
    for col in range(3):
      weight = _mask_tile(png, name, col)[..., None] / 255.0
      own, other = _tile(png, 0, col), _tile(png, 0, (col - 1) % 3)
      if name == "resizemix":
        box = PasteBox(paste.start[col], paste.size[col])
        other = np.asarray(_paste.paste_resized(other.astype(np.uint8), box),
                           np.int32)
      expected = weight * own + (1.0 - weight) * other
      # The gray mask is itself rounded to 1/255: allow a couple of levels.
      assert np.abs(_mixed_tile(png, name, col) - expected).max() <= 2.0, (
          name, col)
  # The pasted partner is shrunk: not the partner's own pixels there.
  inside = _mask_tile(png, "resizemix", 1) == 0
  partner = _tile(png, 0, 0)
  assert np.abs(_mixed_tile(png, "resizemix", 1) - partner)[inside].mean() > 10


def test_seed_changes_the_masks():
  photos = np.zeros((3, SIZE, SIZE, 3), np.uint8)
  first = show.mix_photos(jax.random.key(1), photos)
  second = show.mix_photos(jax.random.key(2), photos)
  assert not np.array_equal(first["cutmix"][0], second["cutmix"][0])


def test_bad_size_is_rejected(tmp_path):
  with pytest.raises(SystemExit):
    show.main(["--out", str(tmp_path / "x.png"), "--size", "4"])
  assert not (tmp_path / "x.png").exists()


def test_import_msda_jax_needs_neither_pil_nor_skimage():
  code = ("import sys, msda_jax, msda_jax.show; "
          "print(sorted(m for m in ('PIL', 'skimage') if m in sys.modules))")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(show.__file__)))
  assert out.stdout.strip() == "[]"


def test_default_seed_shows_exactly_one_clipped_cutmix_box():
  # The README's picture is meant to show the λ correction: one box clipped.
  # Column i's mask is cutmix_mask(split(key, 3)[i], ...) (mix_photos's key
  # contract, checked at the test size; then drawn at the README's 128).
  keys = jax.random.split(jax.random.key(show.DEFAULT_SEED), 3)
  photos = np.zeros((3, SIZE, SIZE, 3), np.uint8)
  masks = show.mix_photos(jax.random.key(show.DEFAULT_SEED), photos)["cutmix"][0]
  for col, lam in enumerate(show.LAMS):
    np.testing.assert_array_equal(
        masks[col], msda_jax.cutmix_mask(keys[col], (SIZE, SIZE), lam))
  lam = np.array([float(msda_jax.cutmix_mask(k, (128, 128), l).mean())
                  for k, l in zip(keys, show.LAMS)])
  clipped = np.abs(lam - np.asarray(show.LAMS)) > 0.05
  assert clipped.sum() == 1, lam
