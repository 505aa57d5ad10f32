"""Tests for ``python -m msda_jax.show``: the PNG grid of masks and mixes."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from msda_jax import show

PIL_image = pytest.importorskip("PIL.Image")
pytest.importorskip("skimage.data")

SIZE = 32
SEED = 0
ROWS = 1 + 2 * 4  # the photos, then a mask row and a mixed row per method
COLS = 3
NAMES = ("mixup", "cutmix", "hmix", "gmix")


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
  tile = _tile(png, 1 + 2 * NAMES.index(method), col)
  # Masks are drawn gray: the three channels agree.
  assert (tile == tile[..., :1]).all()
  return tile[..., 0]


def test_png_has_the_grid_dimensions(png):
  height = show.TITLE + ROWS * (show.CAPTION + SIZE + show.PAD)
  width = show.LABEL_WIDTH + COLS * (SIZE + show.PAD) + show.PAD
  assert png.shape == (height, width, 3)
  assert show.grid_shape(SIZE) == (height, width)
  # The last tile ends inside the picture.
  top, left = show.tile_origin(ROWS - 1, COLS - 1, SIZE)
  assert top + SIZE <= height and left + SIZE <= width


def test_png_is_the_rendered_gallery(png):
  gallery = show.render_gallery(size=SIZE, seed=SEED)
  np.testing.assert_array_equal(png, gallery.image)
  assert len(gallery.tiles) == ROWS * COLS
  assert gallery.tiles[("gmix mixed", 2)] == show.tile_origin(8, 2, SIZE)


def test_header_row_holds_the_three_photos(png):
  photos = show.load_photos(SIZE)
  for col in range(COLS):
    np.testing.assert_array_equal(_tile(png, 0, col), photos[col])
  # Three different, non-flat photos.
  assert all(photos[c].std() > 20 for c in range(COLS))
  assert not np.array_equal(photos[0], photos[1])


def test_mask_rows_have_each_methods_shape(png):
  for col, lam in enumerate(show.LAMS):
    mixup = _mask_tile(png, "mixup", col)
    assert np.unique(mixup).tolist() == [round(255 * lam)]
    cutmix = _mask_tile(png, "cutmix", col)
    assert np.unique(cutmix).tolist() == [0, 255]  # a box, binary
    hmix = np.unique(_mask_tile(png, "hmix", col)).tolist()
    assert len(hmix) == 2 and hmix[0] == 0 and hmix[1] < 255  # {0, μ}
    gmix = _mask_tile(png, "gmix", col)
    assert len(np.unique(gmix)) > 20  # a smooth blob


def test_mask_rows_differ_between_methods(png):
  rows = {name: np.stack([_mask_tile(png, name, c) for c in range(COLS)])
          for name in NAMES}
  for i, first in enumerate(NAMES):
    for second in NAMES[i + 1:]:
      assert np.abs(rows[first] - rows[second]).mean() > 5, (first, second)


def test_realised_lam_is_the_mask_mean(png):
  gallery = show.render_gallery(size=SIZE, seed=SEED)
  for name in NAMES:
    for col in range(COLS):
      mean = _mask_tile(png, name, col).mean() / 255.0
      assert abs(mean - float(gallery.lams[name][col])) < 3e-3, (name, col)
  # Mixup and HMix keep λ; CutMix's box is one clipped box.
  np.testing.assert_allclose(gallery.lams["mixup"], show.LAMS, atol=1e-6)
  np.testing.assert_allclose(gallery.lams["hmix"], show.LAMS, atol=1e-5)


def test_mixed_rows_blend_each_photo_with_its_left_neighbour(png):
  for name in NAMES:
    for col in range(COLS):
      weight = _mask_tile(png, name, col)[..., None] / 255.0
      own, other = _tile(png, 0, col), _tile(png, 0, (col - 1) % COLS)
      expected = weight * own + (1.0 - weight) * other
      mixed = _tile(png, 2 + 2 * NAMES.index(name), col)
      # The gray mask is itself rounded to 1/255: allow a couple of levels.
      assert np.abs(mixed - expected).max() <= 2.0, (name, col)


def test_seed_changes_the_masks():
  first = show.render_gallery(size=SIZE, seed=1)
  second = show.render_gallery(size=SIZE, seed=2)
  assert not np.array_equal(first.lams["cutmix"], second.lams["cutmix"])


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
  photos = np.zeros((3, 128, 128, 3), np.uint8)
  lam = show.mix_photos(jax.random.key(show.DEFAULT_SEED), photos)["cutmix"][2]
  clipped = np.abs(lam - np.asarray(show.LAMS)) > 0.05
  assert clipped.sum() == 1, lam
