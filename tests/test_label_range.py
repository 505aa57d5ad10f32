"""No silent wrong labels: out-of-range integer labels and NCHW-looking images."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import msda_jax
from msda_jax import _mixing

K = 4
KEY = jax.random.key(0)


def _images(shape=(6, 8, 8, 3)):
  # NumPy: an eager jax.random.uniform would compile a program per shape.
  return np.random.default_rng(1).uniform(size=shape).astype(np.float32)


# Compiled once per shape (eagerly every op compiles).
_soft_labels = jax.jit(_mixing.soft_labels, static_argnames=("num_classes", "label_smoothing"))


def _trace(mixer, shape, labels):
  """Calls ``mixer`` on abstract images of ``shape``: its input checks (and
  so its warnings) run as in an eager call, without compiling the mixing."""
  return jax.eval_shape(mixer, KEY, jax.ShapeDtypeStruct(shape, jnp.float32), labels)


def test_eager_out_of_range_labels_raise_naming_the_values():
  # Bug: jax.nn.one_hot's all-zero rows for 7 and -1 pass silently (the loss
  # then ignores those samples), or the message hides which values are bad.
  labels = jnp.array([0, 7, 1, -1, 7, 2])
  with pytest.raises(ValueError, match=r"outside \[0, 4\): \[7, -1\] "
                     r"\(num_classes=4\)"):
    msda_jax.cutmix(num_classes=K)(KEY, _images(), labels)


def test_the_error_names_the_head_of_pytree_labels():
  # Bug: with several heads the message does not say which one is wrong.
  mixer = msda_jax.mixup(num_classes={"a": K, "b": 2})
  labels = {"a": jnp.array([0, 1, 2, 3, 0, 1]), "b": jnp.array([0, 1, 2, 0, 1, 0])}
  with pytest.raises(ValueError, match=r"labels \['b'\] contain values "
                     r"outside \[0, 2\): \[2\]"):
    mixer(KEY, _images(), labels)


def test_jitted_out_of_range_labels_give_nan_rows_exactly_where_they_reach():
  # Bug: under jit a bad label yields zeros (silent) or NaN leaks into rows
  # that never saw it. A row is NaN iff it or its partner has a bad label:
  # λ y + (1 - λ) y_partner is NaN even where λ == 1 (0 * NaN).
  labels = jnp.array([0, 7, 1, -1, 3, 2])
  out = jax.jit(msda_jax.cutmix(num_classes=K))(KEY, _images(), labels)
  bad = ~((labels >= 0) & (labels < K))
  reached = np.asarray(bad | bad[out.partner_index])
  assert reached.any() and not reached.all()  # The key shows both kinds.
  got = np.asarray(out.labels)
  assert np.isnan(got[reached]).all()
  assert np.isfinite(got[~reached]).all()


def test_in_range_labels_are_unchanged():
  # Bug: the range guard alters valid targets (e.g. masks a class, or the
  # `where` picks the wrong branch) - compare with λ y + (1 - λ) y_partner.
  labels = jnp.array([0, 3, 1, 2, 3, 0])
  out = jax.jit(msda_jax.cutmix(num_classes=K, label_smoothing=0.1))(
      KEY, _images(), labels)
  y = (1 - 0.1) * np.eye(K)[np.asarray(labels)] + 0.1 / K
  lam = np.asarray(out.lam)[:, None]
  want = lam * y + (1 - lam) * y[np.asarray(out.partner_index)]
  np.testing.assert_allclose(out.labels, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(
      _soft_labels(labels, num_classes=K), np.eye(K)[np.asarray(labels)])


def test_soft_labels_turns_exactly_the_bad_rows_into_nan():
  # Bug: an off-by-one bound (K itself accepted, or 0 rejected).
  got = np.asarray(_soft_labels(jnp.array([0, K - 1, K, -1]), num_classes=K))
  assert np.isfinite(got[:2]).all() and np.isnan(got[2:]).all()


def test_checkify_float_checks_catch_bad_labels_under_jit():
  # Bug: the documented checkify recipe does not report anything.
  mixer = msda_jax.cutmix(num_classes=K)

  def loss(key, images, labels):
    out = mixer(key, images, labels)
    return optax.softmax_cross_entropy(jnp.zeros(out.labels.shape),
                                       out.labels).mean()

  checked = jax.jit(checkify.checkify(loss, errors=checkify.float_checks))
  err, _ = checked(KEY, _images(), jnp.array([0, 7, 1, 2, 3, 0]))
  assert err.get() is not None and "nan" in err.get()
  err, _ = checked(KEY, _images(), jnp.array([0, 3, 1, 2, 3, 0]))
  assert err.get() is None


@pytest.mark.parametrize("shape,order", [
    ((6, 3, 8, 8), "(0, 2, 3, 1)"),
    ((6, 1, 8, 8), "(0, 2, 3, 1)"),
    ((6, 4, 6, 8, 8), "(0, 2, 3, 4, 1)"),
])
def test_channels_first_images_warn_how_to_transpose(shape, order):
  # Bug: NCHW input is mixed silently along the wrong axes.
  labels = jnp.arange(6) % K
  with pytest.warns(UserWarning, match=r"images\.transpose" + re.escape(order)):
    _trace(msda_jax.mixup(num_classes=K), shape, labels)


@pytest.mark.parametrize("shape", [
    (6, 8, 8, 3), (6, 3, 32, 3), (6, 4, 4, 3), (6, 3, 8, 2), (6, 1, 32),
    (6, 8, 8, 8, 1),
])
def test_channels_last_images_do_not_warn(shape):
  # Bug: the heuristic fires on ordinary NHWC (small images, 3-wide rows,
  # (B, 1, F) sequences) and users learn to ignore it.
  labels = jnp.arange(6) % K
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    _trace(msda_jax.mixup(num_classes=K), shape, labels)
