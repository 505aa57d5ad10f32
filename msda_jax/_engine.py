"""The extension point: any one-sample mask generator becomes a mixer.

``mask_mixer(mask_fn, ...)`` is how every built-in method is made, and how a
user's method becomes one: it wraps ``mask_fn`` in a :class:`MethodSampler`
(λ distribution, mixing probability) and that in a :class:`~msda_jax.Mixer`
(modes, pairing, labels). ``uniform_mask`` lifts a mask written on a few
uniforms into a generator that the sampler can feed from the same threefry
call that draws λ (the fast path of the built-in methods).

Keys, for one sample key ``k`` (see :mod:`msda_jax._modes` for how a batch
key becomes sample keys): ``u = jax.random.uniform(k, (2 + n + e,))`` where
``n`` is the mask's ``num_uniforms`` (0 for a plain ``mask_fn``) and
``e = 0`` for λ ~ U(0, 1) = Beta(1, 1), else 1 (always 1 for a scheduled α,
whose value is only known inside the trace). λ comes from ``u[0]``
(and ``u[-1]``), the mix/no-mix coin is ``u[1] < prob``, and the mask is

- ``mask_fn(jax.random.fold_in(k, 1), shape, λ)`` for a plain ``mask_fn``;
- built from ``u[2:2 + n]`` for a :func:`uniform_mask`, which is exactly what
  calling the uniform mask with ``k`` itself draws.

So a mixer's mask for a sample is reproduced by the public generator, called
with that key and the sampled λ (see :func:`draw_lam`).

Schedules: ``alpha`` and ``prob`` may be callables ``step -> value`` (an
optax schedule, or any function of a traced int step written in jnp). A
mixer built with one is called ``mixer(key, images, labels, step=step)``;
the schedule is evaluated inside the trace, so changing the step never
retraces. A scheduled α always takes the Beta path (it may be 1 at some
steps), a scheduled ``prob`` always draws the coin (it may be 0).
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp

from msda_jax import _lam
from msda_jax._mixer import Mixer
from msda_jax._types import Draw, MaskFn, PasteBox, identity_moves

__all__ = [
    "UniformMask", "uniform_mask", "MethodSampler", "mask_mixer",
    "guided_mask_mixer", "draw_lam",
    "check_alpha", "check_prob", "mask_key", "method_name", "is_schedule",
    "unmixed_unless",
]

Schedule = Callable[[jax.Array], Any]
Alpha = Union[float, tuple[float, float], Schedule]


def is_schedule(value) -> bool:
  """Whether ``value`` is a schedule ``step -> value`` (any callable).

  Example:
    >>> is_schedule(lambda step: 0.5), is_schedule(0.5)
    (True, False)
  """
  return callable(value)


def check_alpha(alpha) -> Alpha:
  """α > 0 (λ ~ Beta(α, α)), bounds ``(low, high)`` (λ ~ U(low, high)), or a
  schedule ``step -> α`` (returned as it is; its values must be > 0)."""
  if is_schedule(alpha):
    return alpha
  if isinstance(alpha, (tuple, list)):
    message = (f"alpha as bounds must be a pair (low, high) with "
               f"0 <= low < high <= 1; got {alpha!r}")
    try:
      low, high = (float(a) for a in alpha)
    except (TypeError, ValueError):
      raise ValueError(message) from None
    if not 0.0 <= low < high <= 1.0:
      raise ValueError(message)
    return low, high
  try:
    value = float(alpha)
  except (TypeError, ValueError):
    raise ValueError(
        f"alpha must be a float > 0 or a pair of bounds (low, high); got "
        f"{alpha!r}") from None
  if not (value > 0 and math.isfinite(value)):
    raise ValueError(f"alpha must be a finite float > 0; got {alpha!r}")
  return value


def check_prob(prob, name: str = "prob", *, schedule: bool = True):
  """A probability in [0, 1], or (if ``schedule``) a schedule ``step -> prob``
  (returned as it is)."""
  if schedule and is_schedule(prob):
    return prob
  try:
    value = float(prob)
  except (TypeError, ValueError):
    accepted = "a float in [0, 1]" + (
        " or a schedule step -> prob" if schedule else "")
    raise ValueError(f"{name} must be {accepted}; got {prob!r}") from None
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be in [0, 1]; got {prob!r}")
  return value


def _extra_uniforms(alpha: Alpha) -> int:
  if is_schedule(alpha):
    return 1  # Its value is traced: always the Beta path.
  return 0 if isinstance(alpha, tuple) or alpha == 1.0 else 1


def draw_lam(u: jax.Array, alpha: Alpha) -> jax.Array:
  """λ from a sample's uniforms ``u`` (the layout in the module docstring).

  Args:
    u: the sample's uniforms, ``jax.random.uniform(k, (2 + n + e,))``.
    alpha: α > 0 for Beta(α, α) (from ``u[0]``, and ``u[-1]`` unless
      α == 1), or bounds ``(low, high)`` for U(low, high) (from ``u[0]``).

  Returns:
    float32 λ.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> u = jax.random.uniform(jax.random.key(0), (3,))
    >>> bool(draw_lam(u, 1.0) == u[0])
    True
    >>> bool(0.1 <= draw_lam(u, (0.1, 0.9)) <= 0.9)
    True
  """
  if isinstance(alpha, tuple):
    return alpha[0] + (alpha[1] - alpha[0]) * u[0]
  if isinstance(alpha, (int, float)) and alpha == 1.0:
    return u[0]
  return _lam.beta_from_uniforms(u[0], u[-1], alpha)


def mask_key(key: jax.Array) -> jax.Array:
  """The key a plain ``mask_fn`` gets from sample key ``key``.

  Example:
    >>> import jax
    >>> mask_key(jax.random.key(0)).shape
    ()
  """
  return jax.random.fold_in(key, 1)


def _value_id(fn) -> Any:
  """Something that compares equal for equal masks: partials by value."""
  if isinstance(fn, functools.partial):
    try:
      keywords = tuple(sorted(fn.keywords.items()))
      hash((fn.args, keywords))
    except TypeError:
      return fn
    return (_value_id(fn.func), fn.args, keywords)
  return fn


@dataclasses.dataclass(frozen=True, eq=False)
class UniformMask:
  """A mask generator written on ``num_uniforms`` uniforms in [0, 1).

  ``fn(u, shape, lam, **options)`` returns what a mask generator returns
  (a mask, ``(mask, mean)``, ``(mask, mean, PasteBox)`` or ``(mask, mean,
  BlockMoves)``). Calling the
  object draws ``u = jax.random.uniform(key, (2 + num_uniforms,))[2:]``
  (the sampler's layout, so the key reproduces the mixer's mask) and calls
  ``fn``. Compares equal by ``fn``, ``num_uniforms`` and ``options``.

  Attributes:
    fn: ``(u, shape, lam, **options) -> mask | (mask, mean) | (...)``.
    num_uniforms: the length of ``u``.
    options: keyword options for ``fn``, as a tuple of (name, value) pairs.
  """

  fn: Callable
  num_uniforms: int
  options: tuple = ()

  def __call__(self, key: jax.Array, shape, lam, *guides):
    u = jax.random.uniform(key, (2 + self.num_uniforms,), jnp.float32)
    return self.from_uniforms(u[2:], shape, lam, *guides)

  def from_uniforms(self, u: jax.Array, shape, lam, *guides):
    """``fn(u, shape, lam, *guides, **options)``; ``guides`` is
    ``(guide, partner_guide)`` for a guided mask, else empty."""
    return self.fn(u, shape, lam, *guides, **dict(self.options))

  def _identity(self):
    return (_value_id(self.fn), self.num_uniforms, self.options)

  def __eq__(self, other):
    return (isinstance(other, UniformMask)
            and self._identity() == other._identity())

  def __hash__(self):
    return hash(self._identity())


def uniform_mask(fn: Callable, *, num_uniforms: int, **options) -> UniformMask:
  """Lifts a mask written on uniforms into a mask generator.

  The mixer then draws the mask's uniforms in the same threefry call as λ,
  which on CPU is most of a small mask's cost (a threefry call is a loop of
  tens of µs). Use it for masks that need a handful of random numbers (a
  centre, a box); masks that need many (a noise image) are better written
  as a plain ``(key, shape, lam)`` function.

  Args:
    fn: ``fn(u, shape, lam, **options)`` with ``u`` float32
      ``(num_uniforms,)`` uniform in [0, 1); returns a float32 mask of
      ``shape`` in [0, 1] (the weight of the original image), or
      ``(mask, mean)``.
    num_uniforms: how many uniforms ``fn`` needs (>= 0).
    **options: keyword options bound to ``fn`` (hashable values).

  Returns:
    A :class:`UniformMask`: ``(key, shape, lam) -> fn's output``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> def stripe(u, shape, lam):        # a vertical stripe of the partner
    ...   width = jnp.round((1 - lam) * shape[1])
    ...   left = jnp.floor(u[0] * (shape[1] - width + 1))
    ...   cols = jnp.arange(shape[1])
    ...   inside = (cols >= left) & (cols < left + width)
    ...   return jnp.broadcast_to(jnp.where(inside, 0.0, 1.0), shape)
    >>> mixer = msda_jax.mask_mixer(msda_jax.uniform_mask(stripe, num_uniforms=1),
    ...                             num_classes=10)
    >>> out = mixer(jax.random.key(0), jnp.zeros((4, 8, 8, 3)), jnp.arange(4))
    >>> out.labels.shape
    (4, 10)
  """
  if (isinstance(num_uniforms, bool) or not isinstance(num_uniforms, int)
      or num_uniforms < 0):
    raise ValueError(f"num_uniforms must be an int >= 0; got {num_uniforms!r}")
  if not callable(fn):
    raise ValueError(f"fn must be callable; got {fn!r}")
  return UniformMask(fn, num_uniforms, tuple(sorted(options.items())))


@dataclasses.dataclass(frozen=True, eq=False)
class MethodSampler:
  """Draws one sample's λ and mask: ``sampler(key, shape) -> Draw``.

  (A :class:`~msda_jax._types.Draw`: mask, mean, and the paste box or block
  moves of methods that have them.) With probability ``1 - prob`` the
  sample is left unmixed: a mask of ones.
  Compares equal by value (a ``functools.partial`` mask by its function and
  arguments; schedules by identity).

  ``alpha`` and ``prob`` may be schedules ``step -> value``; the sampler is
  then :attr:`scheduled` and must be called ``sampler(key, shape, step)``.
  A ``guided`` sampler's mask looks at one sample's guides: it is called
  ``sampler(key, shape, guide=g, partner_guide=pg)`` and calls
  ``mask_fn(key, shape, lam, g, pg)``; ``default_guide`` (None or
  ``images -> guide``, batched) is what a mixer uses when given no guide.
  """

  mask_fn: MaskFn
  alpha: Alpha = 1.0
  prob: Union[float, Schedule] = 1.0
  guided: bool = False
  default_guide: Optional[Callable] = None

  @property
  def scheduled(self) -> bool:
    """Whether α or ``prob`` is a schedule (calls then need a ``step``)."""
    return is_schedule(self.alpha) or is_schedule(self.prob)

  def __call__(self, key: jax.Array, shape, step=None, *, guide=None,
               partner_guide=None):
    shape = tuple(shape)
    if self.scheduled and step is None:
      raise ValueError(
          "this sampler has a scheduled alpha or prob: call it with step= "
          "(the training step, an int or a traced int array)")
    guides = ()
    if self.guided:
      if guide is None or partner_guide is None:
        raise ValueError(
            "this sampler's mask looks at guides: call it with guide= and "
            "partner_guide= (one sample's guide and its partner's)")
      guides = (guide, partner_guide)
    alpha = self.alpha
    if is_schedule(alpha):
      alpha = jnp.asarray(alpha(step), jnp.float32)
    fast = isinstance(self.mask_fn, UniformMask)
    n = self.mask_fn.num_uniforms if fast else 0
    u = jax.random.uniform(key, (2 + n + _extra_uniforms(self.alpha),),
                           jnp.float32)
    lam = draw_lam(u, alpha)
    if fast:
      out = self.mask_fn.from_uniforms(u[2:2 + n], shape, lam, *guides)
    else:
      out = self.mask_fn(mask_key(key), shape, lam, *guides)
    draw = Draw.of(out, shape, f"mask_fn {self.mask_fn!r}")
    if is_schedule(self.prob) or self.prob < 1.0:
      prob = (jnp.asarray(self.prob(step), jnp.float32)
              if is_schedule(self.prob) else self.prob)
      draw = unmixed_unless(u[1] < prob, draw, shape)
    return draw

  def _identity(self):
    return (_value_id(self.mask_fn), self.alpha, self.prob, self.guided,
            _value_id(self.default_guide))

  def __eq__(self, other):
    return (isinstance(other, MethodSampler)
            and self._identity() == other._identity())

  def __hash__(self):
    return hash(self._identity())


def unmixed_unless(mixed: jax.Array, draw: Draw, shape) -> Draw:
  """``draw`` where ``mixed``, else the draw of an unmixed sample: a mask of
  ones, mean 1, the identity paste box and no block moved."""
  where = lambda a, b: jax.tree.map(lambda x, y: jnp.where(mixed, x, y), a, b)
  paste, moves = draw.paste, draw.moves
  if paste is not None:
    paste = where(paste, PasteBox(jnp.zeros_like(paste.start),
                                  jnp.asarray(shape, jnp.int32)))
  if moves is not None:
    moves = where(moves, identity_moves(moves.own.shape))
  return Draw(jnp.where(mixed, draw.mask, 1.0), jnp.where(mixed, draw.mean, 1.0),
              paste, moves)


def method_name(method: str, alpha, prob, **options) -> str:
  """A built-in mixer's readable name: ``method(alpha=.., prob=.., opts)``.

  Options set to None are left out; a schedule is shown as ``schedule``.

  Example:
    >>> method_name("hmix", 1.0, 1.0, r=0.5)
    'hmix(alpha=1, prob=1, r=0.5)'
    >>> method_name("mixup", 0.2, lambda step: 1.0)
    'mixup(alpha=0.2, prob=schedule)'
  """
  alpha, prob = check_alpha(alpha), check_prob(prob)  # clear errors first
  if is_schedule(alpha):
    alpha = "schedule"
  elif isinstance(alpha, tuple):
    alpha = f"({alpha[0]:g}, {alpha[1]:g})"
  else:
    alpha = f"{alpha:g}"
  prob = "schedule" if is_schedule(prob) else f"{float(prob):g}"
  extra = "".join(f", {k}={v}" for k, v in options.items() if v is not None)
  return f"{method}(alpha={alpha}, prob={prob}{extra})"


def _default_name(mask_fn) -> str:
  fn = mask_fn.fn if isinstance(mask_fn, UniformMask) else mask_fn
  while isinstance(fn, functools.partial):
    fn = fn.func
  return getattr(fn, "__name__", type(fn).__name__)


def mask_mixer(mask_fn: MaskFn, *, alpha: Alpha = 1.0, mode: str = "elem",
               prob: float = 1.0, partner: str = "flip",
               label_smoothing: float = 0.0, num_classes=None,
               name: Optional[str] = None) -> Mixer:
  """Turns a one-sample mask generator into a :class:`~msda_jax.Mixer`.

  Every built-in method is made this way. The mixer draws λ, calls
  ``mask_fn(key, shape, lam)`` per sample (per pair, per batch: ``mode``),
  blends ``M x + (1 - M) x_partner`` and mixes the labels by the mask mean,
  so the label is exact for any mask. It works with every mode, ``prob``,
  :func:`~msda_jax.choice`, :func:`~msda_jax.shard_mixer` and configs
  (``from_config(cfg, methods={'name': factory})``). The key contract is in
  this module's docstring.

  Args:
    mask_fn: ``mask_fn(key, shape, lam)`` for one sample, ``shape`` the
      static spatial shape (e.g. ``(H, W)``), ``lam`` a traced float32;
      returns a float32 mask of ``shape`` in [0, 1], the weight of the
      original image; or ``(mask, mean)`` when the mean is known from the
      geometry (then the mask need not be reduced); or ``(mask, mean,
      PasteBox)`` to paste the partner resized into a box (ResizeMix).
      Options go in with ``functools.partial`` (mixers then compare equal
      by value) or :func:`uniform_mask`.
    alpha: λ ~ Beta(α, α) for α > 0, or ``(low, high)`` for λ ~ U(low, high),
      or a schedule ``step -> α`` (e.g. an optax schedule; values > 0).
    mode: 'elem' (one λ and mask per sample), 'pair' (per pair of partners)
      or 'batch' (one for the batch).
    prob: probability that a sample (pair, batch) is mixed at all, or a
      schedule ``step -> prob``. With a schedule the mixer is called
      ``mixer(key, images, labels, step=step)`` (no retrace across steps).
    partner: the pairing, 'flip' (i with B-1-i), 'roll' (i with i-1) or
      'permute' (keyed random pairing).
    label_smoothing: ε, applied to the targets before mixing.
    num_classes: K for integer labels (one per integer head for pytree
      labels: an int for all, or a matching dict / sequence).
    name: a readable name; default the mask function's name.

  Returns:
    A :class:`~msda_jax.Mixer`.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> def left_half(key, shape, lam):   # the partner takes the left half
    ...   del key, lam
    ...   return (jnp.arange(shape[1]) >= shape[1] // 2) * jnp.ones(shape)
    >>> mixer = msda_jax.mask_mixer(left_half, num_classes=2)
    >>> out = mixer(jax.random.key(0), jnp.zeros((2, 4, 4, 1)), jnp.array([0, 1]))
    >>> out.lam.tolist(), out.labels.tolist()
    ([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]])
  """
  if not callable(mask_fn):
    raise ValueError(f"mask_fn must be callable; got {mask_fn!r}")
  alpha = check_alpha(alpha)
  prob = check_prob(prob)
  off = not is_schedule(prob) and prob == 0.0  # A scheduled 0 still draws.
  sampler = None if off else MethodSampler(mask_fn, alpha, prob)
  if name is None:
    name = _default_name(mask_fn)
  return Mixer(sampler, mode=mode, partner=partner,
               label_smoothing=label_smoothing, num_classes=num_classes,
               name=name)


def guided_mask_mixer(mask_fn: Callable, *, default_guide: Optional[Callable] = None,
                      alpha: Alpha = 1.0, mode: str = "elem", prob: float = 1.0,
                      partner: str = "flip", label_smoothing: float = 0.0,
                      num_classes=None, name: Optional[str] = None) -> Mixer:
  """Turns a mask generator that looks at guides into a :class:`~msda_jax.Mixer`.

  A *guide* is per-sample data the mask may look at: a saliency map, the
  input gradient's magnitude, the image itself. The mixer is called
  ``mixer(key, images, labels, guide=guide)`` with ``guide`` a float array
  ``(B, *spatial')`` (the image's spatial rank, at image resolution or on a
  coarser grid; a trailing channel axis is allowed) or a pytree of them;
  each draw calls ``mask_fn(key, shape, lam, guide, partner_guide)`` with
  one sample's guide and its partner's (``jax.tree.map(lambda g: g[i])``
  of the batched guides). Which sample's view a draw sees: sample ``i`` in
  'elem' mode; the lower index of the pair in 'pair' mode (its partner's
  guide is ``partner_guide``; both members get that mask); sample 0 and its
  partner in 'batch' mode. Keys are as :func:`mask_mixer`'s (the mask gets
  ``fold_in(k, 1)`` of sample key ``k``; a :func:`uniform_mask` generator
  gets ``fn(u, shape, lam, guide, partner_guide, **options)``).

  Called with no guide, the mixer uses ``default_guide(images)`` (and
  ``default_guide(partner_images)`` in :meth:`Mixer.mix_with`), computed
  inside the trace; with neither it raises a ValueError naming ``guide``.
  A guided mixer works with every mode, ``prob``, schedules, label heads,
  :func:`~msda_jax.choice` (the methods that need no guide ignore it),
  :func:`~msda_jax.mix_maps` and :func:`~msda_jax.shard_mixer` (with
  ``across_devices=True`` the partner's guide travels on the ring with its
  shard).

  Args:
    mask_fn: ``mask_fn(key, shape, lam, guide, partner_guide)`` for one
      sample; returns what a :func:`mask_mixer` generator returns (a mask
      of ``shape`` in [0, 1], or ``(mask, mean)``).
    default_guide: None, or ``images -> guide`` for a whole batch
      (e.g. :func:`~msda_jax.spectral_residual_saliency`); compared by
      identity (a ``functools.partial`` by value), so pass the same function
      object to mixers that should share it in a ``choice``.
    alpha: as :func:`mask_mixer`.
    mode: as :func:`mask_mixer`.
    prob: as :func:`mask_mixer`.
    partner: as :func:`mask_mixer`.
    label_smoothing: as :func:`mask_mixer`.
    num_classes: as :func:`mask_mixer`.
    name: a readable name; default the mask function's name.

  Returns:
    A :class:`~msda_jax.Mixer` whose calls take ``guide=``.

  Example:
    >>> import jax, jax.numpy as jnp, msda_jax
    >>> def hide_partner_peak(key, shape, lam, guide, partner_guide):
    ...   del key, lam, guide       # the partner shows only at its peak pixel
    ...   peak = jnp.argmax(partner_guide.ravel())
    ...   return jnp.where(jnp.arange(partner_guide.size) == peak, 0.0,
    ...                    1.0).reshape(shape)
    >>> mixer = msda_jax.guided_mask_mixer(hide_partner_peak, num_classes=2)
    >>> guide = jnp.zeros((2, 4, 4)).at[:, 1, 2].set(1.0)
    >>> out = mixer(jax.random.key(0), jnp.zeros((2, 4, 4, 3)),
    ...             jnp.array([0, 1]), guide=guide)
    >>> out.mask[0, 1, 2].item(), out.lam.tolist()
    (0.0, [0.9375, 0.9375])
  """
  if not callable(mask_fn):
    raise ValueError(f"mask_fn must be callable; got {mask_fn!r}")
  if default_guide is not None and not callable(default_guide):
    raise ValueError(
        f"default_guide must be None or a function images -> guide; got "
        f"{default_guide!r}")
  alpha = check_alpha(alpha)
  prob = check_prob(prob)
  off = not is_schedule(prob) and prob == 0.0
  sampler = None if off else MethodSampler(
      mask_fn, alpha, prob, guided=True, default_guide=default_guide)
  if name is None:
    name = _default_name(mask_fn)
  return Mixer(sampler, mode=mode, partner=partner,
               label_smoothing=label_smoothing, num_classes=num_classes,
               name=name)
