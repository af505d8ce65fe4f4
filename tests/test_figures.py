"""Figures say what the data say: exact shares, marked clipping, one scale rule (issue 24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_analysis import _assert_tick_labels_apart

from latbench.analysis.data import from_frames
from latbench.analysis.proxies import proxies_figure
from latbench.analysis.rankchange import latency_rank_figure, moved_share, rank_change


def _frame(lat: np.ndarray) -> pd.DataFrame:
    n = len(lat)
    return pd.DataFrame({"arch_id": np.arange(n), "status": "ok", "latency_ms": lat,
                         "flops": np.arange(n) * 1e5 + 1e6, "params": np.arange(n) * 1e3 + 1e4})  # fmt: skip


def test_a_small_share_is_never_rounded_to_zero():
    change = np.zeros(15284)
    change[:37] = 12.0
    ranks = pd.DataFrame({"change": change})
    assert moved_share(ranks, 10) == "37 of 15,284 (0.24 %)"
    assert moved_share(ranks, 20) == "0 of 15,284 (0.0 %)"
    change[:997] = 6.0
    assert moved_share(pd.DataFrame({"change": change}), 5) == "997 of 15,284 (6.5 %)"


def test_rank_figure_counts_moves_at_its_threshold_and_marks_clipping():
    rng = np.random.default_rng(0)
    a = np.exp(rng.normal(size=2000))
    b = a * np.exp(rng.normal(scale=0.05, size=2000))
    b[:3] = b[:3] * 50  # three far movers: beyond the 99th percentile of moves
    fig = latency_rank_figure({"A": _frame(a), "B": _frame(b)}, threshold=5)
    ranks = rank_change(pd.Series(a), pd.Series(b))
    title = fig.axes[2].get_title()
    assert f"{moved_share(ranks, 5)} move > 5 points" in title
    assert f"(max {ranks['change'].abs().max():.0f})" in title
    assert fig.axes[3].get_label() == "<colorbar>"
    cbar = fig.axes[2].collections[0].colorbar
    assert cbar.extend in ("max", "both")  # the clipped colour scale is marked
    fig = latency_rank_figure({"A": _frame(a), "B": _frame(a * 2)})  # no move at all
    assert fig.axes[2].collections[0].colorbar.extend == "neither"


def test_proxies_use_one_scale_rule_with_readable_ticks():
    narrow = np.linspace(1.0, 29.0, 400)  # 29x and 31x: once drawn linear, once log
    wide = np.linspace(1.0, 31.0, 400)
    fig = proxies_figure(from_frames({"a": _frame(narrow), "b": _frame(wide)}))
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 4
    assert {ax.get_yscale() for ax in shown} == {"log"}
    assert {ax.get_xscale() for ax in shown} == {"linear"}
    _assert_tick_labels_apart(fig)


def test_missing_matplotlib_names_the_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['matplotlib'] = None\n"  # as if not installed
            "from latbench.analysis.rankchange import latency_rank_figure")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 1
    assert last.startswith("ModuleNotFoundError: latbench.analysis (figures) needs")
    assert "'matplotlib'" in last and "pip install 'latbench[analysis]'" in last
