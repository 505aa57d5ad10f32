"""FMix: masks made by binarising a random low-frequency image.

A complex Gaussian spectrum, decayed as ``1 / f^δ``, is inverted with a real
FFT into a smooth random field ``g`` over the mask's spatial shape (1-D, 2-D or
3-D); the ``k ≈ λ N`` pixels with the largest ``g`` get ``M = 1`` (the original
image), the rest ``M = 0`` (the partner); the mean is ``k / N``, from ``k``.

Speed (every cost here is paid per sample in 'elem' and 'pair' mode):

- The normals come from one 2-word draw per mask (``jax.random.bits`` of the
  key) expanded by a counter-based Threefry-2x32 hash written in ``jnp``, so
  that XLA fuses it with the normal transform into one kernel (JAX's CPU
  lowering of ``jax.random.bits`` is a rolled loop over the whole array);
  one hash gives the real and imaginary part of one bin. The law is that of
  ``jax.random.normal`` (``sqrt(2) erfinv(u)``, ``u`` uniform on (-1, 1)).
- On CPU the spectrum goes into ``irfftn`` as drawn (see ``_low_freq_image``).
- The ``k`` largest pixels are found without a sort: a bisection over the
  float bits of ``g`` finds a threshold (one compare-and-count pass per bit,
  at most 32, stopping early once exactly ``k`` values are above it), and
  ties at the k-th value go to the lowest flat indices. That is the same
  ranking a stable descending argsort gives, for a fraction of its cost.
  Only ``max_soft > 0``, which needs every pixel's rank, sorts.

Reference: Harris, Marcu, Painter, Niranjan, Prügel-Bennett & Hare, "FMix:
Enhancing Mixed Sample Data Augmentation", arXiv 2002.12047 (2020); code:
github.com/ecs-vlc/FMix ``fmix.py``.
"""

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from msda_jax import _geometry
from msda_jax._engine import Alpha, mask_mixer, method_name
from msda_jax._lam import as_lam
from msda_jax._mixer import Mixer

__all__ = ["fmix", "fmix_mask", "fmix_draw"]

def _is_real(value) -> bool:
  """A host real number (Python or NumPy), not a bool, a string or an array."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_decay_power(decay_power) -> float:
  message = "decay_power must be a static finite float > 0 (default 3)"
  if not _is_real(decay_power):
    raise ValueError(f"{message}; got {decay_power!r}")
  value = float(decay_power)
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"{message}; got {decay_power!r}")
  return value


def _check_max_soft(max_soft) -> float:
  message = "max_soft must be a static float in [0, 0.5)"
  if not _is_real(max_soft):
    raise ValueError(f"{message}; got {max_soft!r}")
  value = float(max_soft)
  if not 0.0 <= value < 0.5:
    raise ValueError(f"{message}; got {max_soft!r}")
  return value


@functools.lru_cache(maxsize=64)
def _frequency_scale(shape: tuple[int, ...], decay_power: float) -> np.ndarray:
  """``(f_min / max(f, f_min))^δ`` on the real-FFT grid of ``shape``.

  ``f`` is the radial frequency (``fftfreq`` on every axis but the last,
  ``rfftfreq`` on the last) and ``f_min = 1 / max(shape)``. This is the
  spec's ``1 / max(f, f_min)^δ`` times the constant ``f_min^δ``: the ranking
  of ``g`` is the same, and no ``δ`` overflows float32.
  """
  axes = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
  squared = sum(np.square(np.reshape(f, [-1 if j == i else 1 for j in range(len(shape))]))
                for i, f in enumerate(axes))
  f_min = 1.0 / max(shape)
  return np.power(f_min / np.maximum(np.sqrt(squared), f_min),
                  decay_power).astype(np.float32)


# Threefry-2x32 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as
# easy as 1, 2, 3", SC 2011): 20 rounds, these rotations, this key-schedule
# parity; the same hash as JAX's default PRNG.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _threefry_2x32(seed: tuple[jax.Array, jax.Array],
                   counter: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Two uint32 words per ``counter`` value, hashed under the 2-word ``seed``.

  Plain ``jnp`` integer ops, unrolled: XLA fuses them (and what consumes the
  words) into one elementwise kernel.
  """
  schedule = (seed[0], seed[1], seed[0] ^ seed[1] ^ _PARITY)
  x0 = counter + schedule[0]
  x1 = jnp.zeros_like(counter) + schedule[1]
  for block in range(5):
    for r in _ROTATIONS[block % 2]:
      x0 = x0 + x1
      x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
    x0 = x0 + schedule[(block + 1) % 3]
    x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
  return x0, x1


def _normal_from_bits(bits: jax.Array) -> jax.Array:
  """N(0, 1) from uint32 words, as ``jax.random.normal`` maps its bits.

  The top 23 bits give ``u`` uniform on [-1, 1) (clipped to the float after
  -1), and ``sqrt(2) erfinv(u)`` is the normal.
  """
  unit = lax.bitcast_convert_type((bits >> 9) | np.uint32(0x3F800000),
                                  jnp.float32) - 1.0          # [0, 1)
  low = np.nextafter(np.float32(-1), np.float32(0))
  u = jnp.maximum(low, unit * (1.0 - low) + low)
  return np.float32(np.sqrt(2)) * lax.erf_inv(u)


def _complex_normals(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Complex64 ``N(0,1) + i N(0,1)`` of ``shape``, independent entries.

  One ``jax.random.bits`` call draws a 2-word seed from ``key``; entry ``j``
  (flat index) is the Threefry hash of counter ``j`` under that seed, one
  word for its real part and one for its imaginary part.
  """
  seed = jax.random.bits(key, (2,), jnp.uint32)
  counter = lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  real, imag = _threefry_2x32((seed[0], seed[1]), counter)
  return lax.complex(_normal_from_bits(real), _normal_from_bits(imag))


def _hermitian_plane(plane: jax.Array) -> jax.Array:
  """``(P[k] + conj P[-k]) / 2``, indices modulo each axis length."""
  axes = tuple(range(plane.ndim))
  mirror = jnp.roll(jnp.flip(plane, axes), 1, axes) if axes else plane
  return 0.5 * (plane + jnp.conj(mirror))


def _raw_spectrum(key: jax.Array, shape: tuple[int, ...],
                  decay_power: float) -> jax.Array:
  """``(N(0,1) + i N(0,1)) * scale`` on the real-FFT grid, planes as drawn."""
  scale = _frequency_scale(shape, decay_power)
  # The barrier makes XLA compute the normals once, not again in every
  # fusion that reads them.
  return lax.optimization_barrier(_complex_normals(key, scale.shape) * scale)


def _make_hermitian(spectrum: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """The last axis's zero (and, for even lengths, Nyquist) planes made Hermitian."""
  planes = [0] + ([spectrum.shape[-1] - 1] if shape[-1] % 2 == 0 else [])
  for j in sorted(set(planes)):
    spectrum = spectrum.at[..., j].set(_hermitian_plane(spectrum[..., j]))
  return spectrum


def _spectrum(key: jax.Array, shape: tuple[int, ...],
              decay_power: float) -> jax.Array:
  """Complex64 ``(N(0,1) + i N(0,1)) * scale`` on the real-FFT grid of ``shape``.

  The last axis's zero (and, for even lengths, Nyquist) planes are made
  Hermitian: that is what NumPy's and ducc's ``irfftn`` do with them
  implicitly, and it makes the input well defined for cuFFT too.
  """
  return _make_hermitian(_raw_spectrum(key, shape, decay_power), shape)


def _low_freq_image(key: jax.Array, shape: tuple[int, ...],
                    decay_power: float) -> jax.Array:
  """``g = irfftn(_spectrum(key, shape, decay_power), shape)``: float32.

  On CPU the spectrum goes in as drawn: ducc's ``irfftn`` takes the
  Hermitian part of the zero and Nyquist planes itself (the same ``g`` up
  to float rounding, about 1e-7 of its largest value), and the explicit
  fix costs several times the whole blend in XLA's CPU code (it copies
  the spectrum per plane). Other backends get the fixed spectrum.
  """
  raw = _raw_spectrum(key, shape, decay_power)
  axes = tuple(range(len(shape)))
  return lax.platform_dependent(
      raw,
      cpu=lambda s: jnp.fft.irfftn(s, shape, axes=axes),
      default=lambda s: jnp.fft.irfftn(_make_hermitian(s, shape), shape,
                                       axes=axes))


def _order_key(values: jax.Array) -> jax.Array:
  """uint32 keys in the order of the float32 ``values`` (equal floats, equal keys)."""
  values = jnp.where(values == 0, 0.0, values)  # -0.0 and 0.0 are equal values.
  bits = lax.bitcast_convert_type(values, jnp.uint32)
  return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(1 << 31))


def _kth_largest(keys: jax.Array, k: jax.Array) -> jax.Array:
  """A ``t`` with ``count(keys >= t) >= k`` whose ``keys >= t`` holds the top k.

  Bisection over the 32 bits of ``t``, from the top: one compare-and-count
  pass over the keys per bit. It stops early at the first accepted ``t``
  with ``count(keys >= t) == k`` exactly: those are then the unique top-k
  set (no key on both sides of ``t``), so the mask is the one the full
  bisection gives (whose ``t`` is the k-th largest key itself). ``k = 0``
  gives a ``t`` above every key. A ``while`` loop: under vmap it runs until
  the slowest mask of the batch is done.
  """
  def searching(state):
    bit, _, done = state
    return (bit < 32) & ~done

  def step(state):
    bit, t, _ = state
    candidate = t | (jnp.uint32(1) << (31 - bit).astype(jnp.uint32))
    count = jnp.sum(keys >= candidate, dtype=jnp.int32)
    enough = count >= k
    return bit + 1, jnp.where(enough, candidate, t), enough & (count == k)

  # The start takes the (shard_map) varying-ness of keys and k, so the carry
  # has one type under shard_map too.
  start = jnp.zeros_like(keys[0]) | (k * 0).astype(jnp.uint32)
  zero = (k * 0).astype(jnp.int32)
  return lax.while_loop(searching, step, (zero, start, zero > 0))[1]


def _index_of_nth(flags: jax.Array, n: jax.Array) -> jax.Array:
  """Flat index of the ``n``-th True of 1-D ``flags`` (1-based); -1 if ``n = 0``.

  Blocks of ``~sqrt(size)``: one pass of block counts, then a cumsum over
  the blocks and one within the block found, instead of a full-length cumsum.
  """
  size = flags.shape[0]
  width = math.isqrt(size - 1) + 1
  rows = -(-size // width)
  blocks = jnp.pad(flags, (0, rows * width - size)).reshape(rows, width)
  counts = jnp.sum(blocks, axis=1, dtype=jnp.int32)
  ends = jnp.cumsum(counts)
  row = jnp.minimum(jnp.sum(ends < n, dtype=jnp.int32), rows - 1)
  before = ends[row] - counts[row]
  within = jnp.cumsum(lax.dynamic_index_in_dim(blocks, row, keepdims=False),
                      dtype=jnp.int32)
  col = jnp.sum(within < n - before, dtype=jnp.int32)
  return jnp.where(n > 0, row * width + col, -1)


def _top_k(g: jax.Array, k: jax.Array) -> jax.Array:
  """Bool mask of exactly ``k`` pixels: the largest ``g``, ties to lower flat indices."""
  keys = _order_key(g.reshape(-1))
  threshold = _kth_largest(keys, k)
  above, tied = keys > threshold, keys == threshold
  last = _index_of_nth(tied, k - jnp.sum(above, dtype=jnp.int32))
  chosen = above | (tied & (lax.iota(jnp.int32, keys.shape[0]) <= last))
  return chosen.reshape(g.shape)


def _ramp(g: jax.Array, k: jax.Array, soft: jax.Array) -> jax.Array:
  """1 on ranks < k - soft, ``linspace(1, 0, 2 soft)`` on [k - soft, k + soft), then 0.

  Ranks by descending ``g``, ties to lower flat indices (as in ``_top_k``).
  """
  keys = _order_key(g.reshape(-1))
  size = keys.shape[0]
  ranks = lax.iota(jnp.int32, size)
  _, order = lax.sort((~keys, ranks), num_keys=2)  # descending g
  # Step i of the ramp is 1 - i / (2 soft - 1), written from the nearer end so
  # that both ends are exactly 1 and 0 (XLA may divide through a reciprocal).
  steps = 2 * soft - 1   # >= 1 wherever it is used (soft > 0)
  i = ranks - (k - soft)
  ramp = jnp.where(2 * i < steps, 1.0 - i.astype(jnp.float32) / steps,
                   (steps - i).astype(jnp.float32) / steps)
  by_rank = jnp.where(soft > 0, jnp.clip(ramp, 0.0, 1.0),
                      (ranks < k).astype(jnp.float32))
  mask = jnp.zeros((size,), jnp.float32).at[order].set(
      by_rank, unique_indices=True)
  return mask.reshape(g.shape)


def fmix_mask(key: jax.Array, shape: tuple[int, ...], lam, *,
              decay_power: float = 3.0, max_soft: float = 0.0) -> jax.Array:
  """FMix (Harris et al., 2020): a binarised random low-frequency image.

  The mask of :func:`fmix_draw` (which also returns its exact mean ``k / N``,
  what the mixers use): 1 on the ``k`` pixels where a random low-frequency
  image is largest, ``k = ceil(λN)`` or ``floor(λN)`` by a fair coin.

  Args:
    key: a PRNG key.
    shape: the spatial shape, a tuple of 1, 2 or 3 positive ints, static.
    lam: the mixing ratio λ in [0, 1].
    decay_power: δ > 0, the spectrum's decay; larger is smoother.
    max_soft: the largest soft-edge half-width, a share of N in [0, 0.5).

  Returns:
    float32 mask of ``shape`` in [0, 1] (binary for ``max_soft = 0``).

  Example:
    >>> import jax
    >>> mask = fmix_mask(jax.random.key(0), (32, 32), 0.3)
    >>> mask.shape, int(mask.sum()) in (307, 308)
    ((32, 32), True)
  """
  return fmix_draw(key, shape, lam, decay_power=decay_power,
                   max_soft=max_soft)[0]


def fmix_draw(key: jax.Array, shape: tuple[int, ...], lam, *,
              decay_power: float = 3.0,
              max_soft: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """FMix's mask and its exact mean: ``(mask, k / N)``.

  Each bin of the real-FFT frequency grid of ``shape`` (``fftfreq`` on every
  axis but the last, ``rfftfreq`` on the last) gets
  ``(N(0,1) + i N(0,1)) / max(f, 1 / max(shape))^δ``, ``f`` its radial
  frequency; ``g = irfftn(spectrum, shape)``. The ``k`` pixels with the
  largest ``g`` get ``M = 1`` (the original image), the others 0, with
  ``k = ceil(λ N)`` or ``floor(λ N)`` by a fair coin (``N = prod(shape)``).
  Ties in ``g`` go to the lower flat index, so exactly ``k`` pixels are 1.

  With ``max_soft > 0`` and ``s = int(min(max_soft, λ, 1 - λ) N)``, the
  pixels ranked ``[k - s, k + s)`` instead get ``linspace(1, 0, 2 s)``: a
  soft edge. That path sorts the pixels; the binary default does not.

  The coin and the spectrum are drawn from ``key``. Everything is jit- and
  vmap-able with a traced ``lam``; ``shape``, ``decay_power`` and ``max_soft``
  are static.

  Args:
    key: a PRNG key.
    shape: the spatial shape, a tuple of 1, 2 or 3 positive ints, static.
    lam: the mixing ratio λ in [0, 1] (a traced λ is clipped to [0, 1]).
    decay_power: δ > 0, the spectrum's decay; larger is smoother.
    max_soft: the largest soft-edge half-width, a share of N in [0, 0.5).

  Returns:
    ``(mask, mean)``: the float32 mask of ``shape`` in [0, 1], and its mean
    ``k / N`` as a float32 scalar, computed from ``k``, not summed from the
    mask: ``k * float32(1 / N)``, within an ulp of ``k / N`` (exact when
    ``N`` is a power of two, and at ``k = 0`` and ``k = N``) and the same
    bits under jit, vmap and eager; ``round(mean * N)`` is ``k``. The ramp
    is symmetric about rank ``k``, so a soft mask's mean is ``k / N`` too.

  Raises:
    ValueError: a bad ``shape``, ``decay_power`` or ``max_soft``, or a host
      scalar ``lam`` outside [0, 1].

  Example:
    >>> import jax
    >>> mask, mean = fmix_draw(jax.random.key(0), (32, 32), 0.3)
    >>> mask.shape, sorted(set(mask.ravel().tolist()))
    ((32, 32), [0.0, 1.0])
    >>> int(mask.sum()) in (307, 308), float(mean) == float(mask.mean())
    (True, True)
  """
  shape = _geometry.check_shape(shape)
  decay_power = _check_decay_power(decay_power)
  max_soft = _check_max_soft(max_soft)
  lam = as_lam(lam)
  size = math.prod(shape)

  coin_key, spectrum_key = jax.random.split(key)
  scaled = lam * size
  k = jnp.where(jax.random.bernoulli(coin_key), jnp.ceil(scaled), jnp.floor(scaled))
  k = jnp.clip(k, 0, size).astype(jnp.int32)
  # k * (1 / N), not k / N: XLA may or may not divide through a reciprocal,
  # so a division differs by an ulp between eager and jit; and k = N is 1.
  mean = jnp.where(k == size, 1.0, k.astype(jnp.float32) * np.float32(1 / size))

  g = _low_freq_image(spectrum_key, shape, decay_power)
  if max_soft == 0.0:
    return _top_k(g, k).astype(jnp.float32), mean
  soft = jnp.minimum(max_soft, jnp.minimum(lam, 1.0 - lam))
  s = jnp.floor(soft * size).astype(jnp.int32)
  s = jnp.minimum(s, jnp.minimum(k, size - k))
  return _ramp(g, k, s), mean


def fmix(*, alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
         partner: str = "flip", label_smoothing: float = 0.0,
         num_classes=None, decay_power: float = 3.0,
         max_soft: float = 0.0) -> Mixer:
  """FMix (Harris et al., "FMix: Enhancing Mixed Sample Data Augmentation", 2020).

  The partner shows where a random low-frequency image (Fourier noise with
  decay ``decay_power``) is below its ``1 - λ`` quantile; the label weight is
  the realised mask mean ``k / N``. Works on 1-D, 2-D and 3-D data.
  Returns a :class:`Mixer`.

  Args:
    alpha: λ ~ Beta(α, α) for α > 0, or ``(low, high)`` for U(low, high).
    mode: 'elem' (one λ and mask per sample), 'pair' (per pair of partners)
      or 'batch' (one for the batch).
    prob: probability that a sample (the batch, in 'batch' mode; a pair, in
      'pair' mode) is mixed at all; otherwise it is left exactly as it was.
    partner: the pairing, 'flip' (i with B-1-i), 'roll' (i with i-1) or
      'permute' (keyed random pairing).
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K, needed for integer labels (one per head for pytree
      labels).
    decay_power: δ > 0, the spectrum's decay (reference default 3).
    max_soft: soft-edge half-width as a share of the pixels, in [0, 0.5)
      (reference default 0: a binary mask).

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> mix = jax.jit(msda_jax.fmix(num_classes=10))
    >>> out = mix(jax.random.key(0), jnp.zeros((8, 32, 32, 3)), jnp.arange(8))
    >>> sorted(set(out.mask[0].ravel().tolist())) in ([0.0, 1.0], [1.0])
    True
  """
  decay_power = _check_decay_power(decay_power)
  max_soft = _check_max_soft(max_soft)
  return mask_mixer(
      functools.partial(fmix_draw, decay_power=decay_power, max_soft=max_soft),
      alpha=alpha, mode=mode, prob=prob, partner=partner,
      label_smoothing=label_smoothing, num_classes=num_classes,
      name=method_name("fmix", alpha, prob, decay_power=f"{decay_power:g}",
                       max_soft=f"{max_soft:g}"))
