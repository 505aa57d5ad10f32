"""Tests for ``python -m msda_jax.analysis``: pixel-pair weight curves as PNG + tables."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import msda_jax
from msda_jax import analysis
from msda_jax._pair_weights import pair_weights

PIL_image = pytest.importorskip("PIL.Image")

SIZE = 8
SAMPLES = 256
NAMES = ("mixup", "cutmix", "hmix r=0.5")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  pytest.importorskip("matplotlib")
  out = tmp_path_factory.mktemp("analysis") / "pw.png"
  assert analysis.main(["--out", str(out), "--num_samples", str(SAMPLES),
                        "--size", str(SIZE), "--seed", "3",
                        "--methods", ",".join(NAMES)]) == 0
  return out


def test_cli_writes_png_json_and_markdown(written):
  # Catches: a table that is not the measured numbers (e.g. another seed or
  # an offset shift), a method dropped from the outputs.
  with PIL_image.open(written) as image:
    assert image.format == "PNG" and image.size == (980, 560)
    pixels = np.asarray(image.convert("RGB"))
  stem = os.path.splitext(str(written))[0]
  with open(stem + ".json") as f:
    record = json.load(f)
  assert record["size"] == SIZE and record["num_samples"] == SAMPLES
  assert record["offsets"] == list(range(SIZE))
  assert list(record["methods"]) == list(NAMES)
  direct = pair_weights(jax.random.key(3), analysis.build("cutmix"),
                        (SIZE, SIZE), offsets=range(SIZE), num_samples=SAMPLES)
  np.testing.assert_allclose(record["methods"]["cutmix"]["mean"], direct.mean,
                             atol=1e-6)
  np.testing.assert_allclose(record["methods"]["cutmix"]["stderr"],
                             direct.stderr, atol=1e-6)
  assert record["methods"]["hmix r=0.5"]["call"] == "hmix(r=0.5)"
  with open(stem + ".md") as f:
    table = f.read()
  rows = [l for l in table.splitlines() if l.startswith("| ")]
  assert rows[0].startswith("| method | call | d=0 | d=1 | d=2 | d=4 |")
  assert "d=8" not in rows[0]  # only offsets inside the 8x8 grid
  cutmix_row = next(r for r in rows if r.startswith("| cutmix |"))
  assert f"| {direct.mean[0]:.3f} | {direct.mean[1]:.3f} |" in cutmix_row
  # Every method's curve is drawn in its colour inside the axes (the legend,
  # right of them, is left out).
  left, right, top, bottom = analysis.MARGINS
  axes = pixels[top:pixels.shape[0] - bottom, left:pixels.shape[1] - right]
  for name in NAMES:
    colour = analysis._lookup(name).colour
    assert (axes == colour).all(axis=-1).sum() > 50, name


@pytest.mark.parametrize("args", [
    ["--num_samples", "1"],
    ["--num_samples", "ten"],
    ["--size", "1"],
    ["--methods", "mixup,nomix"],
    ["--methods", ","],
    ["--out", "x.jpg"],
    ["--bogus"],
])
def test_bad_arguments_are_usage_errors(tmp_path, args, capsys):
  # Catches a bad argument that runs anyway (a 1-sample "estimate", an
  # unknown method silently dropped) or that fails with a traceback.
  argv = ["--out", str(tmp_path / "x.png"), "--methods", "mixup", *args]
  with pytest.raises(SystemExit) as exit_info:
    analysis.main(argv)
  assert exit_info.value.code == 2
  assert "usage:" in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_a_missing_method_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
  # A method of the table whose factory is missing must stop the run with
  # its name, not be skipped. Catches a try/except that drops it.
  missing = analysis.Method("nomix", "msda_jax._nomix", "nomix", {}, (1, 2, 3))
  monkeypatch.setattr(analysis, "METHODS", analysis.METHODS + (missing,))
  with pytest.raises(LookupError, match="'nomix'.*msda_jax._nomix.nomix"):
    analysis.measure(["mixup", "nomix"], size=4, num_samples=4)
  pytest.importorskip("matplotlib")  # main checks for it first
  out = tmp_path / "x.png"
  assert analysis.main(["--out", str(out), "--size", "4", "--num_samples",
                        "4", "--methods", "mixup,nomix"]) == 1
  assert "'nomix'" in capsys.readouterr().err
  assert not os.listdir(tmp_path)  # nothing half-written


def test_figure_draws_the_measured_curves_with_the_legend_in_order():
  # Bugs: a line drawn with another method's data or colour, an x axis that
  # is not the offset, the legend out of the curves' order (the drawing
  # order is reversed so that Mixup ends on top), a method missing from it.
  pytest.importorskip("matplotlib")
  from matplotlib import colors  # pylint: disable=g-import-not-at-top
  offsets = np.stack([np.zeros(SIZE, np.int64), np.arange(SIZE)], axis=1)
  curves = {name: msda_jax.PairWeights(
      offsets, np.linspace(0.4, 0.1 * i, SIZE), np.full(SIZE, 1e-3), 64)
            for i, name in enumerate(NAMES)}  # distinct made-up curves
  fig = analysis.figure(curves, size=SIZE, num_samples=64)
  (axes,) = fig.axes
  lines = axes.get_lines()
  assert [l.get_label() for l in lines] == list(NAMES)
  for line, (name, w) in zip(lines, curves.items()):
    np.testing.assert_array_equal(line.get_xdata(), np.arange(SIZE))
    np.testing.assert_array_equal(line.get_ydata(), w.mean)
    np.testing.assert_allclose(
        colors.to_rgb(line.get_color()),
        np.asarray(analysis._lookup(name).colour) / 255, atol=1e-6)
  assert lines[0].get_zorder() > lines[1].get_zorder()  # Mixup on top
  legend = axes.get_legend()
  assert [t.get_text() for t in legend.get_texts()] == list(NAMES)
  assert "64 masks per method" in " ".join(t.get_text() for t in fig.texts)


def test_without_matplotlib_it_stops_before_measuring(tmp_path, monkeypatch,
                                                      capsys):
  # Bug: a minute of measuring, then a ModuleNotFoundError traceback (or a
  # message that does not say how to install it).
  monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails

  def refuse(*args, **kwargs):
    raise AssertionError("measured without matplotlib")

  monkeypatch.setattr(analysis, "measure", refuse)
  assert analysis.main(["--out", str(tmp_path / "x.png")]) == 1
  assert 'pip install -e ".[plot]"' in capsys.readouterr().err
  assert not os.listdir(tmp_path)


def test_the_table_has_every_method_and_each_builds():
  # The spec's list: every method, HMix at r = 0, 0.25, 0.5, 0.75, 1. Fails
  # (naming it) while a method's factory is missing from msda_jax.
  names = analysis.method_names()
  for name in ("mixup", "cutmix", "gmix", "fmix", "gridmix", "smoothmix",
               "resizemix"):
    assert name in names
  assert [n for n in names if n.startswith("hmix")] == [
      "hmix r=0", "hmix r=0.25", "hmix r=0.5", "hmix r=0.75", "hmix r=1"]
  assert len(set(names)) == len(names)
  colours = [analysis._lookup(n).colour for n in names]
  assert len(set(colours)) == len(colours)
  for name in names:
    assert isinstance(analysis.build(name), msda_jax.Mixer), name


def test_import_loads_neither_pil_nor_matplotlib():
  # Also the plotting modules: matplotlib is imported only to draw.
  code = ("import sys, msda_jax, msda_jax.analysis, msda_jax._plot, "
          "train.plot; print(sorted(m for m in ('PIL', 'matplotlib', "
          "'skimage') if m in sys.modules))")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], check=True, env=env,
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(analysis.__file__)))
  assert out.stdout.strip() == "[]"
