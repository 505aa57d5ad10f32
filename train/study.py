r"""A study: every MSDA method x several seeds under one training protocol.

  python -m train.study --config=configs/study.py:smoke --workdir=/tmp/study
  python -m train.study --config=configs/study.py:cpu --workdir=/tmp/study_cpu \
      --config.study.seeds='(0,1,2)'

The config (configs/study.py) has ``study.methods``, ``study.seeds`` and
``base``, a full training config. Run ``(method, seed)`` is ``base`` with
``msda.method = method`` and ``seed = seed`` (``base.msda.method`` and
``base.seed`` are therefore ignored); it trains in-process, one run after
another, through `train.train.train_and_evaluate` in its own workdir
``WORKDIR/runs/<method>-seed<seed>/``.

Outputs, rewritten after every finished run:

* ``WORKDIR/results.jsonl``: one JSON line per finished run (method, seed,
  the run's full config, final and best test accuracy, test loss, test ECE,
  wall time, device, command);
* ``WORKDIR/results.md``: mean ± std per method, every run, the protocol and
  the command;
* ``WORKDIR/accuracy.png``: test accuracy over training steps, one line per
  run, coloured by method (matplotlib, the ``plot`` extra; without it the
  study logs a warning and skips the plot).

Resuming: running the same command again skips finished runs (those with a
line in results.jsonl, or with the marker ``study_result.json`` in their
workdir, from which a missing line is restored) and continues unfinished ones
from their newest checkpoint. Finished runs must have been trained with the
config the study would give them now (up to the fields in `_VOLATILE_FIELDS`);
otherwise the study stops before training anything and says which fields
differ, so that one results table never mixes protocols.

One process (one host, any number of local devices). The command line enables
JAX's persistent compilation cache in ``WORKDIR/jax_cache`` (unless one is
configured already), so the seeds of a method reuse its compiled programs.
"""

import collections
import dataclasses
import datetime
import json
import math
import os
import shlex
import sys
import time
from typing import Any, Iterable, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import msda_jax
from msda_jax import _plot
import numpy as np

from train import checkpoint
from train import metric_writers
from train import train as train_lib

__all__ = [
    'MARKER_FILE', 'PLOT_FILE', 'RESULTS_FILE', 'Run', 'TABLE_FILE',
    'accuracy_figure', 'check_study_config', 'grid', 'method_colour',
    'plot_accuracy', 'read_results', 'render_markdown', 'run_study',
    'summarize'
]

RESULTS_FILE = 'results.jsonl'
TABLE_FILE = 'results.md'
PLOT_FILE = 'accuracy.png'
RUNS_DIR = 'runs'
# Written into a run's workdir once it has finished: its results.jsonl record.
MARKER_FILE = 'study_result.json'
# Wall seconds of the run's earlier, interrupted training calls (one a line).
_WALL_FILE = 'study_wall_segments.txt'

# Config fields that may differ between a finished run and the study's config
# for it (they do not change what is trained): where the data is read from and
# how, and the progress bar.
_VOLATILE_FIELDS = ('progress_bar', 'data.data_dir', 'data.num_workers',
                    'data.cache_dir')

# Colours of the methods in the plot (matplotlib's tab10), in order of
# ``study.methods``.
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
            (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
            (188, 189, 34), (23, 190, 207))


@dataclasses.dataclass(frozen=True)
class Run:
  """One cell of the grid."""
  method: str
  seed: int

  @property
  def name(self) -> str:
    """The run's directory name under WORKDIR/runs/."""
    return f'{self.method}-seed{self.seed}'


def _seeds(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  seeds = config.study.seeds
  return (seeds,) if isinstance(seeds, int) else tuple(seeds)


def _methods(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  methods = config.study.methods
  return (methods,) if isinstance(methods, str) else tuple(methods)


def grid(config: ml_collections.ConfigDict) -> list[Run]:
  """The runs of the study, method by method, seed by seed."""
  return [Run(method, seed) for method in _methods(config)
          for seed in _seeds(config)]


def check_study_config(config: ml_collections.ConfigDict) -> None:
  """Validates ``study.methods`` and ``study.seeds`` before anything runs.

  Every method is built with ``msda_jax.from_config`` from the base
  ``msda`` fields, as the training loop will build it.

  Raises:
    ValueError: no methods or seeds, a repeated one, a seed that is not an
      integer, or a method that msda_jax does not accept (the message names
      it and the accepted ones).
  """
  methods, seeds = _methods(config), _seeds(config)
  if not methods:
    raise ValueError('study.methods is empty: give at least one method')
  if not seeds:
    raise ValueError('study.seeds is empty: give at least one seed')
  for what, values in (('methods', methods), ('seeds', seeds)):
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
      raise ValueError(f'study.{what} lists {", ".join(repeated)} more than '
                       'once')
  bad_seeds = [s for s in seeds
               if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
  if bad_seeds:
    raise ValueError(f'study.seeds must be integers; got {bad_seeds!r}')
  msda = config.base.msda.to_dict()
  for method in methods:
    if not isinstance(method, str):
      raise ValueError(f'study.methods must be method names; got {method!r}')
    try:
      msda_jax.from_config(dict(msda, method=method,
                                num_classes=msda.get('num_classes') or 10))
    except ValueError as error:
      raise ValueError(f'study.methods: unknown or invalid method {method!r} '
                       f'({error})') from None


def run_config(config: ml_collections.ConfigDict,
               run: Run) -> ml_collections.ConfigDict:
  """``config.base`` with the run's method and seed."""
  run_cfg = config.base.copy_and_resolve_references()
  run_cfg.msda.method = run.method
  run_cfg.seed = int(run.seed)
  return run_cfg


def _plain(config: ml_collections.ConfigDict) -> dict:
  """The config as JSON types (tuples become lists)."""
  return json.loads(json.dumps(config.to_dict(), default=str))


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(tree, dict):
    flat = {}
    for key, value in tree.items():
      flat.update(_flatten(value, f'{prefix}{key}.'))
    return flat
  return {prefix[:-1]: tree}


def _config_differences(recorded: dict, expected: dict) -> list[str]:
  """'field: recorded -> expected' for every field that differs."""
  old, new = _flatten(recorded), _flatten(expected)
  return [f'{k}: {old.get(k, "<absent>")!r} -> {new.get(k, "<absent>")!r}'
          for k in sorted(set(old) | set(new))
          if k not in _VOLATILE_FIELDS and old.get(k) != new.get(k)]


def _check_same_protocol(record: dict, expected: dict, where: str) -> None:
  differences = _config_differences(record['config'], expected)
  if differences:
    raise ValueError(
        f'{where} was trained with another config than the study gives it now '
        f'({"; ".join(differences[:8])}'
        f'{"; ..." if len(differences) > 8 else ""}). Use a new --workdir, or '
        'delete that run (its directory and its line in '
        f'{RESULTS_FILE}) to retrain it.')


def read_results(workdir: str) -> list[dict]:
  """The records of WORKDIR/results.jsonl (none if it does not exist).

  A last line cut short (a crash while appending) is ignored: the run's
  marker restores it.

  Raises:
    ValueError: an unreadable line before the last.
  """
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [line for line in f.read().split('\n') if line.strip()]
  records = []
  for number, line in enumerate(lines, 1):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as error:
      if number < len(lines):
        raise ValueError(f'{path}, line {number}: not a JSON record ({error})'
                         ) from None
      logging.warning('Ignoring the cut-short last line of %s.', path)
  return records


def _drop_cut_short_line(workdir: str) -> None:
  """Rewrites results.jsonl without a cut-short last line, if it has one."""
  path = os.path.join(workdir, RESULTS_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    text = f.read()
  records = read_results(workdir)
  lines = [line for line in text.split('\n') if line.strip()]
  if len(records) != len(lines) or (text and not text.endswith('\n')):
    _write_atomically(path, ''.join(json.dumps(r, sort_keys=True) + '\n'
                                    for r in records))


def _write_atomically(path: str, text: str) -> None:
  temporary = path + '.tmp'
  with open(temporary, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(temporary, path)


def _append_result(workdir: str, record: dict) -> None:
  with open(os.path.join(workdir, RESULTS_FILE), 'a') as f:
    f.write(json.dumps(record, sort_keys=True) + '\n')
    f.flush()
    os.fsync(f.fileno())


def _read_marker(run_dir: str) -> dict | None:
  path = os.path.join(run_dir, MARKER_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def accuracy_curve(run_dir: str) -> list[tuple[int, float]]:
  """(step, test accuracy) of every evaluation of a run, by step.

  A resumed run appends to metrics.jsonl, and a finished run started again
  evaluates once more; the last line of a step wins.
  """
  if not os.path.exists(os.path.join(run_dir, metric_writers.METRICS_FILE)):
    return []
  by_step = {}
  for record in metric_writers.read_metrics(run_dir):
    if 'test_accuracy' in record:
      by_step[int(record['step'])] = float(record['test_accuracy'])
  return sorted(by_step.items())


def _device() -> dict:
  return dict(kind=jax.devices()[0].device_kind, count=jax.device_count(),
              backend=jax.default_backend())


def _train_run(run: Run, run_cfg: ml_collections.ConfigDict, run_dir: str,
               command: str) -> dict:
  """Trains (or resumes) one run and returns its results.jsonl record."""
  resumed = os.path.isdir(os.path.join(run_dir, 'checkpoints')) and bool(
      os.listdir(os.path.join(run_dir, 'checkpoints')))
  wall_path = os.path.join(run_dir, _WALL_FILE)
  earlier = []
  if os.path.exists(wall_path):
    with open(wall_path) as f:
      earlier = [float(line) for line in f if line.strip()]
  start = time.time()
  try:
    # Looked up at call time (tests replace it).
    result = train_lib.train_and_evaluate(run_cfg, run_dir)
  except BaseException:
    # Interrupted (an error, Ctrl-C, a preemption signal): keep the time spent
    # so that the finished run reports the wall time of all its segments.
    os.makedirs(run_dir, exist_ok=True)
    with open(wall_path, 'a') as f:
      f.write(f'{time.time() - start:.3f}\n')
    raise
  wall = time.time() - start
  curve = accuracy_curve(run_dir)
  best_step, best = max(curve, key=lambda point: point[1], default=(
      result['step'], result['test_accuracy']))
  ece = result.get('test_ece')
  return dict(
      method=run.method, seed=int(run.seed), run=run.name,
      workdir=os.path.join(RUNS_DIR, run.name), config=_plain(run_cfg),
      step=int(result['step']),
      final_test_accuracy=float(result['test_accuracy']),
      best_test_accuracy=max(float(best), float(result['test_accuracy'])),
      best_step=int(best_step), test_loss=float(result['test_loss']),
      test_ece=None if ece is None else float(ece),
      wall_seconds=wall + sum(earlier), resumed=resumed,
      device=_device(), command=command,
      finished=datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'))


def run_study(config: ml_collections.ConfigDict, workdir: str, *,
              command: str | None = None) -> list[dict]:
  """Runs every unfinished run of the grid and writes the study's outputs.

  Args:
    config: a config of configs/study.py (``study`` and ``base``).
    workdir: the study directory (created if missing).
    command: the command line shown in results.md (default: this process's).

  Returns:
    The results.jsonl records of the grid's runs, in grid order.

  Raises:
    ValueError: bad ``study.methods`` / ``study.seeds`` (see
      `check_study_config`), or a finished run trained with another config;
      both before any run starts.
  """
  check_study_config(config)
  if command is None:
    command = shlex.join([os.path.basename(sys.executable)] + sys.argv)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(os.path.join(workdir, RUNS_DIR), exist_ok=True)
  runs = grid(config)
  configs = {run: run_config(config, run) for run in runs}

  # Everything that could refuse the study is checked before training starts.
  _drop_cut_short_line(workdir)
  finished = {}
  for record in read_results(workdir):
    finished[(record['method'], record['seed'])] = record
  restored = []
  for run in runs:
    record = finished.get((run.method, run.seed))
    where = f'{os.path.join(workdir, RESULTS_FILE)} ({run.name})'
    if record is None:
      record = _read_marker(os.path.join(workdir, RUNS_DIR, run.name))
      where = os.path.join(workdir, RUNS_DIR, run.name, MARKER_FILE)
      if record is not None:
        restored.append(record)
    if record is not None:
      _check_same_protocol(record, _plain(configs[run]), where)
      finished[(run.method, run.seed)] = record
      continue
    # An unfinished run would resume from its checkpoint under the new config.
    started = os.path.join(workdir, RUNS_DIR, run.name, 'config.json')
    if os.path.exists(started):
      with open(started) as f:
        _check_same_protocol(dict(config=json.load(f)), _plain(configs[run]),
                             f'{started} (an unfinished run)')
  for record in restored:
    logging.info('Restoring the result line of %s from its marker.',
                 record['run'])
    _append_result(workdir, record)

  todo = [run for run in runs if (run.method, run.seed) not in finished]
  if not _plot.available():
    logging.warning('matplotlib is not installed: %s is not drawn (results.md '
                    'and results.jsonl are). To draw it: %s', PLOT_FILE,
                    _plot.INSTALL_HINT)
  logging.info('Study: %d runs, %d finished, %d to train.', len(runs),
               len(runs) - len(todo), len(todo))
  _write_outputs(config, workdir, command)
  for index, run in enumerate(todo):
    logging.info('Run %s (%d of %d to train).', run.name, index + 1,
                 len(todo))
    run_dir = os.path.join(workdir, RUNS_DIR, run.name)
    record = _train_run(run, configs[run], run_dir, command)
    _write_atomically(os.path.join(run_dir, MARKER_FILE),
                      json.dumps(record, indent=2, sort_keys=True))
    _append_result(workdir, record)
    finished[(run.method, run.seed)] = record
    logging.info('Finished %s: test accuracy %.4f (best %.4f), %.0f s.',
                 run.name, record['final_test_accuracy'],
                 record['best_test_accuracy'], record['wall_seconds'])
    _write_outputs(config, workdir, command)
  return [finished[(run.method, run.seed)] for run in runs]


def _grid_records(config: ml_collections.ConfigDict,
                  workdir: str) -> list[dict]:
  """The finished runs of the grid, in grid order (one record per run)."""
  latest = {(r['method'], r['seed']): r for r in read_results(workdir)}
  return [latest[(run.method, run.seed)] for run in grid(config)
          if (run.method, run.seed) in latest]


def _write_outputs(config: ml_collections.ConfigDict, workdir: str,
                   command: str) -> None:
  records = _grid_records(config, workdir)
  _write_atomically(os.path.join(workdir, TABLE_FILE),
                    render_markdown(config, records, command))
  if not _plot.available():
    return  # run_study has said so.
  curves = {r['run']: accuracy_curve(os.path.join(workdir, r['workdir']))
            for r in records}
  plot_accuracy(os.path.join(workdir, PLOT_FILE), records, curves,
                methods=_methods(config))


# -- Summary table -----------------------------------------------------------

# (record field, column title, scale, decimals) of the per-method table.
SUMMARY_COLUMNS = (
    ('final_test_accuracy', 'final test acc (%)', 100.0, 2),
    ('best_test_accuracy', 'best test acc (%)', 100.0, 2),
    ('test_loss', 'test loss', 1.0, 4),
    ('test_ece', 'test ECE (%)', 100.0, 2),
    ('wall_seconds', 'wall time (s)', 1.0, 0),
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (n - 1; nan for one value)."""
  values = np.asarray(values, np.float64)
  std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
  return float(values.mean()), std


def summarize(records: Iterable[dict],
              methods: Sequence[str]) -> dict[str, dict[str, Any]]:
  """Per method: the seeds, and (mean, std) of every summary column.

  A column some runs lack (``test_ece`` of an older train.py) is summarised
  over the runs that have it; None when none has it.
  """
  by_method = collections.defaultdict(list)
  for record in records:
    by_method[record['method']].append(record)
  summary = {}
  for method in methods:
    runs = by_method.get(method, [])
    if not runs:
      continue
    row = dict(seeds=[r['seed'] for r in runs])
    for field, _, scale, _ in SUMMARY_COLUMNS:
      values = [scale * r[field] for r in runs if r.get(field) is not None]
      row[field] = mean_std(values) if values else None
    summary[method] = row
  return summary


def format_mean_std(stats: tuple[float, float] | None, decimals: int) -> str:
  """'m ± s', 'm ± –' for one run, '–' without values."""
  if stats is None:
    return '–'
  mean, std = stats
  spread = '–' if math.isnan(std) else f'{std:.{decimals}f}'
  return f'{mean:.{decimals}f} ± {spread}'


def _format(value: float | None, scale: float, decimals: int) -> str:
  return '–' if value is None else f'{scale * value:.{decimals}f}'


def _alpha_text(alpha) -> str:
  return "each method's default" if alpha is None else str(alpha)


def _protocol(base: ml_collections.ConfigDict) -> list[str]:
  data, model = base.data, base.model
  dataset = data.name + (f' ({data.data_dir})' if data.data_dir else '')
  subset = data.get('train_examples', 0)
  if base.total_steps:
    length = f'{base.total_steps} steps'
  else:
    length = f'{base.num_epochs} epochs'
  evaluation = (f'{base.eval_max_examples} test images (evenly spread)'
                if base.eval_max_examples else 'the whole test split')
  msda = base.msda
  return [
      f'- dataset: {dataset}, train_examples '
      f'{subset if subset else "all"}'
      f'{" (class-balanced subset)" if subset else ""}, augment '
      f'{data.augment}, {data.image_size}×{data.image_size}×{data.channels}',
      f'- model: {model.name} (width {model.width}, conv {model.conv}, '
      f'{model.dtype})',
      f'- training: {length}, batch {base.batch_size}, lr '
      f'{base.learning_rate} ({base.optimizer}, momentum {base.momentum}, '
      f'nesterov {base.nesterov}, weight decay {base.weight_decay}, '
      f'{base.lr_schedule} schedule, warm-up {base.warmup_epochs} epochs)',
      f'- mixing: alpha {_alpha_text(msda.alpha)}, r {msda.r}, mode '
      f'{msda.mode}, prob '
      f'{msda.prob}, partner {msda.partner}, label smoothing '
      f'{msda.label_smoothing}',
      f'- evaluation: every {base.eval_every_epochs} epochs on {evaluation}',
  ]


def render_markdown(config: ml_collections.ConfigDict, records: list[dict],
                    command: str) -> str:
  """results.md: per-method mean ± std, every run, protocol and command."""
  methods = _methods(config)
  summary = summarize(records, methods)
  lines = ['# MSDA study', '',
           f'{len(records)} of {len(grid(config))} runs finished '
           f'(methods {", ".join(methods)}; seeds '
           f'{", ".join(map(str, _seeds(config)))}).', '']
  header = ['method', 'seeds'] + [title for _, title, _, _ in SUMMARY_COLUMNS]
  lines += ['| ' + ' | '.join(header) + ' |',
            '|' + '---|' * len(header)]
  for method, row in summary.items():
    cells = [method, str(len(row['seeds']))]
    cells += [format_mean_std(row[field], decimals)
              for field, _, _, decimals in SUMMARY_COLUMNS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += [
      '',
      'Mean ± sample standard deviation (n − 1) over the seeds that finished. '
      '"final" is the evaluation at the last step, "best" the highest of the '
      "run's evaluations (chosen on the test set, so optimistic); test loss "
      'and ECE (expected calibration error, 15 equal-width confidence bins) '
      'are final. Wall time: the training calls of the run (data loading, '
      'compiling, training, evaluating, checkpoints).', '',
      '## Runs', '',
      '| run | method | seed | steps | final test acc (%) | best test acc '
      '(%) @ step | test loss | test ECE (%) | wall time (s) | device |',
      '|---|---|---|---|---|---|---|---|---|---|']
  for r in records:
    device = r['device']
    resumed = ' (resumed)' if r.get('resumed') else ''
    lines.append(
        f"| {r['run']} | {r['method']} | {r['seed']} | {r['step']} | "
        f"{_format(r['final_test_accuracy'], 100, 2)} | "
        f"{_format(r['best_test_accuracy'], 100, 2)} @ {r['best_step']} | "
        f"{_format(r['test_loss'], 1, 4)} | "
        f"{_format(r.get('test_ece'), 100, 2)} | "
        f"{r['wall_seconds']:.0f}{resumed} | "
        f"{device['kind']} ×{device['count']} ({device['backend']}) |")
  finished = {(r['method'], r['seed']) for r in records}
  missing = [run.name for run in grid(config)
             if (run.method, run.seed) not in finished]
  if missing:
    lines += ['', f'Not finished yet: {", ".join(missing)}.']
  lines += ['', '## Protocol', ''] + _protocol(config.base)
  lines += ['', 'Every run is this config with `msda.method` and `seed` set '
            'by the study; `results.jsonl` holds each run\'s full config.', '',
            '## Command', '', '    ' + command, '']
  return '\n'.join(lines)


# -- Plot --------------------------------------------------------------------


def method_colour(methods: Sequence[str], method: str) -> tuple[int, int, int]:
  """The plot colour of ``method`` (by its position in ``methods``)."""
  index = list(methods).index(method) if method in methods else len(methods)
  return _COLOURS[index % len(_COLOURS)]


def accuracy_figure(records: list[dict],
                    curves: dict[str, list[tuple[int, float]]], *,
                    methods: Sequence[str],
                    size: tuple[int, int] = (960, 600)):
  """Test accuracy against step, one line per run, as a matplotlib Figure.

  Args:
    records: results.jsonl records (their ``run`` names key ``curves``).
    curves: (step, accuracy) points of each run.
    methods: the study's methods, which fix the colours and legend order.
    size: width and height in pixels.

  Returns:
    A ``matplotlib.figure.Figure`` (not saved): one axes, a line per run in
    its method's colour, a legend entry per method shown, ``'<method> (<n>
    runs)'``.

  Raises:
    ImportError: matplotlib is not installed (the message says how to
      install it).
  """
  figure = _plot.new_figure(size, layout='constrained')
  axes = figure.add_subplot()
  shown = [m for m in methods if any(r['method'] == m for r in records)]
  shown += sorted({r['method'] for r in records} - set(shown))
  lines, labelled = [], set()
  for method in shown:
    runs = [r for r in records if r['method'] == method]
    for record in runs:
      points = curves.get(record['run'], [])
      label = None
      if method not in labelled:
        labelled.add(method)
        label = f'{method} ({len(runs)} run{"s" * (len(runs) != 1)})'
      lines.append(_plot.Line([s for s, _ in points], [a for _, a in points],
                              label, method_colour(methods, method)))
  _plot.draw_lines(axes, lines, xlabel='step', ylabel='test accuracy',
                   title='Test accuracy during training', marker_size=4.5,
                   line_width=2.0)
  if not records:
    axes.text(0.5, 0.5, 'no finished runs yet', transform=axes.transAxes,
              ha='center', va='center', color='#7f7f7f')
  axes.set_xlim(left=0)
  if lines:
    figure.legend(loc='outside right upper', frameon=False)
  return figure


def plot_accuracy(path: str, records: list[dict],
                  curves: dict[str, list[tuple[int, float]]], *,
                  methods: Sequence[str], size: tuple[int, int] = (960, 600)
                  ) -> None:
  """Writes `accuracy_figure` to ``path`` as a PNG of ``size`` pixels.

  Raises:
    ImportError: matplotlib is not installed.
  """
  _plot.save_png(accuracy_figure(records, curves, methods=methods, size=size),
                 path)


# -- Command line ------------------------------------------------------------

_FLAGS = {}


def _define_flags() -> None:
  """The command-line flags (only when run as a program, so that importing
  this module next to train.main does not define --config twice)."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  _FLAGS['config'] = config_flags.DEFINE_config_file(
      'config', None, 'Path to configs/study.py, optionally with ":PRESET" '
      '(smoke, cpu, gpu).', lock_config=True)
  _FLAGS['workdir'] = flags.DEFINE_string(
      'workdir', None, 'Study directory: runs/, results.jsonl, results.md, '
      'accuracy.png.')
  flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(checkpoint.QuietOrbaxInfo())
  workdir = os.path.abspath(os.path.expanduser(_FLAGS['workdir'].value))
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update('jax_compilation_cache_dir',
                      os.path.join(workdir, 'jax_cache'))
  command = shlex.join(['python', '-m', 'train.study'] + sys.argv[1:])
  run_study(_FLAGS['config'].value, workdir, command=command)
  with open(os.path.join(workdir, TABLE_FILE)) as f:
    table = f.read().split('\n## Runs')[0]
  files = [TABLE_FILE, RESULTS_FILE] + [PLOT_FILE] * _plot.available()
  print(table.rstrip() + f'\n\nFull results: {workdir}/{", ".join(files)}',
        flush=True)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
