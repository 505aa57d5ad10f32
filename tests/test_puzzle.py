"""PuzzleMix's energy, solver and transport against the spec
(shared/docs/methods.md, Part 3) and the reference (snu-mllab/PuzzleMix
``mixup.py``), restated here in NumPy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msda_jax._blocks import move_blocks
from msda_jax._puzzle import (area_pool, block_pairwise, block_unaries,
                              labelling_energy, puzzlemix_mask,
                              solve_labelling, transport_grid, transport_plan)


def _reference_terms(img_a, img_b, sal_a, sal_b, n, lam, beta=1.2, gamma=0.5,
                     eta=0.2, neigh_size=4):
  """The reference's ``mixup_graph`` + ``graphcut_multi`` in NumPy (H, W, C
  images, full-resolution saliency), before its integer cast: gco's unary
  ``(n, n, 3)`` (gco label i = weight 1 - i / 2 of image a) and the edge
  weights ``pw + beta`` of the vertical and horizontal edges."""
  width = img_a.shape[1]
  block = width // n
  neigh = min(neigh_size, block)

  def pool(x, s):
    h, w = x.shape[:2]
    return x.reshape(h // s, s, w // s, s, *x.shape[2:]).mean((1, 3))

  u1 = pool(sal_a, block)
  u1 = u1 / u1.sum()
  u2 = pool(sal_b, block)
  u2 = u2 / u2.sum()
  p1, p2 = pool(img_a, neigh), pool(img_b, neigh)
  k = block // neigh

  def neigh_penalty(i1, i2):
    px = np.abs((i1[:-1] - i2[1:])[k - 1::k]).mean(-1)
    py = np.abs((i1[:, :-1] - i2[:, 1:])[:, k - 1::k]).mean(-1)
    return (px.reshape(px.shape[0], -1, k).mean(-1),
            py.reshape(-1, k, py.shape[1]).mean(1))

  images = (p2, p1)  # index 0: the partner (input2), 1: the image (input1)
  pwx, pwy = np.zeros((2, 2, n - 1, n)), np.zeros((2, 2, n, n - 1))
  for x in (0, 1):
    for y in (0, 1):
      pwx[x, y], pwy[x, y] = neigh_penalty(images[x], images[y])
  beta_n = beta / n / 16
  pwx, pwy = beta_n * gamma * pwx, beta_n * gamma * pwy
  un1, un2 = u1.copy(), u2.copy()
  un2[:-1, :] += (pwx[1, 0] + pwx[1, 1]) / 2
  un1[:-1, :] += (pwx[0, 1] + pwx[0, 0]) / 2
  un2[1:, :] += (pwx[0, 1] + pwx[1, 1]) / 2
  un1[1:, :] += (pwx[1, 0] + pwx[0, 0]) / 2
  un2[:, :-1] += (pwy[1, 0] + pwy[1, 1]) / 2
  un1[:, :-1] += (pwy[0, 1] + pwy[0, 0]) / 2
  un2[:, 1:] += (pwy[0, 1] + pwy[1, 1]) / 2
  un1[:, 1:] += (pwy[1, 0] + pwy[0, 0]) / 2
  dx = (pwx[1, 0] + pwx[0, 1] - pwx[1, 1] - pwx[0, 0]) / 2
  dy = (pwy[1, 0] + pwy[0, 1] - pwy[1, 1] - pwy[0, 0]) / 2
  prior = eta * np.array([-np.log(lam**2 + 1e-8),
                          -np.log(2 * lam * (1 - lam) + 1e-8),
                          -np.log((1 - lam)**2 + 1e-8)]) / n**2
  # graphcut_multi(unary2, unary1, ...): its unary1 is the partner's.
  unary = np.stack([(1 - w) * un2 + w * un1 + prior[i]
                    for i, w in enumerate((0.0, 0.5, 1.0))], -1)
  return unary, dx + beta_n, dy + beta_n


_V = np.array([[(i - j)**2 / 4 for j in range(3)] for i in range(3)])


def _reference_energy(gco_labels, unary, w_v, w_h):
  lab = gco_labels
  return (np.take_along_axis(unary, lab[..., None], -1).sum()
          + (w_v * _V[lab[:-1], lab[1:]]).sum()
          + (w_h * _V[lab[:, :-1], lab[:, 1:]]).sum())


def _loop_energy(labels, unary, horizontal, vertical):
  n_rows, n_cols = labels.shape
  total = 0.0
  for i in range(n_rows):
    for j in range(n_cols):
      total += unary[i, j, labels[i, j]]
      if j + 1 < n_cols:
        total += horizontal[i, j, labels[i, j], labels[i, j + 1]]
      if i + 1 < n_rows:
        total += vertical[i, j, labels[i, j], labels[i + 1, j]]
  return total


def _smooth(rng, shape, cells):
  """A smooth random field: cells x cells noise, upsampled and box-blurred."""
  x = rng.random((cells, cells) + shape[2:])
  r = shape[0] // cells
  x = np.repeat(np.repeat(x, r, 0), r, 1)
  kernel = np.ones(r) / r
  for axis in (0, 1):
    x = np.apply_along_axis(
        lambda t: np.convolve(np.pad(t, r, mode='edge'), kernel,
                              'same')[r:-r], axis, x)
  return x


_PAIRWISE_SETTINGS = ((1.2, 0.5), (4.0, 2.0))  # (beta, gamma): default, strong


def _random_terms(rng, n, count, block=4):
  """Unaries and pairwise tables of ``count`` random instances on an n x n
  grid: uniform or flat-block images, saliency of several peakednesses, λ
  from a fixed list or uniform, half at each of _PAIRWISE_SETTINGS."""
  size = n * block
  images = rng.random((2, count, size, size, 3))
  flat = np.repeat(np.repeat(rng.random((2, count, n, n, 3)), block, 2),
                   block, 3)
  images = np.where(rng.random(count)[None, :, None, None, None] < 0.5,
                    images, flat).astype(np.float32)
  power = rng.choice([1, 3, 8], (2, count))[..., None, None]
  saliency = (rng.random((2, count, n, n))**power).astype(np.float32)
  lam = np.where(rng.random(count) < 0.5, rng.random(count),
                 rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], count))
  unary = jax.jit(jax.vmap(block_unaries))(saliency[0], saliency[1], lam)
  tables = [jax.jit(jax.vmap(
      lambda a, b, beta=beta, gamma=gamma: block_pairwise(
          a, b, n, beta=beta, gamma=gamma)))(images[0], images[1])
            for beta, gamma in _PAIRWISE_SETTINGS]
  half = np.arange(count) % 2 == 0
  horizontal, vertical = (np.where(half[:, None, None, None, None], t0, t1)
                          for t0, t1 in zip(*tables))
  return np.asarray(unary), horizontal, vertical


@functools.lru_cache(maxsize=None)
def _all_labelings(n):
  digits = np.arange(3**(n * n))[:, None] // 3**np.arange(n * n) % 3
  return digits.reshape(-1, n, n)


def _all_energies(n, unary, horizontal, vertical):
  """The energy of every one of the 3^(n n) labelings, vectorised."""
  labels = _all_labelings(n)
  energy = np.take_along_axis(unary[None], labels[..., None],
                              -1)[..., 0].sum((1, 2))
  for i in range(n):
    for j in range(n - 1):
      energy += horizontal[i, j][labels[:, i, j], labels[:, i, j + 1]]
  for i in range(n - 1):
    for j in range(n):
      energy += vertical[i, j][labels[:, i, j], labels[:, i + 1, j]]
  return energy


_BRUTE_CASES = 40  # per grid size


@pytest.fixture(scope="module")
def brute_force_instances():
  rng = np.random.default_rng(1)
  out = {}
  for n in (2, 3):
    terms = _random_terms(rng, n, _BRUTE_CASES)
    energies = [_all_energies(n, *(t[c] for t in terms))
                for c in range(_BRUTE_CASES)]
    out[n] = terms, (np.array([e.min() for e in energies]),
                     np.array([e.max() for e in energies]))
  return out


def _brute_force_gap(instances, solver):
  """Per grid size: (mean excess over the optimum / energy range, share of
  cases at the optimum)."""
  batched = jax.jit(jax.vmap(solver))
  energy = jax.jit(jax.vmap(labelling_energy))
  gaps = {}
  for n, ((unary, horizontal, vertical), (best, worst)) in instances.items():
    found = np.asarray(energy(batched(unary, horizontal, vertical), unary,
                              horizontal, vertical), np.float64)
    excess = np.maximum(found - best, 0) / (worst - best)
    gaps[n] = excess.mean(), np.mean(excess <= 1e-5)
  return gaps


# Measured (60 cases per size, this seed): the solver 100 % optimal on 2x2,
# 98.3 % on 3x3, mean excess <= 3e-5 of the energy range; unaries only or
# one sweep of single-site ICM from all-ones: 1.8 to 6 % mean excess and 15
# to 53 % optimal. Margins: 0.2 % mean excess and 90 % optimal.
MAX_MEAN_EXCESS, MIN_OPTIMAL = 2e-3, 0.9


def test_solver_is_near_the_brute_force_optimum(brute_force_instances):
  # Catches: a solver that stops short (too few sweeps, a chain step that is
  # not exact, a sweep that skips a parity), a wrong tie or table
  # orientation in the dynamic programme (horizontal vs vertical, k_left vs
  # k_right), and a labelling returned from the worse of the two starts.
  gaps = _brute_force_gap(brute_force_instances, solve_labelling)
  for n, (mean_excess, optimal) in gaps.items():
    assert mean_excess <= MAX_MEAN_EXCESS and optimal >= MIN_OPTIMAL, (n, gaps)


def _single_site_icm_from_ones(unary, horizontal, vertical):
  """One raster sweep of single-site ICM starting from all labels 2."""
  cols = unary.shape[1]

  def visit(site, labels):
    i, j = site // cols, site % cols
    costs = jnp.stack([labelling_energy(labels.at[i, j].set(k), unary,
                                        horizontal, vertical)
                       for k in range(3)])
    return labels.at[i, j].set(jnp.argmin(costs).astype(jnp.int32))

  return jax.lax.fori_loop(0, unary.size // 3, visit,
                           jnp.full(unary.shape[:2], 2, jnp.int32))


@pytest.mark.parametrize("weak", [
    lambda u, h, v: jnp.argmin(u, -1),
    _single_site_icm_from_ones,
], ids=["unaries_only", "one_icm_sweep_from_ones"])
def test_a_weakened_solver_fails_the_brute_force_test(brute_force_instances,
                                                      weak):
  # Catches: a brute-force test too lax to tell a real solver from a weak one.
  gaps = _brute_force_gap(brute_force_instances, weak)
  assert any(mean_excess > MAX_MEAN_EXCESS or optimal < MIN_OPTIMAL
             for mean_excess, optimal in gaps.values()), gaps


def test_energy_matches_a_loop_and_the_reference_energy():
  # Catches: labelling_energy reading a table transposed or an edge off by
  # one; block_unaries with the labels' order or the prior reversed, λ for
  # 1 - λ, no normalisation; block_pairwise with the two images swapped,
  # the wrong border rows, β' not divided by n · 16, or the reference's
  # unary-folded parts dropped (the energy would differ by more than the
  # constant: none here, the reference keeps it).
  rng = np.random.default_rng(0)
  for n in (2, 4):
    a, b = rng.random((32, 32, 3)), rng.random((32, 32, 3))
    sal_a, sal_b = rng.random((32, 32)), rng.random((32, 32))
    lam = float(rng.random())
    ref_unary, w_v, w_h = _reference_terms(a, b, sal_a, sal_b, n, lam)
    unary, horizontal, vertical = jax.jit(
        lambda a, b, sal_a, sal_b, lam, n=n: (
            block_unaries(area_pool(sal_a, (n, n)), area_pool(sal_b, (n, n)),
                          lam),) + block_pairwise(a, b, n))(
                              a, b, sal_a, sal_b, lam)
    energy = jax.jit(labelling_energy)
    for _ in range(4):
      labels = rng.integers(0, 3, (n, n))
      ours = float(energy(labels, unary, horizontal, vertical))
      np.testing.assert_allclose(
          ours, _loop_energy(labels, *map(np.asarray, (unary, horizontal,
                                                       vertical))), rtol=1e-5)
      np.testing.assert_allclose(
          ours, _reference_energy(2 - labels, ref_unary, w_v, w_h),
          rtol=1e-5)


_GCO_N, _GCO_CASES = 16, 6


@pytest.fixture(scope="module")
def grid16_instances():
  """Six 32 x 32 instances on the 16 x 16 grid (smooth images and peaked
  smooth saliency), our terms and labels and the reference's terms."""
  rng = np.random.default_rng(2)
  n = _GCO_N
  images = np.stack([[_smooth(rng, (32, 32, 3), 8) for _ in range(2)]
                     for _ in range(_GCO_CASES)]).astype(np.float32)
  saliency = np.stack([[_smooth(rng, (32, 32), 4)**3 for _ in range(2)]
                       for _ in range(_GCO_CASES)]).astype(np.float32)
  lam = rng.uniform(0.1, 0.9, _GCO_CASES).astype(np.float32)

  def solve(a, b, sal_a, sal_b, lam):
    unary = block_unaries(area_pool(sal_a, (n, n)), area_pool(sal_b, (n, n)),
                          lam)
    horizontal, vertical = block_pairwise(a, b, n)
    return (solve_labelling(unary, horizontal, vertical), unary, horizontal,
            vertical)

  labels, unary, horizontal, vertical = map(np.asarray, jax.jit(jax.vmap(
      solve))(images[:, 0], images[:, 1], saliency[:, 0], saliency[:, 1],
              lam))
  reference = [_reference_terms(images[c, 0], images[c, 1], saliency[c, 0],
                                saliency[c, 1], n, float(lam[c]))
               for c in range(_GCO_CASES)]
  return dict(labels=labels, unary=unary, horizontal=horizontal,
              vertical=vertical, lam=lam, reference=reference, rng=rng)


def _energies(instances, labels):
  return np.array([_loop_energy(labels[c], instances["unary"][c],
                                instances["horizontal"][c],
                                instances["vertical"][c])
                   for c in range(len(labels))])


def test_solver_beats_cutmix_and_random_masks_of_the_same_lam(
    grid16_instances):
  # Catches: a solver that ignores the energy (returns the prior's or a
  # fixed labelling) or optimises it with a sign flipped.
  inst, n = grid16_instances, _GCO_N
  rng = np.random.default_rng(3)
  ours = _energies(inst, inst["labels"])
  for c, lam in enumerate(inst["lam"]):
    side = int(round(n * np.sqrt(1 - lam)))
    for _ in range(3):
      box = np.full((n, n), 2)
      top, left = rng.integers(0, n - side + 1, 2)
      box[top:top + side, left:left + side] = 0
      random = np.where(rng.random((n, n)) < lam, 2, 0)
      for other in (box, random):
        other_energy = _loop_energy(other, inst["unary"][c],
                                    inst["horizontal"][c],
                                    inst["vertical"][c])
        assert ours[c] < other_energy, (c, lam, ours[c], other_energy)


# Measured on 40 such instances (16 x 16): our energy minus gco's α-β swap
# (the reference's call, integer costs) -0.04 % of |E| on average (ours is
# lower in 65 % of cases), at worst +0.54 %; on these six: see the assertion.
# Margins: mean <= +0.25 %, each <= +1.5 %.
GCO_MEAN_MARGIN, GCO_MAX_MARGIN = 2.5e-3, 1.5e-2


def test_solver_is_near_the_reference_graph_cut(grid16_instances):
  # Catches: a solver markedly worse than the reference's own optimiser on
  # the reference's grid sizes (e.g. no belief-propagation start, one sweep).
  gco = pytest.importorskip(
      "gco", reason="gco-wrapper (the reference's graph cut, a test-only "
      "oracle) is not installed: pip install gco-wrapper")
  inst, n = grid16_instances, _GCO_N
  large = 1000 * n**2  # the reference's integer scale
  gco_labels = []
  for unary, w_v, w_h in inst["reference"]:
    cut = gco.cut_grid_graph((large * unary).astype(np.int32),
                             _V.astype(np.float32),
                             (large * w_v).astype(np.int32),
                             (large * w_h).astype(np.int32), algorithm="swap")
    gco_labels.append(2 - cut.reshape(n, n))  # gco label i: weight 1 - i/2
  theirs = _energies(inst, np.stack(gco_labels))
  ours = _energies(inst, inst["labels"])
  excess = (ours - theirs) / np.abs(theirs)
  assert excess.mean() <= GCO_MEAN_MARGIN and excess.max() <= GCO_MAX_MARGIN, (
      excess)


def _greedy_transport(saliency, keep, t_eps=0.8):
  """The reference's ``mask_transport`` rounds in NumPy, with our two
  changes (a lost place is closed, leftovers fill free places in order)."""
  rows, cols = saliency.shape
  count = rows * cols
  u = (saliency / saliency.sum()).reshape(-1).astype(np.float32)
  z = (keep.reshape(-1) > 0).astype(np.float32)
  r, c = np.divmod(np.arange(count), cols)
  distance = (((r[:, None] - r[None])**2 + (c[:, None] - c[None])**2)
              .astype(np.float32) / np.float32(max(max(rows, cols) - 1, 1)**2))
  cost = np.float32(t_eps) * distance - u[:, None] * z[None]
  source, free_row = -np.ones(count, int), np.ones(count, bool)
  for _ in range(max(rows, cols)):
    choice = np.where(free_row[:, None] & (source < 0)[None], cost,
                      np.inf).argmin(1)
    for j in np.unique(choice[free_row]):
      bidders = np.flatnonzero(free_row & (choice == j))
      source[j] = bidders[np.argmin(cost[bidders, j])]  # ties: lowest i
    free_row &= ~np.isin(np.arange(count), source)
  left_rows = np.flatnonzero(free_row)
  source[np.flatnonzero(source < 0)] = left_rows
  return source


def test_transport_is_the_greedy_rule_and_a_permutation():
  # Catches: a plan that is not a permutation (the reference's can drop
  # blocks), rows and columns of the plan swapped (perm[j] must be the
  # source of place j), the distance transform's tie-break or its axes
  # wrong, keep not thresholded at > 0, saliency not normalised.
  rng = np.random.default_rng(4)
  plan = jax.jit(jax.vmap(transport_plan))
  for t in (2, 4, 8):
    saliency = rng.random((12, t, t)).astype(np.float32)**4
    keep = np.where(rng.random((12, t, t)) < 0.5, 1.0,
                    rng.choice([0.0, 0.5], (12, t, t))).astype(np.float32)
    perms = np.asarray(plan(saliency, keep))
    for case in range(12):
      assert sorted(perms[case]) == list(range(t * t))
      np.testing.assert_array_equal(
          perms[case], _greedy_transport(saliency[case], keep[case]), (t, case))


def test_a_salient_block_moves_into_the_kept_area():
  # Catches: transport toward where the mask drops the image (z = 1 - keep)
  # or a plan read backwards (the block moved away from the kept area).
  saliency = np.full((4, 4), 0.01, np.float32)
  saliency[0, 0] = 1.0
  keep = np.zeros((4, 4), np.float32)
  keep[1:3, 2:4] = 1.0
  perm = np.asarray(transport_plan(saliency, keep))
  place = int(np.flatnonzero(perm == 0)[0])
  assert keep.reshape(-1)[place] == 1.0, perm
  assert place == 6, perm  # the nearest kept place to (0, 0): (1, 2)


def test_move_blocks_permutes_blocks_and_keeps_pixels():
  # Catches: blocks cut with the wrong axes (rows/columns of blocks mixed),
  # a perm applied as its inverse, pixels lost or duplicated.
  rng = np.random.default_rng(5)
  image = rng.random((8, 12, 2)).astype(np.float32)
  perm = rng.permutation(16)
  moved = np.asarray(move_blocks(image, perm.reshape(4, 4)))
  np.testing.assert_array_equal(np.sort(moved, None), np.sort(image, None))
  for j in range(16):
    src = perm[j]
    np.testing.assert_array_equal(
        moved[(j // 4) * 2:(j // 4) * 2 + 2, (j % 4) * 3:(j % 4) * 3 + 3],
        image[(src // 4) * 2:(src // 4) * 2 + 2,
              (src % 4) * 3:(src % 4) * 3 + 3])


def _blob(shape, center, width):
  rows, cols = np.mgrid[:shape[0], :shape[1]]
  return np.exp(-((rows - center[0])**2 + (cols - center[1])**2)
                / (2 * width**2)).astype(np.float32)


def test_mixed_image_keeps_more_saliency_than_cutmix():
  # Catches: the mask inverted (keeping what is not salient), the unaries'
  # images swapped, or transport moving salient blocks out of the kept area.
  rng = np.random.default_rng(6)
  shape, cases = (16, 16), 16
  lam = rng.uniform(0.3, 0.7, cases).astype(np.float32)
  centers = rng.integers(2, 14, (cases, 2, 2))
  sal = np.stack([[_blob(shape, centers[c, i], 2.0) for i in range(2)]
                  for c in range(cases)])
  sal /= sal.sum((2, 3), keepdims=True)
  images = rng.random((cases, 2) + shape + (3,)).astype(np.float32)

  def kept(key, lam, sa, sb, ia, ib):
    mask, mean, (perm_a, perm_b) = puzzlemix_mask(
        key, shape, lam, {"saliency": sa, "image": ia},
        {"saliency": sb, "image": ib}, block_num=4)
    moved_a = move_blocks(sa[..., None], perm_a)[..., 0]
    moved_b = move_blocks(sb[..., None], perm_b)[..., 0]
    return (jnp.sum(mask * moved_a) + jnp.sum((1 - mask) * moved_b), mean,
            mask)

  keys = jax.random.split(jax.random.key(0), cases)
  ours, means, masks = map(np.asarray, jax.jit(jax.vmap(kept))(
      keys, lam, sal[:, 0], sal[:, 1], images[:, 0], images[:, 1]))
  np.testing.assert_allclose(means, masks.mean((1, 2)), atol=1e-6)
  cutmix = []
  for c in range(cases):
    side = int(round(16 * np.sqrt(1 - lam[c])))
    top, left = rng.integers(0, 16 - side + 1, 2)
    box = np.ones(shape)
    box[top:top + side, left:left + side] = 0
    cutmix.append((box * sal[c, 0]).sum() + ((1 - box) * sal[c, 1]).sum())
  # Each image's saliency sums to 1, so a mask keeps at most 2.
  assert ours.mean() > np.mean(cutmix) + 0.2, (ours.mean(), np.mean(cutmix))


def test_block_count_transport_off_and_plans_on_the_finest_grid():
  # Catches: a block count drawn outside {2, 4, 8, 16} or one that does not
  # divide the image, a mask that is not blocky at the drawn count, a
  # transport=False path that still returns plans, plans of a coarse grid
  # not refined to the finest one (move_blocks of its blocks' sub-blocks).
  rng = np.random.default_rng(7)
  shape = (4, 4)  # candidates n = 2 (t = 2) and n = 4 (t = 4)
  guide = {"saliency": rng.random((2, 2)).astype(np.float32)**4,
           "image": rng.random(shape + (3,)).astype(np.float32)}
  partner = {"saliency": rng.random((4, 4)).astype(np.float32)**4,
             "image": rng.random(shape + (3,)).astype(np.float32)}
  keys = jax.random.split(jax.random.key(1), 16)
  masks, means, (perms, partner_perms) = map(np.asarray, jax.jit(jax.vmap(
      lambda k: puzzlemix_mask(k, shape, 0.5, guide, partner)))(keys))
  assert set(np.unique(masks)) <= {0.0, 0.5, 1.0}
  np.testing.assert_allclose(means, masks.mean((1, 2)), atol=1e-6)
  coarse = [(m == np.repeat(np.repeat(m[::2, ::2], 2, 0), 2, 1)).all()
            for m in masks]
  assert 0 < sum(coarse) < len(coarse), coarse  # both counts are drawn
  image = guide["image"]
  blocks = lambda x: x.reshape(2, 2, 2, 2, 3).swapaxes(1, 2).reshape(4, 2, 2, 3)  # noqa: E731,E501
  for perm in np.concatenate([perms, partner_perms]):
    assert perm.shape == (4, 4) and sorted(perm.ravel()) == list(range(16))
  for is_coarse, perm in zip(coarse, perms):
    if is_coarse:  # a t = 2 plan on the t = 4 grid moves whole 2 x 2 blocks
      moved = blocks(np.asarray(move_blocks(image, perm)))
      assert sorted(map(tuple, moved.reshape(4, -1))) == sorted(
          map(tuple, blocks(image).reshape(4, -1)))
  assert [transport_grid((32, 32), n) for n in (2, 4, 8, 16)] == [8, 8, 8, 16]
  out = jax.eval_shape(lambda k: puzzlemix_mask(  # traced, not compiled
      k, shape, 0.5, guide, partner, block_num=2, transport=False), keys[0])
  assert len(out) == 2 and out[0].shape == shape and out[1].shape == ()


@pytest.mark.parametrize("call, match", [
    (lambda g, p: puzzlemix_mask(None, (4, 8, 8), 0.5, g, p), "2-D images"),
    (lambda g, p: puzzlemix_mask(None, (8, 8), 0.5, {"image": g["image"]}, p),
     "guide must be a dict"),
    (lambda g, p: puzzlemix_mask(None, (8, 8), 0.5, g,
                                 dict(p, saliency=np.ones((3, 3)))),
     r"partner_guide\['saliency'\]"),
    (lambda g, p: puzzlemix_mask(None, (8, 8), 0.5,
                                 dict(g, image=np.ones((8, 4, 3))), p),
     r"guide\['image'\]"),
    (lambda g, p: puzzlemix_mask(None, (8, 8), 0.5, g, p, block_num=3),
     "block_num must divide"),
    (lambda g, p: puzzlemix_mask(None, (7, 7), 0.5,
                                 {"saliency": np.ones((7, 7)),
                                  "image": np.ones((7, 7, 3))},
                                 {"saliency": np.ones((7, 7)),
                                  "image": np.ones((7, 7, 3))}),
     "no block count"),
    (lambda g, p: block_pairwise(g["image"], p["image"], 3), "must divide"),
    (lambda g, p: move_blocks(g["image"], np.arange(5).reshape(1, 5)),
     "sources has grid"),
])
def test_errors_name_the_argument(call, match):
  # Catches: silent acceptance of 1-D/3-D shapes, malformed guides, block
  # counts that do not tile the image (a reshape error or a wrong mask).
  guide = {"saliency": np.ones((8, 8)), "image": np.ones((8, 8, 3))}
  with pytest.raises(ValueError, match=match):
    call(guide, dict(guide))
