"""The paper's pixel-pair regulariser weight for every method, as a picture.

Run it as a script::

  python -m msda_jax.analysis --out docs/pair_weights.png \\
      [--num_samples 65536] [--size 32] [--seed 0] [--methods mixup,cutmix]

For each method of :data:`METHODS` (its factory's defaults, HMix at several
``r``) it estimates ``E[(1 - M_k)(1 - M_l)]`` for horizontal offsets
``l - k = 0 .. size - 1`` on a ``size x size`` grid with
:func:`msda_jax.pair_weights` (Monte Carlo under jit, with standard errors),
draws the curves as a PNG and writes the numbers next to it: ``<out>.json``
(every curve with its standard errors) and ``<out>.md`` (a table at the
spec's offsets 0, 1, 2, 4, 8, 16, 24).

Park, Yun & Chun ("A Unified Analysis of Mixed Sample Data Augmentation: A
Loss Function Perspective", NeurIPS 2022) show that any MSDA is the clean loss
plus a pixel-level regulariser whose weight for a pixel pair is this
expectation: flat in distance for Mixup (a global input-gradient penalty),
decaying for CutMix (a local one).

The PNG is drawn with matplotlib (the ``plot`` extra: ``pip install -e
".[plot]"``), imported inside :func:`figure`, so ``import msda_jax`` never
loads it; without it the command stops before measuring, saying so. A
method of the table whose factory this msda_jax lacks is an error naming
it, never skipped.

Example:
  >>> from msda_jax import analysis
  >>> curves = analysis.measure(['mixup', 'cutmix'], size=8, num_samples=256)
  >>> curves['cutmix'].mean.shape
  (8,)
  >>> bool(curves['cutmix'].mean[7] < curves['cutmix'].mean[0])
  True
"""

import argparse
import importlib
import json
import os
import sys
from typing import NamedTuple, Optional, Sequence

import jax
import numpy as np

from msda_jax import _plot
from msda_jax._pair_weights import PairWeights, pair_weights

__all__ = [
    "Method", "METHODS", "TABLE_OFFSETS", "DEFAULT_NUM_SAMPLES", "MARGINS",
    "method_names", "build", "measure", "write_tables", "figure", "plot",
    "main",
]


class Method(NamedTuple):
  """One curve: a factory ``module.factory(**options)`` returning a Mixer."""

  name: str
  module: str
  factory: str
  options: dict
  colour: tuple


# One line per curve. The factories' own defaults apply (λ ~ U(0, 1) for the
# paper's four; GridMix λ ~ U(0.1, 0.9); ResizeMix ignores λ). GridMix's
# default 20 holes make 2-pixel cells at 32x32, whose 1-pixel holes do not
# depend on λ: the n_holes=4 line shows a grid that 32 pixels resolve.
METHODS = (
    Method("mixup", "msda_jax._methods", "mixup", {}, (0, 0, 0)),
    Method("cutmix", "msda_jax._methods", "cutmix", {}, (214, 39, 40)),
    Method("hmix r=0", "msda_jax._methods", "hmix", {"r": 0.0}, (198, 219, 239)),
    Method("hmix r=0.25", "msda_jax._methods", "hmix", {"r": 0.25}, (158, 202, 225)),
    Method("hmix r=0.5", "msda_jax._methods", "hmix", {"r": 0.5}, (107, 174, 214)),
    Method("hmix r=0.75", "msda_jax._methods", "hmix", {"r": 0.75}, (49, 130, 189)),
    Method("hmix r=1", "msda_jax._methods", "hmix", {"r": 1.0}, (8, 81, 156)),
    Method("gmix", "msda_jax._methods", "gmix", {}, (44, 160, 44)),
    Method("fmix", "msda_jax._fmix", "fmix", {}, (255, 127, 14)),
    Method("gridmix", "msda_jax._gridmix", "gridmix", {}, (148, 103, 189)),
    Method("gridmix n_holes=4", "msda_jax._gridmix", "gridmix", {"n_holes": 4}, (188, 189, 34)),
    Method("smoothmix", "msda_jax._smoothmix", "smoothmix", {}, (227, 119, 194)),
    Method("resizemix", "msda_jax._resizemix", "resizemix", {}, (140, 86, 75)),
)
TABLE_OFFSETS = (0, 1, 2, 4, 8, 16, 24)  # the spec's table (Part 1)
DEFAULT_NUM_SAMPLES = 1 << 16  # standard errors <= ~0.0016 at 32 x 32
# The plot's margins in pixels (left, right: the legend, top, bottom).
MARGINS = (70, 200, 58, 56)


def method_names() -> list[str]:
  """The names of :data:`METHODS`, in order.

  Example:
    >>> method_names()[:3]
    ['mixup', 'cutmix', 'hmix r=0']
  """
  return [m.name for m in METHODS]


def _lookup(name: str) -> Method:
  for method in METHODS:
    if method.name == name:
      return method
  raise ValueError(f"unknown method {name!r}; accepted: {method_names()}")


def build(name: str):
  """The Mixer of the method called ``name`` in :data:`METHODS`.

  Raises:
    ValueError: ``name`` is not in :data:`METHODS`.
    LookupError: this msda_jax lacks the method's factory (the message
      names the method and the factory).

  Example:
    >>> build('hmix r=0.25').name
    'hmix(alpha=1, prob=1, r=0.25)'
  """
  method = _lookup(name)
  where = f"{method.module}.{method.factory}"
  try:
    factory = getattr(importlib.import_module(method.module), method.factory)
  except (ImportError, AttributeError) as error:
    raise LookupError(
        f"method {method.name!r} needs {where}, which this msda_jax does not "
        f"have ({error}); drop it with --methods or add the factory") from None
  return factory(**method.options)


def measure(names: Optional[Sequence[str]] = None, *, size: int = 32,
            num_samples: int = DEFAULT_NUM_SAMPLES,
            seed: int = 0) -> dict[str, PairWeights]:
  """Pixel-pair weights by horizontal offset ``0 .. size - 1``, per method.

  Every method is built first (so a missing one fails before any work),
  then measured with :func:`msda_jax.pair_weights` and the same key.

  Args:
    names: names from :data:`METHODS`; all of them if None.
    size: the grid is ``size x size``.
    num_samples: masks per method.
    seed: seed of the PRNG key.

  Returns:
    ``{name: PairWeights}`` in the order of ``names``.

  Example:
    >>> w = measure(['mixup'], size=4, num_samples=64)['mixup']
    >>> w.offsets[:, 1].tolist()
    [0, 1, 2, 3]
  """
  names = method_names() if names is None else list(names)
  mixers = {name: build(name) for name in names}
  key = jax.random.key(seed)
  offsets = list(range(size))
  return {name: pair_weights(key, mixer, (size, size), offsets=offsets,
                             num_samples=num_samples)
          for name, mixer in mixers.items()}


def _call(name: str) -> str:
  method = _lookup(name)
  options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}"
                      for k, v in method.options.items())
  return f"{method.factory}({options})"


def write_tables(stem: str, curves: dict[str, PairWeights], *, size: int,
                 num_samples: int, seed: int) -> tuple[str, str]:
  """Writes ``stem.json`` (every curve) and ``stem.md`` (the spec's offsets).

  Returns:
    The two paths.
  """
  json_path, md_path = f"{stem}.json", f"{stem}.md"
  record = {
      "quantity": "E[(1 - M_k)(1 - M_l)], l - k = (0, offset)",
      "size": size, "num_samples": num_samples, "seed": seed,
      "offsets": list(range(size)),
      "methods": {name: {"call": _call(name),
                         "mean": [round(float(v), 6) for v in w.mean],
                         "stderr": [round(float(v), 6) for v in w.stderr]}
                  for name, w in curves.items()},
  }
  with open(json_path, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  shown = [d for d in TABLE_OFFSETS if d < size]
  lines = [
      f"Pixel-pair weight E[(1 - M_k)(1 - M_l)] at horizontal offset d, "
      f"{size}x{size}, {num_samples} masks per method (seed {seed}); made by "
      f"`python -m msda_jax.analysis --size {size} --num_samples "
      f"{num_samples} --seed {seed}`. Each factory's defaults.",
      "",
      "| method | call | " + " | ".join(f"d={d}" for d in shown)
      + " | max std. error |",
      "|---|---|" + "---|" * len(shown) + "---|",
  ]
  for name, w in curves.items():
    lines.append(f"| {name} | `{_call(name)}` | "
                 + " | ".join(f"{w.mean[d]:.3f}" for d in shown)
                 + f" | {w.stderr.max():.4f} |")
  with open(md_path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return json_path, md_path


def figure(curves: dict[str, PairWeights], *, size: int, num_samples: int,
           image_size: tuple[int, int] = (980, 560)):
  """The curves against the offset, as a matplotlib ``Figure`` (not saved).

  One line per method in its :data:`METHODS` colour, the first method on
  top (Mixup over HMix r=0, which is the same curve); the legend, in the
  order of ``curves``, right of the axes.

  Args:
    curves: ``{name: PairWeights}`` with names from :data:`METHODS`.
    size: the grid side (the x axis runs over ``0 .. size - 1``).
    num_samples: masks per method (for the caption).
    image_size: width and height in pixels; the axes leave :data:`MARGINS`.

  Raises:
    ImportError: matplotlib is not installed (the message says how to
      install it).
  """
  width, height = image_size
  left, right, top, bottom = MARGINS
  fig = _plot.new_figure(image_size)
  fig.subplots_adjust(left=left / width, right=1 - right / width,
                      top=1 - top / height, bottom=bottom / height)
  axes = fig.add_subplot()
  lines = [_plot.Line(w.offsets[:, -1], w.mean, name, _lookup(name).colour)
           for name, w in curves.items()]
  _plot.draw_lines(axes, lines, xlabel="offset l - k (pixels, same row)",
                   ylabel="E[(1 - M_k)(1 - M_l)]", marker_size=3.5)
  peak = max(float(w.mean.max()) for w in curves.values())
  axes.set_xlim(-0.02 * max(size - 1, 1), max(size - 1, 1) * 1.02)
  axes.set_ylim(0, max(0.1, float(np.ceil(peak * 10 + 1e-9)) / 10))
  axes.xaxis.set_major_locator(_integer_locator())
  worst = max(float(w.stderr.max()) for w in curves.values())
  fig.text(left / width, 1 - 10 / height,
           "Pixel-pair regulariser weight E[(1 - M_k)(1 - M_l)] vs horizontal "
           f"offset, {size}x{size}", ha="left", va="top", fontsize=12)
  fig.text(left / width, 1 - 32 / height,
           f"{num_samples} masks per method; standard errors <= {worst:.4f}. "
           "Flat: global (Mixup); decaying: local (CutMix).", ha="left",
           va="top", fontsize=9.5, color="#464646")
  axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
              fontsize=9.5, borderaxespad=0.0)
  return fig


def _integer_locator():
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  return MaxNLocator(nbins=9, integer=True)


def plot(path: str, curves: dict[str, PairWeights], *, size: int,
         num_samples: int, image_size: tuple[int, int] = (980, 560)) -> None:
  """Draws :func:`figure` to ``path`` as a PNG of ``image_size`` pixels.

  Raises:
    ImportError: matplotlib is not installed.
    ValueError: ``path`` is not a ``.png``.
  """
  _plot.save_png(figure(curves, size=size, num_samples=num_samples,
                        image_size=image_size), path)


def _positive(minimum: int):
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
    return value
  return parse


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command line: measures, plots and tabulates the curves.

  Args:
    argv: arguments without the program name; ``sys.argv[1:]`` if None.

  Returns:
    0 on success (the process exit status). A usage error exits with 2; a
    method of the table that this msda_jax lacks, or a missing matplotlib,
    exits with 1 and says so.
  """
  parser = argparse.ArgumentParser(
      prog="python -m msda_jax.analysis",
      description="Plot the paper's pixel-pair regulariser weight "
      "E[(1 - M_k)(1 - M_l)] against the horizontal offset for every "
      "msda_jax method, and write the numbers next to the PNG "
      "(<out>.json, <out>.md).")
  parser.add_argument("--out", required=True, help="path of the PNG to write")
  parser.add_argument("--num_samples", type=_positive(2),
                      default=DEFAULT_NUM_SAMPLES,
                      help=f"masks per method (default {DEFAULT_NUM_SAMPLES})")
  parser.add_argument("--size", type=_positive(2), default=32,
                      help="grid side in pixels (default 32)")
  parser.add_argument("--seed", type=int, default=0,
                      help="seed of the PRNG key (default 0)")
  parser.add_argument("--methods", default=None,
                      help="comma-separated names (default: all of "
                      f"{', '.join(method_names())})")
  args = parser.parse_args(argv)
  names = method_names()
  if args.methods is not None:
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    if not names:
      parser.error(f"--methods is empty; accepted: {', '.join(method_names())}")
    unknown = [n for n in names if n not in method_names()]
    if unknown:
      parser.error(f"--methods: unknown {', '.join(map(repr, unknown))}; "
                   f"accepted: {', '.join(method_names())}")
  if not args.out.lower().endswith(".png"):
    parser.error(f"--out must name a .png file; got {args.out!r}")
  if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
    parser.error(f"--out {args.out!r}: its directory does not exist")
  try:  # Before the measuring (a minute at the defaults).
    _plot.require_matplotlib("--out PNG")
  except ImportError as error:
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 1
  try:
    curves = measure(names, size=args.size, num_samples=args.num_samples,
                     seed=args.seed)
  except LookupError as error:
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 1
  except ValueError as error:  # e.g. a grid too small for a method
    parser.error(str(error))
  stem = os.path.splitext(args.out)[0]
  plot(args.out, curves, size=args.size, num_samples=args.num_samples)
  tables = write_tables(stem, curves, size=args.size,
                        num_samples=args.num_samples, seed=args.seed)
  print(f"wrote {args.out}, {tables[0]}, {tables[1]}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
