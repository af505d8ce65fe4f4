"""Axis scales shared by the scatter figures: one rule for every panel.

Latency axes are logarithmic in every panel of every figure: latencies compare by
ratio, and one dataset spans 29x while another spans 31x, so a per-panel choice drew
two such panels differently. FLOPs and parameter axes are linear (additive costs).
Log ticks are plain numbers at 1-2-5 steps within about a decade and a half, and
thinner over wider ranges, so their labels never overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LOG_RATIO", "latency_axis", "log_ticks", "point_alpha", "wants_log"]

LOG_RATIO = 30.0
"""max/min ratio from which :func:`wants_log` calls for a log axis (~1.5 decades)."""


def wants_log(values: np.ndarray, ratio: float = LOG_RATIO) -> bool:
    """Whether positive ``values`` span enough orders of magnitude to call for a log axis."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.min() <= 0:
        return False
    return bool(v.max() / v.min() >= ratio)


def _plain(value: float, _pos: Any = None) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def log_ticks(values: np.ndarray) -> tuple[float, ...]:
    """Mantissas of the labelled log ticks for data spanning ``values``: (1, 1.5, 2, 3, 5, 7)
    within 0.8 decades, (1, 2, 5) within 1.5, (1, 3) within 3, (1,) beyond."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    decades = float(np.log10(v.max() / v.min())) if v.size else 0.0
    if decades <= 0.8:
        return (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    if decades <= 1.5:
        return (1.0, 2.0, 5.0)
    return (1.0, 3.0) if decades <= 3 else (1.0,)


def latency_axis(ax: Any, axis: str, values: np.ndarray) -> None:
    """Make ``ax``'s ``axis`` ("x" or "y") a log latency axis with readable ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    which.set_major_locator(LogLocator(base=10, subs=log_ticks(values), numticks=12))
    which.set_major_formatter(FuncFormatter(_plain))
    which.set_minor_formatter(NullFormatter())


def point_alpha(n: int) -> float:
    """Marker alpha so that ``n`` overlapping points still show where the mass is."""
    return float(np.clip(1500.0 / max(n, 1), 0.12, 0.8))
