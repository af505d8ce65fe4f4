"""Scatter matrix of latency between datasets (Figure S13).

Lower triangle: one point per architecture measured on both datasets, alpha scaled to
the number of points so 15k points still show their density, log latency axes in every
panel (:mod:`latbench.analysis.scales`), Pearson and Spearman in the corner. Diagonal:
the latency histogram of each dataset, on log-spaced bins. With many datasets the matrix is limited to
``max_devices`` chosen round-robin over device classes, so every class is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latbench.analysis.correlation import pair_correlation
from latbench.analysis.scales import latency_axis, point_alpha
from latbench.analysis.style import new_figure, plot_style, short_label

if TYPE_CHECKING:  # matplotlib loads with latbench.analysis.style, naming its extra
    from matplotlib.figure import Figure

__all__ = ["MAX_DEVICES", "pairs_figure", "select_devices"]

MAX_DEVICES = 8
"""Default cap on the scatter matrix size (8 datasets = 28 pair panels)."""


def select_devices(
    keys: Sequence[str], classes: Mapping[str, str] | None = None, max_devices: int = MAX_DEVICES
) -> list[str]:
    """At most ``max_devices`` of ``keys``: round-robin over device classes, keys in order.

    Deterministic; returns ``keys`` unchanged when they already fit.
    """
    keys = list(keys)
    if max_devices < 1:
        raise ValueError(f"max_devices must be at least 1, got {max_devices}")
    if len(keys) <= max_devices:
        return keys
    classes = classes or {}
    by_class: dict[str, list[str]] = {}
    for k in keys:
        by_class.setdefault(classes.get(k, ""), []).append(k)
    chosen: list[str] = []
    while len(chosen) < max_devices:
        for members in by_class.values():
            if members and len(chosen) < max_devices:
                chosen.append(members.pop(0))
    return [k for k in keys if k in chosen]  # keep the caller's order


def _hist(ax, values: np.ndarray) -> None:
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return
    ax.hist(v, bins=np.geomspace(v.min(), v.max(), 41), color="tab:gray", alpha=0.8)
    latency_axis(ax, "x", v)


def pairs_figure(latency: pd.DataFrame, keys: Sequence[str] | None = None) -> Figure:
    """Scatter matrix of the ``latency`` columns ``keys`` (default all), ms on every axis."""
    keys = list(latency.columns if keys is None else keys)
    missing = [k for k in keys if k not in latency.columns]
    if missing:
        raise KeyError(f"not in the latency table: {', '.join(missing)}")
    n = len(keys)
    side = 1.9 if n > 2 else 2.6
    with plot_style():
        fig = new_figure(side * n + 0.6, side * n + 0.5)
        axes = fig.subplots(n, n, squeeze=False)
        for i, yk in enumerate(keys):
            for j, xk in enumerate(keys):
                ax = axes[i, j]
                if j > i:
                    ax.set_visible(False)
                    continue
                if i == j:
                    _hist(ax, latency[xk].to_numpy(dtype=np.float64))
                    ax.set_title(short_label(xk, 30), fontsize=7)
                    ax.set_ylabel("architectures")
                else:
                    x = latency[xk].to_numpy(dtype=np.float64)
                    y = latency[yk].to_numpy(dtype=np.float64)
                    both = np.isfinite(x) & np.isfinite(y)
                    ax.scatter(x[both], y[both], s=1.5, alpha=point_alpha(int(both.sum())),
                               linewidths=0, color="tab:blue", rasterized=True)  # fmt: skip
                    latency_axis(ax, "x", x[both])
                    latency_axis(ax, "y", y[both])
                    c = pair_correlation(x, y)
                    ax.text(0.96, 0.04, f"r = {c['pearson']:.3f}\nρ = {c['spearman']:.3f}",
                            transform=ax.transAxes, va="bottom", ha="right", fontsize=6,
                            bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85, "lw": 0.4})  # fmt: skip
                    ax.set_ylabel(f"{short_label(yk)} [ms]" if j == 0 else "")
                ax.set_xlabel(f"{short_label(xk)} [ms]" if i == n - 1 else "")
        fig.suptitle("Latency of one dataset vs another (Figure S13)\none point per architecture")
    return fig
