r"""Training curves of one or more runs: loss and accuracy against step.

  python -m train.plot /tmp/msda_run --out /tmp/msda_run/curves.png
  python -m train.plot /tmp/study/runs/none-seed0 /tmp/study/runs/hmix-seed0 \
      --out /tmp/none_vs_hmix.png --labels none,hmix

Reads each WORKDIR/metrics.jsonl (train/metric_writers.py: every
``log_every_steps`` a row with ``train_loss`` and ``train_accuracy``, at every
evaluation one with ``test_loss`` and ``test_accuracy``) and draws a 2 x 2
grid: train loss, train accuracy (top), test loss, test accuracy (bottom),
against the step, the runs overlaid, one colour each, with a legend (a run's
label is its workdir's basename, or ``--labels``). A resumed run appends to
its metrics.jsonl; for a step logged twice the last row wins.

Needs matplotlib (``pip install -e ".[plot]"``), imported only when a figure
is drawn; the figure is a ``matplotlib.figure.Figure`` on its own Agg canvas
(no pyplot state).

Example (in Python):

  from train import plot
  series = plot.read_series('/tmp/msda_run')
  series['test_accuracy'].steps, series['test_accuracy'].values
  plot.plot_runs(['/tmp/msda_run'], '/tmp/curves.png')
"""

import argparse
import json
import math
import os
import sys
from typing import NamedTuple, Optional, Sequence

from msda_jax import _plot
import numpy as np

from train import metric_writers

__all__ = [
    'PANELS', 'PLOTTED', 'Series', 'curves_figure', 'default_labels', 'main',
    'plot_runs', 'read_series'
]

# (metric, panel title) of the 2 x 2 grid, row by row.
PANELS = (('train_loss', 'train loss'), ('train_accuracy', 'train accuracy'),
          ('test_loss', 'test loss'), ('test_accuracy', 'test accuracy'))
PLOTTED = tuple(metric for metric, _ in PANELS)
# matplotlib's tab10, one colour per run (then repeating).
_COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
            '#e377c2', '#7f7f7f', '#bcbd22', '#17becf')


class Series(NamedTuple):
  """One metric of one run: ``values[i]`` was logged at ``steps[i]``.

  Attributes:
    steps: int64 steps, increasing.
    values: float64 values.
  """
  steps: np.ndarray
  values: np.ndarray


def read_series(workdir: str) -> dict[str, Series]:
  """Every metric of WORKDIR/metrics.jsonl as a series over steps.

  Each metric takes the rows that have it (so train and test metrics, logged
  on different rows, are separate series with their own steps). A step
  logged twice (a resumed run) keeps its last value. A last line cut short
  (the run is writing it) is ignored.

  Args:
    workdir: a run's workdir.

  Returns:
    ``{metric: Series}``, every numeric field but ``step``, in the order
    first seen.

  Raises:
    FileNotFoundError: no WORKDIR/metrics.jsonl (the message names the path).
    ValueError: a line that is not a JSON object with an integer ``step``
      (the message names the file and line).
  """
  path = os.path.join(workdir, metric_writers.METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} does not exist: is {workdir!r} a training workdir (train.main '
        '--workdir)?')
  with open(path) as f:
    text = f.read()
  lines = text.split('\n')
  by_metric: dict[str, dict[int, float]] = {}
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as error:
      if number == len(lines):  # No newline yet: being written.
        continue
      raise ValueError(f'{path}, line {number}: not JSON ({error})') from None
    if not isinstance(record, dict) or isinstance(
        record.get('step'), bool) or not isinstance(record.get('step'), int):
      raise ValueError(f'{path}, line {number}: not a {{"step": int, ...}} '
                       f'record: {line[:80]!r}')
    for name, value in record.items():
      if name != 'step' and isinstance(value, (int, float)) and not isinstance(
          value, bool):
        by_metric.setdefault(name, {})[record['step']] = float(value)
  series = {}
  for name, points in by_metric.items():
    steps = sorted(points)
    series[name] = Series(np.asarray(steps, np.int64),
                          np.asarray([points[s] for s in steps], np.float64))
  return series


def default_labels(workdirs: Sequence[str]) -> list[str]:
  """Each workdir's basename; the paths as given if two basenames collide."""
  names = [os.path.basename(os.path.normpath(w)) or w for w in workdirs]
  if len(set(names)) < len(names):
    return [os.path.normpath(w) for w in workdirs]
  return names


def curves_figure(runs: Sequence[tuple[str, dict[str, Series]]], *,
                  size: tuple[int, int] = (1200, 860)):
  """The 2 x 2 grid of :data:`PANELS` for ``runs``, as a ``Figure``.

  Args:
    runs: ``(label, series)`` per run, series as from `read_series`; a run
      without a metric has no line in its panel.
    size: width and height in pixels.

  Returns:
    A ``matplotlib.figure.Figure`` with 4 axes (row by row, as
    :data:`PANELS`) and one figure legend, a run per entry.

  Raises:
    ImportError: matplotlib is not installed (the message says how to
      install it).
  """
  figure = _plot.new_figure(size, layout='constrained')
  grid = figure.subplots(2, 2, sharex=True).ravel()
  handles = {}  # label -> the run's first line (its legend entry)
  for number, (axes, (metric, title)) in enumerate(zip(grid, PANELS)):
    drawn = [(label, index) for index, (label, s) in enumerate(runs)
             if metric in s]
    lines = [_plot.Line(runs[index][1][metric].steps,
                        runs[index][1][metric].values, None,
                        _COLOURS[index % len(_COLOURS)])
             for _, index in drawn]
    artists = _plot.draw_lines(
        axes, lines, xlabel='step' if number >= 2 else '', ylabel=title,
        title=title,
        marker_size=0 if metric.startswith('train') else 3.5)
    for (label, index), artist in zip(drawn, artists):
      handles.setdefault(index, (label, artist))
    if not lines:
      axes.text(0.5, 0.5, f'no {metric} logged', transform=axes.transAxes,
                ha='center', va='center', color='#7f7f7f')
    if metric.endswith('accuracy'):
      axes.set_ylim(_accuracy_limits(lines))
  entries = [handles[index] for index in sorted(handles)]
  figure.legend([artist for _, artist in entries],
                [label for label, _ in entries], loc='outside upper center',
                ncols=max(1, min(len(entries), 6)), frameon=False)
  return figure


def _accuracy_limits(lines: Sequence[_plot.Line]) -> tuple[float, float]:
  """Tenths around the values, inside [0, 1]."""
  values = [v for line in lines for v in line.y if math.isfinite(v)]
  if not values:
    return 0.0, 1.0
  low = max(0.0, math.floor(min(values) * 10) / 10)
  high = min(1.0, math.ceil(max(values) * 10) / 10)
  if high - low < 0.1:
    low, high = max(0.0, high - 0.1), max(0.1, high)
  return low - 0.01, high + 0.01


def plot_runs(workdirs: Sequence[str], out: str, *,
              labels: Optional[Sequence[str]] = None,
              size: tuple[int, int] = (1200, 860)) -> None:
  """Reads the runs' metrics.jsonl and writes `curves_figure` to ``out``.

  Args:
    workdirs: the runs' workdirs.
    out: the PNG to write.
    labels: one legend entry per workdir (default: `default_labels`).
    size: width and height in pixels.

  Raises:
    FileNotFoundError: a workdir without metrics.jsonl (named).
    ValueError: ``out`` is not a .png, or ``labels`` does not match
      ``workdirs``, or a run logged none of :data:`PLOTTED`.
    ImportError: matplotlib is not installed.
  """
  if not os.fspath(out).lower().endswith('.png'):
    raise ValueError(f'out must name a .png file; got {out!r}')
  labels = default_labels(workdirs) if labels is None else list(labels)
  if len(labels) != len(workdirs):
    raise ValueError(f'labels: {len(labels)} given ({", ".join(labels)}) for '
                     f'{len(workdirs)} workdirs')
  runs = []
  for workdir, label in zip(workdirs, labels):
    series = read_series(workdir)
    if not any(metric in series for metric in PLOTTED):
      raise ValueError(
          f'{os.path.join(workdir, metric_writers.METRICS_FILE)} has none of '
          f'{", ".join(PLOTTED)} (logged: {", ".join(series) or "nothing"})')
    runs.append((label, series))
  _plot.save_png(curves_figure(runs, size=size), out)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command line (see the module docstring).

  Args:
    argv: arguments without the program name; ``sys.argv[1:]`` if None.

  Returns:
    0 on success. A bad argument (a workdir without metrics.jsonl, --out not
    a .png, --labels of another length) exits with 2 and says which;
    matplotlib not installed exits with 1 and says how to install it.
  """
  parser = argparse.ArgumentParser(
      prog='python -m train.plot',
      description='Train and test loss and accuracy against step for one or '
      'more training workdirs (their metrics.jsonl), overlaid, as a 2x2 PNG.')
  parser.add_argument('workdirs', nargs='+', metavar='WORKDIR',
                      help='a training workdir (with metrics.jsonl)')
  parser.add_argument('--out', required=True, help='the PNG file to write')
  parser.add_argument('--labels', default=None,
                      help='comma-separated legend labels, one per WORKDIR '
                      "(default: each WORKDIR's basename)")
  args = parser.parse_args(argv)
  if not args.out.lower().endswith('.png'):
    parser.error(f'--out must name a .png file; got {args.out!r}')
  if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
    parser.error(f'--out {args.out!r}: its directory does not exist')
  labels = None
  if args.labels is not None:
    labels = [label.strip() for label in args.labels.split(',')]
    if len(labels) != len(args.workdirs) or not all(labels):
      parser.error(f'--labels must give {len(args.workdirs)} non-empty '
                   f'comma-separated labels, one per WORKDIR; got '
                   f'{args.labels!r}')
  for workdir in args.workdirs:
    path = os.path.join(workdir, metric_writers.METRICS_FILE)
    if not os.path.isfile(path):
      parser.error(f'WORKDIR {workdir!r}: {path} does not exist')
  try:
    _plot.require_matplotlib('python -m train.plot')
  except ImportError as error:
    print(f'{parser.prog}: error: {error}', file=sys.stderr)
    return 1
  try:
    plot_runs(args.workdirs, args.out, labels=labels)
  except ValueError as error:
    parser.error(str(error))
  print(f'wrote {args.out}', flush=True)
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
