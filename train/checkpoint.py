"""Orbax checkpoints of the train state and the data position.

Each checkpoint is a directory WORKDIR/checkpoints/<step>/ with two items:
``state`` (the `TrainState` pytree: step, params, batch stats, optimizer
state, RNG key) and ``data`` (the JSON data position from
`input_pipeline.TrainBatches.position`). Orbax writes a checkpoint into a
temporary directory and renames it into place only when complete, so a crash
in the middle of a save leaves the previous checkpoint as the latest one;
leftover temporary directories are removed when the manager is next opened.
"""

import logging
from typing import Any

import orbax.checkpoint as ocp

__all__ = ['Checkpointer', 'QuietOrbaxInfo']


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
    self._manager = ocp.CheckpointManager(directory, options=options,
                                          item_names=('state', 'data'))

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_position: dict) -> None:
    """Starts saving ``state`` and ``data_position`` as checkpoint ``step``."""
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_position)),
        force=True)

  def restore(self, step: int, target: Any = None) -> tuple[Any, dict]:
    """Restores checkpoint ``step`` into the layout of ``target``.

    Args:
      step: a saved step (e.g. `latest_step`).
      target: a state pytree whose structure, shapes and dtypes the restored
        arrays take: numpy arrays restore as numpy arrays, jax.Arrays (or
        `jax.ShapeDtypeStruct`s with shardings) with their shardings. None
        restores the saved tree as nested dicts of numpy arrays.

    Returns:
      (state, data_position).
    """
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target),
            data=ocp.args.JsonRestore()))
    return restored.state, dict(restored.data)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
