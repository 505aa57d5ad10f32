"""Multi-process training: 2 processes x 2 CPU devices == 1 process x 4.

Each run is a real ``python -m train.main`` in fresh processes (tests/
launch.py); the two processes of a run join through ``--jax_coordinator`` on
localhost and exchange gradients with gloo collectives. The device path's
2-process run is checked in tests/test_preemption.py, whose uninterrupted
2-process run it shares.
"""

import os
import time

import numpy as np
from PIL import Image
import pytest

import launch

pytestmark = pytest.mark.long  # Real runs in subprocesses.


def test_two_processes_end_with_the_parameters_of_one_on_the_host_path(tmp_path):
  # Catches processes that load the same rows (or the wrong slice) of the
  # global batch, devices built from another order, a run that is silently
  # two independent single-process runs, and a broken --jax_* launch.
  single = str(tmp_path / 'single')
  outputs = launch.wait([launch.launch(single, 4, 'host')])
  assert 'final: step 4' in outputs[0]
  multi = str(tmp_path / 'multi')
  coordinator = f'localhost:{launch.free_port()}'
  outputs = launch.wait([launch.launch(multi, 2, 'host', coordinator, i, 2)
                   for i in range(2)])
  # Measured differences are ~1e-9 after 4 steps.
  launch.assert_two_processes_match_one(single, multi, outputs, steps=4,
                                        atol=1e-7)


def test_unreadable_images_stop_every_process_together(tmp_path):
  # Catches the limit counted per process on the host path: the process
  # that met the corrupt file stopped alone and the other waited for it in
  # the next collective. Both must stop at the same log step, each saying why.
  rng = np.random.default_rng(0)
  root = tmp_path / 'data'
  for split, count in (('train', 12), ('test', 2)):
    for label in range(4):
      os.makedirs(root / split / f'class{label}')
      for i in range(count):
        Image.fromarray(rng.integers(0, 256, (8, 8), np.uint8)).save(
            root / split / f'class{label}' / f'{i}.png')
  corrupt = root / 'train' / 'class1' / '3.png'
  corrupt.write_bytes(b'not a png')
  extra = ('--config.data.name=image_folder', f'--config.data.data_dir={root}')
  coordinator = f'localhost:{launch.free_port()}'
  start = time.time()
  outputs = launch.wait([launch.launch(str(tmp_path / 'run'), 2, 'host', coordinator, i, 2,
                           extra) for i in range(2)], expect_failure=True)
  assert time.time() - start < 120  # Not a distributed-runtime time-out.
  for output in outputs:
    assert 'unreadable training examples over all processes' in output or (
        'unreadable training examples, more than' in output), output[-3000:]
  assert any(str(corrupt) in output for output in outputs)
