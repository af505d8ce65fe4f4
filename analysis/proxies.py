"""Latency versus FLOPs and parameter count per dataset (Figure S12).

FLOPs are the multiply-accumulates of the pruned network (the NAS-Bench-201 convention,
one MAC = one FLOP) and params its weights and biases, both from each dataset's own
columns. Latency is on a log axis in every panel, FLOPs and params on linear ones
(:mod:`latbench.analysis.scales`). Each panel prints the Pearson, Spearman and Kendall coefficients of the points
it shows, computed by :func:`proxy_correlations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latbench.analysis.correlation import METHODS, pair_correlation
from latbench.analysis.data import Datasets
from latbench.analysis.scales import latency_axis, point_alpha
from latbench.analysis.style import new_figure, plot_style

if TYPE_CHECKING:  # matplotlib loads with latbench.analysis.style, naming its extra
    from matplotlib.figure import Figure

__all__ = ["PROXIES", "panel_text", "proxies_figure", "proxy_correlations", "proxy_points"]

PROXIES: dict[str, tuple[str, float]] = {
    "flops": ("FLOPs [M MACs]", 1e6),
    "params": ("parameters [M]", 1e6),
}
"""proxy column -> (axis label, divisor for that unit)."""


def proxy_points(df: pd.DataFrame, proxy: str) -> tuple[np.ndarray, np.ndarray]:
    """(proxy value, latency ms) of the ``status="ok"`` rows of one dataset."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; choose one of {', '.join(PROXIES)}")
    ok = df[df["status"] == "ok"]
    return (
        ok[proxy].to_numpy(dtype=np.float64),
        ok["latency_ms"].to_numpy(dtype=np.float64),
    )


def proxy_correlations(data: Datasets) -> pd.DataFrame:
    """One row per (dataset, proxy): n and the correlation of latency with the proxy."""
    rows = []
    for key, df in data.frames.items():
        for proxy in PROXIES:
            x, y = proxy_points(df, proxy)
            rows.append({"key": key, "proxy": proxy} | pair_correlation(x, y))
    return pd.DataFrame(rows, columns=["key", "proxy", "n", *METHODS])


def panel_text(row: pd.Series | dict) -> str:
    """The coefficient box printed in a panel, from one :func:`proxy_correlations` row."""
    return (
        f"Pearson r = {row['pearson']:.3f}\n"
        f"Spearman ρ = {row['spearman']:.3f}\n"
        f"Kendall τ = {row['kendall']:.3f}\n"
        f"n = {int(row['n']):,}"
    )


def proxies_figure(data: Datasets, *, per_row: int = 3) -> Figure:
    """Latency vs FLOPs and vs params for every dataset, two panels per dataset."""
    coeffs = proxy_correlations(data).set_index(["key", "proxy"])
    keys = data.keys
    per_row = max(1, min(per_row, len(keys)))
    nrows = -(-len(keys) // per_row)
    ncols = 2 * per_row
    with plot_style():
        fig = new_figure(2.45 * ncols, 2.35 * nrows + 0.4)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.flat:
            ax.set_visible(False)
        for i, key in enumerate(keys):
            r, c0 = divmod(i, per_row)
            for j, (proxy, (label, scale)) in enumerate(PROXIES.items()):
                ax = axes[r, 2 * c0 + j]
                ax.set_visible(True)
                x, y = proxy_points(data.frames[key], proxy)
                ax.scatter(x / scale, y, s=2, alpha=point_alpha(len(x)), linewidths=0,
                           color="tab:blue", rasterized=True)  # fmt: skip
                latency_axis(ax, "y", y)  # the same rule in every panel; proxies linear
                ax.set_xlabel(label)
                ax.set_ylabel("latency [ms]")
                ax.set_title(f"{key}\nlatency vs {proxy}")
                ax.text(0.97, 0.03, panel_text(coeffs.loc[(key, proxy)]),
                        transform=ax.transAxes, va="bottom", ha="right", fontsize=6.5,
                        bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85, "lw": 0.4})  # fmt: skip
        fig.suptitle("Latency vs FLOPs and parameters (Figure S12)\none point per architecture")
    return fig
