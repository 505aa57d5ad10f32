"""Multi-head labels: a pytree of heads, each mixed with the same λ and partner."""

import collections

import jax
import numpy as np
import pytest

import msda_jax

B = 16
NUM = dict(fine=10, coarse=3)  # 'attrs' is float: used as it is.


def _batch(batch=B, key=0):
  k = jax.random.split(jax.random.key(key), 4)
  images = jax.random.uniform(k[0], (batch, 8, 8, 3))
  labels = dict(fine=jax.random.randint(k[1], (batch,), 0, 10),
                coarse=jax.random.randint(k[2], (batch,), 0, 3),
                attrs=jax.random.uniform(k[3], (batch, 5)))
  return images, labels


def _targets(y, k, eps):
  """The expected (B, K) target of one head, smoothed with its own K."""
  y = np.asarray(y)
  t = np.eye(k)[y] if y.ndim == 1 else y.astype(np.float64)
  return (1 - eps) * t + eps / t.shape[-1]


def _expected(out, labels, num, eps=0.0):
  """lam * t + (1 - lam) * t[partner], head by head, from the output's draw."""
  lam = np.asarray(out.lam, np.float64)[:, None]
  partner = np.asarray(out.partner_index)
  return {h: lam * _targets(y, num.get(h), eps)
          + (1 - lam) * _targets(y, num.get(h), eps)[partner]
          for h, y in labels.items()}


def _assert_heads(out, labels, num, eps=0.0):
  want = _expected(out, labels, num, eps)
  assert set(out.labels) == set(want)
  for head in want:
    np.testing.assert_allclose(out.labels[head], want[head], atol=2e-6,
                               err_msg=head)


def test_dict_heads_share_lam_and_partner_with_the_single_head_draw():
  # Catches a head mixed with another λ or partner than the images (e.g.
  # only the first head mixed, or heads zipped with the wrong num_classes).
  images, labels = _batch()
  mixer = lambda num: msda_jax.cutmix(num_classes=num, partner="permute", prob=0.7)
  # Every mixer of this test in one jit (compiling is most of its time).
  nums = (dict(NUM, attrs=None), dict(NUM, attrs=5))
  out, alone, agains = jax.jit(lambda k, x, y: (
      mixer(NUM)(k, x, y), mixer(10)(k, x, y["fine"]),
      [mixer(num)(k, x, y) for num in nums]))(jax.random.key(3), images, labels)
  _assert_heads(out, labels, NUM)
  assert out.labels["fine"].shape == (B, 10)
  assert out.labels["coarse"].shape == (B, 3)
  assert out.labels["attrs"].shape == (B, 5)
  # The heads do not change the draw: images, λ and partners are those of
  # the same mixer on the 'fine' head alone.
  np.testing.assert_array_equal(out.images, alone.images)
  np.testing.assert_array_equal(out.lam, alone.lam)
  np.testing.assert_array_equal(out.partner_index, alone.partner_index)
  assert 0 < float(np.mean(np.asarray(out.lam) < 1)) < 1  # Some unmixed.
  # An explicit None (or K) for the float head changes nothing.
  for again in agains:
    for head in labels:
      np.testing.assert_array_equal(again.labels[head], out.labels[head])


def test_tuple_heads_with_a_sequence_of_num_classes():
  # Catches sequence entries matched to the wrong head.
  images, labels = _batch()
  heads = (labels["fine"], labels["coarse"], labels["attrs"])
  out = msda_jax.hmix(num_classes=[10, 3, None], partner="roll")(
      jax.random.key(1), images, heads)
  assert isinstance(out.labels, tuple) and len(out.labels) == 3
  want = _expected(out, dict(fine=heads[0], coarse=heads[1], attrs=heads[2]),
                   NUM)
  for got, head in zip(out.labels, ("fine", "coarse", "attrs")):
    np.testing.assert_allclose(got, want[head], atol=2e-6, err_msg=head)
  # A namedtuple of heads takes the sequence by position too.
  Heads = collections.namedtuple("Heads", "fine coarse")
  named = msda_jax.hmix(num_classes=(10, 3), partner="roll")(
      jax.random.key(1), images, Heads(heads[0], heads[1]))
  np.testing.assert_array_equal(named.labels.coarse, out.labels[1])


def test_int_num_classes_serves_every_integer_head_and_leaves_float_heads():
  # Catches an int imposed on float heads ((B, 5) attrs refused for K = 7)
  # or applied to one integer head only.
  images, labels = _batch()
  # fine in 0..6 (in range for K = 7), coarse in classes 4..6 of 7.
  labels = dict(labels, fine=labels["fine"] % 7, coarse=labels["coarse"] + 4)
  out = msda_jax.mixup(num_classes=7)(jax.random.key(0), images, labels)
  assert out.labels["fine"].shape == out.labels["coarse"].shape == (B, 7)
  np.testing.assert_allclose(out.labels["attrs"], _expected(
      out, dict(attrs=labels["attrs"]), {})["attrs"], atol=2e-6)
  # A single float array is still checked against K.
  with pytest.raises(ValueError, match="labels have 5 classes but num_classes=7"):
    msda_jax.mixup(num_classes=7)(jax.random.key(0), images, labels["attrs"])


def test_label_smoothing_is_applied_per_head_with_its_own_k():
  # Catches ε / K computed with one K for every head.
  images, labels = _batch()
  eps = 0.1
  mixer = msda_jax.gmix(num_classes=NUM, label_smoothing=eps, mode="pair")
  out = jax.jit(mixer)(jax.random.key(2), images, labels)
  _assert_heads(out, labels, NUM, eps)
  unmixed = msda_jax.none(num_classes=NUM, label_smoothing=eps)(
      jax.random.key(0), images, labels)
  np.testing.assert_allclose(unmixed.labels["coarse"],
                             _targets(labels["coarse"], 3, eps), atol=1e-6)
  np.testing.assert_allclose(unmixed.labels["attrs"],
                             _targets(labels["attrs"], None, eps), atol=1e-6)


def test_nested_heads_take_the_entry_of_their_top_level_head():
  # Catches nested heads crashing ("Too few leaves for PyTreeDef") or a
  # dict entry not applied to every leaf below its head.
  images, labels = _batch()
  nested = dict(fine=(labels["fine"], labels["fine"]), coarse=labels["coarse"])
  out = msda_jax.cutmix(num_classes=NUM)(jax.random.key(0), images, nested)
  want = _expected(out, dict(fine=labels["fine"], coarse=labels["coarse"]), NUM)
  for leaf in out.labels["fine"]:
    np.testing.assert_allclose(leaf, want["fine"], atol=2e-6)


@pytest.mark.parametrize("num, labels_of, match", [
    # A num_classes name that is no head.
    (dict(fin=10, coarse=3), lambda l: l,
     r"num_classes names head\(s\) \['fin'\].*heads \['attrs', 'coarse', 'fine'\]"),
    # An integer head with no entry.
    (dict(coarse=3), lambda l: l, r"integer labels \['fine'\] need num_classes"),
    # Batch sizes.
    (NUM, lambda l: dict(l, fine=l["fine"][:-1]),
     r"labels \['fine'\] and images must have the same batch size"),
    (NUM, lambda l: dict(l, attrs=l["attrs"][:-1]),
     r"labels \['attrs'\] and images must have the same batch size"),
    # Shapes and widths.
    (NUM, lambda l: dict(l, fine=l["fine"][:, None]),
     r"integer labels \['fine'\] must have shape \(B,\)"),
    (dict(NUM, attrs=4), lambda l: l,
     r"labels \['attrs'\] have 5 classes but num_classes=4"),
    # Counts and kinds.
    ((10, 3), lambda l: (l["fine"], l["coarse"], l["attrs"]),
     r"num_classes has 2 entries \[10, 3\] but labels have 3 heads"),
    ((10, 3, None), lambda l: l, "labels must be a tuple or list of heads"),
    (NUM, lambda l: (l["fine"], l["coarse"]), "labels must be a dict of heads"),
    ((10, 3), lambda l: [l["fine"], l["coarse"][:, None] > 0],
     r"labels \[1\] must be int \(B,\) or float \(B, K\)"),
])
def test_mismatched_heads_are_errors_naming_the_head(num, labels_of, match):
  # Catches a mismatch accepted (a silently wrong target) or an error that
  # does not say which head.
  images, labels = _batch()
  with pytest.raises(ValueError, match=match):
    msda_jax.mixup(num_classes=num)(jax.random.key(0), images, labels_of(labels))


def test_heads_under_jit_equal_eager():
  # Catches per-head handling that depends on concrete values (breaks or
  # differs under jit).
  images, labels = _batch()
  mixer = msda_jax.hmix(num_classes=NUM, partner="permute", label_smoothing=0.1)
  eager = mixer(jax.random.key(4), images, labels)
  jitted = jax.jit(mixer)(jax.random.key(4), images, labels)
  _assert_heads(jitted, labels, NUM, 0.1)
  for head in labels:
    np.testing.assert_allclose(jitted.labels[head], eager.labels[head],
                               atol=1e-6)


def test_heads_under_shard_mixer_on_8_devices():
  # Catches a head not sharded like the images (a spec for one array only)
  # or mixed with a local partner index instead of the global one.
  assert jax.device_count() == 8
  images, labels = _batch()
  mesh = msda_jax.data_mesh()
  mix = jax.jit(msda_jax.shard_mixer(
      msda_jax.cutmix(num_classes=NUM, partner="roll"), mesh))
  out = mix(jax.random.key(0), images, labels)
  _assert_heads(out, labels, NUM)
  shard = np.arange(B) // (B // 8)
  assert (shard[np.asarray(out.partner_index)] == shard).all()  # No crossing.
  assert (np.asarray(out.partner_index) != np.arange(B)).all()


def test_heads_inside_choice():
  # Catches choice dropping the per-head num_classes (or refusing equal
  # dicts given in another order).
  images, labels = _batch()
  mixer = msda_jax.choice([msda_jax.cutmix(num_classes=dict(coarse=3, fine=10)),
                           msda_jax.mixup(alpha=0.4, num_classes=NUM)],
                          probs=[0.5, 0.5])
  out = jax.jit(mixer)(jax.random.key(0), images, labels)
  _assert_heads(out, labels, NUM)
