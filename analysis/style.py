"""One plotting style for every figure, and byte-stable PNG output.

Figures are built as :class:`matplotlib.figure.Figure` objects, never through
``pyplot``, so no GUI backend or global figure state is involved; saving goes through
the Agg canvas with the PNG ``Software`` key removed, which makes the bytes depend only
on the figure, matplotlib's version and its bundled fonts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from latbench.extras import needs_extra

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ModuleNotFoundError as _exc:  # name the extra, not just the module
    raise needs_extra(_exc, "latbench.analysis (figures)") from None

__all__ = ["DPI", "RC", "new_figure", "plot_style", "save_png", "short_label"]

DPI = 110
"""Resolution of the saved PNGs: legible, and modest in size for the committed report."""

RC: dict[str, object] = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "path.simplify": True,
    "image.cmap": "viridis",
    "svg.hashsalt": "latbench",
}
"""rcParams applied while a figure is built and saved (a user's matplotlibrc is ignored)."""


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Context in which figures are built with LatBench's fixed rcParams."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure (inches) attached to an Agg canvas, with constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG whose bytes are reproducible; returns the path."""
    from latbench.dataset import atomic_path

    path = Path(path)
    with plot_style(), atomic_path(path) as tmp:  # atomic, as the tables are
        # metadata Software=None drops the only run-dependent chunk matplotlib writes
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def short_label(key: str, width: int = 26) -> str:
    """``key`` shortened to ``width`` characters for axis labels (middle elided)."""
    if len(key) <= width:
        return key
    keep = width - 1
    return key[: (keep + 1) // 2] + "…" + key[-(keep // 2) :]
