"""Saliency maps: spectral residual (Hou & Zhang 2007) and PuzzleMix's gradient RMS.

References are NumPy restatements of the papers' formulas (float64 FFTs,
phase by ``np.angle``, ``exp(R + iP)`` as written); inputs with a known
salient region check that the map finds it. Few distinct jitted shapes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from msda_jax._saliency import gradient_saliency, spectral_residual_saliency

N = 64
SQUARES = (  # (row, col), side, contrast: corners, borders, dark and bright
    ((5, 7), 4, 0.6), ((30, 40), 5, -0.5), ((55, 12), 3, 0.7),
    ((0, 58), 6, 0.5), ((40, 30), 4, -0.6), ((20, 20), 8, 0.4),
)


def _smooth_background(shape, k):
  """A smooth periodic background in about [0.2, 0.8] (low integer
  frequencies, so the FFT's wrap-around adds no edge), phase-shifted by k."""
  grids = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
  phase = sum((a + 1) * g for a, g in enumerate(grids))
  return (0.5 + 0.2 * np.sin(2 * np.pi * phase + k)
          + 0.1 * np.cos(2 * np.pi * grids[0] + 2 * k))


def _squares_batch():
  images, masks = [], []
  for k, ((r, c), side, contrast) in enumerate(SQUARES):
    image = np.repeat(_smooth_background((N, N), k)[..., None], 3, axis=-1)
    mask = np.zeros((N, N), bool)
    mask[r:r + side, c:c + side] = True
    image[mask] += contrast * np.array([1.0, 0.8, 1.2])  # colour, not only grey
    images.append(image)
    masks.append(mask)
  return np.stack(images).astype(np.float32), np.stack(masks)


def _noisy_squares():
  """The squares with a little noise: no exact spectral zero (where the
  amplitude is FFT rounding, the map moves by ~1e-3 with the rounding)."""
  images = _squares_batch()[0]
  noise = 0.05 * np.random.default_rng(0).normal(size=images.shape)
  return np.clip(images + noise, 0, 1).astype(np.float32)


_resize = jax.jit(jax.image.resize, static_argnames=("shape", "method", "antialias"))
_srs = jax.jit(spectral_residual_saliency, static_argnames=("size", "sigma", "filter_size"))


def _reference(images, *, size=None, sigma=0.0, filter_size=3):
  """Hou & Zhang's steps in NumPy float64 (resampling by jax.image.resize)."""
  images = np.asarray(images, np.float64)
  batch, spatial = images.shape[0], images.shape[1:-1]
  axes = tuple(range(1, len(spatial) + 1))
  grey = images.mean(axis=-1)
  work = spatial
  if size is not None and max(spatial) > size:
    work = tuple(max(1, round(n * size / max(spatial))) for n in spatial)
    grey = np.asarray(_resize(grey, shape=(batch,) + work, method="linear", antialias=True),
                      np.float64)
  f = np.fft.fftn(grey, axes=axes)
  log_amp = np.log(np.abs(f))  # the paper's: inputs here have no spectral zero
  average = ndimage.uniform_filter(log_amp, (1,) + (filter_size,) * len(work), mode="wrap")
  s = np.abs(np.fft.ifftn(np.exp(log_amp - average + 1j * np.angle(f)), axes=axes)) ** 2
  if sigma:
    sigma_px = sigma * max(work)
    blur = dict(sigma=(0,) + (sigma_px,) * len(work), mode="constant",
                truncate=4 * max(work) / sigma_px)
    s = ndimage.gaussian_filter(s, **blur) / ndimage.gaussian_filter(np.ones_like(s), **blur)
  if work != spatial:
    s = np.asarray(_resize(s, shape=(batch,) + spatial, method="linear"), np.float64)
  peak = s.max(axis=axes, keepdims=True)
  return s / np.where(peak > 0, peak, 1)


def test_a_small_square_on_a_smooth_background_is_the_salient_region():
  # Catches: the residual's sign flipped (h * L - L) or the average not
  # subtracted (L alone: the image comes back, its bright background wins),
  # the phase dropped (|F^-1(exp R)| peaks at the origin, not the square),
  # the map taken per batch not per sample (max 1 each), the map transposed,
  # and an amplitude floor too small for the images' scale (or none): the
  # flat squares' exact spectral zeros then boost their neighbours and the
  # peak moves off the square.
  images, masks = _squares_batch()
  s = np.asarray(_srs(images))
  assert s.shape == (len(SQUARES), N, N) and s.dtype == np.float32
  assert (s >= 0).all()
  np.testing.assert_allclose(s.max(axis=(1, 2)), 1.0, rtol=1e-6)
  for k, mask in enumerate(masks):
    near = ndimage.binary_dilation(mask, iterations=2)
    peak = np.unravel_index(s[k].argmax(), s[k].shape)
    assert near[peak], (SQUARES[k], peak)
    assert s[k][mask].mean() > 5 * s[k][~near].mean(), SQUARES[k]


def test_matches_the_papers_formula_natively_and_blurred():
  # Catches: the box not circular (wrap), over one axis only or of the wrong
  # width (filter_size ignored), |.| instead of |.|^2, exp(R) applied without
  # the phase, the Gaussian's border not renormalised, and sigma ignored.
  noisy = _noisy_squares()
  np.testing.assert_allclose(_srs(noisy, size=None, sigma=0.0), _reference(noisy), atol=3e-3)
  ours = _srs(noisy, size=None, sigma=0.05, filter_size=5)
  np.testing.assert_allclose(ours, _reference(noisy, sigma=0.05, filter_size=5), atol=3e-3)


def test_reduced_resolution_matches_resizing_down_and_back_up():
  # Catches: the spectrum taken at the native size despite size=, the aspect
  # not kept (both axes to size), downsampling without antialiasing, the map
  # not resized back to the input's shape, the blur's sigma measured on the
  # native grid instead of the working one, and small inputs enlarged.
  rng = np.random.default_rng(1)
  images = (_smooth_background((48, 72), 0)[None, ..., None]
            + 0.1 * rng.normal(size=(2, 48, 72, 2))).astype(np.float32)
  ours = _srs(images, size=24, sigma=0.1)
  assert ours.shape == (2, 48, 72)
  np.testing.assert_allclose(ours, _reference(images, size=24, sigma=0.1), atol=3e-3)
  # Never enlarged: a size above the native one is the native map.
  np.testing.assert_allclose(_srs(images, size=100, sigma=0.1), _reference(images, sigma=0.1),
                             atol=3e-3)


@pytest.mark.parametrize("shape, start, side", [((256,), (200,), 6), ((24, 24, 24), (4, 15, 9), 4)])
def test_sequences_and_volumes(shape, start, side):
  # Catches: a rank other than 2 rejected or mishandled (FFT, box or blur over
  # too few axes), sigma measured on the native grid (the 256-long sequence
  # is shrunk to 64) and small inputs enlarged (the 24^3 volume).
  image = _smooth_background(shape, 1)
  mask = np.zeros(shape, bool)
  mask[tuple(slice(s, s + side) for s in start)] = True
  image = np.stack([image, image + mask * 0.6], axis=-1)[None].astype(np.float32)
  s = np.asarray(_srs(image))[0]
  assert s.shape == shape and s.dtype == np.float32
  near = ndimage.binary_dilation(mask, iterations=2)
  assert near[np.unravel_index(s.argmax(), shape)]
  assert s[mask].mean() > 5 * s[~near].mean()


def test_constant_and_zero_images_give_no_nan_and_do_not_leak():
  # Catches: log(0) then 0 * inf on an all-zero image (no amplitude floor),
  # the max normalisation dividing by zero (NaN), a constant image not
  # uniform (the blur darkening the borders), and one sample's normalisation
  # leaking into another's.
  images, _ = _squares_batch()
  batch = np.concatenate([np.full((1, N, N, 3), 0.37, np.float32),
                          np.zeros((1, N, N, 3), np.float32),
                          np.full((1, N, N, 3), 200.0, np.float32), images[:3]])
  s = np.asarray(_srs(batch))
  assert np.isfinite(s).all()
  np.testing.assert_allclose(s[0], 1.0, atol=1e-4)  # uniform
  np.testing.assert_allclose(s[2], 1.0, atol=1e-4)
  np.testing.assert_array_equal(s[1], 0.0)
  np.testing.assert_allclose(s[3:], _srs(images)[:3], atol=1e-6)


def test_jit_equals_eager_and_uint8_equals_the_same_image_as_floats():
  # Catches: integer images summed before the cast (uint8 wrap-around) or
  # divided in integers, and a Python-side branch on traced values (jit
  # differs from eager).
  images = _noisy_squares()
  as_uint8 = np.round(images * 255).astype(np.uint8)
  np.testing.assert_allclose(_srs(as_uint8), _srs(as_uint8.astype(np.float32) / 255),
                             atol=1e-4)
  small = as_uint8[:2, 20:28, 8:16]  # eager compiles op by op: a small shape
  np.testing.assert_allclose(spectral_residual_saliency(small), _srs(small), atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (dict(images=np.zeros((4, 4))), "rank 3, 4 or 5"),
    (dict(images=np.zeros((1, 2, 2, 2, 2, 2))), "rank 3, 4 or 5"),
    (dict(images=np.zeros((1, 4, 4, 3), np.complex64)), "float or integer"),
    (dict(images=np.zeros((1, 4, 4, 3), bool)), "float or integer"),
    (dict(images=np.zeros((0, 4, 4, 3))), "no empty axis"),
    (dict(size=0), "size must be"), (dict(size=32.0), "size must be"),
    (dict(sigma=-1.0), "sigma must be"), (dict(sigma=float("nan")), "sigma must be"),
    (dict(sigma="8"), "sigma must be"),
    (dict(filter_size=2), "filter_size must be"), (dict(filter_size=0), "filter_size must be"),
])
def test_spectral_residual_rejects_bad_arguments(bad, message):
  # Catches a silent wrong answer (an unbatched image read as a batch of
  # rows, complex parts dropped) or an obscure trace error instead of a
  # ValueError naming the argument.
  images = bad.pop("images", np.zeros((1, 4, 4, 3), np.float32))
  with pytest.raises(ValueError, match=message):
    spectral_residual_saliency(images, **bad)


def _block_mean(x, grid):
  out = x
  for axis, cells in enumerate(grid, start=1):
    parts = np.split(out, cells, axis=axis)
    out = np.concatenate([p.mean(axis=axis, keepdims=True) for p in parts], axis=axis)
  return out


@pytest.mark.parametrize("shape", [(3, 10, 2), (2, 8, 12, 3), (2, 4, 6, 8, 1)])
def test_gradient_saliency_is_the_channel_rms_and_its_block_mean(shape):
  # Catches: the mean over the wrong axis, sum instead of mean, the square
  # root missing (or |g| instead of g^2), the pooling averaging the wrong
  # axes, blocks laid out as strides (every grid-th pixel) rather than
  # contiguous, an int grid not applied to every axis, and a host round trip
  # or Python branch on values (all under one jit).
  g = np.random.default_rng(2).normal(size=shape).astype(np.float32)
  expected = np.sqrt(np.mean(g.astype(np.float64) ** 2, axis=-1))
  grid = tuple(n // 2 if n % 2 == 0 else n for n in shape[1:-1])
  ours, by_grid, by_2, whole = jax.jit(lambda g: [
      gradient_saliency(g), gradient_saliency(g, grid=grid), gradient_saliency(g, grid=2),
      gradient_saliency(g, grid=1)])(g)
  assert ours.shape == shape[:-1] and ours.dtype == np.float32
  np.testing.assert_allclose(ours, expected, rtol=1e-6)
  np.testing.assert_allclose(by_grid, _block_mean(expected, grid), rtol=1e-6)
  np.testing.assert_allclose(by_2, _block_mean(expected, (2,) * len(grid)), rtol=1e-6)
  assert whole.shape == (shape[0],) + (1,) * len(grid)
  np.testing.assert_allclose(whole.reshape(-1), expected.reshape(shape[0], -1).mean(axis=1),
                             rtol=1e-6)


def test_gradient_saliency_eager_and_in_low_precision():
  # Catches bfloat16 gradients squared and averaged in bfloat16 (float32
  # output required), and a tuple grid read in the wrong axis order.
  g = np.random.default_rng(3).normal(size=(2, 8, 4, 3)).astype(np.float32)
  low = gradient_saliency(jnp.asarray(g, jnp.bfloat16), grid=(4, 1))
  assert low.shape == (2, 4, 1) and low.dtype == jnp.float32
  expected = _block_mean(np.sqrt(np.mean(g.astype(np.float64) ** 2, axis=-1)), (4, 1))
  np.testing.assert_allclose(low, expected, rtol=2e-2)


@pytest.mark.parametrize("grid", [3, (3, 4), (2,), (2, 4, 2), 0, (0, 4), (2.0, 4), True,
                                  "4", (2, None)])
def test_gradient_saliency_rejects_a_bad_grid(grid):
  # Catches a grid that does not divide the shape being silently floored
  # (the last pixels dropped), a grid of the wrong length broadcast, and
  # zero, bool, float or string grids reaching reshape.
  with pytest.raises(ValueError, match=r"grid must be .*\(8, 12\)"):
    gradient_saliency(np.zeros((2, 8, 12, 3), np.float32), grid=grid)


@pytest.mark.parametrize("grads, message", [
    (np.zeros((2, 8, 8, 3), np.int32), "float dtype"), (np.zeros((8, 8)), "rank 3, 4 or 5"),
])
def test_gradient_saliency_rejects_bad_grads(grads, message):
  # Catches integer "gradients" (a wrong argument) and unbatched maps passing.
  with pytest.raises(ValueError, match=message):
    gradient_saliency(grads)
