"""Rank-generic masks and mixers: (T,), (H, W) and (D, H, W) (spec Part 2)."""

import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import msda_jax
from msda_jax import _engine
from msda_jax._engine import UniformMask, draw_lam

MASK_FNS = {
    "mixup": msda_jax.mixup_mask,
    "cutmix": msda_jax.cutmix_mask,
    "cutmix_exact": lambda k, s, l: msda_jax.cutmix_mask(k, s, l, exact_box=True),
    "cutmix_minmax": lambda k, s, l: msda_jax.cutmix_mask(k, s, l, minmax=(0.2, 0.8)),
    "hmix": msda_jax.hmix_mask,
    "hmix_r1": lambda k, s, l: msda_jax.hmix_mask(k, s, l, r=1.0),
    "gmix": msda_jax.gmix_mask,
    "fmix": msda_jax.fmix_mask,
}
EDGE_LAMS = (0.0, 1e-6, 0.5, 1 - 1e-6, 1.0)


def test_nd_masks_shape_dtype_range_no_nan():
  # Catches a rule hard-wired to two axes (a crash or a wrong shape), and a
  # division by a zero spread at λ in {0, 1} (NaN: e.g. GMix's floor on
  # (λ' prod)^(2/n) removed, or a cube root of 0 squared to 0). One jit for
  # every shape and rule (compiling is most of this test's time).
  shapes = [(64,), (8, 12, 10), (1, 1, 1)]
  names = ("mixup", "cutmix", "cutmix_minmax", "hmix", "gmix", "fmix")
  keys = jax.random.split(jax.random.key(0), len(EDGE_LAMS))
  lams = jnp.asarray(EDGE_LAMS, jnp.float32)
  draw = jax.jit(lambda k, l: {
      (name, shape): jax.vmap(lambda ki, li: fn(ki, shape, li))(k, l)
      for name in names for shape in shapes for fn in [MASK_FNS[name]]})
  for (name, shape), masks in draw(keys, lams).items():
    masks = np.asarray(masks)
    assert masks.shape == (len(EDGE_LAMS), *shape), (name, shape)
    assert masks.dtype == np.float32, (name, shape)
    assert np.isfinite(masks).all(), (name, shape)
    assert masks.min() >= 0.0 and masks.max() <= 1.0, (name, shape)


def test_nd_centres_are_uniform_and_independent():
  # Catches a centre that is not uniform over the pixels on every axis, or
  # axes drawn from the same uniform: in particular the third axis'
  # uniforms, derived from the bits of the first two (a constant key, or a
  # copy of u[0], would pass every shape test). GMix's blob peaks at exactly
  # 1 on its centre, so the argmax is the centre. 3000 draws over 5 to 7
  # cells (~500 a cell): a constant or copied axis gives p ~ 0; each of the
  # 6 chi-square tests fails a correct sampler with p < 1e-3.
  stats = pytest.importorskip("scipy.stats")
  count = 3000
  keys = jax.random.split(jax.random.key(6), count)
  shapes = [(7,), (5, 6, 7)]
  all_masks = jax.jit(lambda ks: [jax.vmap(lambda k: msda_jax.gmix_mask(k, s, 0.2))(ks)
                                  for s in shapes])(keys)
  for shape, masks in zip(shapes, all_masks):
    flat = np.asarray(masks).reshape(count, -1)
    assert (flat.max(axis=1) == 1.0).all()
    centres = np.stack(np.unravel_index(flat.argmax(axis=1), shape), axis=1)
    for axis, size in enumerate(shape):
      counts = np.bincount(centres[:, axis], minlength=size)
      assert stats.chisquare(counts).pvalue > 1e-3, (shape, axis, counts)
    for a, b in ((0, 2), (1, 2)) if len(shape) == 3 else ():
      table = np.zeros((shape[a], shape[b]))
      np.add.at(table, (centres[:, a], centres[:, b]), 1)
      assert stats.chi2_contingency(table).pvalue > 1e-3, (shape, a, b)


def _extents(mask):
  """Per axis, the indices where the mask has a zero somewhere."""
  zero = mask == 0
  return [np.flatnonzero(zero.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
          for axis in range(mask.ndim)]


def test_nd_box_volume_is_the_share_within_floor_rounding():
  # Catches a 2-D side ratio sqrt(1 - λ) kept for other ranks (the box
  # volume would be (1 - λ)^(n/2) prod), r put outside the n-th root, a
  # box that is not axis-aligned or not one box, an HMix μ computed from
  # two axes only (its mean would not be λ), and exact_box lost off 2-D.
  # Cuts: 1-D 9 and 6 (odd, even), 3-D (6, 8, 10) and (5, 7, 9).
  cases = [("cutmix", 0.85, 1.0), ("cutmix", 0.9, 1.0), ("hmix", 0.7, 0.5)]
  shapes = [(64,), (12, 16, 20)]
  keys = jax.random.split(jax.random.key(1), 200)

  def draw(method, shape, lam, r, exact_box):
    if method == "hmix":
      return lambda k: msda_jax.hmix_mask(k, shape, lam, r=r, exact_box=exact_box)
    return lambda k: msda_jax.cutmix_mask(k, shape, lam, exact_box=exact_box)

  runs = [(case, shape, exact_box) for case in cases for shape in shapes
          for exact_box in (False, True)]
  all_masks = jax.jit(lambda ks: [
      jax.vmap(draw(method, shape, lam, r, exact_box))(ks)
      for (method, lam, r), shape, exact_box in runs])(keys)
  for ((method, lam, r), shape, exact_box), masks in zip(runs, all_masks):
    where = (method, lam, shape, exact_box)
    rank, total = len(shape), math.prod(shape)
    share = r * (1 - lam)
    ratio = share ** (1 / rank)
    cuts = [math.floor(s * ratio) for s in shape]
    assert all(0.02 < s * ratio - c < 0.98 for s, c in zip(shape, cuts))  # no ties
    sides = cuts if exact_box else [2 * (c // 2) for c in cuts]
    seen = 0
    for mask in np.asarray(masks):
      if method == "hmix":
        assert abs(mask.mean() - lam) < 1e-5, where  # never shifts the label
      extents = _extents(mask)
      # The zero region is exactly the box its extents span.
      box = np.zeros(shape, bool)
      box[tuple(slice(e.min(), e.max() + 1) for e in extents)] = True
      np.testing.assert_array_equal(mask == 0, box, err_msg=str(where))
      if any(e.min() == 0 or e.max() == s - 1 for e, s in zip(extents, shape)):
        continue  # touches the border: possibly clipped
      assert [len(e) for e in extents] == sides, where
      volume = math.prod(sides)
      assert volume <= share * total, where  # floor only ever shrinks it...
      slack = 1 if exact_box else 2   # ...by < 1 pixel per axis (< 2 by default)
      assert volume > math.prod(s * ratio - slack for s in shape), where
      seen += 1
    assert seen >= 5, where


def test_gmix_nd_is_the_gaussian_of_the_spec():
  # Catches a 2-D spread λ' H W kept for other ranks (for n = 1 or 3 the
  # blob would be far too wide or narrow), an exponent 1/n for 2/n, and the
  # blob put on the wrong image.
  cases = [(shape, lam) for shape in ((64,), (9, 12, 10)) for lam in (0.2, 0.7)]
  masks = jax.jit(lambda k: [msda_jax.gmix_mask(k, shape, lam)
                             for shape, lam in cases])(jax.random.key(3))
  for (shape, lam), mask in zip(cases, masks):
    mask = np.asarray(mask, np.float64)
    extreme = mask.max() if lam < 0.5 else mask.min()
    assert extreme == (1.0 if lam < 0.5 else 0.0)
    center = np.argwhere(mask == extreme)[0]
    grid = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grid, center))
    small = min(lam, 1 - lam)
    blob = np.exp(-math.pi * d2 / (small * math.prod(shape)) ** (2 / len(shape)))
    np.testing.assert_allclose(mask, blob if lam < 0.5 else 1 - blob, atol=2e-6,
                               err_msg=str((shape, lam)))


def test_gmix_nd_full_space_mass_is_the_smaller_share():
  # Catches a blob whose mass is not λ' prod(shape) in n-D (a wrong power
  # of the spread); blobs far from the border are summed, where the
  # truncated tail is < 1e-6 of the mass.
  cases = [((400,), 0.05), ((30, 34, 38), 0.0005)]
  keys = jax.random.split(jax.random.key(4), 24)
  all_masks = jax.jit(lambda ks: [jax.vmap(lambda k: msda_jax.gmix_mask(k, shape, lam))(ks)
                                  for shape, lam in cases])(keys)
  for (shape, lam), masks in zip(cases, all_masks):
    rank, total = len(shape), math.prod(shape)
    width = (lam * total) ** (1 / rank)  # exp(-π d² / width²): mass width^n
    seen = 0
    for mask in np.asarray(masks, np.float64):
      center = np.unravel_index(mask.argmax(), shape)
      if all(2.5 * width <= c <= s - 1 - 2.5 * width for c, s in zip(center, shape)):
        np.testing.assert_allclose(mask.sum(), lam * total, rtol=1e-4)
        seen += 1
    assert seen >= 3, shape


# Today's 2-D streams, recorded (under jit) before masks became rank-generic:
# digests (first 12 hex of sha256 of the float32 bytes) of each mixer's lam
# and mask on a (5, 12, 20, 1) batch, key 11, α = 0.4, prob 0.7, elem mode;
# and of the public generators at λ = 0.3, key 5. α = 0.4 draws λ from u[0]
# and u[-1], so a changed number of uniforms (u[-1] moving) shows here; the
# masks show a changed centre or box rule. (The same check over every mode,
# α in {1, 0.4, (0.1, 0.9)} and prob in {1, 0.7}, 108 mixers, was run once
# by hand when the n-D rules were written.)
_STREAMS_2D = {
    'cutmix': ('0753c51decca', 'eef201e19450'),
    'cutmix_minmax': ('8b5719a0d544', '501cf3660d83'),
    'gmix': ('689fab734149', 'fe378359d1b8'),
    'hmix': ('12578cd8b260', 'f5317e059328'),
}
_GENERATORS_2D = {
    'cutmix': '668d1fd84f0c',
    'cutmix_minmax': '9e5cbf197aaa',
    'gmix': '787f6d8d1894',
    'hmix': '99367b98591b',
}


def _digest(x):
  data = np.ascontiguousarray(np.asarray(x, np.float32)).tobytes()
  return hashlib.sha256(data).hexdigest()[:12]


def test_2d_streams_are_bit_for_bit_what_they_were():
  # Catches any change to the 2-D draws from the n-D rewrite: a changed
  # num_uniforms (u[-1], so λ for α != 1, moves), the centre or box taken
  # from other uniforms, and 2-D masks rounded differently (a pow(x, 1/2)
  # for sqrt, or GMix's spread through (λ' H W)^(2/2)). Digests depend on
  # XLA's float rounding; regenerate them only for a JAX upgrade, never to
  # absorb a stream change.
  factories = {
      "cutmix": msda_jax.cutmix,
      "cutmix_minmax": lambda **kw: msda_jax.cutmix(minmax=(0.2, 0.8), **kw),
      "hmix": msda_jax.hmix, "gmix": msda_jax.gmix,
  }
  mixers = {name: f(alpha=0.4, prob=0.7, num_classes=3)
            for name, f in factories.items()}

  @jax.jit
  def run(key, images, labels):
    outs = {name: m(key, images, labels) for name, m in mixers.items()}
    gens = {name: MASK_FNS[name](jax.random.key(5), (12, 20), 0.3)
            for name in _GENERATORS_2D}
    return {name: (o.lam, o.mask) for name, o in outs.items()}, gens

  images = jax.random.uniform(jax.random.key(0), (5, 12, 20, 1))
  outs, gens = run(jax.random.key(11), images, jnp.arange(5) % 3)
  assert {n: (_digest(l), _digest(m)) for n, (l, m) in outs.items()} == _STREAMS_2D
  assert {n: _digest(g) for n, g in gens.items()} == _GENERATORS_2D


# Mixers on sequences (B, T, C) and volumes (B, D, H, W, C). Compiling is
# most of these tests' time, so each test jits all its mixers in one function.

K = 4
B = 5  # odd: under 'flip' sample 2 pairs with itself
FACTORIES = {
    "mixup": msda_jax.mixup,
    "cutmix": msda_jax.cutmix,
    "hmix": msda_jax.hmix,
    "gmix": msda_jax.gmix,
    "fmix": msda_jax.fmix,
}
MODES = ("batch", "pair", "elem")
DATA_SHAPES = {"seq": (16, 2), "vol": (4, 6, 5, 2)}  # spatial axes + channels


def _batch(kind, b=B):
  k1, k2 = jax.random.split(jax.random.key(0))
  images = jax.random.uniform(k1, (b, *DATA_SHAPES[kind]))
  return images, jax.random.randint(k2, (b,), 0, K)


# Every method in elem mode on both ranks; on volumes, every mode too (the
# modes only broadcast (B, *shape), so the rank-generic part is the same for
# sequences; each mixer costs a second of compiling).
MIXERS = {(method, mode): FACTORIES[method](num_classes=K, mode=mode,
                                           label_smoothing=0.1)
          for method in FACTORIES for mode in MODES}
KIND_MODES = {"seq": ("elem",), "vol": MODES}
MIX_KEY = jax.random.key(1)


@pytest.fixture(scope="module")
def nd_draws():
  """Every mixer on both kinds of data, and elem mode's per-sample draws,
  each in one jit."""
  batches = {kind: _batch(kind) for kind in DATA_SHAPES}
  outs = jax.jit(lambda k, bs: {
      (kind, name): m(k, *bs[kind]) for kind in bs for name, m in MIXERS.items()
      if name[1] in KIND_MODES[kind]})(MIX_KEY, batches)

  # elem mode, sample by sample: the public generator with the i-th split
  # key and the λ that key draws (α = 1: λ = u[0] of the sampler's uniforms).
  @jax.jit
  def one_sample(k):
    draws = {}
    for kind in DATA_SHAPES:
      spatial = DATA_SHAPES[kind][:-1]
      for method in FACTORIES:
        mask_fn = MIXERS[method, "elem"].sampler.mask_fn
        fast = isinstance(mask_fn, UniformMask)
        n = mask_fn.num_uniforms if fast else 0
        lam = draw_lam(jax.random.uniform(k, (2 + n,)), 1.0)
        # The key contract: a uniform mask gets k, a plain one mask_key(k).
        key = k if fast else _engine.mask_key(k)
        draws[kind, method] = mask_fn(key, spatial, lam)[0]
    return draws

  _, mask_key = jax.random.split(MIX_KEY)
  samples = [one_sample(k) for k in jax.random.split(mask_key, B)]
  return batches, outs, samples


@pytest.mark.parametrize("kind", sorted(DATA_SHAPES))
def test_nd_mixers_follow_the_mask(kind, nd_draws):
  # Catches a mask broadcast over the wrong axes (a time or depth axis taken
  # for channels), lam not the mean over every spatial axis, labels not
  # mixed by it, and an odd batch's self-paired sample changed.
  batches, outs, _ = nd_draws
  images, labels = batches[kind]
  spatial = images.shape[1:-1]
  x = np.asarray(images, np.float64)
  smooth = 0.9 * np.eye(K)[np.asarray(labels)] + 0.1 / K
  for method, mode in MIXERS:
    if mode not in KIND_MODES[kind]:
      continue
    out, where = outs[kind, (method, mode)], str((method, mode))
    assert out.mask.shape == (B, *spatial) and out.images.shape == images.shape
    mask = np.asarray(out.mask, np.float64)[..., None]
    partner = np.asarray(out.partner_index)
    np.testing.assert_array_equal(partner, np.arange(B)[::-1])
    np.testing.assert_allclose(out.images, mask * x + (1 - mask) * x[partner],
                               atol=1e-6, err_msg=where)
    np.testing.assert_allclose(
        out.lam, mask.mean(axis=tuple(range(1, mask.ndim))), atol=1e-6,
        err_msg=where)
    lam = np.asarray(out.lam, np.float64)[:, None]
    np.testing.assert_allclose(out.labels, lam * smooth + (1 - lam) * smooth[partner],
                               atol=1e-6, err_msg=where)
    np.testing.assert_array_equal(out.images[2], images[2])
    if method != "mixup" and mode != "batch":
      # Some sample really is spatially mixed (not all-λ or all-ones).
      assert (np.ptp(mask.reshape(B, -1), axis=1) > 0).any(), where


@pytest.mark.parametrize("kind", sorted(DATA_SHAPES))
def test_nd_elem_mode_is_a_loop_over_samples(kind, nd_draws):
  # Catches per-sample keys or λ crossed between samples in n-D, and a
  # mixer's mask that the public generator cannot reproduce from the
  # sample's key and λ (the key contract: e.g. 3-D uniforms derived
  # differently by the two paths).
  batches, outs, samples = nd_draws
  images, _ = batches[kind]
  spatial = images.shape[1:-1]
  for i, draws in enumerate(samples):
    for method in FACTORIES:
      mask = draws[kind, method]
      if i == 2:
        mask = jnp.ones(spatial)  # paired with itself: unmixed
      out = outs[kind, (method, "elem")]
      np.testing.assert_allclose(out.mask[i], mask, atol=1e-6, err_msg=method)
      expected = mask[..., None] * images[i] + (1 - mask[..., None]) * images[B - 1 - i]
      np.testing.assert_allclose(out.images[i], expected, atol=1e-6, err_msg=method)


def test_nd_generators_jit_equals_eager():
  # Catches 3-D draws that depend on tracing (e.g. the derived uniforms
  # built from Python-side state, or a shape check that only runs eagerly).
  # One generator: eager dispatch compiles every op, which is slow.
  shape, lam = (4, 6, 5), 0.6
  fn = MASK_FNS["cutmix_exact"]
  jitted = jax.jit(lambda k: fn(k, shape, lam))(jax.random.key(2))
  np.testing.assert_array_equal(fn(jax.random.key(2), shape, lam), jitted)


DEVICES, LOCAL = 8, 3


def test_nd_shard_mixer_equals_per_shard_mixing():
  # Catches a sharded n-D batch mixed across devices (partners or masks
  # drawn globally), the device index not folded into the key, or a
  # sharding spec that assumes (B, H, W, C). Exact-box CutMix on volumes
  # (the derived third-axis uniforms); 3 samples per device, so under
  # 'flip' one pairs with itself on every device.
  assert jax.device_count() == DEVICES, "conftest should give 8 CPU devices"
  mesh = msda_jax.data_mesh()
  mixer = msda_jax.cutmix(num_classes=K, exact_box=True)
  images, labels = _batch("vol", b=DEVICES * LOCAL)
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  key = jax.random.key(42)
  out = jax.jit(msda_jax.shard_mixer(mixer, mesh))(
      key, *jax.device_put((images, labels), sharding))
  assert out.images.sharding.is_equivalent_to(sharding, images.ndim)
  single = jax.jit(mixer)
  masks = set()
  for d in range(DEVICES):
    rows = slice(d * LOCAL, (d + 1) * LOCAL)
    ref = single(jax.random.fold_in(key, d), images[rows], labels[rows])
    np.testing.assert_allclose(out.images[rows], ref.images, atol=1e-6)
    np.testing.assert_allclose(out.labels[rows], ref.labels, atol=1e-6)
    np.testing.assert_allclose(out.mask[rows], ref.mask, atol=1e-6)
    np.testing.assert_array_equal(out.partner_index[rows],
                                  ref.partner_index + d * LOCAL)
    masks.add(np.asarray(ref.mask).tobytes())
  assert len(masks) == DEVICES  # devices drew different masks
