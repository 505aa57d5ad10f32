"""The λ-weighted mixed accuracy of train/steps.py, alone and in a short run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import msda_jax

from configs import quickstart
from train import metric_writers
from train import steps
from train import train


def _expected(predicted, labels, lam, partner_index):
  predicted, labels = np.asarray(predicted), np.asarray(labels)
  lam = np.asarray(lam, np.float64)
  partner = labels[np.asarray(partner_index)]
  return np.mean(lam * (predicted == labels)
                 + (1 - lam) * (predicted == partner))


def test_a_hand_made_batch_gives_the_exact_value():
  # Bug: weights swapped (λ on the partner), the partner label read at the
  # sample's own index, or plain accuracy returned.
  logits = jnp.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
  labels = jnp.array([0, 2, 1, 1])
  lam = jnp.array([0.75, 0.6, 0.5, 1.0])
  partner = jnp.array([1, 2, 1, 3])  # Sample 3 is unmixed (its own partner).
  # Predictions 0, 1, 2, 0; partner labels 2, 1, 2, 1:
  # 0.75*1 + 0.25*0 | 0.6*0 + 0.4*1 | 0.5*0 + 0.5*1 | 1*0 -> mean 1.65 / 4.
  got = steps.mixed_accuracy(jnp.argmax(logits, -1), labels, lam, partner)
  assert float(got) == pytest.approx(0.4125, abs=1e-7)


def test_pmap_gathers_partners_from_other_devices():
  # Bug: a global partner index used as a local one (wrong labels, or
  # out-of-range reads clamped by XLA) when partners sit on other devices.
  devices, local = 4, 3
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 5, devices * local).astype(np.int32)
  predicted = rng.integers(0, 5, devices * local).astype(np.int32)
  lam = rng.uniform(size=devices * local).astype(np.float32)
  partner = rng.permutation(devices * local).astype(np.int32)
  split = lambda x: x.reshape(devices, local)
  per_device = jax.pmap(
      lambda p, y, l, i: steps.mixed_accuracy(p, y, l, i, axis_name='data'),
      axis_name='data', devices=jax.devices()[:devices])(
          split(predicted), split(labels), split(lam), split(partner))
  np.testing.assert_allclose(
      np.mean(np.asarray(per_device)),
      _expected(predicted, labels, lam, partner), rtol=1e-6)


def _config(**overrides):
  config = quickstart.get_config('smoke')
  config.data.update(dict(name='synthetic', image_size=8, channels=3,
                          num_classes=4, train_size=64, test_size=16,
                          mean=(128.0,) * 3, std=(64.0,) * 3))
  config.model.width = 8
  config.batch_size = 16
  config.eval_batch_size = 16
  config.progress_bar = False
  config.total_steps = 2
  config.log_every_steps = 1
  config.update_from_flattened_dict(overrides)
  return config


@pytest.mark.parametrize('parallelism,method', [
    ('jit', 'cutmix'), ('pmap', 'cutmix'), ('jit', 'none')])
def test_the_metric_is_logged_beside_the_dominant_label_accuracy(
    tmp_path, parallelism, method):
  # Bug: the metric is computed but not reported, breaks one parallel mode,
  # or (method 'none': λ = 1, own partner) differs from plain accuracy.
  config = _config(parallelism=parallelism)
  config.msda.method = method
  train.train_and_evaluate(config, str(tmp_path))
  records = [r for r in metric_writers.read_metrics(str(tmp_path))
             if 'train_loss' in r]
  assert records
  for r in records:
    assert 0 <= r['train_mixed_accuracy'] <= 1
    if method == 'none':
      assert r['train_mixed_accuracy'] == pytest.approx(r['train_accuracy'],
                                                        abs=1e-6)


@pytest.mark.parametrize('parallelism,wrapper', [
    ('jit', 'shard_mixer'), ('pmap', 'per_device')])
def test_config_across_devices_reaches_the_mixer(tmp_path, monkeypatch,
                                                 parallelism, wrapper):
  # Bug: mix_across_devices set in the config but dropped on the way to the
  # step.
  seen = []
  original = getattr(msda_jax, wrapper)

  def spy(*args, **kwargs):
    seen.append(kwargs.get('across_devices'))
    return original(*args, **kwargs)

  monkeypatch.setattr(msda_jax, wrapper, spy)
  config = _config(parallelism=parallelism)
  config.msda.method = 'cutmix'
  config.mix_across_devices = True
  train.train_and_evaluate(config, str(tmp_path))
  assert seen == [True]
  records = [r for r in metric_writers.read_metrics(str(tmp_path))
             if 'train_loss' in r]
  assert records and all(np.isfinite(r['train_loss']) for r in records)
