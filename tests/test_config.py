"""from_config: building mixers from ml_collections configs, and its errors.

Each method's fields are its factory's keyword-only parameters (no table);
the built-in methods are the factories msda_jax exports.
"""

import functools
import inspect
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import msda_jax
from msda_jax._config import BUILTIN_METHODS, method_fields

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      method="hmix", alpha=1.0, mode="elem", prob=1.0, partner="flip",
      label_smoothing=0.0, num_classes=10, r=0.5, minmax=None))
  cfg.update(overrides)
  return cfg


def _stripe_mask(key, shape, lam, *, width, cols=()):
  del key, lam
  keep = jnp.arange(shape[-1]) >= width
  for c in cols:
    keep = keep & (jnp.arange(shape[-1]) != c)
  return keep * jnp.ones(shape)


def stripe(*, alpha=1.0, mode="elem", prob=1.0, partner="flip",
           label_smoothing=0.0, num_classes=None, width=2, cols=()):
  """A user's method, written as the docs say: a factory over mask_mixer."""
  return msda_jax.mask_mixer(
      functools.partial(_stripe_mask, width=width, cols=cols), alpha=alpha,
      mode=mode, prob=prob, partner=partner, label_smoothing=label_smoothing,
      num_classes=num_classes, name=f"stripe({width})")


def test_builtin_methods_are_exactly_the_exported_factories():
  # Catches a method that msda_jax exports but configs cannot name (the
  # table built by hand, or a factory the discovery misses), and a
  # non-factory export (e.g. data_mesh) taken for a method.
  factories = set()
  for name in msda_jax.__all__:
    obj = getattr(msda_jax, name)
    if not inspect.isfunction(obj):
      continue
    params = inspect.signature(obj).parameters.values()
    if all(p.kind is p.KEYWORD_ONLY for p in params):
      if isinstance(obj(), msda_jax.Mixer):
        factories.add(name)
  assert {"mixup", "cutmix", "hmix", "gmix", "none"} <= factories
  assert set(BUILTIN_METHODS) == factories
  for name in factories:
    assert BUILTIN_METHODS[name] is getattr(msda_jax, name)


@pytest.mark.parametrize("method", sorted(BUILTIN_METHODS))
def test_every_method_builds_from_one_config_and_equals_its_factory(method):
  # Catches a field of another method passed to this factory (TypeError),
  # a field of this method dropped, or None not meaning "the default".
  factory = BUILTIN_METHODS[method]
  fields = method_fields(factory, method)
  assert fields == tuple(inspect.signature(factory).parameters)
  cfg = _cfg(method=method, label_smoothing=0.1, num_classes=10,
             partner="roll")
  mixer = msda_jax.from_config(cfg)
  # The factory gets exactly its own fields that are not None.
  assert mixer == factory(**{k: v for k, v in cfg.items()
                             if k in fields and v is not None})
  assert mixer.name.startswith(method)
  assert mixer.num_classes == 10 and mixer.label_smoothing == 0.1
  # Every field None: the factory's defaults exactly.
  nones = {k: None for k in fields}
  assert msda_jax.from_config(dict(method=method, **nones)) == factory()


def test_config_mixes_exactly_as_the_factory():
  # Catches a field read under the wrong name or not at all (the mixed
  # images would differ from the factory's).
  images = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3))
  labels = jnp.arange(4)
  cfg = _cfg(method="hmix", alpha=0.4, r=0.3, mode="pair", prob=0.8,
             partner="permute", label_smoothing=0.1)
  a = jax.jit(msda_jax.from_config(cfg))(jax.random.key(1), images, labels)
  b = jax.jit(msda_jax.hmix(alpha=0.4, r=0.3, mode="pair", prob=0.8,
                            partner="permute", label_smoothing=0.1,
                            num_classes=10))(jax.random.key(1), images, labels)
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)


def test_a_field_of_another_method_is_ignored_even_if_invalid_for_it():
  # Catches fields checked against the wrong method: r=1.5 is hmix's error,
  # not cutmix's; minmax is cutmix's, not hmix's.
  assert msda_jax.from_config(_cfg(method="cutmix", r=1.5)) == msda_jax.cutmix(
      num_classes=10)
  assert msda_jax.from_config(
      _cfg(method="hmix", minmax=(0.2, 0.8))) == msda_jax.hmix(num_classes=10)
  with pytest.raises(ValueError, match=r"method='hmix'.*r must be in \[0, 1\]"):
    msda_jax.from_config(_cfg(method="hmix", r=1.5))


def test_user_method_fields_come_from_its_signature():
  # Catches fields read from a hand-kept table: 'width' and 'cols' are in
  # no table, only in the user's factory signature.
  methods = dict(stripe=stripe)
  mixer = msda_jax.from_config(_cfg(method="stripe", width=3), methods=methods)
  assert mixer == stripe(width=3, num_classes=10)
  assert mixer != stripe(width=2, num_classes=10)
  out = mixer(jax.random.key(0), jnp.ones((2, 4, 8, 1)), jnp.array([0, 1]))
  np.testing.assert_allclose(out.lam, [5 / 8, 5 / 8])
  # The user's field is ignored by the built-ins once it is known...
  cfg = _cfg(method="hmix", width=3)
  assert msda_jax.from_config(cfg, methods=methods) == msda_jax.hmix(
      num_classes=10)
  # ...and unknown without the user's method, named with the accepted ones.
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['width'\]; "
                     r"accepted fields are \[.*'minmax'.*'r'"):
    msda_jax.from_config(cfg)
  # A user's name may replace a built-in.
  assert msda_jax.from_config(dict(method="hmix", width=1), methods=dict(
      hmix=stripe)) == stripe(width=1)


def test_lists_become_tuples_so_the_mixer_is_hashable_and_equal():
  # Catches list-valued options (ml_collections / JSON give lists for
  # tuples) reaching a factory: the user's partial would not hash, so the
  # mixer would compare by identity and recompile under jit.
  cfg = dict(method="stripe", cols=[0, 1], num_classes=4)
  mixer = msda_jax.from_config(cfg, methods=dict(stripe=stripe))
  assert mixer == stripe(cols=(0, 1), num_classes=4)
  hash(mixer)
  cut = msda_jax.from_config(dict(method="cutmix", minmax=[0.2, 0.8],
                                  alpha=[0.1, 0.9]))
  assert cut == msda_jax.cutmix(minmax=(0.2, 0.8), alpha=(0.1, 0.9))
  heads = msda_jax.from_config(dict(method="mixup", num_classes=[10, 2]))
  assert heads == msda_jax.mixup(num_classes=(10, 2))


def test_bad_factories_and_missing_required_options_are_clear_errors():
  # Catches a **kwargs factory accepted with no known fields (every option
  # silently "unknown"), and a required option surfacing as a TypeError.
  for bad in (lambda **kw: msda_jax.hmix(**kw),
              lambda alpha=1.0: msda_jax.hmix(alpha=alpha), "hmix"):
    with pytest.raises(ValueError, match=r"methods\['x'\]"):
      msda_jax.from_config(dict(method="x"), methods=dict(x=bad))

  def needs_width(*, width, num_classes=None):
    return stripe(width=width, num_classes=num_classes)
  with pytest.raises(ValueError, match=r"\['width'\] are required"):
    msda_jax.from_config(dict(method="w", width=None), methods=dict(w=needs_width))
  with pytest.raises(ValueError, match="not a Mixer"):
    msda_jax.from_config(dict(method="w"), methods=dict(w=lambda *, a=1: a))
  with pytest.raises(ValueError, match="other than 'choice'"):
    msda_jax.from_config(dict(method="mixup"), methods=dict(choice=stripe))


@pytest.mark.parametrize("overrides, match", [
    (dict(alpha=0.0), "alpha must be a finite float > 0"),
    (dict(alpha=-2.0), "alpha"),
    (dict(r=1.5), r"r must be in \[0, 1\]"),
    (dict(r=-0.1), r"r must be in \[0, 1\]"),
    (dict(prob=1.2), r"prob must be in \[0, 1\]"),
    (dict(prob=-0.1), r"prob must be in \[0, 1\]"),
    (dict(mode="sample"), "mode must be one of"),
    (dict(partner="shuffle"), "partner must be one of"),
])
def test_bad_fields_name_the_field_and_the_accepted_values(overrides, match):
  # Catches a bad value accepted (a silently wrong run) or an error that
  # does not say which field.
  with pytest.raises(ValueError, match=match):
    msda_jax.from_config(_cfg(**overrides))


def test_unknown_method_lists_every_method():
  # Catches the accepted list missing an exported factory, or 'choice'.
  with pytest.raises(ValueError, match="method must be one of") as error:
    msda_jax.from_config(_cfg(method="fmixx"))
  for name in [*BUILTIN_METHODS, "choice"]:
    assert repr(name) in str(error.value)
  assert "'fmixx'" in str(error.value)


def test_unknown_field_is_rejected():
  # Catches a typo'd field silently ignored (the run uses the default).
  cfg = _cfg()
  cfg.alhpa = 0.2
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['alhpa'\]"):
    msda_jax.from_config(cfg)


def test_choice_inherits_the_shared_fields_and_equals_choice():
  # Catches shared fields not passed down (choice() would refuse the
  # mismatched num_classes) or a sub-config unable to override them.
  mixer = msda_jax.from_config(dict(
      method="choice", num_classes=3, mode="pair", label_smoothing=0.1,
      r=0.3, choices=[dict(method="cutmix", alpha=1.0),
                      dict(method="hmix", alpha=0.8)], probs=[0.25, 0.75]))
  kw = dict(num_classes=3, mode="pair", label_smoothing=0.1)
  assert mixer == msda_jax.choice(
      [msda_jax.cutmix(alpha=1.0, **kw), msda_jax.hmix(alpha=0.8, **kw)],
      probs=(0.25, 0.75))  # The top-level r is not inherited.
  assert mixer.name.startswith("choice(")
  sub = msda_jax.from_config(dict(
      method="choice", partner="roll",
      choices=[dict(method="mixup"), dict(method="gmix")]))
  assert sub == msda_jax.choice([msda_jax.mixup(partner="roll"),
                                 msda_jax.gmix(partner="roll")])


def test_choice_errors_name_the_field():
  # Catches a choice error that does not say which sub-config is wrong.
  with pytest.raises(ValueError, match="choices must list"):
    msda_jax.from_config(dict(method="choice"))
  with pytest.raises(ValueError, match=r"choices\[1\].*alpha"):
    msda_jax.from_config(dict(method="choice", choices=[
        dict(method="mixup"), dict(method="cutmix", alpha=0.0)]))
  with pytest.raises(ValueError, match=r"choices\[0\]: unknown field\(s\) \['rr'\]"):
    msda_jax.from_config(dict(method="choice", choices=[dict(method="hmix",
                                                             rr=0.5)]))
  with pytest.raises(ValueError, match="probs must sum to 1"):
    msda_jax.from_config(dict(method="choice", probs=[0.5, 0.6], choices=[
        dict(method="mixup"), dict(method="cutmix")]))


def test_int_labels_without_num_classes_and_bad_shapes_are_clear_errors():
  # Catches a config without num_classes failing deep inside XLA.
  mixer = msda_jax.from_config(_cfg(num_classes=None))
  images = jnp.zeros((4, 8, 8, 3))
  with pytest.raises(ValueError, match="integer labels need num_classes"):
    mixer(jax.random.key(0), images, jnp.arange(4))
  with pytest.raises(ValueError, match=r"rank 3 to 5"):
    mixer(jax.random.key(0), images[..., 0, 0], jnp.eye(4))
  with pytest.raises(ValueError, match="same batch size"):
    mixer(jax.random.key(0), images, jnp.eye(3))


_CONFIGS = ["quickstart.py", "cifar10.py", "cifar100.py",
            "imagenet_resnet50.py", "study.py:smoke"]
@pytest.mark.parametrize("name", _CONFIGS)
def test_config_files_have_every_method_option_and_none_fields_take_overrides(
    name):
  # Catches a config whose msda block lacks an option of some method (the
  # reported `--config.msda.method=fmix --config.msda.decay_power=2`
  # AttributeError), and None fields that --config.msda.X=... cannot set (a
  # plain None is not overridable from the command line; a typed placeholder
  # is).
  path, _, arg = name.partition(":")
  prefix = "config.base.msda" if path == "study.py" else "config.msda"

  def parse(*overrides):
    argv = ["prog", f"--config={os.path.join(_REPO, 'configs', path)}"
                    + (f":{arg}" if arg else ""),
            *[f"--{prefix}.{o}" for o in overrides]]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values,
                                    sys_argv=argv)
    values(argv)
    return values.config.base.msda if path == "study.py" else (
        values.config.msda)

  msda = parse("method=cutmix", "num_classes=7", "minmax=(0.2, 0.8)")
  assert set(msda_jax.config_fields()) <= set(msda.keys())
  assert msda.num_classes == 7 and msda.minmax == (0.2, 0.8)
  assert msda_jax.from_config(msda) == msda_jax.cutmix(
      num_classes=7, minmax=(0.2, 0.8))
  msda = parse("method=fmix", "decay_power=2", "block_num=4")
  assert msda_jax.from_config(dict(msda, num_classes=3)) == msda_jax.fmix(
      num_classes=3, decay_power=2.0)
  # Every method builds from the same block, with its own defaults.
  for method in [*msda_jax._config.BUILTIN_METHODS, "choice"]:
    built = msda_jax.from_config(dict(msda.to_dict(), method=method,
                                      num_classes=3, decay_power=3.0,
                                      block_num=None))
    if method != "choice":
      assert built == getattr(msda_jax, method)(num_classes=3), method


def test_config_fields_share_defaults_and_leave_differing_ones_to_the_method():
  # Catches: a shared default that is not every method's (alpha: GridMix's
  # U(0.1, 0.9) vs Beta(1, 1)) forced on all of them, a placeholder type
  # that the flag parser cannot fill (num_classes), a user method's option
  # missing.
  def stripe(*, alpha: float = 1.0, num_classes=None, width: int = 2):
    return msda_jax.mixup(alpha=alpha, num_classes=num_classes)

  fields = msda_jax.config_fields(methods=dict(stripe=stripe))
  assert list(fields)[0] == "method"
  assert fields["alpha"] == (None, float)
  assert fields["num_classes"] == (None, int)
  assert fields["minmax"] == (None, tuple)
  assert fields["decay_power"] == (3.0, float)
  assert fields["transport"] == (True, bool)
  assert fields["width"] == (2, int)
  with pytest.raises(ValueError, match="keyword-only"):
    msda_jax.config_fields(methods=dict(bad=lambda alpha=1.0: None))


def test_training_fills_num_classes_from_the_dataset_and_checks_a_given_one():
  # Catches an explicit msda.num_classes that disagrees with the dataset
  # (labels >= K would be one-hot to zeros, silently) and None not filled in.
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from train import train  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  assert train.msda_config(config, 10)["num_classes"] == 10
  config.msda.num_classes = 10
  assert train.msda_config(config, 10)["num_classes"] == 10
  config.msda.num_classes = 7
  with pytest.raises(ValueError, match=r"msda.num_classes=7 but the dataset "
                     r"has 10 classes"):
    train.msda_config(config, 10)
