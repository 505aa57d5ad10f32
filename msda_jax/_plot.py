"""Line plots with matplotlib, shared by ``msda_jax.analysis`` and ``train/``.

matplotlib is optional (the ``plot`` extra) and imported only inside
:func:`new_figure`, so importing this module (or ``msda_jax``) never loads
it. Figures are ``matplotlib.figure.Figure`` objects drawn on their own
``FigureCanvasAgg``: no pyplot, no backend switch, no global state.

Example:
  >>> from msda_jax import _plot
  >>> _plot.rgb((255, 0, 51))
  (1.0, 0.0, 0.2)
  >>> _plot.INSTALL_HINT
  'pip install -e ".[plot]"'
"""

import importlib.util
import os
from typing import NamedTuple, Optional, Sequence

__all__ = [
    "INSTALL_HINT", "Line", "available", "require_matplotlib", "rgb",
    "new_figure", "draw_lines", "save_png",
]

INSTALL_HINT = 'pip install -e ".[plot]"'
_GRID = "#e4e4e4"


class Line(NamedTuple):
  """One curve of :func:`draw_lines`.

  Attributes:
    x: the x values.
    y: the y values (same length).
    label: the legend entry; None for none (e.g. the second run of a method
      whose first run carries the method's entry).
    colour: an ``(r, g, b)`` in 0..255 or any matplotlib colour.
  """

  x: Sequence[float]
  y: Sequence[float]
  label: Optional[str]
  colour: object


def available() -> bool:
  """Whether matplotlib can be imported (without importing it)."""
  return importlib.util.find_spec("matplotlib") is not None


def require_matplotlib(what: str = "plotting") -> None:
  """Raises an ImportError that says how to install matplotlib if it is missing.

  Args:
    what: what needs it, for the message (e.g. ``'--out PNG'``).
  """
  try:
    import matplotlib  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise ImportError(
        f"{what} needs matplotlib, which is not installed: run "
        f"{INSTALL_HINT} (or pip install 'matplotlib>=3.8')") from None


def rgb(colour) -> object:
  """An ``(r, g, b)`` of ints 0..255 as matplotlib's 0..1 floats; else as is."""
  if (isinstance(colour, tuple) and len(colour) == 3
      and all(isinstance(c, int) for c in colour)):
    return tuple(round(c / 255, 6) for c in colour)
  return colour


def new_figure(size: tuple[int, int], *, dpi: int = 100, **kwargs):
  """A ``Figure`` of ``size = (width, height)`` pixels on an Agg canvas.

  Args:
    size: width and height of the saved PNG in pixels.
    dpi: dots per inch (fixes font sizes relative to the pixels).
    **kwargs: passed to ``matplotlib.figure.Figure`` (e.g. ``layout``).

  Raises:
    ImportError: matplotlib is not installed (the message says how to
      install it).
  """
  require_matplotlib()
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  width, height = size
  figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, **kwargs)
  FigureCanvasAgg(figure)
  return figure


def draw_lines(axes, lines: Sequence[Line], *, xlabel: str, ylabel: str,
               title: Optional[str] = None, marker_size: float = 3.0,
               line_width: float = 1.6) -> list:
  """Draws ``lines`` (with point markers) on ``axes``, with a light grid.

  The first line ends on top. No legend: place it where the figure wants
  one (``axes.legend()`` or ``figure.legend()`` use the labels).

  Returns:
    The ``Line2D`` objects, in the order of ``lines``.
  """
  artists = []
  for index, line in enumerate(lines):
    (artist,) = axes.plot(
        line.x, line.y, color=rgb(line.colour), marker="o",
        markersize=marker_size, linewidth=line_width,
        label="_nolegend_" if line.label is None else line.label,
        zorder=2 + len(lines) - index)
    artists.append(artist)
  axes.grid(True, color=_GRID, linewidth=0.8)
  axes.set_axisbelow(True)
  axes.set_xlabel(xlabel)
  axes.set_ylabel(ylabel)
  if title is not None:
    axes.set_title(title)
  return artists


def save_png(figure, path: str) -> None:
  """Writes ``figure`` to ``path`` as a PNG of the figure's pixel size.

  No software/version metadata, so the bytes depend only on the drawing and
  matplotlib's renderer.

  Raises:
    ValueError: ``path`` does not end in ``.png``.
  """
  if not os.fspath(path).lower().endswith(".png"):
    raise ValueError(f"the plot file must be a .png; got {path!r}")
  figure.savefig(path, format="png", dpi=figure.dpi,
                 metadata={"Software": None})
