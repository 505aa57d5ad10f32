"""Saliency maps for saliency-guided mixing: spectral residual and gradients.

Two pure, jit-able functions from a batch to one non-negative float32 map per
sample, over the spatial axes of ``(B, *spatial, C)`` (1 to 3 of them):

- :func:`spectral_residual_saliency`, the model-free saliency of Hou & Zhang
  (CVPR 2007) that SaliencyMix reimplementations take from OpenCV: the log
  amplitude spectrum minus its local average, back to pixels with the
  original phase, squared and blurred.
- :func:`gradient_saliency`, PuzzleMix's (Kim, Choo & Song, ICML 2020): the
  root mean square over channels of the loss gradient with respect to the
  input, optionally averaged over a block grid.

Every resampling and blur is separable and linear, so each is one small
matrix per axis, built in NumPy from the static shapes and applied with one
contraction per axis for the whole batch (no loop over samples, no host
round trip).
"""

import math
import numbers
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["spectral_residual_saliency", "gradient_saliency"]

# The amplitude floor inside the log, relative to the RMS amplitude of the
# spectrum (the grey image's L2 norm, by Parseval). The paper's log|F| is -inf
# at an exact spectral zero (common in synthetic images: a flat square's sinc
# nulls), which boosts that bin's neighbours without bound; the floor keeps
# the map scale-free and stable there (it moves by ~2e-4 with float32
# rounding) while moving it by ~2e-3 from log|F| where |F| has no zero. The
# numerator keeps F itself, so bins of pure rounding noise (a constant image)
# stay negligible instead of being whitened.
_AMPLITUDE_FLOOR = 1e-4
_TINY = 1e-30  # the floor of the floor, for an all-zero image


def _check_rank(x, name: str) -> int:
  shape = getattr(x, "shape", None)
  if shape is None or not 3 <= len(shape) <= 5:
    raise ValueError(
        f"{name} must be (B, *spatial, C) with 1, 2 or 3 spatial axes "
        f"(rank 3, 4 or 5); got shape {shape}")
  if 0 in shape:
    raise ValueError(f"{name} must have no empty axis; got shape {tuple(shape)}")
  return len(shape) - 2


def _check_size(size) -> Optional[int]:
  if size is None:
    return None
  if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
    raise ValueError(f"size must be None (native resolution) or an int >= 1 "
                     f"(default 64); got {size!r}")
  return int(size)


def _check_sigma(sigma) -> float:
  message = ("sigma must be a finite float >= 0, the blur's standard deviation "
             "as a fraction of the longest spatial axis (default 0.04; 0 = no blur)")
  if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
    raise ValueError(f"{message}; got {sigma!r}")
  value = float(sigma)
  if not (math.isfinite(value) and value >= 0):
    raise ValueError(f"{message}; got {sigma!r}")
  return value


def _check_filter_size(filter_size) -> int:
  if (isinstance(filter_size, bool) or not isinstance(filter_size, numbers.Integral)
      or filter_size < 1 or filter_size % 2 == 0):
    raise ValueError(f"filter_size must be an odd int >= 1 (default 3, the paper's); "
                     f"got {filter_size!r}")
  return int(filter_size)


def _working_shape(shape: tuple[int, ...], size: Optional[int]) -> tuple[int, ...]:
  """The spatial shape the spectrum is taken at: the longest axis at most
  ``size`` (never enlarged), the aspect kept, every axis >= 1 pixel."""
  if size is None or max(shape) <= size:
    return tuple(shape)
  scale = size / max(shape)
  return tuple(max(1, int(round(n * scale))) for n in shape)


def _resample_matrix(n_out: int, n_in: int) -> np.ndarray:
  """``(n_out, n_in)`` linear resampling with half-pixel centres; when
  shrinking, the triangle is stretched by the scale (antialiased, as
  ``jax.image.resize(..., antialias=True)``). Rows sum to 1 (edges clamp)."""
  if n_out == n_in:
    return np.eye(n_out)
  scale = n_in / n_out
  centres = (np.arange(n_out) + 0.5) * scale - 0.5
  support = max(scale, 1.0)
  weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
  return weights / weights.sum(axis=1, keepdims=True)


def _gaussian_matrix(n: int, sigma_px: float) -> np.ndarray:
  """``(n, n)`` Gaussian blur of standard deviation ``sigma_px`` pixels,
  renormalised at the borders (rows sum to 1: no darkening there)."""
  if sigma_px == 0 or n == 1:
    return np.eye(n)
  offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
  weights = np.exp(-0.5 * (offsets / sigma_px) ** 2)
  return weights / weights.sum(axis=1, keepdims=True)


def _per_axis(x: jax.Array, matrices: Sequence[np.ndarray]) -> jax.Array:
  """Contracts spatial axis ``a + 1`` of ``x`` with ``matrices[a]`` (rows out,
  columns in); identities are skipped."""
  for axis, matrix in enumerate(matrices, start=1):
    if matrix.shape[0] == matrix.shape[1] and np.array_equal(matrix, np.eye(len(matrix))):
      continue
    x = jnp.tensordot(jnp.asarray(matrix, jnp.float32), x, axes=[[1], [axis]],
                      precision=jax.lax.Precision.HIGHEST)
    x = jnp.moveaxis(x, 0, axis)
  return x


def _circular_box(x: jax.Array, width: int, axes: Sequence[int]) -> jax.Array:
  """The mean over a ``width``-wide window on every axis in ``axes``, with
  wrap-around (the spectrum is periodic)."""
  half = width // 2
  for axis in axes:
    x = sum(jnp.roll(x, shift, axis) for shift in range(-half, half + 1)) / width
  return x


def spectral_residual_saliency(images: jax.Array, *, size: Optional[int] = 64,
                               sigma: float = 0.04, filter_size: int = 3) -> jax.Array:
  """Spectral residual saliency (Hou & Zhang, "Saliency Detection: A Spectral
  Residual Approach", CVPR 2007), per sample of a batch.

  Per sample: the grey image ``x`` (the channel mean) is resampled so that its
  longest axis is ``size`` pixels (linear, antialiased; the paper works at
  64 px, as OpenCV's ``StaticSaliencySpectralResidual``); ``F = fft(x)``, the
  log amplitude ``L = log(|F| + ε)`` and its local average ``h * L`` (a
  ``filter_size``-wide box on every axis, with wrap-around); the residual
  spectrum ``exp(L - h * L + i·phase(F)) ≈ F · exp(-h * L)`` goes back
  through the inverse FFT, is squared (``|·|²``), blurred with a Gaussian of
  standard deviation ``sigma`` times the longest axis, resampled back to the
  input's spatial shape and divided by its maximum.

  ``ε`` is ``1e-4`` of the spectrum's RMS amplitude (scale-free), so the map
  does not depend on the images' scale: uint8 images give the map of the same
  images as floats in [0, 1] (or at any other scale). A constant image
  gives a uniform map (its spectrum is the DC term alone); an all-zero image
  gives zeros; never NaN.

  Args:
    images: ``(B, *spatial, C)`` with 1, 2 or 3 spatial axes (sequences,
      images, volumes); float (any width) or integer dtype.
    size: the longest spatial axis of the grid the spectrum is taken at
      (static). Larger inputs are shrunk to it, aspect kept; smaller ones are
      used as they are (never enlarged). ``None``: the native resolution.
      Default 64, the paper's.
    sigma: the standard deviation of the final Gaussian blur, as a fraction of
      the longest axis of that grid (static), >= 0; 0: no blur. Default 0.04,
      about the authors' code's 2.5 px at 64 px (the paper states σ = 8 px,
      which OpenCV applies to ``|·|`` before squaring, through a 5 x 5
      kernel: nearly a 5-px box).
    filter_size: the width of the box averaging the log amplitude, odd >= 1
      (static; 1 makes ``L - h * L = 0``: pure spectral whitening, the phase
      alone). Default 3, the paper's.

  Returns:
    float32 ``(B, *spatial)``, non-negative, maximum 1 per sample (0 for an
    all-zero sample).

  Example:
    >>> import jax.numpy as jnp
    >>> images = jnp.full((2, 32, 32, 3), 0.5).at[0, 20:24, 8:12].set(1.0)
    >>> s = spectral_residual_saliency(images)
    >>> s.shape, s.dtype, float(s.max())
    ((2, 32, 32), dtype('float32'), 1.0)
    >>> [int(i) for i in divmod(int(s[0].argmax()), 32)]   # the square's corner
    [20, 8]
    >>> bool(s[1].min() > 0.999)   # the constant image: a uniform map
    True
  """
  rank = _check_rank(images, "images")
  dtype = jnp.dtype(images.dtype)
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise ValueError(f"images must have a float or integer dtype; got {dtype}")
  size, sigma = _check_size(size), _check_sigma(sigma)
  filter_size = _check_filter_size(filter_size)
  spatial = tuple(images.shape[1:-1])
  work = _working_shape(spatial, size)
  axes = tuple(range(1, rank + 1))

  grey = jnp.mean(jnp.asarray(images).astype(jnp.float32), axis=-1)
  grey = _per_axis(grey, [_resample_matrix(w, n) for w, n in zip(work, spatial)])
  spectrum = jnp.fft.fftn(grey, axes=axes)
  norm = jnp.sqrt(jnp.sum(jnp.square(grey), axis=axes, keepdims=True))
  floor = _AMPLITUDE_FLOOR * norm + _TINY
  log_amplitude = jnp.log(jnp.abs(spectrum) + floor)
  residual = spectrum * jnp.exp(-_circular_box(log_amplitude, filter_size, axes))
  field = jnp.fft.ifftn(residual, axes=axes)
  saliency = jnp.square(field.real) + jnp.square(field.imag)

  sigma_px = sigma * max(work)
  saliency = _per_axis(saliency, [_resample_matrix(n, w) @ _gaussian_matrix(w, sigma_px)
                                  for w, n in zip(work, spatial)])
  saliency = jnp.maximum(saliency, 0.0)  # the blur and resampling weights are >= 0
  peak = jnp.max(saliency, axis=axes, keepdims=True)
  return saliency / jnp.where(peak > 0, peak, 1.0)


def _check_grid(grid, spatial: tuple[int, ...]) -> Optional[tuple[int, ...]]:
  if grid is None:
    return None
  message = (f"grid must be None, an int >= 1 or one int >= 1 per spatial axis "
             f"({len(spatial)}), each dividing the spatial shape {spatial}")
  if isinstance(grid, numbers.Integral) and not isinstance(grid, bool):
    grid = (grid,) * len(spatial)
  try:
    grid = tuple(grid)
  except TypeError:
    raise ValueError(f"{message}; got {grid!r}") from None
  if (len(grid) != len(spatial)
      or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1
                 for g in grid)
      or any(n % g for n, g in zip(spatial, grid))):
    raise ValueError(f"{message}; got {grid!r}")
  return tuple(int(g) for g in grid)


def gradient_saliency(grads: jax.Array, *,
                      grid: Union[None, int, Sequence[int]] = None) -> jax.Array:
  """PuzzleMix's saliency (Kim, Choo & Song, "Puzzle Mix: Exploiting Saliency
  and Local Statistics for Optimal Mixup", ICML 2020): the root mean square
  over channels of the input gradient, ``sqrt(mean_c g²)``.

  Args:
    grads: ``(B, *spatial, C)`` float, e.g. the gradient of the loss with
      respect to the input images (1, 2 or 3 spatial axes).
    grid: ``None`` (per pixel), or the block grid to average the map over
      (static): one int per spatial axis, or one int for all of them, each
      dividing that axis (PuzzleMix's ``block_num``; e.g. ``grid=4`` on
      32 x 32 averages 8 x 8 blocks).

  Returns:
    float32 ``(B, *spatial)``, or ``(B, *grid)`` with ``grid``; non-negative,
    not normalised.

  Example:
    >>> import jax.numpy as jnp
    >>> g = jnp.zeros((1, 4, 4, 2)).at[0, 0, 0].set(jnp.array([3.0, 4.0]))
    >>> print(gradient_saliency(g)[0, 0, :2])      # sqrt((9 + 16) / 2)
    [3.535534 0.      ]
    >>> print(gradient_saliency(g, grid=2)[0])     # the 2 x 2 block means
    [[0.8838835 0.       ]
     [0.        0.       ]]
  """
  rank = _check_rank(grads, "grads")
  dtype = jnp.dtype(grads.dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"grads must have a float dtype; got {dtype}")
  spatial = tuple(grads.shape[1:-1])
  grid = _check_grid(grid, spatial)
  g = jnp.asarray(grads).astype(jnp.float32)
  saliency = jnp.sqrt(jnp.mean(jnp.square(g), axis=-1))
  if grid is None:
    return saliency
  blocks = [(cells, n // cells) for cells, n in zip(grid, spatial)]
  split = saliency.reshape((saliency.shape[0],) + sum(blocks, ()))
  return jnp.mean(split, axis=tuple(2 + 2 * a for a in range(rank)))
