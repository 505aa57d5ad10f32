"""Building a mixer from a config (an ml_collections ``ConfigDict`` or a dict)."""

from typing import Any, Callable, Mapping

from msda_jax import _compose
from msda_jax import _methods
from msda_jax._mixer import Mixer

__all__ = ["from_config", "METHODS"]

METHODS: Mapping[str, Callable[..., Mixer]] = {
    "mixup": _methods.mixup,
    "cutmix": _methods.cutmix,
    "hmix": _methods.hmix,
    "gmix": _methods.gmix,
    "none": _methods.none,
}
_SHARED = ("mode", "partner", "label_smoothing", "num_classes")
_PER_METHOD = {
    "mixup": ("alpha", "prob"),
    "cutmix": ("alpha", "prob", "minmax"),
    "hmix": ("alpha", "prob", "r"),
    "gmix": ("alpha", "prob"),
    "none": (),
}
_FIELDS = frozenset(
    ("method", "choices", "probs", "alpha", "prob", "r", "minmax") + _SHARED)


def _as_dict(cfg: Any, where: str) -> dict:
  if hasattr(cfg, "to_dict"):
    cfg = cfg.to_dict()
  if not isinstance(cfg, Mapping):
    raise ValueError(f"{where} must be a ConfigDict or a mapping; got {cfg!r}")
  unknown = sorted(set(cfg) - _FIELDS)
  if unknown:
    raise ValueError(
        f"{where}: unknown field(s) {unknown}; accepted fields are "
        f"{sorted(_FIELDS)}")
  return dict(cfg)


def _build(cfg: dict, where: str) -> Mixer:
  method = cfg.get("method")
  if method == "choice":
    choices = cfg.get("choices")
    if not choices:
      raise ValueError(
          f"{where}.choices must list the methods to choose from when "
          f"method='choice'; got {choices!r}")
    shared = {k: cfg[k] for k in _SHARED if cfg.get(k) is not None}
    mixers = []
    for i, sub in enumerate(choices):
      sub = _as_dict(sub, f"{where}.choices[{i}]")
      mixers.append(_build({**shared, **sub}, f"{where}.choices[{i}]"))
    try:
      return _compose.choice(mixers, cfg.get("probs"))
    except ValueError as e:
      raise ValueError(f"{where}: {e}") from None
  if method not in METHODS:
    raise ValueError(
        f"{where}.method must be one of {sorted(METHODS) + ['choice']}; got "
        f"{method!r}")
  fields = _SHARED + _PER_METHOD[method]
  kwargs = {k: cfg[k] for k in fields if cfg.get(k) is not None}
  try:
    return METHODS[method](**kwargs)
  except ValueError as e:
    raise ValueError(f"{where} (method={method!r}): {e}") from None


def from_config(cfg: Any) -> Mixer:
  """Builds and validates a mixer from a config.

  Fields: ``method`` ('mixup' | 'cutmix' | 'hmix' | 'gmix' | 'none' |
  'choice'), ``alpha``, ``mode``, ``prob``, ``partner``, ``label_smoothing``,
  ``num_classes``, ``r`` (hmix), ``minmax`` (cutmix). A field set to None
  takes the factory's default; a method-specific field is ignored by the
  other methods (so one config can switch methods by a single override). For
  ``method='choice'``, ``choices`` lists sub-configs (each with its own
  ``method``, ``alpha``, ...; the shared fields ``mode``, ``partner``,
  ``label_smoothing``, ``num_classes`` are inherited) and ``probs`` their
  weights. Unknown fields and bad values raise ``ValueError`` naming the
  field and the accepted values.

  Args:
    cfg: an ``ml_collections.ConfigDict`` or a mapping.

  Returns:
    A :class:`Mixer`.

  Example:
    >>> import msda_jax
    >>> mixer = msda_jax.from_config(dict(method='hmix', alpha=1.0, r=0.5,
    ...                                   num_classes=10))
    >>> mixer.name
    'hmix(alpha=1, prob=1, r=0.5)'
    >>> timm_like = msda_jax.from_config(dict(
    ...     method='choice', num_classes=1000, label_smoothing=0.1,
    ...     choices=[dict(method='cutmix', alpha=1.0),
    ...              dict(method='mixup', alpha=0.8)], probs=[0.5, 0.5]))
  """
  return _build(_as_dict(cfg, "msda config"), "msda config")
