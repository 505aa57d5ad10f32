"""``python -m train.plot``: training curves of runs from their metrics.jsonl.

The runs are written by hand (the format of train/metric_writers.py). Each
test names the bug it is there to catch.
"""

import json
import os
import sys

import numpy as np
import pytest

from msda_jax import _plot
from train import metric_writers
from train import plot

# Run "a": train rows every 2 steps, evaluations at 3 and 6, a resumed
# segment that logs step 6 again (the last value wins), rows out of order.
_RUN_A = [
    {'step': 2, 'train_loss': 2.0, 'train_accuracy': 0.10,
     'learning_rate': 0.1},
    {'step': 3, 'test_loss': 1.9, 'test_accuracy': 0.20},
    {'step': 4, 'train_loss': 1.5, 'train_accuracy': 0.30,
     'learning_rate': 0.1},
    {'step': 6, 'train_loss': 1.2, 'train_accuracy': 0.40,
     'learning_rate': 0.05},
    {'step': 6, 'test_loss': 1.4, 'test_accuracy': 0.45},
    {'step': 6, 'test_loss': 1.3, 'test_accuracy': 0.50},  # resumed: wins
    {'step': 5, 'train_loss': 1.35, 'train_accuracy': 0.35},
]
# Run "b": two train rows, one evaluation.
_RUN_B = [
    {'step': 2, 'train_loss': 2.2, 'train_accuracy': 0.05},
    {'step': 4, 'train_loss': 1.8, 'train_accuracy': 0.15},
    {'step': 4, 'test_loss': 1.7, 'test_accuracy': 0.25},
]


def _write_run(directory, rows, tail=''):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, metric_writers.METRICS_FILE), 'w') as f:
    f.write(''.join(json.dumps(row) + '\n' for row in rows) + tail)
  return str(directory)


@pytest.fixture
def runs(tmp_path):
  return (_write_run(tmp_path / 'a', _RUN_A),
          _write_run(tmp_path / 'b', _RUN_B))


def matplotlib_rgb(colour):
  from matplotlib import colors  # pylint: disable=g-import-not-at-top
  return colors.to_rgb(colour)


@pytest.fixture
def matplotlib():
  return pytest.importorskip('matplotlib')


def test_read_series_separates_train_and_eval_rows_in_step_order(runs):
  # Bugs: eval steps mixed into train series (or the other way), rows kept
  # in file order instead of step order, the first value of a step logged
  # twice kept, a series' values not those of its steps.
  series = plot.read_series(runs[0])
  assert set(series) == {'train_loss', 'train_accuracy', 'learning_rate',
                         'test_loss', 'test_accuracy'}
  assert series['train_loss'].steps.tolist() == [2, 4, 5, 6]
  assert series['train_loss'].values.tolist() == [2.0, 1.5, 1.35, 1.2]
  assert series['train_accuracy'].values.tolist() == [0.1, 0.3, 0.35, 0.4]
  assert series['test_loss'].steps.tolist() == [3, 6]
  assert series['test_loss'].values.tolist() == [1.9, 1.3]
  assert series['test_accuracy'].values.tolist() == [0.2, 0.5]
  assert series['learning_rate'].steps.tolist() == [2, 4, 6]
  assert series['test_loss'].steps.dtype == np.int64


def test_read_series_skips_a_cut_short_last_line_only(tmp_path):
  # Bugs: plotting a run that is writing its next line fails; a broken line
  # in the middle of the file is silently skipped.
  live = _write_run(tmp_path / 'live', _RUN_B, tail='{"step": 6, "train_lo')
  assert plot.read_series(live)['train_loss'].steps.tolist() == [2, 4]
  broken = _write_run(tmp_path / 'broken', _RUN_B[:1])
  path = os.path.join(broken, metric_writers.METRICS_FILE)
  with open(path, 'a') as f:
    f.write('{"step": 4, "train_lo\n' + json.dumps(_RUN_B[1]) + '\n')
  with pytest.raises(ValueError, match=f'{path}, line 2: not JSON'):
    plot.read_series(broken)
  no_step = _write_run(tmp_path / 'no_step', [{'train_loss': 1.0}])
  with pytest.raises(ValueError, match='line 1: not a {"step": int'):
    plot.read_series(no_step)


def test_a_missing_metrics_file_names_the_path(tmp_path, capsys):
  # Bug: a bare traceback, or an error that does not say which file.
  path = os.path.join(str(tmp_path), metric_writers.METRICS_FILE)
  with pytest.raises(FileNotFoundError, match=path):
    plot.read_series(str(tmp_path))
  with pytest.raises(SystemExit) as exit_info:
    plot.main([str(tmp_path), '--out', str(tmp_path / 'x.png')])
  assert exit_info.value.code == 2
  assert path in capsys.readouterr().err
  assert not os.path.exists(tmp_path / 'x.png')


@pytest.mark.parametrize('args, message', [
    (['--out', 'curves.jpg'], "--out must name a .png file; got 'curves.jpg'"),
    (['--out', 'c.png', '--labels', 'only_one'], '--labels must give 2'),
    (['--out', 'c.png', '--labels', 'x,'], '--labels must give 2'),
    (['--out', os.path.join('no', 'such', 'dir', 'c.png')],
     'its directory does not exist'),
])
def test_bad_arguments_are_usage_errors(runs, tmp_path, monkeypatch, capsys,
                                        args, message):
  # Bugs: a JPEG written under a .png name, labels silently misassigned,
  # a traceback instead of a message naming the argument.
  monkeypatch.chdir(tmp_path)
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(SystemExit) as exit_info:
    plot.main([*runs, *args])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path)) == before


def test_without_matplotlib_the_error_says_how_to_install(runs, tmp_path,
                                                          monkeypatch, capsys):
  # Bug: a ModuleNotFoundError traceback that does not name the extra.
  monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import fails
  out = tmp_path / 'c.png'
  assert plot.main([*runs, '--out', str(out)]) == 1
  assert 'pip install -e ".[plot]"' in capsys.readouterr().err
  with pytest.raises(ImportError, match=r'pip install -e "\.\[plot\]"'):
    _plot.new_figure((100, 100))
  assert not out.exists()


def test_figure_plots_the_data_read_one_legend_entry_per_run(runs,
                                                             matplotlib):
  # Bugs: a panel showing another metric, a run's line missing or with
  # another run's data, one legend entry per line (8) instead of per run,
  # a run coloured differently from panel to panel.
  del matplotlib
  series = [plot.read_series(w) for w in runs]
  figure = plot.curves_figure(list(zip(['run a', 'run b'], series)))
  panels = figure.axes
  assert [a.get_title() for a in panels] == [t for _, t in plot.PANELS]
  colours = []
  for axes, (metric, _) in zip(panels, plot.PANELS):
    lines = axes.get_lines()
    assert len(lines) == 2, metric
    for line, run in zip(lines, series):
      np.testing.assert_array_equal(line.get_xdata(), run[metric].steps)
      np.testing.assert_array_equal(line.get_ydata(), run[metric].values)
    colours.append(tuple(line.get_color() for line in lines))
  assert len(set(colours)) == 1 and len(set(colours[0])) == 2
  (legend,) = figure.legends
  assert [t.get_text() for t in legend.get_texts()] == ['run a', 'run b']
  assert [h.get_color() for h in legend.legend_handles] == list(colours[0])


def test_a_run_without_evaluations_has_no_test_lines(runs, matplotlib):
  # Bug: a run without a metric breaks the figure, or takes another run's
  # colour in the panels it has.
  del matplotlib
  train_only = {k: v for k, v in plot.read_series(runs[1]).items()
                if k.startswith('train')}
  figure = plot.curves_figure([('b', train_only),
                               ('a', plot.read_series(runs[0]))])
  counts = [len(axes.get_lines()) for axes in figure.axes]
  assert counts == [2, 2, 1, 1]
  colour_a = figure.axes[0].get_lines()[1].get_color()
  assert figure.axes[0].get_lines()[0].get_color() != colour_a
  assert figure.axes[3].get_lines()[0].get_color() == colour_a
  (legend,) = figure.legends
  assert [t.get_text() for t in legend.get_texts()] == ['b', 'a']


def test_cli_writes_the_png_of_both_runs(runs, tmp_path, monkeypatch,
                                         matplotlib, capsys):
  # Bugs: an empty or blank image, another size, the labels not the
  # workdirs' basenames (or not --labels), a run not drawn.
  del matplotlib
  from PIL import Image  # pylint: disable=g-import-not-at-top
  saved = []
  save_png = _plot.save_png
  monkeypatch.setattr(_plot, 'save_png',
                      lambda figure, path: (saved.append(figure),
                                            save_png(figure, path)))
  out = tmp_path / 'curves.png'
  assert plot.main([*runs, '--out', str(out)]) == 0
  assert f'wrote {out}' in capsys.readouterr().out
  with Image.open(out) as image:
    assert image.format == 'PNG' and image.size == (1200, 860)
    pixels = np.asarray(image.convert('RGB')).reshape(-1, 3)
  assert len(np.unique(pixels, axis=0)) > 50  # not blank
  legend_colours = [h.get_color() for h in saved[0].legends[0].legend_handles]
  for colour in legend_colours:
    rgb = np.round(np.asarray(matplotlib_rgb(colour)) * 255).astype(int)
    assert np.all(pixels == rgb, axis=1).sum() > 200, colour
  assert [t.get_text() for t in saved[0].legends[0].get_texts()] == ['a', 'b']
  assert plot.main([*runs, '--out', str(out), '--labels', 'none, hmix']) == 0
  assert [t.get_text() for t in saved[1].legends[0].get_texts()] == [
      'none', 'hmix']


def test_default_labels_are_basenames_unless_they_collide():
  # Bug: two runs called "run" in different folders get the same label.
  assert plot.default_labels(['/x/none-seed0/', 'y/hmix']) == [
      'none-seed0', 'hmix']
  assert plot.default_labels(['/x/run', '/y/run']) == ['/x/run', '/y/run']


def test_a_run_without_any_plotted_metric_is_an_error(tmp_path):
  # Bug: an empty figure for a workdir that logged nothing plottable yet.
  run = _write_run(tmp_path / 'r', [{'step': 1, 'images_per_second': 9.0}])
  with pytest.raises(ValueError, match='has none of train_loss.*logged: '
                     'images_per_second'):
    plot.plot_runs([run], str(tmp_path / 'x.png'))
