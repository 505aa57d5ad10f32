"""Statistics over many keys: the label-weight bias of each method.

Figures from shared/docs/methods.md (32x32, λ ~ Beta(1, 1)). The paper's
pixel-pair weights (the spec's table) are checked in tests/test_pair_weights.py
through msda_jax.pair_weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax

N = 8192
SHAPE = (32, 32)
MASK_FNS = {
    "mixup": msda_jax.mixup_mask,
    "cutmix": msda_jax.cutmix_mask,
    "hmix": lambda k, s, l: msda_jax.hmix_mask(k, s, l, r=0.5),
    "gmix": msda_jax.gmix_mask,
}


def _draw(name):
  """N (sampled λ, mask) pairs with λ ~ U(0, 1) = Beta(1, 1)."""
  fn = MASK_FNS[name]

  def one(key):
    lam_key, mask_key = jax.random.split(key)
    lam = jax.random.uniform(lam_key)
    return lam, fn(mask_key, SHAPE, lam)

  lam, masks = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), N))
  return np.asarray(lam, np.float64), np.asarray(masks, np.float64)


@pytest.fixture(scope="module", params=sorted(MASK_FNS))
def draws(request):
  return request.param, _draw(request.param)


def test_label_weight_bias(draws):
  name, (lam, masks) = draws
  effective = masks.mean(axis=(1, 2))
  bias = np.mean(effective - lam)
  if name == "cutmix":
    # Clipped boxes make the corrected λ ~0.20 larger than the sampled one.
    assert 0.18 < bias < 0.22, bias
  elif name == "gmix":
    # The border truncates the blob: no mean bias, mean |shift| ≈ 0.08.
    assert abs(bias) < 0.01, bias
    assert 0.07 < np.mean(np.abs(effective - lam)) < 0.09
  else:
    # Mixup and HMix never shift the label.
    np.testing.assert_allclose(effective, lam, atol=1e-5)


def test_mixer_reports_the_corrected_lambda():
  # Through the mixer: mean label weight ≈ E[λ] + 0.20 for CutMix, E[λ] for HMix.
  images = jnp.zeros((N, *SHAPE, 1), jnp.uint8)
  labels = jnp.zeros((N,), jnp.int32)
  for factory, expected in ((msda_jax.cutmix, 0.70), (msda_jax.hmix, 0.50),
                            (msda_jax.mixup, 0.50)):
    out = jax.jit(factory(num_classes=2))(jax.random.key(1), images, labels)
    assert abs(float(out.lam.mean()) - expected) < 0.015, factory
