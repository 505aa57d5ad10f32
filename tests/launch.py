"""Starting ``python -m train.main`` in fresh processes, for the tests, and
reading the final checkpoint a run leaves.

The device count is fixed when JAX starts, so runs with another count (or
several processes joined through ``--jax_coordinator`` on localhost, which
exchange gradients with gloo collectives) cannot run inside pytest's own
process.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from train import checkpoint

__all__ = ['assert_two_processes_match_one', 'final_state', 'free_port',
           'launch', 'output', 'wait']

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def launch(workdir: str, devices: int, placement: str,
           coordinator: str | None = None, process_id: int = 0,
           num_processes: int = 1, extra: tuple = ()) -> subprocess.Popen:
  """Starts the quickstart's smoke config (``extra`` flags override it)."""
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  command = [sys.executable, '-m', 'train.main',
             '--config=configs/quickstart.py:smoke', f'--workdir={workdir}',
             '--config.progress_bar=False',
             f'--config.data.placement={placement}', *extra]
  if coordinator:
    command += [f'--jax_coordinator={coordinator}',
                f'--jax_num_processes={num_processes}',
                f'--jax_process_id={process_id}']
  # Output to a file, not a pipe: a full pipe would block a child that the
  # polling loop of `wait` does not read.
  log = tempfile.TemporaryFile(mode='w+')
  process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, text=True)
  process.log = log
  return process


def output(process: subprocess.Popen) -> str:
  """What ``process`` has printed so far."""
  process.log.seek(0)
  return process.log.read()


def wait(processes: list[subprocess.Popen],
         expect_failure: bool = False, timeout: float = 240) -> list[str]:
  """Waits for all and returns their outputs; if one fails, stops the
  others at once (they would otherwise wait in a collective for their lost
  peer) and fails with the output of the first to fail."""
  deadline = time.time() + timeout
  try:
    while any(p.poll() is None for p in processes):
      if not expect_failure and any(p.poll() not in (None, 0)
                                    for p in processes):
        break
      assert time.time() < deadline, f'the runs did not finish in {timeout} s'
      time.sleep(0.2)
  finally:
    for process in processes:
      process.kill()
  outputs = []
  for process in processes:
    process.wait()
    outputs.append(output(process))
    process.log.close()
  if expect_failure:
    return outputs
  # The process that failed first speaks first (the others were killed).
  failures = sorted((p.returncode == -9, i) for i, p in enumerate(processes)
                    if p.returncode != 0)
  for _, index in failures:
    assert False, outputs[index][-3000:]
  return outputs


def final_state(workdir: str):
  """(step, state) of the newest checkpoint in WORKDIR/checkpoints."""
  manager = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  step = manager.latest_step()
  state, _, _ = manager.restore(step)
  manager.close()
  return step, state


def assert_two_processes_match_one(single: str, multi: str,
                                   outputs: list[str], *, steps: int,
                                   atol: float) -> None:
  """A run of 2 processes x 2 devices (``multi``, its ``outputs``) ended where
  one process with 4 devices (``single``) did, after ``steps`` steps.

  The parameters are equal up to the order of the cross-device gradient sum
  (gloo between processes, XLA within one), within ``rtol=1e-5`` and
  ``atol``; a wrong batch moves them by ~1e-3 within 4 steps. Only process 0
  prints the result, and process 1 names its place.
  """
  assert f'final: step {steps}' in outputs[0], outputs[0][-3000:]
  assert 'final:' not in outputs[1]
  assert 'process 1 of 2, 2 local / 4 global devices' in outputs[1]
  step_one, state_one = final_state(single)
  step_two, state_two = final_state(multi)
  assert step_one == step_two == steps
  leaves_one, leaves_two = (jax.tree.leaves(s['params'])
                            for s in (state_one, state_two))
  assert len(leaves_one) == len(leaves_two) > 4
  for a, b in zip(leaves_one, leaves_two):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
