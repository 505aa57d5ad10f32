"""Stopping a run cleanly on SIGTERM or SIGINT, at the same step everywhere.

A spot or preemptible VM gets SIGTERM some 30 seconds before it goes, and a
person stops a run with Ctrl-C (SIGINT). `StopSignal` turns either into a
request that the training loop polls once per step: the loop then finishes
the step in flight, writes a checkpoint at that step, waits until it is on
disk and exits 0 (train/train.py). A second signal of the same kind acts as
it would without us (SIGINT raises KeyboardInterrupt, SIGTERM ends the
process at once).

With one process the handlers set a flag. With several (a JAX distributed
client exists) the processes must stop at the same step, or one would wait
in a collective that the others left; JAX's preemption service does that:
its own SIGTERM handler tells the coordination service, and
`multihost_utils.reached_preemption_sync_point(step)` becomes True at the
same step on every process. SIGINT is handed to it as a SIGTERM.
"""

import os
import signal
import threading
from typing import Callable

from absl import logging
import jax
from jax.experimental import multihost_utils

__all__ = ['StopSignal']

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
  """A context manager that turns SIGTERM / SIGINT into a stop request.

  Example (one process; a real signal arrives from outside):

    >>> import os, signal
    >>> with StopSignal() as stop:
    ...   before = stop.requested(1)
    ...   os.kill(os.getpid(), signal.SIGTERM)
    ...   after = stop.requested(2)
    >>> before, after, stop.signal_name
    (False, True, 'SIGTERM')

  Call `requested` once per step, with the step just taken, on every
  process. Outside the main thread (where Python cannot install handlers)
  it never requests a stop and says so once in the log.
  """

  def __init__(self):
    self._received = None
    self._previous = {}
    self._multi_process = False

  def __enter__(self) -> 'StopSignal':
    self._received = None
    if threading.current_thread() is not threading.main_thread():
      logging.warning('Not in the main thread: SIGTERM / SIGINT will not '
                      'stop the run at a checkpoint.')
      return self
    self._multi_process = jax.distributed.is_initialized()
    if self._multi_process:
      # JAX's preemption service (on unless jax_enable_preemption_service
      # is False) owns SIGTERM; SIGINT is forwarded to it.
      self._install(signal.SIGINT, self._forward_as_sigterm)
    else:
      for number in _SIGNALS:
        self._install(number, self._record)
    return self

  def __exit__(self, *exc_info) -> None:
    for number, handler in self._previous.items():
      signal.signal(number, handler)
    self._previous = {}

  @property
  def signal_name(self) -> str | None:
    """The name of the signal received ('SIGTERM' / 'SIGINT'), or None."""
    return None if self._received is None else self._received.name

  def requested(self, step: int) -> bool:
    """True once the run should stop after ``step`` (the same on every
    process)."""
    if self._multi_process:
      if multihost_utils.reached_preemption_sync_point(step):
        self._received = self._received or signal.SIGTERM
        return True
      return False
    return self._received is not None

  def _install(self, number: int, handler: Callable) -> None:
    self._previous[number] = signal.signal(number, handler)

  def _restore(self, number: int) -> None:
    # A second signal of the same kind then does what it did before us.
    if number in self._previous:
      signal.signal(number, self._previous.pop(number))

  def _record(self, number, frame) -> None:
    del frame
    self._received = signal.Signals(number)
    self._restore(number)
    logging.warning('%s received: stopping after the step in flight, at a '
                    'checkpoint (send it again to stop at once).',
                    self._received.name)

  def _forward_as_sigterm(self, number, frame) -> None:
    del frame
    self._received = signal.Signals(number)
    self._restore(number)
    logging.warning('SIGINT received: all processes stop at the next agreed '
                    'step, at a checkpoint.')
    os.kill(os.getpid(), signal.SIGTERM)
