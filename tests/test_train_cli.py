"""The command line: python -m train.main --config=... --workdir=... ."""

import json
import os
import re
import subprocess
import sys

import pytest

from train import metric_writers

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def cifar_cli_run(tmp_path_factory):
  """One ``python -m train.main`` run that the two tests below read: the
  locked CIFAR-10 smoke config on synthetic data with method=choice and a
  float override (each run of the command is an interpreter start plus the
  compilation of a PreActResNet-18)."""
  workdir = str(tmp_path_factory.mktemp('cli') / 'run')
  command = [
      sys.executable, '-m', 'train.main',
      '--config=configs/cifar10.py:smoke', f'--workdir={workdir}',
      '--config.data.name=synthetic', '--config.msda.method=choice',
      '--config.msda.alpha=0.5', '--config.progress_bar=False'
  ]
  # conftest.py exported XLA_FLAGS: the child sees the same 8 CPU devices.
  done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  return workdir, done


def test_main_runs_a_config_with_overrides_and_prints_the_result(
    cifar_cli_run):
  workdir, done = cifar_cli_run
  assert done.returncode == 0, done.stderr[-3000:]
  last_line = done.stdout.strip().splitlines()[-1]
  match = re.fullmatch(
      r'final: step 2, test accuracy (\d\.\d{4}), test loss (\d+\.\d{4}), '
      r'[\d.]+ s', last_line)
  assert match, last_line
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  # Both overrides reached the run: the config's own values are hmix, 1.0.
  assert saved['msda']['method'] == 'choice' and saved['msda']['alpha'] == 0.5
  records = metric_writers.read_metrics(workdir)
  assert abs(records[-1]['test_accuracy'] - float(match.group(1))) <= 5.1e-5
  assert os.listdir(os.path.join(workdir, 'checkpoints'))


def test_cifar_config_runs_on_synthetic_data_with_timm_choice(cifar_cli_run):
  # Catches the locked CIFAR config lacking what synthetic data needs
  # (KeyError: 'num_classes') or the fields method='choice' reads.
  _, done = cifar_cli_run
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'final: step 2' in done.stdout
  assert 'choice(' in done.stderr  # The mixer's name is logged.


# The early failures of the command, each argv parsed and run as app.run
# would (flags parsed, then main; an exception or sys.exit with a code != 0
# is a failed command), in one interpreter: each is over before a step is
# compiled, so a process per argv would be an interpreter start each. The
# multi-process ones come first, before anything starts JAX's backend.
_EARLY_FAILURES = r'''
import contextlib, io, json, sys, traceback
from absl import flags
from train import main
results = []
for argv in json.loads(sys.argv[1]):
  stderr = io.StringIO()
  code = 0
  with contextlib.redirect_stderr(stderr):
    try:
      flags.FLAGS.unparse_flags()
      sys.argv = argv  # config_flags reads the --config.<field> flags there.
      main.main(flags.FLAGS(argv))
    except SystemExit as exit:
      code = exit.code
    except BaseException:
      code = 1
      traceback.print_exc()
  results.append(dict(code=code, stderr=stderr.getvalue()))
print(json.dumps(results))
'''


_BAD_METHOD = ['--config.msda.method=mixcut']
_INCOMPLETE_LAUNCHES = [
    (['--jax_coordinator=localhost:1'], "also need ['--jax_num_processes', "
     "'--jax_process_id']"),
    (['--jax_coordinator=localhost:1', '--jax_num_processes=2',
      '--jax_process_id=2'], '--jax_process_id=2 must be in [0, '),
    (['--jax_distributed', '--jax_process_id=0'], 'drop')]


@pytest.fixture(scope='module')
def early_failures(tmp_path_factory):
  """{tuple(extra flags): dict(code=..., stderr=...)} of the command with
  the quickstart smoke config and each set of extra flags."""
  base = ['train/main.py', '--config=configs/quickstart.py:smoke',
          f'--workdir={tmp_path_factory.mktemp("early")}']
  extras = [extra for extra, _ in _INCOMPLETE_LAUNCHES] + [_BAD_METHOD]
  done = subprocess.run(
      [sys.executable, '-c', _EARLY_FAILURES,
       json.dumps([base + extra for extra in extras])],
      cwd=_REPO, capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(done.stdout.strip().splitlines()[-1])
  assert len(results) == len(extras)
  return dict(zip(map(tuple, extras), results))


def test_main_exits_nonzero_naming_a_bad_method_override(early_failures):
  done = early_failures[tuple(_BAD_METHOD)]
  assert done['code'] not in (0, None)
  assert "method must be one of" in done['stderr']
  assert 'mixcut' in done['stderr']


def test_main_rejects_an_incomplete_multi_process_launch(early_failures):
  # Catches a coordinator flag silently ignored (N independent runs that
  # each believe they are alone) or a bad process id reaching JAX.
  for extra, message in _INCOMPLETE_LAUNCHES:
    done = early_failures[tuple(extra)]
    assert done['code'] not in (0, None), extra
    assert message in done['stderr'], done['stderr'][-2000:]
