"""Orbax checkpoints of the train state and the data position.

Each checkpoint is a directory WORKDIR/checkpoints/<step>/ with three
items: ``state`` (the `TrainState` pytree: step, params, batch stats,
optimizer state, RNG key), ``data`` (the JSON data position from
`input_pipeline.TrainBatches.position`) and ``loop`` (JSON: what the loop
had not yet logged, so that a resumed run writes the same metrics).
Orbax writes a checkpoint into a temporary directory and renames it into
place only when complete, so a crash in the middle of a save leaves the
previous checkpoint as the latest one; leftover temporary directories are
removed when the manager is next opened. A checkpoint damaged after it was
written (a truncated file, a disk error) is set aside by `restore_latest`,
which then falls back to the one before it.
"""

import logging
import os
import shutil
from typing import Any

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

__all__ = ['Checkpointer', 'QuietOrbaxInfo', 'UNREADABLE_DIR']

# Where unreadable checkpoints are moved, beside the checkpoint directory.
UNREADABLE_DIR = 'unreadable_checkpoints'


class QuietOrbaxInfo(logging.Filter):
  """A log filter that drops orbax's INFO chatter (a dozen lines per save)
  and keeps its warnings; added to absl's handler by the commands."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING
            or '/orbax/' not in record.pathname)


class Checkpointer:
  """Periodic, atomic, asynchronous saves and restores of one run."""

  def __init__(self, directory: str, *, max_to_keep: int = 2,
               asynchronous: bool = True):
    """Opens (creating it if needed) the checkpoint directory.

    Args:
      directory: absolute path, usually WORKDIR/checkpoints.
      max_to_keep: number of most recent checkpoints kept.
      asynchronous: write to disk in a background thread after copying the
        arrays to host, so training continues during the write.
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=asynchronous)
    self._directory = directory
    self._manager = ocp.CheckpointManager(
        directory, options=options, item_names=('state', 'data', 'loop'))

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_position: dict,
           loop: dict | None = None) -> None:
    """Starts saving checkpoint ``step`` (`wait` blocks until it is on disk).

    Args:
      step: the optimizer step the state has reached.
      state: the train state (host arrays or jax.Arrays).
      data_position: the data position after ``step`` steps.
      loop: JSON-serialisable loop state (e.g. metrics not yet logged).
    """
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_position),
            loop=ocp.args.JsonSave(loop or {})),
        force=True)

  def wait(self) -> None:
    """Blocks until every started save is complete on disk."""
    self._manager.wait_until_finished()

  def restore_latest(self, target: Any = None
                     ) -> tuple[int, Any, dict, dict] | None:
    """Restores the newest readable checkpoint, setting unreadable ones aside.

    A checkpoint that fails to restore (e.g. truncated files) is named, with
    its step, path and error, in a warning and moved to
    WORKDIR/unreadable_checkpoints/<step> (by process 0; every process then
    continues with the one before), so that the run saves that step again.

    Args:
      target: as for `restore`.

    Returns:
      (step, state, data_position, loop), or None when no checkpoint is
      readable (or there is none).
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        return (step, *self.restore(step, target))
      except Exception as error:  # pylint: disable=broad-except
        # Orbax raises many types here (JSONDecodeError, ValueError, OSError,
        # tensorstore errors), so any failure means: try the one before.
        path = os.path.join(self._directory, str(step))
        aside = os.path.join(os.path.dirname(self._directory), UNREADABLE_DIR,
                             str(step))
        logging.warning(
            'Checkpoint at step %d (%s) cannot be read (%s: %s); moving it to '
            '%s and resuming from the checkpoint before it.', step, path,
            type(error).__name__, str(error).splitlines()[0][:300], aside)
        if jax.process_index() == 0:
          if os.path.exists(aside):
            shutil.rmtree(aside)
          os.makedirs(os.path.dirname(aside), exist_ok=True)
          shutil.move(path, aside)
        multihost_utils.sync_global_devices(f'checkpoint {step} set aside')
        self._manager.reload()
    return None

  def restore(self, step: int, target: Any = None
              ) -> tuple[Any, dict, dict]:
    """Restores checkpoint ``step`` into the layout of ``target``.

    Args:
      step: a saved step (e.g. `latest_step`).
      target: a state pytree whose structure, shapes and dtypes the restored
        arrays take: numpy arrays restore as numpy arrays, jax.Arrays (or
        `jax.ShapeDtypeStruct`s with shardings) with their shardings. None
        restores the saved tree as nested dicts of numpy arrays.

    Returns:
      (state, data_position, loop); ``loop`` is {} for checkpoints written
      before it was saved.
    """
    items = dict(state=ocp.args.StandardRestore(target),
                 data=ocp.args.JsonRestore())
    has_loop = os.path.isdir(os.path.join(self._directory, str(step), 'loop'))
    if has_loop:
      items['loop'] = ocp.args.JsonRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return (restored.state, dict(restored.data),
            dict(restored.loop) if has_loop else {})

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
