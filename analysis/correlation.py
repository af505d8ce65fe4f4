"""Cross-device latency correlation (Table S4): Pearson, Spearman and Kendall.

Each pair of datasets is compared over the architectures both measured
(``status="ok"`` in both, i.e. finite in the latency table). The paper's Table S4
is Spearman rank correlation (it reproduces to three decimals on the release files;
Pearson does not); Pearson and Kendall tau-b (which handles the ties that
architectures sharing a pruned graph produce) are reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from latbench.analysis.style import new_figure, plot_style, short_label

if TYPE_CHECKING:  # matplotlib loads with latbench.analysis.style, naming its extra
    from matplotlib.figure import Figure

__all__ = [
    "METHODS",
    "correlation_figure",
    "correlation_matrix",
    "correlation_pairs",
    "pair_correlation",
]

METHODS: tuple[str, ...] = ("spearman", "pearson", "kendall")
"""Correlation coefficients computed for every pair, in report order."""

_MIN_COMMON = 3  # fewer common points leave no meaningful coefficient


def pair_correlation(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict:
    """Pearson, Spearman and Kendall tau-b of ``x`` and ``y`` over entries finite in both.

    Returns ``{"n": ..., "pearson": ..., "spearman": ..., "kendall": ...}``; the
    coefficients are NaN when fewer than 3 common points remain or one side is constant.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out: dict[str, float | int] = {"n": int(keep.sum())}
    if out["n"] < _MIN_COMMON or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out | dict.fromkeys(METHODS, float("nan"))
    out["pearson"] = float(stats.pearsonr(x, y).statistic)
    out["spearman"] = float(stats.spearmanr(x, y).statistic)
    out["kendall"] = float(stats.kendalltau(x, y).statistic)
    return out


def correlation_pairs(latency: pd.DataFrame) -> pd.DataFrame:
    """Every pair of columns (``a <= b``, diagonal included) with n and the three coefficients.

    ``latency`` is an architectures x datasets table with NaN where not measured.
    """
    cols = list(latency.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i:]:
            rows.append({"a": a, "b": b} | pair_correlation(latency[a], latency[b]))
    return pd.DataFrame(rows, columns=["a", "b", "n", *METHODS])


def correlation_matrix(pairs: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Symmetric datasets x datasets matrix of ``method`` from :func:`correlation_pairs`."""
    if method not in (*METHODS, "n"):
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)} or n")
    keys = list(dict.fromkeys([*pairs["a"], *pairs["b"]]))
    m = pd.DataFrame(np.nan, index=keys, columns=keys, dtype="float64")
    for a, b, v in zip(pairs["a"], pairs["b"], pairs[method], strict=True):
        m.loc[a, b] = m.loc[b, a] = v
    return m


def correlation_figure(matrix: pd.DataFrame, *, title: str = "Spearman ρ") -> Figure:
    """Heatmap of a correlation matrix with each value printed in its cell (Table S4)."""
    n = len(matrix)
    cell = 0.6 if n <= 10 else 0.42  # inches; 0.42 still fits "0.975" at 5.5 pt
    side = max(3.2, cell * n + 1.8)
    fontsize = 7.0 if n <= 10 else 5.5
    values = matrix.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    with plot_style():
        fig = new_figure(side + 0.9, side)
        ax = fig.add_subplot()
        im = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=1.0, interpolation="nearest")
        labels = [short_label(str(k)) for k in matrix.index]
        ax.set_xticks(range(n), labels, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), labels)
        ax.grid(False)
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if not np.isfinite(v):
                    continue
                # dark text on the bright (high) end of viridis, light text elsewhere
                bright = (v - vmin) / (1.0 - vmin or 1.0) > 0.6
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=fontsize,
                        color="black" if bright else "white")  # fmt: skip
        cbar = fig.colorbar(im, ax=ax, shrink=0.8)
        cbar.set_label("correlation coefficient")
        ax.set_title(f"{title} of latency between datasets\n(architectures measured on both)")
    return fig
