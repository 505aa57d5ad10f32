"""End-to-end tests of train/train.py on 8 fake CPU devices (conftest.py)."""

import json
import os

import jax
import ml_collections
import msda_jax
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

import launch
from configs import cifar10
from configs import cifar100
from configs import imagenet_resnet50
from configs import quickstart
from train import checkpoint
from train import metric_writers
from train import train


def _synthetic_config(**overrides) -> ml_collections.ConfigDict:
  """Quickstart smoke settings on 8x8 RGB class-pattern images, 4 classes."""
  config = quickstart.get_config('smoke')
  config.data.update(dict(name='synthetic', image_size=8, channels=3,
                          num_classes=4, train_size=64, test_size=40,
                          mean=(128.0,) * 3, std=(64.0,) * 3))
  config.model.width = 8
  config.batch_size = 16
  config.eval_batch_size = 16
  config.progress_bar = False
  config.update_from_flattened_dict(overrides)
  return config


def test_synthetic_run_on_8_devices_learns_and_writes_its_outputs(tmp_path):
  assert jax.device_count() == 8
  workdir = str(tmp_path)
  config = _synthetic_config(total_steps=40, learning_rate=0.05,
                             log_every_steps=10, checkpoint_every_steps=20)
  result = train.train_and_evaluate(config, workdir)
  assert result['step'] == 40
  assert result['test_accuracy'] > 0.75  # Chance is 0.25.
  records = metric_writers.read_metrics(workdir)
  train_records = [r for r in records if 'train_loss' in r]
  assert [r['step'] for r in train_records] == [10, 20, 30, 40]
  assert train_records[-1]['train_loss'] < train_records[0]['train_loss']
  assert all(0 <= r['train_accuracy'] <= 1 and r['images_per_second'] > 0
             for r in train_records)
  rates = [r['learning_rate'] for r in train_records]
  assert rates == sorted(rates, reverse=True) and rates[0] <= 0.05
  test_records = [r for r in records if 'test_accuracy' in r]
  assert test_records[-1]['step'] == 40
  assert test_records[-1]['test_accuracy'] == result['test_accuracy']
  assert any(f.startswith('events.out.tfevents')
             for f in os.listdir(os.path.join(workdir, 'tensorboard')))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['20',
                                                                      '40']
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['msda']['method'] == 'hmix'


def _run_smoke_config_on_mocked_tfds(module, num_examples, workdir):
  """Trains ``module``'s smoke config on mocked TFDS data; checks 2 steps."""
  config = module.get_config('smoke')
  config.progress_bar = False
  with tfds.testing.mock_data(num_examples=num_examples):
    result = train.train_and_evaluate(config, str(workdir))
  assert result['step'] == 2
  return result


def test_cifar10_smoke_config_runs_on_mocked_tfds(tmp_path):
  result = _run_smoke_config_on_mocked_tfds(cifar10, 48, tmp_path)
  assert 0 <= result['test_accuracy'] <= 1
  assert np.isfinite(result['test_loss'])
  assert 'test_top5_accuracy' not in result  # Only reported for K > 10.


def test_imagenet_smoke_config_runs_on_mocked_tfds(tmp_path):
  # Variable-size mock images exercise random-resized-crop, 1000 classes the
  # top-5 metric, and the model is the real ResNet-50 graph at width 4.
  result = _run_smoke_config_on_mocked_tfds(imagenet_resnet50, 32, tmp_path)
  assert result['test_accuracy'] <= result['test_top5_accuracy'] <= 1


def _resume_config(**overrides):
  # A batch-norm model, crop+flip augmentation and HMix: every piece of state
  # (params, batch stats, momentum, RNG, data position) matters.
  return _synthetic_config(**{
      'model.name': 'preact_resnet18', 'model.width': 4,
      'data.augment': 'crop_flip', 'total_steps': 7,
      'checkpoint_every_steps': 3, 'log_every_steps': 2, **overrides})


@pytest.fixture(scope='module')
def uninterrupted_run(tmp_path_factory):
  """placement -> (workdir, result) of an uninterrupted `_resume_config`
  run, trained once: the host one is also the pmap test's jit reference."""
  runs = {}

  def run(placement):
    if placement not in runs:
      workdir = str(tmp_path_factory.mktemp(f'uninterrupted_{placement}'))
      config = _resume_config(**{'data.placement': placement})
      runs[placement] = workdir, train.train_and_evaluate(config, workdir)
    return runs[placement]

  return run


def _records_without_timing(workdir: str) -> list[dict]:
  records = metric_writers.read_metrics(workdir)
  for record in records:
    record.pop('images_per_second', None)
  return records


@pytest.mark.parametrize('placement', ['device', 'host'])
def test_resume_skips_a_damaged_checkpoint_and_ends_bit_identical(
    tmp_path, placement, caplog, uninterrupted_run):
  # Catches: a damaged newest checkpoint that stops the run (the
  # JSONDecodeError traceback), a fallback that restarts from scratch or
  # silently, a resume that differs in any state (params, batch stats,
  # momentum, RNG, data position mid-epoch) or any logged metric, and a crash
  # while writing a later checkpoint (a temporary directory) taken for one.
  uninterrupted, expected = uninterrupted_run(placement)
  interrupted = str(tmp_path / 'interrupted')
  config = _resume_config(**{'data.placement': placement})
  halted = train.train_and_evaluate(config, interrupted, halt_at_step=5)
  assert halted['step'] == 5  # 4 steps per epoch; saves at 3 and 5.
  checkpoints = os.path.join(interrupted, 'checkpoints')
  assert sorted(os.listdir(checkpoints)) == ['3', '5']
  # Every file of the newest checkpoint truncated to half its length.
  for folder, _, files in os.walk(os.path.join(checkpoints, '5')):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)
  partial = os.path.join(checkpoints, '6.orbax-checkpoint-tmp', 'state')
  os.makedirs(partial)
  with open(os.path.join(partial, 'garbage'), 'w') as f:
    f.write('half-written')
  with caplog.at_level('WARNING'):
    resumed = train.train_and_evaluate(config, interrupted)
  warnings = [r.getMessage() for r in caplog.records
              if 'cannot be read' in r.getMessage()]
  assert len(warnings) == 1
  assert 'step 5' in warnings[0] and os.path.join(checkpoints, '5') in (
      warnings[0])
  assert os.path.isdir(os.path.join(interrupted,
                                    checkpoint.UNREADABLE_DIR, '5'))
  assert resumed['step'] == 7
  assert resumed['test_loss'] == expected['test_loss']
  step_a, state_a = launch.final_state(uninterrupted)
  step_b, state_b = launch.final_state(interrupted)
  assert step_a == step_b == 7
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b) > 100
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)
  records = _records_without_timing(uninterrupted)
  assert [r['step'] for r in records if 'train_loss' in r] == [2, 4, 6, 7]
  assert _records_without_timing(interrupted) == records


def test_device_and_host_placement_train_on_the_same_batches(tmp_path):
  # Catches a device path that visits other examples than the host order
  # (wrong permutation, offset or rows): without augmentation both paths feed
  # the same batches, so the runs end with the same parameters.
  states = {}
  for placement in ('device', 'host'):
    config = _synthetic_config(**{'data.placement': placement,
                                  'total_steps': 6})
    train.train_and_evaluate(config, str(tmp_path / placement))
    states[placement] = launch.final_state(str(tmp_path / placement))[1]
  for a, b in zip(jax.tree.leaves(states['device']),
                  jax.tree.leaves(states['host'])):
    np.testing.assert_array_equal(a, b)


def test_pmap_step_matches_the_jit_step(tmp_path, uninterrupted_run):
  # pmap streams batches from the host; so must jit, to see the same ones.
  jit_workdir, jit_result = uninterrupted_run('host')
  config = _resume_config(**{'data.placement': 'host'})
  assert config.parallelism == 'jit'
  config.parallelism = 'pmap'
  pmap_result = train.train_and_evaluate(config, str(tmp_path / 'pmap'))
  _, jit_state = launch.final_state(jit_workdir)
  _, pmap_state = launch.final_state(str(tmp_path / 'pmap'))
  # Same mixing per device, same batch-norm statistics (synced over the pmap
  # axis), same gradients up to the order of the cross-device reduction.
  assert jax.tree.structure(jit_state) == jax.tree.structure(pmap_state)
  for a, b in zip(jax.tree.leaves(jit_state), jax.tree.leaves(pmap_state)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  np.testing.assert_allclose(pmap_result['test_loss'], jit_result['test_loss'],
                             rtol=1e-4)
  assert int(pmap_state['step']) == 7


@pytest.mark.parametrize('method', ['mixup', 'cutmix', 'gmix', 'none'])
def test_every_method_runs_as_an_override(tmp_path, method):
  config = quickstart.get_config('smoke')
  config.progress_bar = False
  config.total_steps = 2
  config.msda.method = method
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['step'] == 2 and np.isfinite(result['test_loss'])
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['msda']['method'] == method


@pytest.mark.parametrize('override,message', [
    ({'data.name': 'cifar1O'}, "unknown dataset 'cifar1O'"),
    ({'model.name': 'resnet51'}, "unknown model 'resnet51'"),
    ({'msda.method': 'mixcut'}, 'method must be one of'),
    ({'batch_size': 12}, r'batch_size=12 is not divisible by the device count '
     r'\(8\)'),
    ({'data.name': 'image_folder', 'data.data_dir': '/nonexistent/cifar'},
     "data directory '/nonexistent/cifar' does not exist"),
    ({'parallelism': 'pjit'}, "unknown parallelism 'pjit'"),
    ({'model.dtype': 'float8'}, "unknown model.dtype 'float8'"),
    ({'data.mean': (1.0, 2.0)}, r'data\.mean has 2 values but '
     r'data\.channels=3'),
    ({'data.std': (1.0, 2.0)}, r'data\.std has 2 values but '
     r'data\.channels=3'),
    ({'data.name': 'digits'},
     r'has 1 channels but data\.channels=3'),
])
def test_bad_configs_fail_early_with_a_clear_message(tmp_path, override,
                                                     message):
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(_synthetic_config(**override), str(tmp_path))


@pytest.mark.parametrize('module', [quickstart, cifar10, cifar100,
                                    imagenet_resnet50])
def test_configs_build_mixers_and_smoke_variants_shrink(module):
  full, smoke = module.get_config(), module.get_config('smoke')
  msda_jax.from_config(dict(full.msda.to_dict(), num_classes=10))
  full_steps = full.total_steps or full.num_epochs * 10
  assert 0 < smoke.total_steps < full_steps
  assert smoke.batch_size <= full.batch_size
  assert smoke.batch_size % 8 == 0 and full.batch_size % 8 == 0
  with pytest.raises(ValueError, match='unknown config argument'):
    module.get_config('tiny')


def test_configs_follow_their_protocols():
  for module in (cifar10, cifar100):
    config = module.get_config()
    assert (config.model.name, config.optimizer, config.nesterov) == (
        'preact_resnet18', 'sgd', True)
    assert (config.learning_rate, config.momentum, config.weight_decay) == (
        0.1, 0.9, 5e-4)
    assert (config.lr_schedule, config.batch_size, config.num_epochs) == (
        'cosine', 128, 200)
    assert config.data.augment == 'crop_flip'
  config = imagenet_resnet50.get_config()
  assert (config.model.name, config.data.image_size, config.data.augment) == (
      'resnet50', 224, 'random_resized_crop')
  assert (config.batch_size, config.num_epochs, config.lr_schedule) == (
      1024, 300, 'cosine')
  assert config.learning_rate == pytest.approx(0.1 * 1024 / 256)


def _folder_with_a_corrupt_image(root) -> str:
  rng = np.random.default_rng(0)
  for split, count in (('train', 12), ('test', 3)):
    for label in range(4):
      directory = os.path.join(root, split, f'class{label}')
      os.makedirs(directory)
      for i in range(count):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
            os.path.join(directory, f'{i}.png'))
  corrupt = os.path.join(root, 'train', 'class2', '5.png')
  with open(corrupt, 'wb') as f:
    f.write(b'\x89PNG truncated')
  return corrupt


def _folder_config(root, placement, max_bad_examples):
  return _synthetic_config(**{
      'data.name': 'image_folder', 'data.data_dir': str(root),
      'data.placement': placement, 'data.cache_dir': str(root / 'cache'),
      'data.max_bad_examples': max_bad_examples, 'total_steps': 6,
      'log_every_steps': 3})


def test_unreadable_images_are_counted_or_named_never_a_bare_traceback(
    tmp_path):
  # Catches a corrupt file crashing the host loader mid-run (PIL's error
  # deep in a worker), skipped files not reported, the limit not enforced,
  # and the device path failing on a file without naming it.
  corrupt = _folder_with_a_corrupt_image(tmp_path / 'data')
  workdir = tmp_path / 'run'
  train.train_and_evaluate(
      _folder_config(tmp_path / 'data', 'host', 1), str(workdir / 'host'))
  counts = [r['bad_examples'] for r in
            metric_writers.read_metrics(str(workdir / 'host'))
            if 'bad_examples' in r]
  assert counts == [1, 1]  # 48 images, batch 16: every epoch meets it.
  with pytest.raises(ValueError, match='unreadable') as error:
    train.train_and_evaluate(_folder_config(tmp_path / 'data', 'host', 0),
                             str(workdir / 'strict'))
  assert corrupt in str(error.value)
  with pytest.raises(ValueError, match='1 of 48 images') as error:
    train.train_and_evaluate(_folder_config(tmp_path / 'data', 'device', 0),
                             str(workdir / 'device'))
  assert corrupt in str(error.value)
  assert not os.path.exists(workdir / 'device' / 'checkpoints')
