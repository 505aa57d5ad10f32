"""The command line: python -m train.main --config=... --workdir=... ."""

import json
import os
import re
import subprocess
import sys

from train import metric_writers

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_main_runs_a_config_with_overrides_and_prints_the_result(tmp_path):
  workdir = str(tmp_path / 'run')
  command = [
      sys.executable, '-m', 'train.main',
      '--config=configs/quickstart.py:smoke', f'--workdir={workdir}',
      '--config.msda.method=cutmix', '--config.msda.alpha=0.5',
      '--config.progress_bar=False'
  ]
  # conftest.py exported XLA_FLAGS: the child sees the same 8 CPU devices.
  done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  last_line = done.stdout.strip().splitlines()[-1]
  match = re.fullmatch(
      r'final: step 4, test accuracy (\d\.\d{4}), test loss (\d+\.\d{4}), '
      r'[\d.]+ s', last_line)
  assert match, last_line
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['msda']['method'] == 'cutmix' and saved['msda']['alpha'] == 0.5
  records = metric_writers.read_metrics(workdir)
  assert abs(records[-1]['test_accuracy'] - float(match.group(1))) <= 5.1e-5
  assert os.listdir(os.path.join(workdir, 'checkpoints'))


def test_main_exits_nonzero_naming_a_bad_method_override(tmp_path):
  command = [
      sys.executable, '-m', 'train.main',
      '--config=configs/quickstart.py:smoke', f'--workdir={tmp_path}',
      '--config.msda.method=mixcut'
  ]
  done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode != 0
  assert "method must be one of" in done.stderr
  assert 'mixcut' in done.stderr


def test_cifar_config_runs_on_synthetic_data_with_timm_choice(tmp_path):
  # Catches the locked CIFAR config lacking what synthetic data needs
  # (KeyError: 'num_classes') or the fields method='choice' reads.
  command = [
      sys.executable, '-m', 'train.main',
      '--config=configs/cifar10.py:smoke', f'--workdir={tmp_path}',
      '--config.data.name=synthetic', '--config.msda.method=choice',
      '--config.progress_bar=False'
  ]
  done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'final: step 2' in done.stdout
  assert 'choice(' in done.stderr  # The mixer's name is logged.


def test_main_rejects_an_incomplete_multi_process_launch(tmp_path):
  # Catches a coordinator flag silently ignored (N independent runs that
  # each believe they are alone) or a bad process id reaching JAX.
  base = [sys.executable, '-m', 'train.main',
          '--config=configs/quickstart.py:smoke', f'--workdir={tmp_path}']
  for extra, message in [
      (['--jax_coordinator=localhost:1'], "also need ['--jax_num_processes', "
       "'--jax_process_id']"),
      (['--jax_coordinator=localhost:1', '--jax_num_processes=2',
        '--jax_process_id=2'], '--jax_process_id=2 must be in [0, '),
      (['--jax_distributed', '--jax_process_id=0'], 'drop')]:
    done = subprocess.run(base + extra, cwd=_REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
