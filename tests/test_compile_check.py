"""train/compile_check.py and train/tpu_topology.py on 8 CPU devices.

The TPU path (libtpu's compile-only devices) is not installed in CI; these
tests run the same compile on the 8 fake CPU devices of conftest.py
(``platform='cpu'``) for the v5e:2x4 slice, and check the slice names, the
report's fields, the collectives, and the errors.
"""

import copy
import os
import subprocess
import sys

import pytest

from configs import quickstart
from train import compile_check
from train import tpu_topology

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('name, topology, devices, hbm_gib', [
    ('v5litepod-8', 'v5e:2x4', 8, 16),
    ('v5e-4', 'v5e:2x2', 4, 16),
    ('v5litepod-256', 'v5e:16x16', 256, 16),
    ('v6e-8', 'v6e:2x4', 8, 32),
    ('v4-8', 'v4:2x2x1', 4, 32),  # TensorCores: 4 chips, 4 megacore devices.
    ('v4-32', 'v4:2x2x4', 16, 32),
    ('v4-1024', 'v4:8x8x8', 512, 32),
    ('v5p-8', 'v5p:2x2x1', 4, 95),
    ('v5p-128', 'v5p:4x4x4', 64, 95),
    ('v5e:2x4', 'v5e:2x4', 8, 16),
    ('v4:2x2x1', 'v4:2x2x1', 4, 32),
    ('v6e:2x2', 'v6e:2x2', 4, 32),
])
def test_slice_names(name, topology, devices, hbm_gib):
  target = tpu_topology.parse_slice(name)
  assert (target.topology, target.num_devices, target.hbm_gib) == (
      topology, devices, hbm_gib)
  # The accelerator type names the same slice back.
  assert tpu_topology.parse_slice(target.accelerator_type) == (
      tpu_topology.Slice(target.generation, target.dims,
                         target.accelerator_type))


@pytest.mark.parametrize('name', [
    'v3-8', 'v4-4', 'v4-12', 'v5litepod-6', 'v5e:2x2x1', 'v5p:4', 'v7:2x2',
    'v5e:0x4', 'tpu', ''])
def test_unknown_slice_names(name):
  with pytest.raises(ValueError, match='--topology') as error:
    tpu_topology.parse_slice(name)
  for form in ('v5e:2x4', 'v4:2x2x1', 'v5litepod-N', 'v4-N', 'TensorCores'):
    assert form in str(error.value)


def test_libtpu_missing_says_how_to_install(monkeypatch):
  real = tpu_topology.importlib.util.find_spec
  monkeypatch.setattr(tpu_topology.importlib.util, 'find_spec',
                      lambda name: None if name == 'libtpu' else real(name))
  with pytest.raises(ValueError, match='pip install libtpu'):
    tpu_topology.compile_devices(tpu_topology.parse_slice('v5e:2x4'), 'tpu')


def test_too_few_cpu_devices():
  with pytest.raises(ValueError,
                     match='xla_force_host_platform_device_count=16'):
    tpu_topology.compile_devices(tpu_topology.parse_slice('v5e:4x4'), 'cpu')


V5E_8 = tpu_topology.parse_slice('v5e:2x4')


def _check(**overrides):
  config = quickstart.get_config()
  config.update_from_flattened_dict(overrides.pop('config', {}))
  return compile_check.check(
      config, V5E_8, devices=tpu_topology.compile_devices(V5E_8, 'cpu'),
      **overrides)


@pytest.fixture(scope='module')
def report():
  return _check(methods=['hmix'])


def test_report_memory_is_the_state_and_the_batch(report):
  assert list(report['train']) == ['hmix', 'none']
  assert report['num_devices'] == 8 and report['per_device_batch'] == 8
  # cnn_small on 8x8x1 digits: params, SGD momentum of the same size.
  assert report['params_bytes'] > 500_000
  assert abs(report['opt_state_bytes'] - report['params_bytes']) < 100
  assert report['state_bytes'] - report['params_bytes'] - report[
      'opt_state_bytes'] < 100  # step and rng
  # Per device: the replicated state plus an eighth of the batch (uint8
  # images 8 x 8x8x1 and 8 int32 labels).
  assert report['batch_bytes_per_device'] == 8 * 64 + 8 * 4
  for method in ('hmix', 'none'):
    record = report['train'][method]
    assert record['argument_bytes'] == (report['state_bytes']
                                        + report['batch_bytes_per_device'])
    # The new state is an output, aliased to the donated one.
    assert record['output_bytes'] >= report['state_bytes']
    assert record['alias_bytes'] >= report['state_bytes'] - 100
    assert record['temp_bytes'] > 0
    assert record['total_bytes'] == (
        record['argument_bytes'] + record['output_bytes']
        - record['alias_bytes'] + record['temp_bytes']
        + record['generated_code_bytes'])
    assert record['hbm_fraction'] == record['total_bytes'] / 16 / 2**30
    assert record['fits']
  # Evaluation reads the parameters (jit drops the unused optimizer state).
  evaluate = report['eval']
  assert report['params_bytes'] <= evaluate['argument_bytes'] < report[
      'state_bytes']
  assert evaluate['output_bytes'] > 0


def test_report_costs_and_method_differences(report):
  hmix, none = report['train']['hmix'], report['train']['none']
  assert hmix['mixer'].startswith('hmix(') and none['mixer'] == 'none'
  # Forward + backward of cnn_small on 8 images: tens of MFLOP per device.
  assert 1e7 < none['flops'] < 1e9 and none['bytes_accessed'] > 1e6
  assert set(none['vs_none'].values()) == {0}
  # Drawing boxes and blending costs FLOPs that no mixing does not.
  assert hmix['vs_none']['flops'] == hmix['flops'] - none['flops'] > 0
  assert hmix['vs_none']['argument_bytes'] == 0
  assert 'optimal_seconds' not in str(report)
  text = compile_check.format_report(report)
  assert 'train[hmix]' in text and 'train[none]' in text and 'eval' in text


def test_collectives_gradient_all_reduce_and_no_image_gather(report):
  params = report['params_bytes']
  labels_bytes = 4 * report['batch_size']
  for method in ('hmix', 'none'):
    record = report['train'][method]
    ops = record['collective_ops']
    assert record['collectives']['all-reduce'] >= 1
    # The gradient all-reduce carries every parameter once.
    assert max(op['bytes'] for op in ops if op['kind'] == 'all-reduce') >= (
        params)
    # Nothing image-sized is gathered (XLA:CPU gathers the int32 labels
    # for train_mixed_accuracy's partner lookup; XLA:TPU all-reduces them).
    assert all(op['bytes'] <= labels_bytes for op in ops
               if op['kind'] in ('all-gather', 'all-to-all'))
    assert record['collectives']['collective-permute'] == 0
    assert record['collectives']['reduce-scatter'] == 0
  assert report['eval']['collectives']['all-reduce'] >= 1


def test_across_devices_adds_the_collective_permute(report):
  across = _check(config={'mix_across_devices': True}, methods=['hmix'],
                  baseline=None, eval_step=False)
  assert list(across['train']) == ['hmix'] and 'eval' not in across
  record = across['train']['hmix']
  shard_images = 8 * 8 * 8 * 1 * 4  # float32 after standardisation
  permutes = [op['bytes'] for op in record['collective_ops']
              if op['kind'] == 'collective-permute']
  assert permutes and max(permutes) >= shard_images
  assert record['collectives']['all-reduce'] >= 1
  assert record['flops'] != report['train']['hmix']['flops']


def test_count_collectives_reads_opcodes_not_names():
  hlo = '\n'.join([
      '%all-gather.2 = f32[8]{0} add(f32[8]{0} %all-reduce.1, %p)',
      '%ar = (f32[4]{0}, f32[2,3]{1,0}) all-reduce(%a, %b), to_apply=%sum',
      '%s = (f32[8]{0}, f32[64]{0}) all-gather-start(f32[8]{0} %x)',
      '%d = f32[64]{0} all-gather-done((f32[8]{0}, f32[64]{0}) %s)',
      'ROOT %cp = bf16[2,2]{1,0} collective-permute(%y), pairs={{0,1}}'])
  counts = compile_check.count_collectives(hlo)
  assert counts == {'all-reduce': 1, 'all-gather': 1, 'collective-permute': 1,
                    'all-to-all': 0, 'reduce-scatter': 0}
  ops = compile_check.collective_ops(hlo)
  assert [op['bytes'] for op in ops] == [4 * 4 + 6 * 4, 64 * 4, 4 * 2]


def test_does_not_fit_names_the_batch(report):
  compile_check.require_fit(report)  # 2.3 MiB of 16 GiB.
  tiny = compile_check.judge_fit(copy.deepcopy(report), 2**20)
  assert not tiny['train']['hmix']['fits']
  with pytest.raises(ValueError, match=r'does not fit.*batch_size=64, 8 per '
                     r'device.*--config.batch_size'):
    compile_check.require_fit(tiny)


def test_compiler_out_of_memory_is_does_not_fit():

  class Lowered:

    def compile(self):
      raise RuntimeError('RESOURCE_EXHAUSTED: XLA:TPU compile permanent '
                         'error. Ran out of memory in memory space hbm. Used '
                         '20.5G of 15.75G hbm.')

  class Jitted:

    def lower(self, *args):
      return Lowered()

  with pytest.raises(ValueError, match='train step.*does not fit.*20.5G'):
    compile_check._compile('the train step (hmix)', Jitted())  # pylint: disable=protected-access


def test_batch_must_divide_over_the_devices():
  config = quickstart.get_config()
  config.eval_batch_size = 100
  devices = tpu_topology.compile_devices(V5E_8, 'cpu')
  with pytest.raises(ValueError, match='eval_batch_size=100 is not divisible'):
    compile_check.check(config, V5E_8, devices=devices)


def test_class_counts_without_data():
  config = quickstart.get_config()
  assert compile_check.dataset_facts(config.data) == (10, 1437)
  config.data.name = 'image_folder'
  config.data.data_dir = '/nonexistent'
  with pytest.raises(ValueError, match='--num_classes'):
    compile_check.dataset_facts(config.data)
  assert compile_check.dataset_facts(config.data, 7)[0] == 7


def test_cli_override_and_non_dividing_batch_exit():
  result = subprocess.run(
      [sys.executable, '-m', 'train.compile_check',
       '--config=configs/quickstart.py', '--topology=v5litepod-8',
       '--platform=cpu', '--config.batch_size=12'],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert result.returncode == 1
  assert 'batch_size=12 is not divisible by the device count (8)' in (
      result.stderr)


def test_study_config_compiles_its_base():
  from configs import study  # pylint: disable=g-import-not-at-top
  config = study.get_config('smoke')
  assert compile_check.training_config(config) is config.base
  parts = compile_check.build_run(config.base)
  # The smoke study's synthetic data: 4 classes of 8x8x3 images.
  assert (parts.num_classes, parts.image_shape) == (4, (8, 8, 3))
  assert parts.mixer.name.startswith('hmix(')
