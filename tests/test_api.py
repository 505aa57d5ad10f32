"""API rules, dm_pix style, over the whole of ``msda_jax.__all__``.

Randomness only through a ``key`` that comes first; every defaulted option
keyword-only; no ``**kwargs`` (a config cannot see through them, and typos
pass silently); a docstring with a runnable ``>>>`` example everywhere, with
``Args:`` for the mixer factories. Each rule lists every name that breaks
it, so one run shows all there is to fix.
"""

import importlib
import inspect
import pkgutil

import jax
import jax.numpy as jnp

import msda_jax
from msda_jax._config import BUILTIN_METHODS

MASK_FNS = ("mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask", "fmix_mask",
            "gridmix_mask", "smoothmix_mask", "resizemix_mask")

# Exceptions to "no **kwargs", each with its reason.
_VAR_KEYWORD_ALLOWED = {
    # Binds the options of the user's own mask function, whose names
    # msda_jax cannot know; they are stored sorted and compared by value.
    "uniform_mask",
}
# Exceptions to "every defaulted option is keyword-only": (function,
# parameter) -> reason. None today: choice's probs became keyword-only.
_POSITIONAL_DEFAULT_ALLOWED: dict[tuple[str, str], str] = {}


def _public_functions():
  return {name: getattr(msda_jax, name) for name in msda_jax.__all__
          if inspect.isfunction(getattr(msda_jax, name))}


def _public_classes():
  return {name: getattr(msda_jax, name) for name in msda_jax.__all__
          if isinstance(getattr(msda_jax, name), type)}


def _params(fn, drop_self=False):
  params = list(inspect.signature(fn).parameters.values())
  return params[1:] if drop_self else params


def test_all_lists_exactly_the_public_names():
  # Catches a public name missing from __all__ (or a stale entry).
  public = {n for n in dir(msda_jax) if not n.startswith("_")}
  modules = {n for n in public if inspect.ismodule(getattr(msda_jax, n))}
  assert set(msda_jax.__all__) == public - modules
  for name in msda_jax.__all__:
    assert getattr(msda_jax, name) is not None


def test_every_private_module_declares_all():
  # Catches a module that exports by accident (no explicit __all__).
  for info in pkgutil.iter_modules(msda_jax.__path__):
    module = importlib.import_module(f"msda_jax.{info.name}")
    assert isinstance(getattr(module, "__all__", None), list), info.name


def test_mask_generators_take_key_shape_lam_then_keyword_options():
  # Catches a mask generator whose options could be passed by position
  # (the engine calls mask_fn(key, shape, lam) and nothing more).
  for name in MASK_FNS:
    params = _params(getattr(msda_jax, name))
    assert [p.name for p in params[:3]] == ["key", "shape", "lam"], name
    for p in params[3:]:
      assert p.kind is p.KEYWORD_ONLY, (name, p.name)


def _random_callables():
  """Every public callable with a ``key`` parameter, and the callables the
  public API hands out (a mixer, its sampler, masks, per-device bodies)."""
  out = {}
  for name, fn in _public_functions().items():
    out[name] = _params(fn)
  for name, cls in _public_classes().items():
    call = cls.__dict__.get("__call__")
    if call is not None:
      out[f"{name}.__call__"] = _params(call, drop_self=True)
  mixer = msda_jax.mixup()
  handed_out = {
      "mixer": mixer, "mixer.sampler": mixer.sampler,
      "choice(...).sampler": msda_jax.choice([mixer, msda_jax.cutmix()]).sampler,
      "uniform_mask(...)": msda_jax.uniform_mask(lambda u, s, l: 1.0,
                                                 num_uniforms=0),
      "per_device(mixer)": msda_jax.per_device(mixer),
  }
  for name, fn in handed_out.items():
    out[name] = _params(fn)
  return out


def test_random_functions_take_key_first():
  # Catches a random function taking its key elsewhere (easy to pass the
  # images as the key), or a function named randomly that has no key.
  bad = []
  for name, params in _random_callables().items():
    names = [p.name for p in params]
    if "key" in names and names[0] != "key":
      bad.append(f"{name}{tuple(names)}")
  assert not bad, f"key must come first in: {bad}"
  # The known random ones are seen at all.
  seen = {n for n, ps in _random_callables().items() if ps and ps[0].name == "key"}
  assert {"sample_lam", "Mixer.__call__", "mixer", "mixer.sampler",
          "per_device(mixer)", "pair_weights", *MASK_FNS} <= seen


def test_defaulted_options_are_keyword_only():
  # Catches an option that can be passed by position: a call site that
  # reads f(x, 0.1) breaks silently when the parameters are reordered.
  bad = []
  for name, fn in _public_functions().items():
    for p in _params(fn):
      if (p.default is not p.empty and p.kind is not p.KEYWORD_ONLY
          and (name, p.name) not in _POSITIONAL_DEFAULT_ALLOWED):
        bad.append(f"{name}({p.name}={p.default!r})")
  assert not bad, f"defaulted options that are not keyword-only: {bad}"


def test_no_var_keyword_parameters():
  # Catches **kwargs: a typo'd option passes silently, and from_config
  # cannot read a factory's fields from its signature.
  bad = [name for name, fn in _public_functions().items()
         if any(p.kind is p.VAR_KEYWORD for p in _params(fn))
         and name not in _VAR_KEYWORD_ALLOWED]
  assert not bad, f"public functions with **kwargs: {bad}"


def test_factories_are_keyword_only_with_args_and_examples():
  # Catches a factory with positional options, **kwargs or **locals()
  # (hidden options), or without a documented, runnable example.
  bad = []
  for name, factory in BUILTIN_METHODS.items():
    params = _params(factory)
    if not all(p.kind is p.KEYWORD_ONLY for p in params):
      bad.append(f"{name}: not keyword-only")
    if "locals()" in inspect.getsource(factory):
      bad.append(f"{name}: uses locals()")
    doc = factory.__doc__ or ""
    if "Args:" not in doc or ">>>" not in doc:
      bad.append(f"{name}: docstring lacks Args: or a >>> example")
    for p in params:
      if f"{p.name}:" not in doc:
        bad.append(f"{name}: Args does not document {p.name}")
    if not isinstance(factory(), msda_jax.Mixer):
      bad.append(f"{name}: does not return a Mixer")
  assert not bad, bad
  assert {"mixup", "cutmix", "hmix", "gmix", "none"} <= set(BUILTIN_METHODS)


def test_public_functions_have_docstrings_with_examples():
  # Catches a public function without a runnable example (doctests run in
  # CI, so the example is also a test).
  bad = [name for name, fn in _public_functions().items()
         if not (fn.__doc__ and ">>>" in fn.__doc__)]
  assert not bad, f"no >>> example in: {bad}"


def test_the_key_is_the_only_randomness():
  # Catches a randomness path that ignores the key (same key, same
  # output; another key, another output).
  images = jnp.ones((4, 8, 8, 1)) * jnp.arange(4.0)[:, None, None, None]
  labels = jnp.arange(4)
  mixer = jax.jit(msda_jax.hmix(num_classes=4, partner="permute"))
  a = mixer(jax.random.key(0), images, labels)
  b = mixer(jax.random.key(0), images, labels)
  c = mixer(jax.random.key(1), images, labels)
  assert (a.images == b.images).all() and not (a.images == c.images).all()
