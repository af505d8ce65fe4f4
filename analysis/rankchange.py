"""Latency of every architecture on two devices, and how its rank moves between them.

The first figure a hardware-aware NAS researcher wants from two datasets: each
device's latency over the whole search space (fastest to slowest), and the rank of
each architecture on one device against its rank on the other, coloured by how far
it moved. Used by ``docs/quickstart.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latbench.analysis.scales import point_alpha
from latbench.analysis.style import new_figure, plot_style

if TYPE_CHECKING:  # matplotlib loads with latbench.analysis.style, naming its extra
    from matplotlib.figure import Figure

__all__ = ["MOVE_THRESHOLD", "latency_rank_figure", "moved_share", "rank_change"]

MOVE_THRESHOLD = 5.0
"""Rank change, in percentile points, from which an architecture counts as moved."""


def _ok_latency(frame: pd.DataFrame) -> pd.Series:
    ok = frame[frame["status"] == "ok"]
    return pd.Series(ok["latency_ms"].to_numpy(dtype=float), index=ok["arch_id"].to_numpy())


def rank_change(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Percentile ranks (0 fastest .. 100 slowest) on both devices, architectures in common.

    Columns ``rank_a``, ``rank_b`` and ``change`` (= ``rank_b - rank_a``, in percentile
    points), indexed by ``arch_id``; ties share their average rank.
    """
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna()
    out = pd.DataFrame(
        {"rank_a": both["a"].rank(pct=True) * 100, "rank_b": both["b"].rank(pct=True) * 100}
    )
    out["change"] = out["rank_b"] - out["rank_a"]
    return out


def moved_share(ranks: pd.DataFrame, threshold: float = MOVE_THRESHOLD) -> str:
    """``"993 of 15,284 (6.5 %)"``: architectures whose rank moves by more than
    ``threshold`` points, the share never rounded to 0 unless none moves."""
    n = int((ranks["change"].abs() > threshold).sum())
    pct = 100.0 * n / max(len(ranks), 1)
    text = f"{pct:.1f}" if pct >= 1 or n == 0 else f"{pct:.2g}"
    return f"{n:,} of {len(ranks):,} ({text} %)"


def latency_rank_figure(
    frames: Mapping[str, pd.DataFrame], threshold: float = MOVE_THRESHOLD
) -> Figure:
    """Two datasets by name -> latency of each (sorted) and the rank change between them.

    Each frame is a dataset (:func:`latbench.load`); only ``status == "ok"`` rows count.
    The title counts the architectures that move by more than ``threshold`` percentile
    points (dashed lines); the colour scale stops at the 99th percentile of the moves,
    and the colour bar's arrows say so when any move lies beyond.
    """
    if len(frames) != 2:
        raise ValueError(f"need exactly two datasets, got {len(frames)}")
    (name_a, fa), (name_b, fb) = frames.items()
    a, b = _ok_latency(fa), _ok_latency(fb)
    ranks = rank_change(a, b)
    rho = float(ranks["rank_a"].corr(ranks["rank_b"]))  # Pearson of ranks = Spearman
    with plot_style():
        fig = new_figure(11.5, 3.4)
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.15]})
        for ax, name, lat in ((axes[0], name_a, a), (axes[1], name_b, b)):
            y = np.sort(lat.to_numpy())
            ax.plot(np.arange(len(y)), y, color="tab:blue", linewidth=1.2)
            ax.set_title(f"{name}: {len(y):,} architectures")
            ax.set_xlabel("architecture, fastest to slowest")
            ax.set_ylabel("latency [ms]")
            ax.axhline(float(np.median(y)), color="tab:gray", linewidth=0.7, linestyle="--")
            ax.text(0.03, 0.92, f"median {np.median(y):.3g} ms\nmax/min {y[-1] / y[0]:.0f}×",
                    transform=ax.transAxes, va="top", fontsize=8)  # fmt: skip
        ax = axes[2]
        moves = ranks["change"].abs()
        lim = max(threshold, float(moves.quantile(0.99)))
        low, high = bool((ranks["change"] < -lim).any()), bool((ranks["change"] > lim).any())
        extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
        sc = ax.scatter(ranks["rank_a"], ranks["rank_b"], c=ranks["change"], cmap="coolwarm",
                        vmin=-lim, vmax=lim, s=3, alpha=max(0.4, point_alpha(len(ranks))),
                        linewidths=0, rasterized=True)  # fmt: skip
        ax.plot([0, 100], [0, 100], color="black", linewidth=0.7)
        for off in (-threshold, threshold):
            ax.plot([0, 100], [off, 100 + off], color="black", linewidth=0.5, linestyle="--")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_aspect("equal")
        ax.set_xlabel(f"rank on {name_a} [percentile]")
        ax.set_ylabel(f"rank on {name_b} [percentile]")
        ax.set_title(f"{len(ranks):,} in common: Spearman {rho:.3f}\n"
                     f"{moved_share(ranks, threshold)} move > {threshold:g} points"
                     f" (max {moves.max():.0f})", fontsize=9)  # fmt: skip
        fig.colorbar(sc, ax=ax, label="rank change [percentile points]", shrink=0.85,
                     extend=extend.get((low, high), "neither"))  # fmt: skip
    return fig
