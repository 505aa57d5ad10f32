"""PuzzleMix's labelling energy, its solver and its transport, in JAX.

PuzzleMix labels every block of an ``n x n`` grid with the weight ``m`` of
the image itself, ``m ∈ {0, ½, 1}`` (label index ``k = 2 m``), to minimise

  ``E(l) = Σ_p U_p(l_p) + Σ_{p~q} T_pq(l_p, l_q)``

over 4-neighbours ``p ~ q``:

* unary (:func:`block_unaries`): ``U_p(m) = m u_b[p] + (1 - m) u_a[p] +
  prior(m)``, the saliency the label throws away (each map normalised to sum
  1) plus the binomial prior ``prior(m) = -η log P(m | λ) / n²`` with
  ``P(1) = λ²``, ``P(½) = 2λ(1 - λ)``, ``P(0) = (1 - λ)²``, which pulls the
  mask mean toward λ;
* pairwise (:func:`block_pairwise`): a full 3 x 3 table per edge, the
  smoothness ``(m_p - m_q)² β'`` (``β' = β / n / 16``) plus γ β' times the
  images' mean absolute difference across the block border, exactly as the
  reference assembles it (its parts folded into the unaries included).

The reference minimises ``E`` with α-β-swap graph cuts (the ``gco`` C++
library, per sample on the host). :func:`solve_labelling` is a fixed number
of JAX sweeps instead: min-sum loopy belief propagation to start, then exact
block coordinate descent over whole rows and whole columns (each a chain,
solved exactly by dynamic programming; even rows in parallel, then odd
rows, then even and odd columns), keeping the lower energy of the two
starts. Every step is static-shaped, so it jits and vmaps with no host round
trip.

Transport (:func:`transport_plan`; applied by ``_blocks.move_blocks``) moves each image's
salient blocks to where the mask keeps that image, by the reference's greedy
rule on a finer ``t x t`` grid, completed to a true permutation.

:func:`puzzlemix_mask` puts these together for one sample.

Reference: Kim, Choo & Song, "Puzzle Mix: Exploiting Saliency and Local
Statistics for Optimal Mixup", ICML 2020; code: github.com/snu-mllab/PuzzleMix
(``mixup.py``: ``mixup_graph``, ``graphcut_multi``, ``neigh_penalty``,
``mask_transport``).
"""

import math
import numbers

import jax
import jax.numpy as jnp

from msda_jax import _geometry
from msda_jax._types import BlockMoves

__all__ = [
    "block_unaries", "block_pairwise", "labelling_energy", "solve_labelling",
    "transport_plan", "transport_grid", "puzzlemix_mask",
    "area_pool", "LABEL_WEIGHTS", "BLOCK_NUMS",
]

#: The weight of the image itself for label index 0, 1, 2.
LABEL_WEIGHTS = (0.0, 0.5, 1.0)
#: The reference's block counts per side, ``2 ** randint(1, 5)``.
BLOCK_NUMS = (2, 4, 8, 16)
_EPS = 1e-8  # the reference's guard inside the prior's logarithm


def _check_positive_int(value, name: str, default) -> int:
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < 1):
    raise ValueError(
        f"{name} must be an int >= 1 (default {default}); got {value!r}")
  return int(value)


def _check_nonneg_float(value, name: str, default) -> float:
  message = f"{name} must be a finite float >= 0 (default {default})"
  if isinstance(value, bool):
    raise ValueError(f"{message}; got {value!r}")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{message}; got {value!r}") from None
  if not (math.isfinite(number) and number >= 0):
    raise ValueError(f"{message}; got {value!r}")
  return number


def area_pool(x: jax.Array, out_shape: tuple[int, int]) -> jax.Array:
  """Area mean of the leading two axes of ``x`` onto an ``out_shape`` grid.

  Exact for any sizes (each axis is repeated up to the least common multiple
  of the two sizes and then averaged in equal groups), so a map coarser than
  the grid is spread over it and a finer one is averaged down.

  Example:
    >>> import jax.numpy as jnp
    >>> area_pool(jnp.arange(16.).reshape(4, 4), (2, 2)).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
  """
  x = jnp.asarray(x, jnp.float32)
  for axis, out in enumerate(out_shape):
    size = x.shape[axis]
    common = math.lcm(size, out)
    if common != size:
      x = jnp.repeat(x, common // size, axis=axis)
    if common != out:
      grouped = x.shape[:axis] + (out, common // out) + x.shape[axis + 1:]
      x = x.reshape(grouped).mean(axis=axis + 1)
  return x


def _normalised(saliency: jax.Array) -> jax.Array:
  """``saliency / sum``; a map that sums to 0 counts as uniform."""
  saliency = jnp.asarray(saliency, jnp.float32)
  total = jnp.sum(saliency)
  uniform = jnp.full_like(saliency, 1.0 / saliency.size)
  return jnp.where(total > 0, saliency / jnp.where(total > 0, total, 1.0),
                   uniform)


def block_unaries(saliency_a: jax.Array, saliency_b: jax.Array, lam, *,
                  eta: float = 0.2) -> jax.Array:
  """The unary cost of each label at each block, float32 ``(n, n, 3)``.

  ``U[p, k] = m u_b[p] + (1 - m) u_a[p] + prior(m)`` for ``m = k / 2`` (the
  weight of image a), with ``u_a``, ``u_b`` the saliency maps normalised to
  sum 1 (an all-zero map counts as uniform) and the reference's binomial
  prior ``prior(m) = -η log(P(m) + 1e-8) / n²``, ``P = ((1 - λ)², 2λ(1 - λ),
  λ²)`` (``n²`` the number of blocks).

  Args:
    saliency_a: ``(n, n)`` non-negative, image a's saliency pooled to the
      block grid (any 2-D grid works; the prior divides by its size).
    saliency_b: the partner's, same shape.
    lam: λ, the target weight of image a, in [0, 1] (may be traced).
    eta: η >= 0, the prior's weight.

  Returns:
    float32 ``(n, n, 3)``.

  Example:
    >>> import jax.numpy as jnp
    >>> u = block_unaries(jnp.eye(2), 1 - jnp.eye(2), 0.5, eta=0.0)
    >>> u[0, 0].tolist(), u[0, 1].tolist()     # keep a where a is salient
    ([0.5, 0.25, 0.0], [0.0, 0.25, 0.5])
  """
  eta = _check_nonneg_float(eta, "eta", 0.2)
  u_a, u_b = _normalised(saliency_a), _normalised(saliency_b)
  if u_a.shape != u_b.shape or u_a.ndim != 2:
    raise ValueError(
        f"saliency_a and saliency_b must be 2-D of one shape; got "
        f"{u_a.shape} and {u_b.shape}")
  lam = jnp.asarray(lam, jnp.float32)
  prob = jnp.stack([(1 - lam)**2, 2 * lam * (1 - lam), lam**2])
  prior = -eta * jnp.log(prob + _EPS) / u_a.size
  m = jnp.asarray(LABEL_WEIGHTS, jnp.float32)
  return m * u_b[..., None] + (1 - m) * u_a[..., None] + prior


def _largest_divisor_at_most(size: int, limit: int) -> int:
  return max(d for d in range(1, min(size, limit) + 1) if size % d == 0)


def _check_grid(shape: tuple[int, ...], n: int, what: str) -> tuple[int, int]:
  height, width = shape
  if height % n or width % n:
    raise ValueError(
        f"{what}: n = {n} blocks per side must divide the image's height and "
        f"width; got {(height, width)}")
  return height // n, width // n


def _border_differences(pooled_a, pooled_b, per_block: int):
  """``raw[x, y][i, j]``: mean |image x's last pooled row of block row i -
  image y's first pooled row of block row i + 1| over channels and over the
  pooled columns of block column j; x, y = 1 for image a, 0 for image b."""
  rows = pooled_a.shape[0]
  last = jnp.arange(per_block - 1, rows - 1, per_block)
  images = (pooled_b, pooled_a)
  raw = [[jnp.abs(images[x][last] - images[y][last + 1]).mean(axis=-1)
          for y in (0, 1)] for x in (0, 1)]
  return jnp.stack([jnp.stack(r) for r in raw])  # (2, 2, n - 1, columns)


def _edge_tables(raw, beta_n):
  """The reference's per-edge costs as a 3 x 3 table over ``(k_p, k_q)``.

  ``raw[x, y]`` is the (already γ β' scaled) border difference with image x
  on the upper/left block and y on the lower/right (1 = image a). The
  reference charges ``m_p A1 + (1 - m_p) A0`` to p, ``m_q B1 + (1 - m_q) B0``
  to q and ``(m_p - m_q)² (β' + d)`` to the edge (``graphcut_multi``'s
  ``pw_x + beta``); summed here into one table.
  """
  r00, r01, r10, r11 = raw[0, 0], raw[0, 1], raw[1, 0], raw[1, 1]
  a1, a0 = (r10 + r11) / 2, (r01 + r00) / 2
  b1, b0 = (r01 + r11) / 2, (r10 + r00) / 2
  d = (r10 + r01 - r11 - r00) / 2
  m = jnp.asarray(LABEL_WEIGHTS, jnp.float32)
  mp, mq = m[:, None], m[None, :]
  e = lambda v: v[..., None, None]  # noqa: E731
  return (mp * e(a1) + (1 - mp) * e(a0) + mq * e(b1) + (1 - mq) * e(b0)
          + (mp - mq)**2 * (beta_n + e(d)))


def block_pairwise(image_a: jax.Array, image_b: jax.Array, n: int, *,
                   beta: float = 1.2, gamma: float = 0.5,
                   neigh_size: int = 4) -> tuple[jax.Array, jax.Array]:
  """The label-pair cost of every 4-neighbour edge of the ``n x n`` grid.

  For neighbours p (upper or left) and q with weights ``m_p``, ``m_q`` of
  image a: smoothness ``(m_p - m_q)² β'``, ``β' = β / n / 16``, plus γ β'
  times the data term of the reference (``neigh_penalty``): both images
  average-pooled in ``neigh_size`` squares, and for each choice of which
  image shows on each side, the mean absolute difference (over channels
  and along the border) between the pooled pixels facing each other across
  the block border. The reference splits that term into a part it adds to
  the unaries and a symmetric part on the edge; both are summed here into
  one 3 x 3 table, so that ``labelling_energy`` with :func:`block_unaries`
  is the reference's graph-cut energy (at 0/1 labels the table is the data
  term of the two images shown, plus ``β'`` if they differ, plus a constant
  per edge).

  The pooling cell is, per axis, the largest divisor of the block side that
  is at most ``neigh_size`` (the reference's ``min(neigh_size, block)``
  whenever that divides the block, as for every power-of-two size).

  Args:
    image_a: ``(H, W, C)`` float, pixel values on the [0, 1] scale that γ is
      tuned for (the reference un-normalises its inputs first).
    image_b: the partner, same shape.
    n: static blocks per side; must divide H and W.
    beta: β >= 0, label smoothness.
    gamma: γ >= 0, weight of the data term.
    neigh_size: pooling cell side in pixels, >= 1.

  Returns:
    ``(horizontal, vertical)``, float32 ``(n, n - 1, 3, 3)`` (edge between
    blocks ``(i, j)`` and ``(i, j + 1)``, indexed ``[i, j, k_left,
    k_right]``) and ``(n - 1, n, 3, 3)`` (``(i, j)`` above ``(i + 1, j)``,
    indexed ``[i, j, k_up, k_down]``).

  Example:
    >>> import jax.numpy as jnp
    >>> h, v = block_pairwise(jnp.zeros((8, 8, 3)), jnp.ones((8, 8, 3)), 2,
    ...                       gamma=0.0)
    >>> h.shape, v.shape, round(float(h[0, 0, 0, 2]), 6)   # β' = 1.2 / 2 / 16
    ((2, 1, 3, 3), (1, 2, 3, 3), 0.0375)
  """
  n = _check_positive_int(n, "n", "the block grid side")
  beta = _check_nonneg_float(beta, "beta", 1.2)
  gamma = _check_nonneg_float(gamma, "gamma", 0.5)
  neigh_size = _check_positive_int(neigh_size, "neigh_size", 4)
  image_a = jnp.asarray(image_a, jnp.float32)
  image_b = jnp.asarray(image_b, jnp.float32)
  if image_a.ndim != 3 or image_a.shape != image_b.shape:
    raise ValueError(
        f"image_a and image_b must be (H, W, C) of one shape; got "
        f"{image_a.shape} and {image_b.shape}")
  block_h, block_w = _check_grid(image_a.shape[:2], n, "block_pairwise")
  cell_h = _largest_divisor_at_most(block_h, neigh_size)
  cell_w = _largest_divisor_at_most(block_w, neigh_size)
  pooled_shape = (image_a.shape[0] // cell_h, image_a.shape[1] // cell_w)
  pooled_a = area_pool(image_a, pooled_shape)
  pooled_b = area_pool(image_b, pooled_shape)
  beta_n = beta / n / 16
  scale = beta_n * gamma

  def raw(pa, pb, per_block):
    # (2, 2, n - 1, pooled columns) -> mean over each block column's cells.
    diffs = _border_differences(pa, pb, per_block).transpose(2, 3, 0, 1)
    return scale * area_pool(diffs, (n - 1, n)).transpose(2, 3, 0, 1)

  vertical_raw = raw(pooled_a, pooled_b, block_h // cell_h)
  horizontal_raw = raw(pooled_a.transpose(1, 0, 2),
                       pooled_b.transpose(1, 0, 2), block_w // cell_w)
  vertical = _edge_tables(vertical_raw, beta_n)
  horizontal = _edge_tables(horizontal_raw, beta_n).transpose(1, 0, 2, 3)
  return horizontal, vertical


def _check_terms(unary, horizontal, vertical):
  unary = jnp.asarray(unary, jnp.float32)
  horizontal = jnp.asarray(horizontal, jnp.float32)
  vertical = jnp.asarray(vertical, jnp.float32)
  if unary.ndim != 3 or unary.shape[-1] != 3:
    raise ValueError(f"unary must be (n, n, 3); got {unary.shape}")
  rows, cols = unary.shape[:2]
  want_h, want_v = (rows, cols - 1, 3, 3), (rows - 1, cols, 3, 3)
  if horizontal.shape != want_h or vertical.shape != want_v:
    raise ValueError(
        f"horizontal and vertical must be {want_h} and {want_v} for unary "
        f"{unary.shape}; got {horizontal.shape} and {vertical.shape}")
  return unary, horizontal, vertical


def _pair_cost(table, left, right):
  """``table[..., left, right]`` for label arrays of table's leading shape."""
  row = jnp.take_along_axis(table, left[..., None, None], axis=-2)[..., 0, :]
  return jnp.take_along_axis(row, right[..., None], axis=-1)[..., 0]


def labelling_energy(labels: jax.Array, unary: jax.Array,
                     horizontal: jax.Array, vertical: jax.Array) -> jax.Array:
  """The energy ``Σ_p U[p, l_p] + Σ_edges T[l_p, l_q]`` of a labelling.

  Args:
    labels: int ``(n, n)`` in {0, 1, 2} (the weight of image a times 2).
    unary: ``(n, n, 3)`` from :func:`block_unaries`.
    horizontal: ``(n, n - 1, 3, 3)`` and
    vertical: ``(n - 1, n, 3, 3)``, from :func:`block_pairwise`.

  Returns:
    float32 scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> u = jnp.zeros((2, 2, 3)).at[..., 2].set(1.0)
    >>> h, v = jnp.ones((2, 1, 3, 3)), jnp.zeros((1, 2, 3, 3))
    >>> float(labelling_energy(jnp.array([[2, 0], [0, 0]]), u, h, v))
    3.0
  """
  unary, horizontal, vertical = _check_terms(unary, horizontal, vertical)
  labels = jnp.asarray(labels, jnp.int32)
  total = jnp.sum(jnp.take_along_axis(unary, labels[..., None], axis=-1))
  total += jnp.sum(_pair_cost(horizontal, labels[:, :-1], labels[:, 1:]))
  total += jnp.sum(_pair_cost(vertical, labels[:-1], labels[1:]))
  return total


def _belief_propagation(unary, horizontal, vertical, iterations, damping=0.5):
  """Min-sum loopy BP, all messages updated at once, damped; the beliefs."""
  rows, cols = unary.shape[:2]
  zeros_h = jnp.zeros((rows, cols - 1, 3), jnp.float32)
  zeros_v = jnp.zeros((rows - 1, cols, 3), jnp.float32)

  def incoming(msgs):
    right, left, down, up = msgs  # right[i, j]: (i, j) -> (i, j + 1), etc.
    pad_h = lambda x, before: jnp.pad(  # noqa: E731
        x, ((0, 0), (1, 0) if before else (0, 1), (0, 0)))
    pad_v = lambda x, before: jnp.pad(  # noqa: E731
        x, ((1, 0) if before else (0, 1), (0, 0), (0, 0)))
    return (unary + pad_h(right, True) + pad_h(left, False)
            + pad_v(down, True) + pad_v(up, False))

  def send(belief_from, back, table, forward):
    # forward: message over the second label of table; else over the first.
    source = (belief_from - back)
    if forward:
      out = jnp.min(source[..., :, None] + table, axis=-2)
    else:
      out = jnp.min(source[..., None, :] + table, axis=-1)
    return out - jnp.min(out, axis=-1, keepdims=True)

  def step(_, msgs):
    right, left, down, up = msgs
    belief = incoming(msgs)
    new = (send(belief[:, :-1], left, horizontal, True),
           send(belief[:, 1:], right, horizontal, False),
           send(belief[:-1], up, vertical, True),
           send(belief[1:], down, vertical, False))
    return tuple(damping * old + (1 - damping) * fresh
                 for old, fresh in zip(msgs, new))

  msgs = jax.lax.fori_loop(0, iterations, step,
                           (zeros_h, zeros_h, zeros_v, zeros_v))
  return incoming(msgs)


def _row_chains(labels, unary, horizontal, vertical, parity):
  """Exact minimisation over every row of one parity, the others fixed.

  Each row is a chain: its local costs are the unaries plus the vertical
  tables at the fixed labels above and below; a min-sum dynamic programme
  along the row (ties to the lower label) gives its optimum, so the energy
  never rises.
  """
  rows, cols = labels.shape
  local = unary
  if rows > 1:
    above = jnp.take_along_axis(vertical, labels[:-1, :, None, None],
                                axis=-2)[..., 0, :]       # (rows-1, cols, 3)
    below = jnp.take_along_axis(vertical, labels[1:, :, None, None],
                                axis=-1)[..., 0]          # (rows-1, cols, 3)
    local = local + jnp.pad(above, ((1, 0), (0, 0), (0, 0)))
    local = local + jnp.pad(below, ((0, 1), (0, 0), (0, 0)))
  if cols == 1:
    best = jnp.argmin(local, axis=-1).astype(jnp.int32)
  else:
    local_t = jnp.swapaxes(local, 0, 1)                   # (cols, rows, 3)
    tables_t = jnp.swapaxes(horizontal, 0, 1)            # (cols-1, rows, 3, 3)

    def forward(cost, xs):
      table, here = xs
      total = cost[..., :, None] + table
      return here + jnp.min(total, axis=-2), jnp.argmin(total, axis=-2)

    last, back = jax.lax.scan(forward, local_t[0], (tables_t, local_t[1:]))
    end = jnp.argmin(last, axis=-1).astype(jnp.int32)

    def backward(label, pointers):
      previous = jnp.take_along_axis(pointers, label[:, None], axis=-1)[:, 0]
      return previous.astype(jnp.int32), label

    first, rest = jax.lax.scan(backward, end, back, reverse=True)
    best = jnp.concatenate([first[None], rest], axis=0).T  # (rows, cols)
  pick = (jnp.arange(rows) % 2 == parity)[:, None]
  return jnp.where(pick, best, labels)


def _chain_descent(labels, unary, horizontal, vertical, iterations):
  """``iterations`` sweeps: even rows, odd rows, even columns, odd columns."""
  unary_t = jnp.swapaxes(unary, 0, 1)
  horizontal_t = jnp.swapaxes(vertical, 0, 1)
  vertical_t = jnp.swapaxes(horizontal, 0, 1)
  if labels.shape[0] == labels.shape[1]:
    # Square grids: columns are the rows of the transposed problem, which
    # has the same shapes, so one loop body serves all four half-steps (a
    # quarter of the program to compile).
    def half_step(step, labels):
      flip = (step // 2) % 2 == 1
      pick = lambda a, b: jnp.where(flip, b, a)  # noqa: E731
      new = _row_chains(pick(labels, labels.T), pick(unary, unary_t),
                        pick(horizontal, horizontal_t),
                        pick(vertical, vertical_t), step % 2)
      return pick(new, new.T)

    return jax.lax.fori_loop(0, 4 * iterations, half_step, labels)

  def sweep(_, labels):
    for parity in (0, 1):
      labels = _row_chains(labels, unary, horizontal, vertical, parity)
    labels = labels.T
    for parity in (0, 1):
      labels = _row_chains(labels, unary_t, horizontal_t, vertical_t, parity)
    return labels.T

  return jax.lax.fori_loop(0, iterations, sweep, labels)


def solve_labelling(unary: jax.Array, horizontal: jax.Array,
                    vertical: jax.Array, *, iterations: int = 3,
                    bp_iterations: int = 8) -> jax.Array:
  """A low-energy labelling of the block grid, in a fixed number of steps.

  Two starts: the argmin of the beliefs after ``bp_iterations`` rounds of
  damped min-sum loopy belief propagation, and the argmin of the unaries.
  From each, ``iterations`` sweeps of exact block coordinate descent: every
  even row, then every odd row, then the even and the odd columns, each a
  chain minimised exactly (given its fixed neighbours) by dynamic
  programming, so the energy never rises. The lower-energy result is
  returned (ties: the BP start). Deterministic, jit-able and vmap-able;
  replaces the reference's α-β-swap graph cut.

  Args:
    unary: ``(n, n, 3)`` from :func:`block_unaries`.
    horizontal: ``(n, n - 1, 3, 3)`` and
    vertical: ``(n - 1, n, 3, 3)``, from :func:`block_pairwise`.
    iterations: coordinate-descent sweeps, >= 0.
    bp_iterations: belief-propagation rounds for the first start, >= 0.

  Returns:
    int32 ``(n, n)`` labels in {0, 1, 2} (weight of image a = label / 2).

  Example:
    >>> import jax.numpy as jnp
    >>> u = jnp.zeros((2, 2, 3)).at[0, 0, 0].set(-1.0)   # (0, 0) wants 0
    >>> pair = jnp.array([[0., 1, 4], [1, 0, 1], [4, 1, 0]]) * 0.3
    >>> h, v = jnp.tile(pair, (2, 1, 1, 1)), jnp.tile(pair, (1, 2, 1, 1))
    >>> solve_labelling(u + jnp.array([0., 0, .1]), h, v).tolist()
    [[0, 0], [0, 0]]
  """
  unary, horizontal, vertical = _check_terms(unary, horizontal, vertical)
  if (isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral)
      or iterations < 0):
    raise ValueError(f"iterations must be an int >= 0; got {iterations!r}")
  if (isinstance(bp_iterations, bool)
      or not isinstance(bp_iterations, numbers.Integral) or bp_iterations < 0):
    raise ValueError(
        f"bp_iterations must be an int >= 0; got {bp_iterations!r}")
  belief = _belief_propagation(unary, horizontal, vertical, int(bp_iterations))
  starts = jnp.stack([jnp.argmin(belief, axis=-1),
                      jnp.argmin(unary, axis=-1)]).astype(jnp.int32)
  solve = lambda start: _chain_descent(  # noqa: E731
      start, unary, horizontal, vertical, int(iterations))
  finals = jax.vmap(solve)(starts)
  energies = jax.vmap(labelling_energy, (0, None, None, None))(
      finals, unary, horizontal, vertical)
  return jnp.where(energies[1] < energies[0], finals[1], finals[0])


_FAR = 1 << 20  # farther than any squared grid distance


def _square_offsets(size: int) -> jax.Array:
  i = jnp.arange(size, dtype=jnp.int32)
  return (i[:, None] - i[None, :])**2


def transport_plan(saliency: jax.Array, keep: jax.Array, *,
                   t_eps: float = 0.8) -> jax.Array:
  """Where each block goes: the reference's greedy transport, as a permutation.

  On the ``t x t`` transport grid, the cost of sending block i to place j is
  ``t_eps · C[i, j] - u[i] · z[j]``, with ``C`` the squared grid distance
  over ``(t - 1)²``, ``u`` the saliency normalised to sum 1 and ``z = 1``
  where ``keep > 0`` (the mask shows this image there). As the reference's
  ``mask_transport``, for ``t`` rounds every unplaced block picks its
  cheapest free place and every place picked by several blocks takes the
  cheapest of them (ties: the lower index); unlike the reference, a block
  that loses does not pick that place again (the reference adds 1 to its
  cost there) and the blocks still unplaced after ``t`` rounds fill the free
  places in index order, so the result is a true permutation (the reference
  leaves those places empty, i.e. black).

  Args:
    saliency: ``(t, t)`` non-negative, the image's saliency on the transport
      grid.
    keep: ``(t, t)``, the mask's weight of this image there (``1 - mask``
      for the partner).
    t_eps: transport cost weight >= 0.

  Returns:
    int32 ``(t * t,)``: output block j (row-major) comes from input block
    ``perm[j]``.

  Example:
    >>> import jax.numpy as jnp
    >>> sal = jnp.zeros((2, 2)).at[0, 0].set(1.0)     # salient top-left
    >>> keep = jnp.zeros((2, 2)).at[0, 1].set(1.0)    # kept top-right
    >>> transport_plan(sal, keep).tolist()            # swapped in
    [1, 0, 2, 3]
  """
  t_eps = _check_nonneg_float(t_eps, "t_eps", 0.8)
  saliency = jnp.asarray(saliency, jnp.float32)
  if saliency.ndim != 2 or saliency.shape != jnp.shape(keep):
    raise ValueError(
        f"saliency and keep must be 2-D of one shape; got {saliency.shape} "
        f"and {jnp.shape(keep)}")
  rows, cols = saliency.shape
  count = rows * cols
  u = _normalised(saliency).reshape(-1)
  kept = jnp.asarray(keep).reshape(rows, cols) > 0
  scale = float(max(max(rows, cols) - 1, 1)**2)
  index = jnp.arange(count, dtype=jnp.int32)

  def best_place(free, minus):
    # For every block (a grid point), its cheapest free place of one class:
    # cost t_eps · C - minus; an exact two-pass squared distance transform
    # that keeps the lowest row-major index among ties, as an argmin over
    # all places would.
    d_rows, d_cols = _square_offsets(rows), _square_offsets(cols)
    along = jnp.where(free[:, None, :], d_cols[None], _FAR)  # (r, c', c)
    row_best, row_arg = jnp.min(along, -1), jnp.argmin(along, -1)
    total = d_rows[:, None, :] + row_best.T[None]           # (r', c', r)
    dist, best_r = jnp.min(total, -1), jnp.argmin(total, -1)
    best_c = jnp.take_along_axis(row_arg.T, best_r.T, axis=1).T
    place = (best_r * cols + best_c).reshape(-1).astype(jnp.int32)
    cost = t_eps * (dist.reshape(-1).astype(jnp.float32) / scale) - minus
    return jnp.where(dist.reshape(-1) < _FAR, cost, jnp.inf), place

  def round_(_, state):
    source, row_free = state               # source[j]: block at place j or -1
    free = (source < 0).reshape(rows, cols)
    cost_kept, place_kept = best_place(free & kept, u)
    cost_other, place_other = best_place(free & ~kept, 0.0)
    take_kept = (cost_kept < cost_other) | (
        (cost_kept == cost_other) & (place_kept < place_other))
    choice = jnp.where(take_kept, place_kept, place_other)
    bid = jnp.where(row_free, jnp.where(take_kept, cost_kept, cost_other),
                    jnp.inf)
    best_bid = jax.ops.segment_min(bid, choice, num_segments=count)
    bidder = jnp.where(row_free & (bid == best_bid[choice]), index, count)
    winner = jax.ops.segment_min(bidder, choice, num_segments=count)
    won = (winner < count) & (source < 0)
    source = jnp.where(won, winner, source)
    return source, row_free & (source[choice] != index)

  source, row_free = jax.lax.fori_loop(
      0, max(rows, cols), round_,
      (jnp.full(count, -1, jnp.int32), jnp.ones(count, bool)))
  # Unplaced blocks fill the free places, both in index order.
  free_rows = jnp.argsort(~row_free, stable=True).astype(jnp.int32)
  free_cols = jnp.argsort(source >= 0, stable=True)
  fill = jnp.zeros(count, jnp.int32).at[free_cols].set(free_rows)
  return jnp.where(source >= 0, source, fill)


def _refine_perm(perm, t, fine):
  """A permutation of the ``t x t`` grid as one of the ``fine x fine`` grid
  (``fine`` a multiple of ``t``): each block moves as its sub-blocks."""
  if fine == t:
    return perm
  r = fine // t
  rows, cols = jnp.divmod(jnp.arange(fine * fine, dtype=jnp.int32), fine)
  src_r, src_c = jnp.divmod(perm[(rows // r) * t + cols // r], t)
  return (src_r * r + rows % r) * fine + src_c * r + cols % r


def transport_grid(shape: tuple[int, int], block_num: int,
                   t_size: int = 4) -> int:
  """Transport blocks per side for ``block_num`` mask blocks per side.

  The reference's rule: transport blocks of ``min(t_size, block)`` pixels,
  i.e. ``t = block_num · r``, ``r = block // t_size`` (at least 1; lowered
  to the largest value that divides both block sides), ``block`` the
  smaller block side.

  Example:
    >>> [transport_grid((32, 32), n) for n in (2, 4, 8, 16)]
    [8, 8, 8, 16]
  """
  block_h, block_w = _check_grid(tuple(shape), block_num, "transport_grid")
  r = max(1, min(block_h, block_w) // t_size)
  while block_h % r or block_w % r:
    r -= 1
  return block_num * r


def _check_guide(guide, name: str, shape: tuple[int, int]):
  if not isinstance(guide, dict) or not {"saliency", "image"} <= set(guide):
    raise ValueError(
        f"{name} must be a dict with 'saliency' (h, w) and 'image' (H, W, C); "
        f"got {type(guide).__name__}"
        + (f" with keys {sorted(guide)}" if isinstance(guide, dict) else ""))
  saliency, image = guide["saliency"], guide["image"]
  sal_shape, image_shape = jnp.shape(saliency), jnp.shape(image)
  if (len(sal_shape) != 2 or min(sal_shape) < 1
      or shape[0] % sal_shape[0] or shape[1] % sal_shape[1]):
    raise ValueError(
        f"{name}['saliency'] must be (h, w) with h dividing H and w dividing "
        f"W of the image shape {shape}; got {sal_shape}")
  if len(image_shape) != 3 or tuple(image_shape[:2]) != shape:
    raise ValueError(
        f"{name}['image'] must be (H, W, C) = {shape} + (C,); got "
        f"{image_shape}")
  return saliency, image


def puzzlemix_mask(key: jax.Array, shape: tuple[int, int], lam,
                   guide: dict, partner_guide: dict, *,
                   block_num: int | None = None, beta: float = 1.2,
                   gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4,
                   transport: bool = True, t_eps: float = 0.8,
                   t_size: int = 4, iterations: int = 3,
                   bp_iterations: int = 8):
  """PuzzleMix's mask for one sample (Kim, Choo & Song, ICML 2020).

  ``n`` blocks per side, drawn from ``key`` among the reference's
  ``2 ** randint(1, 5)`` ∈ {2, 4, 8, 16} (those that divide H and W) unless
  ``block_num`` fixes it; each block labelled with the weight 0, ½ or 1 of
  the image itself by :func:`solve_labelling` on the energy of
  :func:`block_unaries` and :func:`block_pairwise`. Every candidate ``n`` is
  its own static-shaped branch of a ``lax.switch`` (under ``vmap`` all of
  them run and one is selected).

  With ``transport``, each image's salient blocks are moved toward where the
  mask keeps it (:func:`transport_plan`: the image with ``keep = mask``,
  the partner with ``1 - mask``, on the grid of :func:`transport_grid`).
  The plans are returned on the finest transport grid among the candidates
  (a coarser plan moves its blocks' sub-blocks together), so their shape is
  static: the mixer applies them (``_blocks.move_blocks``), then blends
  ``mask · a' + (1 - mask) · b'``.

  Args:
    key: a PRNG key (draws the block count only).
    shape: ``(H, W)``, static; other spatial ranks raise a ValueError.
    lam: λ in [0, 1], the prior's target weight of the image itself.
    guide: ``{'saliency': (h, w), 'image': (H, W, C)}`` of the image itself:
      non-negative saliency at any resolution whose sides divide H and W
      (area-pooled to each grid), and the pixels (on the [0, 1] scale) for
      the border term.
    partner_guide: the same for the partner.
    block_num: a fixed block count per side dividing H and W, or None.
    beta, gamma, eta, neigh_size: the energy's weights (see
      :func:`block_pairwise`, :func:`block_unaries`).
    transport: move the blocks (the reference's CIFAR recipes do).
    t_eps: transport cost weight.
    t_size: transport block side in pixels (at most the mask block).
    iterations, bp_iterations: the solver's sweeps (:func:`solve_labelling`).

  Returns:
    ``(mask, mean)`` with ``mask`` float32 ``(H, W)`` in {0, ½, 1} (nearest
    upsampled blocks) and ``mean`` its mean (the label weight); with
    ``transport``, ``(mask, mean, BlockMoves(own, partner))``, int32
    ``(T, T)`` each: output block g of an image is its block ``own[g]``
    (``partner[g]`` for the partner), row-major.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> sal = jnp.zeros((8, 8)).at[:4, :4].set(1.0)    # a salient corner
    >>> guide = {'saliency': sal, 'image': jnp.zeros((8, 8, 3))}
    >>> partner = {'saliency': sal[::-1, ::-1], 'image': jnp.ones((8, 8, 3))}
    >>> mask, mean = puzzlemix_mask(jax.random.key(0), (8, 8), 0.5, guide,
    ...                             partner, block_num=2, transport=False)
    >>> mask[::4, ::4].tolist(), float(mean)   # each keeps its salient corner
    ([[1.0, 0.5], [0.5, 0.0]], 0.5)
  """
  height, width = _geometry.check_2d_shape(shape, "puzzlemix")
  shape = (height, width)
  saliency_a, image_a = _check_guide(guide, "guide", shape)
  saliency_b, image_b = _check_guide(partner_guide, "partner_guide", shape)
  neigh_size = _check_positive_int(neigh_size, "neigh_size", 4)
  t_size = _check_positive_int(t_size, "t_size", 4)
  if block_num is None:
    candidates = tuple(n for n in BLOCK_NUMS
                       if height % n == 0 and width % n == 0)
    if not candidates:
      raise ValueError(
          f"puzzlemix: no block count in {BLOCK_NUMS} divides the image "
          f"shape {shape}; pass block_num")
  else:
    block_num = _check_positive_int(block_num, "block_num", None)
    if height % block_num or width % block_num:
      raise ValueError(
          f"block_num must divide the image's height and width {shape}; got "
          f"{block_num}")
    candidates = (block_num,)
  grids = [transport_grid(shape, n, t_size) for n in candidates]
  finest = max(grids)
  if any(finest % t for t in grids):
    finest = math.lcm(*grids)
  lam = jnp.asarray(lam, jnp.float32)

  def labelling(n):
    unary = block_unaries(area_pool(saliency_a, (n, n)),
                          area_pool(saliency_b, (n, n)), lam, eta=eta)
    horizontal, vertical = block_pairwise(image_a, image_b, n, beta=beta,
                                          gamma=gamma, neigh_size=neigh_size)
    labels = solve_labelling(unary, horizontal, vertical,
                             iterations=iterations,
                             bp_iterations=bp_iterations)
    weights = labels.astype(jnp.float32) / 2
    mask = jnp.repeat(jnp.repeat(weights, height // n, 0), width // n, 1)
    if not transport:
      return mask, jnp.mean(weights)
    fine = jnp.repeat(jnp.repeat(weights, finest // n, 0), finest // n, 1)
    return mask, jnp.mean(weights), fine

  index = 0
  if len(candidates) > 1:
    index = jax.random.randint(key, (), 0, len(candidates))
  branches = [lambda n=n: labelling(n) for n in candidates]
  out = (branches[0]() if len(branches) == 1
         else jax.lax.switch(index, branches))
  if not transport:
    return out
  mask, mean, fine = out

  # One transport per distinct grid (the candidates 2, 4 and 8 share t = 8
  # on a 32 x 32 image), so a vmapped call pays each grid once.
  distinct = sorted(set(grids))

  def transported(t):
    step = finest // t
    keep = fine[::step, ::step]
    perms = (transport_plan(area_pool(saliency_a, (t, t)), keep, t_eps=t_eps),
             transport_plan(area_pool(saliency_b, (t, t)), 1 - keep,
                            t_eps=t_eps))
    return BlockMoves(*(_refine_perm(p, t, finest).reshape(finest, finest)
                        for p in perms))

  movers = [lambda t=t: transported(t) for t in distinct]
  if len(movers) == 1:
    return mask, mean, movers[0]()
  group = jnp.asarray([distinct.index(t) for t in grids], jnp.int32)[index]
  return mask, mean, jax.lax.switch(group, movers)
