"""Pareto fronts of accuracy (maximised) vs latency (minimised)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from latbench.nas.inputs import per_model, same_order

__all__ = ["front_recovery", "pareto_front"]


def _pair(latency: ArrayLike, accuracy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    same_order(latency=latency, accuracy=accuracy)
    lat, acc = per_model("latency", latency), per_model("accuracy", accuracy)
    if lat.shape != acc.shape:
        raise ValueError(f"{lat.size} latencies but {acc.size} accuracies")
    if not (np.isfinite(lat).all() and np.isfinite(acc).all()):
        raise ValueError("latency and accuracy must be finite (drop unmeasured models first)")
    return lat, acc


def pareto_front(latency: ArrayLike, accuracy: ArrayLike) -> np.ndarray:
    """Boolean mask of the Pareto-optimal models: no other model is at most as slow and
    at least as accurate, and strictly better in one of the two.

    Models with identical (latency, accuracy) are all on the front when one of them is.
    """
    lat, acc = _pair(latency, accuracy)
    n = lat.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-acc, lat))  # latency ascending, accuracy descending within ties
    lo, ac = lat[order], acc[order]
    starts = np.r_[0, np.flatnonzero(np.diff(lo)) + 1]  # first model of each latency value
    group = np.repeat(starts, np.diff(np.r_[starts, n]))
    best_faster = np.r_[-np.inf, np.maximum.accumulate(ac)][group]  # best at lower latency
    on = (ac == ac[group]) & (ac > best_faster)
    out = np.zeros(n, dtype=bool)
    out[order] = on
    return out


def front_recovery(
    measured: ArrayLike, predicted: ArrayLike, accuracy: ArrayLike
) -> dict[str, float | int]:
    """How well the Pareto front under ``predicted`` latency matches the measured one.

    ``recall``: share of the measured front's models that are also on the predicted
    front (what an oracle NAS on the prediction recovers, Figure 3); ``precision``:
    share of the predicted front's models that are truly Pareto-optimal; plus the
    two fronts' sizes and their overlap.
    """
    same_order(measured=measured, predicted=predicted, accuracy=accuracy)
    m_front = pareto_front(measured, accuracy)
    p_front = pareto_front(predicted, accuracy)
    both = int(np.count_nonzero(m_front & p_front))
    n_m, n_p = int(m_front.sum()), int(p_front.sum())
    return {
        "measured_front": n_m,
        "predicted_front": n_p,
        "common": both,
        "recall": both / n_m if n_m else float("nan"),
        "precision": both / n_p if n_p else float("nan"),
    }
