"""Building a mixer from a config (an ml_collections ``ConfigDict`` or a dict).

One source of truth: the fields a method accepts are its factory's
keyword-only parameters, read with ``inspect.signature``. There is no table
of fields to keep in step with the factories: a new option of a factory is a
config field at once, and so is every option of a user's method passed as
``from_config(cfg, methods={'name': factory})``.

The built-in methods are the mixer factories that ``msda_jax`` exports
(:data:`BUILTIN_METHODS`): a method exported there is a config method with
no edit here.
"""

import inspect
import typing
from collections.abc import Iterator
from typing import Any, Callable, Mapping, Optional

from msda_jax import _compose
from msda_jax._mixer import Mixer

__all__ = ["from_config", "config_fields", "BUILTIN_METHODS", "method_fields"]

Factory = Callable[..., Mixer]

# Fields of method='choice' itself (not of any factory).
_CHOICE_FIELDS = ("choices", "probs")
# Fields a choice's sub-configs inherit from the enclosing config.
_SHARED = ("mode", "partner", "label_smoothing", "num_classes")


def _returns_mixer(fn) -> bool:
  try:
    hints = typing.get_type_hints(fn)
  except Exception:  # pylint: disable=broad-except  (unresolvable hints)
    return False
  return hints.get("return") is Mixer


def _is_factory(obj) -> bool:
  """A mixer factory: a function of keyword-only options returning a Mixer."""
  if not inspect.isfunction(obj) or not _returns_mixer(obj):
    return False
  params = inspect.signature(obj).parameters.values()
  return all(p.kind is p.KEYWORD_ONLY for p in params)


class _ExportedFactories(Mapping):
  """The mixer factories ``msda_jax`` exports, by name; read at each use.

  Read lazily (``msda_jax`` imports this module while it is itself being
  imported), so a factory the package adds to ``__all__`` is a built-in
  method with no edit here.
  """

  def _table(self) -> dict:
    import msda_jax  # pylint: disable=g-import-not-at-top  (import cycle)
    table = {}
    for name in msda_jax.__all__:
      obj = getattr(msda_jax, name, None)
      if _is_factory(obj):
        table[name] = obj
    return table

  def __getitem__(self, name: str) -> Factory:
    return self._table()[name]

  def __iter__(self) -> Iterator[str]:
    return iter(self._table())

  def __len__(self) -> int:
    return len(self._table())

  def __repr__(self) -> str:
    return f"BUILTIN_METHODS({sorted(self._table())})"


# name -> factory for every built-in method: mixup, cutmix, hmix, gmix,
# none, and every other factory msda_jax exports.
BUILTIN_METHODS: Mapping[str, Factory] = _ExportedFactories()


def method_fields(factory: Callable, name: str = "factory") -> tuple:
  """The config fields of a method: its factory's keyword-only parameters.

  Args:
    factory: a mixer factory, ``factory(*, option=default, ...) -> Mixer``.
    name: the method's name, for error messages.

  Returns:
    The parameter names, in signature order.

  Raises:
    ValueError: ``factory`` is not callable, or takes ``*args``,
      ``**kwargs`` or positional parameters (a config passes options by
      name, so each must be a named keyword-only parameter).

  Example:
    >>> import msda_jax
    >>> def stripe(*, alpha=1.0, num_classes=None, width=2):
    ...   return msda_jax.mixup(alpha=alpha, num_classes=num_classes)
    >>> method_fields(stripe)
    ('alpha', 'num_classes', 'width')
    >>> 'r' in method_fields(msda_jax.hmix)
    True
  """
  if not callable(factory):
    raise ValueError(f"methods[{name!r}] must be a mixer factory (callable); "
                     f"got {factory!r}")
  try:
    signature = inspect.signature(factory)
  except (TypeError, ValueError):
    raise ValueError(
        f"methods[{name!r}]: cannot read the signature of {factory!r}; write "
        f"it as def f(*, alpha=..., mode=..., ...) -> Mixer") from None
  bad = [str(p) for p in signature.parameters.values()
         if p.kind is not p.KEYWORD_ONLY]
  if bad:
    raise ValueError(
        f"methods[{name!r}] must take only keyword-only options (a config "
        f"passes each option by its name), as in def {name}(*, alpha=1.0, "
        f"mode='elem', ...); got the parameters {bad} in {name}{signature}")
  return tuple(signature.parameters)


def _field_type(params) -> type:
  """The one type a config field holds: its defaults' type, else the first
  class its annotations name (``Optional[int]`` -> int), else str."""
  kinds = {type(p.default) for p in params
           if p.default is not p.empty and p.default is not None}
  if len(kinds) == 1:
    return kinds.pop()
  for p in params:
    for arg in typing.get_args(p.annotation) or (p.annotation,):
      origin = typing.get_origin(arg) or arg
      if isinstance(origin, type) and origin not in (type(None), p.empty):
        return origin
  return str


def config_fields(*, methods: Optional[Mapping[str, Factory]] = None
                  ) -> dict[str, tuple[Any, type]]:
  """Every field :func:`from_config` reads, with a default and a type.

  The union of the methods' options (their factories' keyword-only
  parameters), plus ``method``, ``choices`` and ``probs``. A field's
  default is the one every method that takes it shares; None where they
  differ (``alpha``: GridMix draws U(0.1, 0.9), the others Beta(1, 1)) or
  have none (``num_classes``), and :func:`from_config` skips a None field,
  so each method keeps its own default. The type is what the field holds
  (for a typed placeholder, e.g. ``ml_collections``' ``placeholder(int)``,
  so that ``--config.msda.num_classes=10`` can set it): the defaults'
  type, else the first class the annotation names.

  Args:
    methods: more methods, name -> factory, merged over the built-ins (as
      in :func:`from_config`).

  Returns:
    ``{field: (default or None, type)}``, ``method`` first, then the fields
    in the order the methods (sorted by name) first name them.

  Example:
    >>> fields = config_fields()
    >>> fields['decay_power'], fields['alpha'], fields['num_classes']
    ((3.0, <class 'float'>), (None, <class 'float'>), (None, <class 'int'>))
  """
  table = {**BUILTIN_METHODS, **(methods or {})}
  params: dict[str, list] = {}
  for name in sorted(table):
    method_fields(table[name], name)  # the same checks as from_config
    for p in inspect.signature(table[name]).parameters.values():
      params.setdefault(p.name, []).append(p)
  fields: dict[str, tuple[Any, type]] = {"method": ("none", str)}
  for name, ps in params.items():
    defaults = {repr(p.default) for p in ps}
    shared = ps[0].default if len(defaults) == 1 else None
    fields[name] = (None if shared is inspect.Parameter.empty else shared,
                    _field_type(ps))
  fields["choices"] = (None, tuple)
  fields["probs"] = (None, tuple)
  return fields


def _plain(value: Any) -> Any:
  """Config values as the factories take them: lists become tuples.

  ml_collections and JSON round trips give lists for tuples (``minmax``,
  ``alpha`` bounds, ``probs``); a mixer must be hashable, so lists become
  tuples, recursively (a per-head ``num_classes`` dict keeps its keys).
  """
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_plain(v) for v in value)
  return value


class _Builder:
  """Builds mixers from configs against one table of methods."""

  def __init__(self, methods: Mapping[str, Factory]):
    self.methods = dict(methods)
    self.fields = {name: method_fields(f, name)
                   for name, f in self.methods.items()}
    known = {"method", *_CHOICE_FIELDS}
    for fields in self.fields.values():
      known.update(fields)
    self.known = frozenset(known)

  def as_dict(self, cfg: Any, where: str) -> dict:
    if hasattr(cfg, "to_dict"):
      cfg = cfg.to_dict()
    if not isinstance(cfg, Mapping):
      raise ValueError(
          f"{where} must be a ConfigDict or a mapping; got {cfg!r}")
    unknown = sorted(str(k) for k in set(cfg) - self.known)
    if unknown:
      raise ValueError(
          f"{where}: unknown field(s) {unknown}; accepted fields are "
          f"{sorted(self.known)} (a field is accepted when some method's "
          f"factory takes it: {self._by_method()})")
    return dict(cfg)

  def _by_method(self) -> str:
    return "; ".join(f"{name}: {', '.join(fields) or '-'}"
                     for name, fields in sorted(self.fields.items()))

  def build(self, cfg: dict, where: str) -> Mixer:
    method = cfg.get("method")
    if method == "choice":
      return self._choice(cfg, where)
    if not isinstance(method, str) or method not in self.methods:
      raise ValueError(
          f"{where}.method must be one of {sorted(self.methods) + ['choice']}"
          f"; got {method!r}")
    factory, fields = self.methods[method], self.fields[method]
    kwargs = {k: _plain(cfg[k]) for k in fields if cfg.get(k) is not None}
    required = [name for name, p in
                inspect.signature(factory).parameters.items()
                if p.default is p.empty and name not in kwargs]
    if required:
      raise ValueError(
          f"{where} (method={method!r}): field(s) {required} are required by "
          f"{method} and are missing or None")
    try:
      mixer = factory(**kwargs)
    except ValueError as e:
      raise ValueError(f"{where} (method={method!r}): {e}") from None
    if not isinstance(mixer, Mixer):
      raise ValueError(
          f"{where} (method={method!r}): the factory returned {mixer!r}, not a "
          f"Mixer (build it with msda_jax.mask_mixer)")
    return mixer

  def _choice(self, cfg: dict, where: str) -> Mixer:
    choices = cfg.get("choices")
    if (not choices or isinstance(choices, (str, Mapping))
        or not hasattr(choices, "__iter__")):
      raise ValueError(
          f"{where}.choices must list the sub-configs to choose from when "
          f"method='choice' (e.g. [dict(method='cutmix'), dict(method="
          f"'mixup')]); got {choices!r}")
    shared = {k: cfg[k] for k in _SHARED if cfg.get(k) is not None}
    mixers = []
    for i, sub in enumerate(choices):
      here = f"{where}.choices[{i}]"
      mixers.append(self.build({**shared, **self.as_dict(sub, here)}, here))
    probs = cfg.get("probs")
    try:
      return _compose.choice(mixers, probs=None if probs is None
                             else _plain(probs))
    except ValueError as e:
      raise ValueError(f"{where}: {e}") from None


def from_config(cfg: Any, *,
                methods: Optional[Mapping[str, Factory]] = None) -> Mixer:
  """Builds and validates a mixer from a config.

  Fields: ``method`` (a name from :data:`BUILTIN_METHODS` -- 'mixup',
  'cutmix', 'hmix', 'gmix', 'none', and any other factory msda_jax exports
  -- a name from ``methods``, or 'choice') and the method's options: each
  method accepts exactly its factory's keyword-only parameters (``alpha``,
  ``mode``, ``prob``, ``partner``, ``label_smoothing``, ``num_classes``,
  ``r`` for hmix, ``minmax`` for cutmix, ...).

  - A field set to None takes the factory's default.
  - A field that another known method accepts but this one does not is
    ignored, so one config can switch methods by a single override.
  - A field that no known method accepts is an error naming the accepted
    fields; so are bad values (naming the field and the accepted values).
  - Lists become tuples (ml_collections and JSON turn tuples such as
    ``minmax`` or ``alpha`` bounds into lists).
  - ``method='choice'``: ``choices`` lists sub-configs (each with its own
    ``method``, ``alpha``, ...; the shared fields ``mode``, ``partner``,
    ``label_smoothing``, ``num_classes`` are inherited unless the sub-config
    sets them) and ``probs`` their weights (uniform if None).

  Args:
    cfg: an ``ml_collections.ConfigDict`` or a mapping.
    methods: more methods, name -> factory, merged over the built-ins (a
      user's method, e.g. ``dict(stripe=my_factory)`` where
      ``my_factory(*, alpha=1.0, ..., width=4)`` returns
      ``msda_jax.mask_mixer(...)``). Each factory takes keyword-only options
      only; they become config fields.

  Returns:
    A :class:`Mixer`.

  Raises:
    ValueError: an unknown method or field, a bad value, a required option
      missing, or a factory in ``methods`` that does not take keyword-only
      options.

  Example:
    >>> import functools, jax.numpy as jnp, msda_jax
    >>> mixer = msda_jax.from_config(dict(method='hmix', alpha=1.0, r=0.5,
    ...                                   minmax=None, num_classes=10))
    >>> mixer.name
    'hmix(alpha=1, prob=1, r=0.5)'
    >>> timm_like = msda_jax.from_config(dict(
    ...     method='choice', num_classes=1000, label_smoothing=0.1,
    ...     choices=[dict(method='cutmix', alpha=1.0),
    ...              dict(method='mixup', alpha=0.8)], probs=[0.5, 0.5]))
    >>> def stripe_mask(key, shape, lam, *, width):   # a user's method
    ...   del key, lam
    ...   return (jnp.arange(shape[-1]) >= width) * jnp.ones(shape)
    >>> def stripe(*, alpha=1.0, mode='elem', prob=1.0, partner='flip',
    ...            label_smoothing=0.0, num_classes=None, width=2):
    ...   return msda_jax.mask_mixer(
    ...       functools.partial(stripe_mask, width=width), alpha=alpha,
    ...       mode=mode, prob=prob, partner=partner,
    ...       label_smoothing=label_smoothing, num_classes=num_classes)
    >>> mixer = msda_jax.from_config(dict(method='stripe', width=3, r=0.5),
    ...                              methods=dict(stripe=stripe))
    >>> mixer == stripe(width=3)
    True
  """
  table = dict(BUILTIN_METHODS)
  if methods is not None:
    if not isinstance(methods, Mapping):
      raise ValueError(
          f"methods must be a mapping name -> factory; got {methods!r}")
    for name in methods:
      if not isinstance(name, str) or name == "choice":
        raise ValueError(
            f"methods: names must be strings other than 'choice'; got "
            f"{name!r}")
    table.update(methods)
  builder = _Builder(table)
  return builder.build(builder.as_dict(cfg, "msda config"), "msda config")
