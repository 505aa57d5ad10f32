"""The study command (train/study.py, configs/study.py) on the smoke preset.

Each test names the bug it is there to catch.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import msda_jax
import numpy as np
from PIL import Image
import pytest

from configs import study as study_config
from train import metric_writers
from train import study
from train import train as train_lib

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FIELDS = ('method', 'seed', 'config', 'final_test_accuracy',
           'best_test_accuracy', 'test_loss', 'test_ece', 'wall_seconds',
           'device')


def _smoke(**study_fields):
  config = study_config.get_config('smoke')
  config.study.update(study_fields)
  return config


def _refuse_training(*args, **kwargs):
  raise AssertionError(f'train_and_evaluate called: {args[1:]} {kwargs}')


def _lines(workdir):
  with open(os.path.join(workdir, study.RESULTS_FILE)) as f:
    return f.read().splitlines()


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  """A finished smoke study (none, hmix x seeds 0, 1) and its records."""
  workdir = str(tmp_path_factory.mktemp('study'))
  records = study.run_study(_smoke(), workdir, command='python -m test')
  return workdir, records


class _Preempted(BaseException):
  """A preemption: like Ctrl-C, not an Exception."""


def _copy(finished, tmp_path):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(finished[0], workdir)
  return workdir


def test_every_run_trains_its_method_and_seed_and_writes_one_result_line(
    finished):
  # Bugs: every run trains base's method or seed (the override is lost); a
  # record misses a field; best accuracy is not the max over the evaluations
  # or final is not the last one; a run is recorded twice.
  workdir, records = finished
  lines = [json.loads(line) for line in _lines(workdir)]
  assert [(r['method'], r['seed']) for r in lines] == [
      ('none', 0), ('none', 1), ('hmix', 0), ('hmix', 1)]
  assert lines == records
  base = study_config.get_config('smoke').base.to_dict()
  for record in lines:
    assert all(record.get(field) is not None for field in _FIELDS), record
    run_dir = os.path.join(workdir, 'runs',
                           f"{record['method']}-seed{record['seed']}")
    with open(os.path.join(run_dir, 'config.json')) as f:
      trained = json.load(f)  # Written by train_and_evaluate itself.
    assert trained['msda']['method'] == record['config']['msda']['method'] == (
        record['method'])
    assert trained['seed'] == record['config']['seed'] == record['seed']
    assert record['config']['num_epochs'] == base['num_epochs']
    assert record['config']['data']['train_examples'] == 64
    evals = [r for r in metric_writers.read_metrics(run_dir)
             if 'test_accuracy' in r]
    assert [r['step'] for r in evals] == [4, 8, 12] == [
        s for s, _ in study.accuracy_curve(run_dir)]
    assert record['step'] == 12
    assert record['final_test_accuracy'] == evals[-1]['test_accuracy']
    assert record['best_test_accuracy'] == max(
        r['test_accuracy'] for r in evals)
    assert record['test_loss'] == evals[-1]['test_loss']
    assert record['test_ece'] == evals[-1]['test_ece']
    assert 0 <= record['test_ece'] <= 1 and record['wall_seconds'] > 0
    assert set(record['device']) == {'kind', 'count', 'backend'}
    assert record['device']['count'] == 8
    assert os.path.exists(os.path.join(run_dir, study.MARKER_FILE))


def _table(markdown):
  """{method: cells} of the first table of results.md."""
  rows = {}
  for line in markdown.split('## Runs')[0].splitlines():
    cells = [c.strip() for c in line.strip('|').split('|')]
    if line.startswith('|') and cells[0] not in ('method', '---'):
      rows[cells[0]] = cells[1:]
  return rows


def test_results_md_has_mean_and_sample_std_per_method(finished):
  # Bugs: population std (n) instead of sample std (n - 1); a method's mean
  # taken over other methods' runs; a missing method row; a wrong scale.
  workdir, records = finished
  with open(os.path.join(workdir, study.TABLE_FILE)) as f:
    markdown = f.read()
  rows = _table(markdown)
  assert list(rows) == ['none', 'hmix']
  checked_spread = False
  for method, cells in rows.items():
    runs = [r for r in records if r['method'] == method]
    assert cells[0] == str(len(runs)) == '2'
    for cell, (field, scale, decimals) in zip(cells[1:], [
        ('final_test_accuracy', 100, 2), ('best_test_accuracy', 100, 2),
        ('test_loss', 1, 4), ('test_ece', 100, 2), ('wall_seconds', 1, 0)]):
      values = scale * np.array([r[field] for r in runs])
      expected = (f'{values.mean():.{decimals}f} ± '
                  f'{values.std(ddof=1):.{decimals}f}')
      assert cell == expected, (method, field)
      checked_spread |= f'{values.std(ddof=1):.4f}' != f'{values.std():.4f}'
  assert checked_spread  # Some column tells n - 1 from n.
  for record in records:
    assert f"| {record['run']} | {record['method']} | {record['seed']} |" in (
        markdown)
  assert 'synthetic, train_examples 64' in markdown
  assert 'cnn_small (width 8' in markdown
  assert 'batch 16, lr 0.05' in markdown and '3 epochs' in markdown
  assert '    python -m test' in markdown


def test_accuracy_png_is_a_png_with_a_line_colour_per_method(finished):
  # Bugs: an unreadable or empty image; runs not drawn; colours not by method.
  pytest.importorskip('matplotlib')
  workdir, _ = finished
  path = os.path.join(workdir, study.PLOT_FILE)
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    assert image.format == 'PNG' and image.size == (960, 600)
    pixels = np.asarray(image.convert('RGB')).reshape(-1, 3)
  methods = ('none', 'hmix')
  for method in methods:
    colour = study.method_colour(methods, method)
    # Lines and markers, not just the legend swatch.
    assert np.all(pixels == colour, axis=1).sum() > 300, method
  assert study.method_colour(methods, 'none') != study.method_colour(
      methods, 'hmix')


def test_accuracy_figure_draws_each_run_curve_one_legend_entry_per_method(
    finished):
  # Bugs: a run drawn with another run's curve or its method's colour
  # wrong; a legend entry per run (4) instead of per method, or in another
  # order than study.methods, or a wrong run count.
  pytest.importorskip('matplotlib')
  from matplotlib import colors  # pylint: disable=g-import-not-at-top
  workdir, records = finished
  curves = {r['run']: study.accuracy_curve(os.path.join(workdir, r['workdir']))
            for r in records}
  methods = ('none', 'hmix')
  figure = study.accuracy_figure(records, curves, methods=methods)
  (axes,) = figure.axes
  lines = axes.get_lines()
  assert len(lines) == len(records) == 4
  by_method = sorted(records, key=lambda r: methods.index(r['method']))
  for line, record in zip(lines, by_method):
    steps, accuracies = zip(*curves[record['run']])
    assert list(line.get_xdata()) == list(steps) == [4, 8, 12]
    assert list(line.get_ydata()) == list(accuracies)
    np.testing.assert_allclose(
        colors.to_rgb(line.get_color()),
        np.asarray(study.method_colour(methods, record['method'])) / 255,
        atol=1e-6)
  (legend,) = figure.legends
  assert [t.get_text() for t in legend.get_texts()] == [
      'none (2 runs)', 'hmix (2 runs)']


def test_without_matplotlib_the_study_skips_the_plot_and_says_so(
    finished, tmp_path, monkeypatch, caplog):
  # Bug: an hour-long study that fails (or silently draws nothing) because
  # the optional plotting extra is missing.
  workdir = _copy(finished, tmp_path)
  os.remove(os.path.join(workdir, study.PLOT_FILE))
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  monkeypatch.setattr(study._plot, 'available', lambda: False)
  monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import fails
  with caplog.at_level('WARNING'):
    study.run_study(_smoke(), workdir, command='python -m test')
  assert not os.path.exists(os.path.join(workdir, study.PLOT_FILE))
  assert os.path.exists(os.path.join(workdir, study.TABLE_FILE))
  assert 'pip install -e ".[plot]"' in caplog.text


def test_rerun_of_a_finished_study_trains_nothing(finished, tmp_path,
                                                  monkeypatch):
  # Bug: finished runs are not recognised and are trained (and recorded)
  # again.
  workdir = _copy(finished, tmp_path)
  before = _lines(workdir)
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  records = study.run_study(_smoke(), workdir, command='python -m test')
  assert _lines(workdir) == before
  assert records == finished[1]


def test_a_lost_result_line_is_restored_from_the_run_marker(
    finished, tmp_path, monkeypatch):
  # Bug: the marker in the run's workdir is ignored, so a run whose line was
  # lost (a crash between the two writes) is trained again.
  workdir = _copy(finished, tmp_path)
  lines = _lines(workdir)
  with open(os.path.join(workdir, study.RESULTS_FILE), 'w') as f:
    f.write('\n'.join(lines[:1] + lines[2:]) + '\n')
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  study.run_study(_smoke(), workdir, command='python -m test')
  assert sorted(_lines(workdir)) == sorted(lines)


def test_a_result_line_cut_short_by_a_crash_is_replaced_from_the_marker(
    finished, tmp_path, monkeypatch):
  # Bug: a crash while appending a line leaves results.jsonl unreadable, and
  # every later rerun fails (or appends onto the broken line).
  workdir = _copy(finished, tmp_path)
  lines = _lines(workdir)
  with open(os.path.join(workdir, study.RESULTS_FILE), 'w') as f:
    f.write('\n'.join(lines[:3]) + '\n' + lines[3][:40])
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  study.run_study(_smoke(), workdir, command='python -m test')
  assert _lines(workdir) == lines


def test_an_interrupted_study_trains_only_the_unfinished_run_from_its_checkpoint(
    finished, tmp_path, monkeypatch):
  # Bugs: a rerun trains finished runs again, or restarts the interrupted run
  # from step 0 (a fresh workdir), or loses the time of the interrupted part.
  real = train_lib.train_and_evaluate
  calls = []

  def preempted_at_step_8(config, workdir, **kwargs):
    calls.append(os.path.basename(workdir))
    if config.msda.method == 'hmix':
      real(config, workdir, halt_at_step=8)
      raise _Preempted()
    return real(config, workdir, **kwargs)

  config = _smoke(seeds=(1,))
  workdir = str(tmp_path / 'study')
  monkeypatch.setattr(train_lib, 'train_and_evaluate', preempted_at_step_8)
  with pytest.raises(_Preempted):
    study.run_study(config, workdir, command='python -m test')
  assert calls == ['none-seed1', 'hmix-seed1']
  assert [json.loads(line)['run'] for line in _lines(workdir)] == [
      'none-seed1']
  with open(os.path.join(workdir, study.TABLE_FILE)) as f:
    assert 'Not finished yet: hmix-seed1.' in f.read()

  durations = []

  def counting(config, workdir, **kwargs):
    calls.append(os.path.basename(workdir))
    start = time.time()
    result = real(config, workdir, **kwargs)
    durations.append(time.time() - start)
    return result

  calls.clear()
  monkeypatch.setattr(train_lib, 'train_and_evaluate', counting)
  records = study.run_study(config, workdir, command='python -m test')
  assert calls == ['hmix-seed1']
  hmix = records[1]
  assert hmix['run'] == 'hmix-seed1' and hmix['resumed'] is True
  run_dir = os.path.join(workdir, 'runs', 'hmix-seed1')
  train_steps = [r['step'] for r in metric_writers.read_metrics(run_dir)
                 if 'train_loss' in r]
  assert train_steps == [4, 8, 12]  # Steps 1-8 were not trained twice.
  uninterrupted = finished[1][3]
  assert uninterrupted['run'] == 'hmix-seed1'
  assert hmix['test_loss'] == uninterrupted['test_loss']  # Exact resume.
  assert hmix['final_test_accuracy'] == uninterrupted['final_test_accuracy']
  with open(os.path.join(run_dir, study._WALL_FILE)) as f:
    interrupted_seconds = float(f.read())
  assert interrupted_seconds > 0
  assert hmix['wall_seconds'] >= interrupted_seconds + durations[0]
  assert len(_lines(workdir)) == 2


def test_best_accuracy_is_the_max_over_evaluations_and_no_ece_is_a_dash(
    tmp_path, monkeypatch):
  # Bugs: "best" taken as the final (or the last line's) accuracy; a resumed
  # run's repeated evaluation lines counted twice in the curve; a result
  # without test_ece (an older train.py) crashing the study or shown as 0.
  def fake_training(config, workdir, **kwargs):
    del config, kwargs
    os.makedirs(workdir)
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      for step, accuracy in ((4, 0.5), (8, 0.9), (8, 0.9), (12, 0.7)):
        f.write(json.dumps(dict(step=step, train_loss=1.0)) + '\n')
        f.write(json.dumps(dict(step=step, test_accuracy=accuracy,
                                test_loss=2.0)) + '\n')
    return dict(step=12, test_accuracy=0.7, test_loss=2.0, wall_seconds=1.0)

  monkeypatch.setattr(train_lib, 'train_and_evaluate', fake_training)
  workdir = str(tmp_path)
  [record] = study.run_study(_smoke(methods=('none',), seeds=(0,)), workdir,
                             command='python -m test')
  assert (record['best_test_accuracy'], record['best_step']) == (0.9, 8)
  assert record['final_test_accuracy'] == 0.7 and record['test_ece'] is None
  assert study.accuracy_curve(os.path.join(workdir, 'runs', 'none-seed0')) == [
      (4, 0.5), (8, 0.9), (12, 0.7)]
  with open(os.path.join(workdir, study.TABLE_FILE)) as f:
    cells = _table(f.read())['none']
  assert cells[:4] == ['1', '70.00 ± –', '90.00 ± –', '2.0000 ± –']
  assert cells[4] == '–'  # No ECE.


def test_a_finished_run_of_another_protocol_is_refused_before_training(
    finished, tmp_path, monkeypatch):
  # Bug: a rerun with a changed base config silently mixes runs of two
  # protocols in one table.
  workdir = _copy(finished, tmp_path)
  config = _smoke()
  config.base.num_epochs = 4
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  with pytest.raises(ValueError, match=r'num_epochs: 3 -> 4'):
    study.run_study(config, workdir)
  # Nor may an unfinished run resume under another config.
  for run in ('none-seed0', 'none-seed1', 'hmix-seed0', 'hmix-seed1'):
    os.remove(os.path.join(workdir, 'runs', run, study.MARKER_FILE))
  os.remove(os.path.join(workdir, study.RESULTS_FILE))
  with pytest.raises(ValueError, match=r'config.json \(an unfinished run\).*'
                     r'num_epochs: 3 -> 4'):
    study.run_study(config, workdir)
  config = _smoke()
  config.base.data.num_workers = 3  # Does not change what is trained.
  config.base.progress_bar = True
  monkeypatch.setattr(train_lib, 'train_and_evaluate',
                      lambda *args, **kwargs: dict(
                          step=12, test_accuracy=0.5, test_loss=1.0))
  study.run_study(config, workdir, command='python -m test')


def test_unknown_method_is_refused_before_any_run_starts(tmp_path,
                                                         monkeypatch):
  # Bug: the method is only checked when its run starts, after the runs
  # before it have trained (or never, if it is last).
  monkeypatch.setattr(train_lib, 'train_and_evaluate', _refuse_training)
  with pytest.raises(ValueError, match=r"unknown or invalid method 'mixcut'.*"
                     r'method must be one of'):
    study.run_study(_smoke(methods=('none', 'mixcut')), str(tmp_path))
  with pytest.raises(ValueError, match='study.seeds lists 1 more than once'):
    study.run_study(_smoke(seeds=(1, 1)), str(tmp_path))
  with pytest.raises(ValueError, match='study.seeds is empty'):
    study.run_study(_smoke(seeds=()), str(tmp_path))
  assert not os.path.exists(tmp_path / study.RESULTS_FILE)


def test_unknown_preset_is_refused_naming_the_presets():
  # Bug: a typo in the preset silently runs the default protocol.
  with pytest.raises(ValueError, match=r"unknown study preset 'gpu2'.*"
                     r"'smoke', 'cpu', 'gpu'"):
    study_config.get_config('gpu2')


@pytest.mark.parametrize('preset', ['cpu', 'gpu'])
def test_full_presets_cover_every_method_with_two_seeds(preset):
  # Bugs: a preset that drops a method or a seed, builds a mixer that
  # msda_jax refuses (found an hour into the study), or a batch that does not
  # split over 8 devices.
  config = study_config.get_config(preset)
  assert config.study.methods == ('none', 'mixup', 'cutmix', 'hmix', 'gmix')
  assert len(config.study.seeds) >= 2
  study.check_study_config(config)
  for run in study.grid(config):
    run_config = study.run_config(config, run)
    assert (run_config.msda.method, run_config.seed) == (run.method, run.seed)
    msda_jax.from_config(dict(run_config.msda.to_dict(), num_classes=10))
  base = config.base
  assert base.data.name == 'image_folder' and base.data.train_examples > 0
  assert base.batch_size % 8 == 0 and base.eval_max_examples == 0
  if preset == 'gpu':
    assert (base.model.name, base.model.width, base.model.dtype,
            base.batch_size) == ('preact_resnet18', 64, 'bfloat16', 512)


def test_command_line_runs_the_smoke_study_with_tuple_overrides(tmp_path):
  # Bugs: the flags are not defined when run as a module; tuple overrides
  # from the command line are not applied; the command is not recorded.
  # ('hmix',) is not the preset's ('none', 'hmix'), and its steps are those
  # the `finished` study compiled (the run's cache is shared).
  workdir = str(tmp_path / 'cli')
  command = [
      sys.executable, '-m', 'train.study',
      '--config=configs/study.py:smoke', f'--workdir={workdir}',
      '--config.study.seeds=(3,)', "--config.study.methods=('hmix',)"
  ]
  # conftest.py exported XLA_FLAGS: the child sees the same 8 CPU devices.
  done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = [json.loads(line) for line in _lines(workdir)]
  assert [(r['method'], r['seed']) for r in lines] == [('hmix', 3)]
  assert re.search(r'^\| hmix \| 1 \| ', done.stdout, re.M), done.stdout
  with open(os.path.join(workdir, study.TABLE_FILE)) as f:
    assert "'--config.study.seeds=(3,)'" in f.read()
