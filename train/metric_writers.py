"""Metrics to JSON lines and TensorBoard event files (process 0 only)."""

import json
import os
from typing import Mapping

__all__ = ['METRICS_FILE', 'MetricWriter', 'read_metrics']

METRICS_FILE = 'metrics.jsonl'


class MetricWriter:
  """Appends ``{"step": s, name: value, ...}`` lines to WORKDIR/metrics.jsonl
  and writes the same scalars to WORKDIR/tensorboard.

  Attributes:
    enabled: False on processes other than 0 (every call is then a no-op).
  """

  def __init__(self, workdir: str, enabled: bool = True, *,
               resume_step: int | None = None):
    """Opens the writers.

    Args:
      workdir: the run's directory.
      enabled: False on processes other than 0.
      resume_step: a resumed run's checkpoint step: records of later steps
        (written by a run that stopped without a checkpoint there) are
        removed from metrics.jsonl, since the resumed run writes them again.
    """
    self.enabled = enabled
    self._summary = None
    self._path = os.path.join(workdir, METRICS_FILE)
    if enabled and resume_step is not None and os.path.exists(self._path):
      kept = [record for record in read_metrics(workdir)
              if record['step'] <= resume_step]
      with open(self._path, 'w') as f:
        f.writelines(json.dumps(record) + '\n' for record in kept)
    if enabled:
      # Imported here: processes other than 0 never need it.
      import tensorboardX  # pylint: disable=g-import-not-at-top
      os.makedirs(workdir, exist_ok=True)
      self._summary = tensorboardX.SummaryWriter(
          os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    """Records scalar ``metrics`` at ``step``."""
    if not self.enabled:
      return
    values = {name: float(value) for name, value in metrics.items()}
    with open(self._path, 'a') as f:
      f.write(json.dumps({'step': int(step), **values}) + '\n')
    for name, value in values.items():
      self._summary.add_scalar(name, value, int(step))

  def close(self) -> None:
    if self._summary:
      self._summary.close()
      self._summary = None


def read_metrics(workdir: str) -> list[dict]:
  """All records of WORKDIR/metrics.jsonl, in the order written."""
  with open(os.path.join(workdir, METRICS_FILE)) as f:
    return [json.loads(line) for line in f if line.strip()]
