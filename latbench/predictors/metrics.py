"""Accuracy of latency predictions (Table 1/S2 and docs/design.md §9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latbench.predictors.base import PredictorError

__all__ = ["BOUNDS", "METRICS", "metrics", "within"]

BOUNDS = (1, 5, 10)
"""Error bounds in percent of Table S2."""
METRICS = ("within_1pct", "within_5pct", "within_10pct", "spearman", "kendall", "rmse_ms")
"""Keys of :func:`metrics`, in report order."""


def within(y_true: np.ndarray, y_pred: np.ndarray, percent: float) -> float:
    """Share (0..1) of predictions with ``|pred - true| <= percent/100 * true``."""
    err = np.abs(y_pred - y_true)
    # A hair of slack so that an exact 10% error on a float grid still counts as within.
    return float(np.mean(err <= percent / 100 * np.abs(y_true) * (1 + 1e-12)))


def metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Table S2's shares within +-1/5/10 % (fractions), Spearman, Kendall tau-b, RMSE (ms).

    Rank correlations are NaN when either side is constant.
    """
    from scipy import stats

    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise PredictorError(f"{len(t)} measured but {len(p)} predicted latencies")
    if len(t) == 0:
        raise PredictorError("no test data to score")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise PredictorError("latencies to score must be finite (a prediction is NaN or inf)")
    out = {f"within_{b}pct": within(t, p, b) for b in BOUNDS}
    constant = np.ptp(t) == 0 or np.ptp(p) == 0
    out["spearman"] = float("nan") if constant else float(stats.spearmanr(t, p).statistic)
    out["kendall"] = float("nan") if constant else float(stats.kendalltau(t, p).statistic)
    out["rmse_ms"] = float(np.sqrt(np.mean((p - t) ** 2)))
    return out
