"""API rules, dm_pix style: key first, options keyword-only, explicit __all__."""

import importlib
import inspect
import pkgutil

import msda_jax

MASK_FNS = ("mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask")
FACTORIES = ("mixup", "cutmix", "hmix", "gmix", "none")


def test_all_lists_exactly_the_public_names():
  public = {n for n in dir(msda_jax) if not n.startswith("_")}
  modules = {n for n in public if inspect.ismodule(getattr(msda_jax, n))}
  assert set(msda_jax.__all__) == public - modules
  for name in msda_jax.__all__:
    assert getattr(msda_jax, name) is not None


def test_every_private_module_declares_all():
  for info in pkgutil.iter_modules(msda_jax.__path__):
    module = importlib.import_module(f"msda_jax.{info.name}")
    assert isinstance(getattr(module, "__all__", None), list), info.name


def test_mask_generators_take_key_shape_lam_then_keyword_options():
  for name in MASK_FNS:
    params = list(inspect.signature(getattr(msda_jax, name)).parameters.values())
    assert [p.name for p in params[:3]] == ["key", "shape", "lam"], name
    for p in params[3:]:
      assert p.kind is p.KEYWORD_ONLY, (name, p.name)


def test_factories_take_keyword_only_options():
  for name in FACTORIES:
    params = inspect.signature(getattr(msda_jax, name)).parameters.values()
    assert params and all(p.kind is p.KEYWORD_ONLY for p in params), name


def test_random_functions_take_key_first():
  mixer = msda_jax.mixup()
  sampler = mixer.sampler
  for fn in (mixer.__call__, sampler, msda_jax.sample_lam,
             msda_jax.per_device(mixer), *(getattr(msda_jax, n) for n in MASK_FNS)):
    first = next(iter(inspect.signature(fn).parameters))
    assert first == "key", fn


def test_public_functions_have_docstrings_with_examples():
  for name in msda_jax.__all__:
    obj = getattr(msda_jax, name)
    if callable(obj) and not isinstance(obj, type):
      assert obj.__doc__ and ">>>" in obj.__doc__, name
