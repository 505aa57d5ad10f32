"""GridMix: the partner shows through a regular grid of rectangular holes.

The image is tiled into cells ``cw`` pixels wide (``n_holes`` across the
width) and ``ch = int(cw · aspect)`` high, starting at the top-left corner;
every cell has one hole in its top-left corner, of side
``int(cell · sqrt(1 - λ))`` clamped to ``[1, cell - 1]`` (cells running past
the border are clipped). ``M = 0`` in the holes (the partner), 1 elsewhere;
the label weight is the realised mask mean, ``1 - holes / (H W)``, counted
from the grid per axis (no reduction over the mask).

The reference raises for ``n_holes > W // 2`` and divides by zero when
``int(cw · aspect) = 0``; here any ``n_holes`` and ``aspect`` work: cell
sides are raised to at least 2 pixels (room for a hole and a bar).

The hole pattern is a product of a row pattern and a column pattern, so the
mask is two iota compares that XLA fuses into the blend; GridMix draws no
random number besides λ.

Reference: Baek, Bang & Shin, "GridMix: Strong regularization through local
context mapping", Pattern Recognition 109 (2021); code:
github.com/IlyaDobrynin/GridMixup (``GridMixupLoss._get_gridmask``).
"""

import math
import numbers

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax._engine import (Alpha, UniformMask, mask_mixer, method_name, uniform_mask)
from msda_jax._lam import as_lam
from msda_jax._mixer import Mixer

__all__ = ["gridmix", "gridmix_mask", "gridmix_rule", "grid_cells"]


def _check_n_holes(n_holes) -> int:
  if (isinstance(n_holes, bool) or not isinstance(n_holes, numbers.Integral)
      or n_holes < 1):
    raise ValueError(f"n_holes must be an int >= 1 (default 20); got {n_holes!r}")
  return int(n_holes)


def _check_aspect(aspect) -> float:
  message = "aspect must be a finite float > 0 (default 1.0)"
  if isinstance(aspect, bool):
    raise ValueError(f"{message}; got {aspect!r}")
  try:
    value = float(aspect)
  except (TypeError, ValueError):
    raise ValueError(f"{message}; got {aspect!r}") from None
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"{message}; got {aspect!r}")
  return value


def grid_cells(shape: tuple[int, int], n_holes: int,
               aspect: float) -> tuple[int, int]:
  """The static cell size ``(ch, cw)`` of the grid on an ``(H, W)`` image.

  The reference's rule, ``cw = ceil(W / n_holes)``, ``ch = int(cw · aspect)``,
  with each side raised to at least 2 pixels: a 1-pixel cell has no room for
  a hole and a bar, so there are at most ``W / 2`` holes across.

  Example:
    >>> grid_cells((224, 224), 20, 1.0), grid_cells((32, 32), 20, 1.0)
    ((12, 12), (2, 2))
  """
  width = shape[1]  # the grid is laid out from the width
  cell_w = max(-(-width // n_holes), 2)
  cell_h = max(int(cell_w * aspect), 2)
  return cell_h, cell_w


def _grid(u, shape, lam, *, n_holes, aspect):
  del u  # the grid is fixed; only λ is random
  height, width = _geometry.check_2d_shape(shape, "gridmix")
  cells = grid_cells((height, width), n_holes, aspect)
  ratio = jnp.sqrt(1.0 - as_lam(lam))

  def holes(size, cell):
    # Hole side int(cell · sqrt(1 - λ)) clamped to [1, cell - 1]; the pixels
    # of this axis that fall in a hole (the top-left of every cell).
    side = jnp.clip(jnp.floor(cell * ratio).astype(jnp.int32), 1, cell - 1)
    return (jnp.arange(size, dtype=jnp.int32) % cell) < side

  rows, cols = holes(height, cells[0]), holes(width, cells[1])
  mask = jnp.where(rows[:, None] & cols[None, :], 0.0, 1.0).astype(jnp.float32)
  total = height * width
  hole_pixels = (jnp.sum(rows, dtype=jnp.int32) * jnp.sum(cols, dtype=jnp.int32))
  return mask, (total - hole_pixels).astype(jnp.float32) / total


def _rule(n_holes: int, aspect: float) -> UniformMask:
  return uniform_mask(_grid, num_uniforms=0, n_holes=n_holes, aspect=aspect)


def gridmix_rule(*, n_holes: int = 20, aspect: float = 1.0) -> UniformMask:
  """GridMix as a :class:`~msda_jax._engine.UniformMask` (validated options)."""
  return _rule(_check_n_holes(n_holes), _check_aspect(aspect))


def gridmix_mask(key: jax.Array, shape: tuple[int, int], lam, *,
                 n_holes: int = 20, aspect: float = 1.0) -> jax.Array:
  """GridMix (Baek et al., Pattern Recognition 2021): a grid of partner holes.

  Cells ``cw = ceil(W / n_holes)`` wide and ``ch = int(cw · aspect)`` high
  tile the image from its top-left corner; each has a hole of side
  ``int(cell · sqrt(1 - λ))``, clamped to ``[1, cell - 1]``, in its top-left
  corner. Cell sides are at least 2 pixels (see :func:`grid_cells`), so
  small images work. Hole sides are integers, so the mask mean moves with λ
  in steps; at ``cw = 2`` (``n_holes >= W / 2``, e.g. the default 20 holes
  on a 32 x 32 image) every hole is one pixel and the mean is 3/4 whatever
  λ is: pick ``n_holes`` well below ``W / 2`` for λ to matter.

  Args:
    key: a PRNG key (unused: the grid is fixed; kept so every generator has
      the same signature).
    shape: ``(H, W)``, static. Other spatial ranks raise a ValueError.
    lam: the mixing ratio λ in [0, 1].
    n_holes: holes across the width (the reference's ``n_holes_x``), >= 1.
    aspect: hole (and cell) height over width, > 0.

  Returns:
    float32 ``(H, W)`` with values in {0, 1}.

  Example:
    >>> import jax
    >>> m = gridmix_mask(jax.random.key(0), (4, 8), 0.75, n_holes=2)
    >>> print(m.astype(int))      # 4 x 4 cells, holes of side 4 · sqrt(1/4)
    [[0 0 1 1 0 0 1 1]
     [0 0 1 1 0 0 1 1]
     [1 1 1 1 1 1 1 1]
     [1 1 1 1 1 1 1 1]]
  """
  return gridmix_rule(n_holes=n_holes, aspect=aspect)(key, shape, lam)[0]


def gridmix(*, alpha: Alpha = (0.1, 0.9), mode: str = "elem",
            prob: float = 1.0, partner: str = "flip",
            label_smoothing: float = 0.0, num_classes=None,
            n_holes: int = 20, aspect: float = 1.0) -> Mixer:
  """GridMix (Baek, Bang & Shin, "GridMix: Strong regularization through
  local context mapping", Pattern Recognition 2021).

  The partner shows through a regular grid of holes whose side ratio is
  ``sqrt(1 - λ)`` of the cell (see :func:`gridmix_mask`); the label weight is
  the realised mask mean. 2-D images only. Returns a :class:`Mixer`.

  Args:
    alpha: ``(low, high)`` for λ ~ U(low, high) (default (0.1, 0.9), the
      reference's), or α > 0 for λ ~ Beta(α, α).
    mode: 'elem' (one λ and mask per sample), 'pair' (per pair of partners)
      or 'batch' (one for the batch).
    prob: probability that a sample (the batch, in 'batch' mode; a pair, in
      'pair' mode) is mixed at all; otherwise it is left exactly as it was.
    partner: the pairing, 'flip' (i with B-1-i), 'roll' (i with i-1) or
      'permute' (keyed random pairing).
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels (one per head for pytree
      labels).
    n_holes: holes across the width, >= 1 (at most ``W / 2`` take effect:
      cells are at least 2 pixels wide).
    aspect: hole height over width, > 0.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mixer = gridmix(n_holes=8, num_classes=10)
    >>> mixer.name
    'gridmix(alpha=(0.1, 0.9), prob=1, n_holes=8, aspect=1)'
    >>> out = jax.jit(mixer)(jax.random.key(0), jnp.zeros((4, 32, 32, 3)),
    ...                      jnp.arange(4))
    >>> out.images.shape, out.labels.shape
    ((4, 32, 32, 3), (4, 10))
  """
  n_holes, aspect = _check_n_holes(n_holes), _check_aspect(aspect)
  return mask_mixer(_rule(n_holes, aspect), alpha=alpha, mode=mode, prob=prob,
                    partner=partner, label_smoothing=label_smoothing,
                    num_classes=num_classes,
                    name=method_name("gridmix", alpha, prob, n_holes=n_holes,
                               aspect=f"{aspect:g}"))
