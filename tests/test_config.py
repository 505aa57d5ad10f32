"""from_config: building mixers from ml_collections configs, and its errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import msda_jax


def _cfg(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      method="hmix", alpha=1.0, mode="elem", prob=1.0, partner="flip",
      label_smoothing=0.0, num_classes=10, r=0.5, minmax=None))
  cfg.update(overrides)
  return cfg


@pytest.mark.parametrize("method", ["mixup", "cutmix", "hmix", "gmix", "none"])
def test_every_method_builds_from_one_config(method):
  mixer = msda_jax.from_config(_cfg(method=method))
  assert isinstance(mixer, msda_jax.Mixer)
  assert mixer.name.startswith(method)
  assert mixer.num_classes == 10 and mixer.mode == "elem"


def test_config_equals_the_factory():
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


def test_plain_dict_and_choice():
  mixer = msda_jax.from_config(dict(
      method="choice", num_classes=3, mode="elem", label_smoothing=0.1,
      choices=[dict(method="cutmix", alpha=1.0), dict(method="mixup", alpha=0.8)],
      probs=[0.5, 0.5]))
  assert mixer.name.startswith("choice(")
  assert mixer.label_smoothing == 0.1 and mixer.num_classes == 3


@pytest.mark.parametrize("overrides, match", [
    (dict(method="fmixx"), r"method must be one of \['cutmix', 'gmix', 'hmix', 'mixup', 'none'"),
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
  with pytest.raises(ValueError, match=match):
    msda_jax.from_config(_cfg(**overrides))


def test_unknown_field_is_rejected():
  cfg = _cfg()
  cfg.alhpa = 0.2
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['alhpa'\]"):
    msda_jax.from_config(cfg)


def test_choice_errors_name_the_field():
  with pytest.raises(ValueError, match="choices"):
    msda_jax.from_config(dict(method="choice"))
  with pytest.raises(ValueError, match=r"choices\[1\].*alpha"):
    msda_jax.from_config(dict(method="choice", choices=[
        dict(method="mixup"), dict(method="cutmix", alpha=0.0)]))


def test_int_labels_without_num_classes_and_bad_shapes_are_clear_errors():
  mixer = msda_jax.from_config(_cfg(num_classes=None))
  images = jnp.zeros((4, 8, 8, 3))
  with pytest.raises(ValueError, match="integer labels need num_classes"):
    mixer(jax.random.key(0), images, jnp.arange(4))
  with pytest.raises(ValueError, match=r"rank 3 to 5"):
    mixer(jax.random.key(0), images[..., 0, 0], jnp.eye(4))
  with pytest.raises(ValueError, match="same batch size"):
    mixer(jax.random.key(0), images, jnp.eye(3))
