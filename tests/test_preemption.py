"""Preemption: SIGTERM / SIGINT stop a run at a checkpoint, losing nothing.

Real signals to real ``python -m train.main`` processes (tests/launch.py):
one process on 8 CPU devices, and 2 processes x 2 devices, each interrupted
mid-run and resumed, must end with the parameters and the metrics of an
uninterrupted run, bit for bit. The uninterrupted 2-process run is also the
multi-process check of the device path: it must end where one process with
4 devices ends (tests/test_multiprocess.py has the host path).
"""

import json
import os
import signal
import time

import jax
import numpy as np
import pytest

import launch
from configs import quickstart
from train import checkpoint
from train import metric_writers
from train import train

pytestmark = pytest.mark.long  # Real runs in subprocesses.

# Long enough that a signal sent after a log lands mid-run (a step of the
# smoke CNN takes 10 to 30 ms here, so 100 steps are over a second of
# margin), short enough for CI.
_STEPS = 150
_FLAGS = (f'--config.total_steps={_STEPS}', '--config.log_every_steps=10',
          '--config.checkpoint_every_steps=1000',  # Only the stop saves.
          '--config.eval_every_epochs=5')


def _config():
  """The in-process twin of `_FLAGS` on the smoke config."""
  config = quickstart.get_config('smoke')
  config.progress_bar = False
  config.data.placement = 'device'
  config.total_steps = _STEPS
  config.log_every_steps = 10
  config.checkpoint_every_steps = 1000
  config.eval_every_epochs = 5
  return config


def _wait_for_metrics(workdir: str, processes, min_step: int = 10) -> None:
  """Returns once a record at ``min_step`` or later is in metrics.jsonl."""
  path = os.path.join(workdir, metric_writers.METRICS_FILE)
  deadline = time.time() + 120
  while time.time() < deadline:
    assert all(p.poll() is None for p in processes), [
        launch.output(p)[-3000:] for p in processes]
    if os.path.exists(path):
      with open(path) as f:
        if any(json.loads(line)['step'] >= min_step for line in f
               if line.strip()):
          return
    time.sleep(0.01)
  assert False, 'no metrics within 120 s'


def _interrupt(workdir: str, processes, signal_number, target=0,
               after_step=0) -> int:
  """Signals one process once it has logged past ``after_step``; all must
  stop at one step and exit 0."""
  _wait_for_metrics(workdir, processes, after_step + 10)
  processes[target].send_signal(signal_number)
  outputs = launch.wait(processes)
  name = signal.Signals(signal_number).name
  stopped = [line for line in outputs[0].splitlines()
             if line.startswith('stopped:')]
  assert len(stopped) == 1 and name in stopped[0], outputs[0][-3000:]
  step = int(stopped[0].split(' at step ')[1].split(';')[0])
  assert after_step + 10 <= step < _STEPS
  for output in outputs:  # Every process names the same step.
    assert f'stopped at step {step} of {_STEPS}' in output, output[-3000:]
  manager = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  assert manager.latest_step() == step  # On disk before the exit.
  manager.close()
  return step


def _final(workdir: str):
  step, state = launch.final_state(workdir)
  records = metric_writers.read_metrics(workdir)
  for record in records:
    record.pop('images_per_second', None)  # Wall-clock time.
  return step, jax.tree.leaves(state), records


def _assert_same_run(reference: str, resumed: str) -> None:
  step_a, leaves_a, records_a = _final(reference)
  step_b, leaves_b, records_b = _final(resumed)
  assert step_a == step_b == _STEPS
  assert len(leaves_a) == len(leaves_b) > 5
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)
  # Every logged metric, train and test, at every step: nothing lost,
  # nothing logged twice, the windows around the stops averaged alike.
  assert len(records_a) > _STEPS // 10
  assert records_a == records_b


def test_sigterm_then_sigint_lose_no_step_on_one_process(tmp_path):
  # Catches: a signal that kills the run (exit 143 / KeyboardInterrupt), a
  # stop without a checkpoint at that step (steps lost), a checkpoint still
  # being written at exit, the window of unlogged metrics dropped or logged
  # twice on resume, a second run that restarts from scratch.
  reference = str(tmp_path / 'reference')
  train.train_and_evaluate(_config(), reference)
  workdir = str(tmp_path / 'interrupted')
  first = _interrupt(workdir, [launch.launch(workdir, 8, 'device',
                                             extra=_FLAGS)], signal.SIGTERM)
  # `_interrupt` checks that the second stop is past the first.
  _interrupt(workdir, [launch.launch(workdir, 8, 'device', extra=_FLAGS)],
             signal.SIGINT, after_step=first)
  outputs = launch.wait([launch.launch(workdir, 8, 'device', extra=_FLAGS)])
  assert f'final: step {_STEPS}' in outputs[0]
  _assert_same_run(reference, workdir)


def test_two_processes_stop_at_one_step_and_resume_exactly(tmp_path):
  # Catches: processes that stop at different steps (one then waits in a
  # collective for the other: a time-out instead of exit 0), a signal to one
  # process that the other never hears, resumed state that differs. And, on
  # the uninterrupted run: processes that load the same rows (or the wrong
  # slice) of the global batch, devices built from another order, a run that
  # is silently two independent single-process runs, a broken --jax_* launch.
  def run(workdir):
    coordinator = f'localhost:{launch.free_port()}'
    return [launch.launch(workdir, 2, 'device', coordinator, i, 2, _FLAGS)
            for i in range(2)]

  single = str(tmp_path / 'single')
  reference = str(tmp_path / 'reference')
  workdir = str(tmp_path / 'interrupted')
  launch.wait([launch.launch(single, 4, 'device', extra=_FLAGS)])
  # Measured after 120 steps: at most 1.1e-7 apart, on parameters of size
  # 0.07 to 0.4.
  launch.assert_two_processes_match_one(single, reference,
                                        launch.wait(run(reference)),
                                        steps=_STEPS, atol=5e-7)
  # Only process 1 gets the notice, as when one host is preempted first.
  _interrupt(workdir, run(workdir), signal.SIGTERM, target=1)
  outputs = launch.wait(run(workdir))
  assert f'final: step {_STEPS}' in outputs[0]
  _assert_same_run(reference, workdir)
