"""A picture of every method: originals, masks and mixed images in one PNG.

Run it as a script::

  python -m msda_jax.show --out gallery.png [--size 128] [--seed 0]

The grid has a header row with three photos that scikit-image ships offline
(astronaut, chelsea, coffee) and, right of them, each one's partner (the
previous photo, ``partner='roll'``); then one row per method (Mixup, CutMix,
HMix r=0.5, GMix, FMix, GridMix, SmoothMix, ResizeMix): the masks at
λ = 0.3, 0.5 and 0.7 (white = weight 1 of the photo itself), then each photo
mixed with its partner by :func:`msda_jax.blend` (ResizeMix pastes the whole
partner, shrunk, into its box). Captions give the nominal λ and the realised
λ (the mask mean, which is the label weight the mixers use).

Masks come from the methods' generators, vmapped and jit-compiled with a
traced λ. This is the only module that needs scikit-image and Pillow (the
``show`` extra); both are imported inside functions, so ``import msda_jax``
never loads them.

Example:
  >>> from msda_jax import show
  >>> gallery = show.render_gallery(size=32, seed=0)
  >>> gallery.image.shape == show.grid_shape(32) + (3,)
  True
  >>> sorted(gallery.lams)[:4]
  ['cutmix', 'fmix', 'gmix', 'gridmix']
"""

import argparse
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import msda_jax
from msda_jax import _fmix, _gridmix, _paste, _resizemix, _smoothmix
from msda_jax._types import PasteBox

__all__ = [
    "METHODS", "LAMS", "PHOTOS", "DEFAULT_SEED", "PAD", "CAPTION", "TITLE", "LABEL_WIDTH",
    "Gallery", "grid_shape", "tile_origin", "load_photos", "mix_photos",
    "render_gallery", "main",
]

# (row label, short name, mask generator with its options bound). A
# generator returns a mask, (mask, mean) or (mask, mean, PasteBox) (the
# partner pasted resized: ResizeMix's rule, which carries the box).
METHODS = (
    ("mixup", "mixup", msda_jax.mixup_mask),
    ("cutmix", "cutmix", msda_jax.cutmix_mask),
    ("hmix r=0.5", "hmix", functools.partial(msda_jax.hmix_mask, r=0.5)),
    ("gmix", "gmix", msda_jax.gmix_mask),
    ("fmix", "fmix", _fmix.fmix_mask),
    ("gridmix", "gridmix", _gridmix.gridmix_mask),
    ("smoothmix", "smoothmix", _smoothmix.smoothmix_mask),
    ("resizemix", "resizemix", _resizemix.resizemix_rule()),
)
LAMS = (0.3, 0.5, 0.7)  # nominal λ of the three columns
PHOTOS = ("astronaut", "chelsea", "coffee")  # skimage.data, bundled offline
# The picture's default seed: one CutMix box is clipped by the border (its
# realised λ moves away from the nominal one), the other two lie inside.
DEFAULT_SEED = 0

# Layout in pixels: a title strip, then rows of captioned tiles right of a
# label column; tiles are ``size x size`` and separated by PAD.
PAD = 6
CAPTION = 15
TITLE = 34
LABEL_WIDTH = 84
_FONT_SIZE = 11
_BACKGROUND = (255, 255, 255)
_FRAME = (160, 160, 160)
_INK = (20, 20, 20)


class Gallery(NamedTuple):
  """A rendered grid.

  Attributes:
    image: uint8 ``(height, width, 3)``.
    tiles: ``{(row, column): (top, left)}`` of every ``size x size`` tile;
      rows are ``'photo'`` (columns 0..2), ``'partner'`` (columns 0..2: the
      partner above mixed column ``c``), ``'<name> mask'`` and
      ``'<name> mixed'`` (columns 0..2 each) with ``name`` from ``METHODS``
      (e.g. ``'hmix mask'``).
    lams: ``{name: (3,) float32}`` realised λ (mask means) per column.
  """

  image: np.ndarray
  tiles: dict
  lams: dict


def grid_shape(size: int) -> tuple[int, int]:
  """``(height, width)`` of the grid for ``size x size`` tiles.

  One row of photos and one row per method; three mask columns, then three
  mixed columns.

  Example:
    >>> grid_shape(128)
    (1375, 894)
  """
  rows, cols = 1 + len(METHODS), 2 * len(PHOTOS)
  height = TITLE + rows * (CAPTION + size + PAD)
  width = LABEL_WIDTH + cols * (size + PAD) + PAD
  return height, width


def tile_origin(row: int, col: int, size: int) -> tuple[int, int]:
  """``(top, left)`` of the tile at grid ``row`` (0 = photos) and ``col``.

  Columns 0..2 hold the photos and masks, 3..5 the partners and mixes.

  Example:
    >>> tile_origin(0, 0, 128)
    (49, 90)
  """
  top = TITLE + row * (CAPTION + size + PAD) + CAPTION
  left = LABEL_WIDTH + PAD + col * (size + PAD)
  return top, left


def load_photos(size: int) -> np.ndarray:
  """The three bundled photos, centre-cropped square and resized with PIL.

  Args:
    size: side of the output, in pixels.

  Returns:
    uint8 ``(3, size, size, 3)`` in the order of ``PHOTOS``.

  Example:
    >>> load_photos(16).shape
    (3, 16, 16, 3)
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top

  out = []
  for name in PHOTOS:
    photo = getattr(data, name)()
    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(photo[top:top + side, left:left + side])
    out.append(np.asarray(
        square.resize((size, size), Image.Resampling.LANCZOS).convert("RGB")))
  return np.stack(out)


def _as_draw(out):
  """A generator's output as ``(mask, mean, PasteBox or None)``."""
  if not isinstance(out, tuple):
    return out, jnp.mean(out), None
  mask, mean, *paste = out
  return mask, mean, (paste[0] if paste else None)


@functools.partial(jax.jit, static_argnums=(0,))
def _masks_and_mix(mask_fn, keys, lams, photos):
  shape = photos.shape[1:3]
  masks, _, paste = jax.vmap(
      lambda k, lam: _as_draw(mask_fn(k, shape, lam)))(keys, lams)
  partners = jnp.roll(photos, 1, axis=0)
  if paste is not None:  # the whole partner, shrunk into the box
    partners = jax.vmap(_paste.paste_resized)(partners, paste)
  mixed = msda_jax.blend(photos, partners, masks)
  return masks, mixed, jnp.mean(masks, axis=(1, 2)), paste


def mix_photos(key: jax.Array, photos: np.ndarray) -> dict:
  """Masks and mixes for every method, photo ``i`` with photo ``i - 1``.

  Column ``i`` uses λ = ``LAMS[i]`` and the key ``split(key, 3)[i]`` for every
  method, so CutMix, HMix and GMix share the centre of their box or blob.

  Args:
    key: a PRNG key.
    photos: uint8 ``(3, H, W, 3)``.

  Returns:
    ``{name: (masks (3, H, W) float32, mixed (3, H, W, 3) uint8,
    lam (3,) float32, paste)}`` with ``name`` from ``METHODS``; ``paste`` is
    a :class:`~msda_jax.PasteBox` of ``(3, 2)`` int32 arrays for ResizeMix
    (where the shrunk partner went), else None.

  Example:
    >>> import jax, numpy as np
    >>> out = mix_photos(jax.random.key(0), np.zeros((3, 32, 32, 3), np.uint8))
    >>> [round(float(v), 2) for v in out['mixup'][2]]
    [0.3, 0.5, 0.7]
    >>> out['resizemix'][3].size.shape
    (3, 2)
  """
  keys = jax.random.split(key, len(PHOTOS))
  lams = jnp.asarray(LAMS, jnp.float32)
  photos = jnp.asarray(photos)
  results = {}
  for _, name, mask_fn in METHODS:
    masks, mixed, lam, paste = _masks_and_mix(mask_fn, keys, lams, photos)
    if paste is not None:
      paste = PasteBox(*(np.asarray(p) for p in paste))
    results[name] = (np.asarray(masks), np.asarray(mixed), np.asarray(lam),
                     paste)
  return results


def _font():
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  try:
    return ImageFont.load_default(size=_FONT_SIZE)
  except TypeError:  # Pillow < 10.1, or no FreeType: the fixed bitmap font
    return ImageFont.load_default()


def render_gallery(size: int = 128, seed: int = DEFAULT_SEED) -> Gallery:
  """Renders the grid of originals, masks and mixed images.

  Args:
    size: side of each tile, in pixels.
    seed: seed of the PRNG key that draws the masks.

  Returns:
    A :class:`Gallery`.

  Example:
    >>> g = render_gallery(size=32, seed=1)
    >>> g.tiles[('cutmix mask', 2)] == tile_origin(2, 2, 32)
    True
    >>> g.tiles[('cutmix mixed', 2)] == tile_origin(2, 5, 32)
    True
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  if int(size) < 8:
    raise ValueError(f"size must be an int >= 8; got {size!r}")
  size = int(size)
  photos = load_photos(size)
  results = mix_photos(jax.random.key(seed), photos)

  canvas = Image.new("RGB", grid_shape(size)[::-1], _BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  font = _font()
  tiles, lams = {}, {}

  def place(row, col, tile, caption):
    top, left = tile_origin(row, col, size)
    canvas.paste(Image.fromarray(tile), (left, top))
    draw.rectangle((left - 1, top - 1, left + size, top + size),
                   outline=_FRAME)
    draw.text((left, top - CAPTION + 1), caption, fill=_INK, font=font)
    return top, left

  def label(row, lines):
    top, _ = tile_origin(row, 0, size)
    draw.multiline_text((PAD, top + size // 2 - 7 * len(lines)),
                        "\n".join(lines), fill=_INK, font=font, spacing=2)

  draw.multiline_text(
      (PAD, 3), f"msda_jax, seed {seed}. Left: the mask, weight of the photo "
      f"itself (white = 1) at lam = {', '.join(map(str, LAMS))}; real = mask "
      "mean = label weight.\nRight: the photo mixed with its partner, the "
      "one on its left (partner='roll'), shown above.", fill=_INK, font=font,
      spacing=2)
  label(0, ["original |", "partner"])
  cols = len(PHOTOS)
  for col, name in enumerate(PHOTOS):
    tiles[("photo", col)] = place(0, col, photos[col], name)
    other = (col - 1) % cols
    tiles[("partner", col)] = place(0, cols + col, photos[other],
                                    f"partner: {PHOTOS[other]}")

  for index, (title, name, _) in enumerate(METHODS):
    masks, mixed, lam, _ = results[name]
    lams[name] = lam
    row = 1 + index
    label(row, [title])
    for col in range(cols):
      gray = np.round(masks[col] * 255.0).astype(np.uint8)
      tiles[(f"{name} mask", col)] = place(
          row, col, np.repeat(gray[..., None], 3, axis=-1),
          f"lam {LAMS[col]:.1f} -> real {lam[col]:.2f}")
      tiles[(f"{name} mixed", col)] = place(
          row, cols + col, mixed[col],
          f"{lam[col]:.2f} {PHOTOS[col]}+{PHOTOS[(col - 1) % cols]}")
  return Gallery(np.asarray(canvas), tiles, lams)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command line: renders the grid and writes it as a PNG.

  Args:
    argv: arguments without the program name; ``sys.argv[1:]`` if None.

  Returns:
    0 on success (the process exit status).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(
      prog="python -m msda_jax.show",
      description="Write a PNG grid of originals, masks and mixed images for "
      "every msda_jax method (Mixup, CutMix, HMix r=0.5, GMix, FMix, GridMix, "
      "SmoothMix, ResizeMix).")
  parser.add_argument("--out", required=True, help="path of the PNG to write")
  parser.add_argument("--size", type=int, default=128,
                      help="side of each tile in pixels (default: 128)")
  parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                      help="seed of the key that draws the masks (default: "
                      f"{DEFAULT_SEED})")
  args = parser.parse_args(argv)
  if args.size < 8:
    parser.error(f"--size must be >= 8; got {args.size}")
  gallery = render_gallery(size=args.size, seed=args.seed)
  Image.fromarray(gallery.image).save(args.out, optimize=True)
  height, width = gallery.image.shape[:2]
  print(f"wrote {args.out} ({width}x{height})")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
