"""A device's own re-measurement of each computation: the noise floor of a NAS metric.

Isomorphic pruned graphs (equal up to the numbering of their nodes) are the same
computation, so where a dataset timed several of them separately, each timing is a
re-measurement of the others. Two references follow from that, per architecture:

- :func:`remeasured_latency`: the mean over the *other* timings of its isomorphism
  class. Used as a "prediction", it is what a predictor exact up to the device's own
  run-to-run noise would give: whatever oracle NAS still misses with it is noise, not
  prediction error. Where an architecture has no other timing it is NaN; filling those
  with the measurement itself only lowers the misses (oracle NAS admits a truly
  feasible model it predicts exactly), so the figure is a lower bound.
- :func:`denoised_latency`: the median over all timings of its class (its own
  included): a ground truth robust to one lucky or unlucky run.

A timing is identified by ``timing`` (the dataset's ``timed_arch_id``): architectures
that share a pruned graph share one timing in a LatBench campaign, and count once.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["denoised_latency", "isomorphism_classes", "remeasured_latency", "timing_units"]


@cache
def _classes() -> np.ndarray:
    from latbench.dataset import arch_table

    table = arch_table()
    _, cls = np.unique(table["iso_key"].to_numpy(), return_inverse=True)
    out = np.where(table["valid"].to_numpy(), cls.ravel(), -1).astype(np.int64)
    out.setflags(write=False)
    return out


def isomorphism_classes() -> np.ndarray:
    """Per ``arch_id``, a number shared exactly by architectures whose pruned graphs are
    isomorphic (-1 for invalid architectures). Read-only; built once per process."""
    return _classes()


def timing_units(
    latency: ArrayLike, timing: ArrayLike, classes: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unit, unit_class, unit_latency)``: per architecture the number of its timing
    (-1 where it has no usable latency or class), and per timing its class and latency.

    Rows sharing a ``timing`` must agree on its latency; the first one is used.
    """
    lat = np.asarray(latency, dtype=np.float64).ravel()
    tim = np.asarray(timing, dtype=np.int64).ravel()
    cls = np.asarray(classes, dtype=np.int64).ravel()
    if not lat.shape == tim.shape == cls.shape:
        raise ValueError(f"{lat.size} latencies, {tim.size} timings, {cls.size} classes")
    ok = np.isfinite(lat) & (cls >= 0) & (tim >= 0)
    unit = np.full(lat.size, -1, dtype=np.int64)
    _, first, inverse = np.unique(tim[ok], return_index=True, return_inverse=True)
    unit[ok] = inverse.ravel()
    rows = np.flatnonzero(ok)[first]
    return unit, cls[rows], lat[rows]


def remeasured_latency(latency: ArrayLike, timing: ArrayLike, classes: ArrayLike) -> np.ndarray:
    """Per architecture, the mean latency of the *other* timings of its isomorphism
    class (NaN where there is none, or no latency of its own).

    ``latency``, ``timing`` (the id of the timing each latency came from; -1: none)
    and ``classes`` (:func:`isomorphism_classes`) are indexed alike.
    """
    unit, ucls, ulat = timing_units(latency, timing, classes)
    n_cls = int(ucls.max()) + 1 if ucls.size else 0
    total = np.bincount(ucls, weights=ulat, minlength=n_cls)
    count = np.bincount(ucls, minlength=n_cls)
    out = np.full(unit.size, np.nan)
    has = unit >= 0
    u = unit[has]
    c = ucls[u]
    others = count[c] - 1
    out[has] = np.where(others > 0, (total[c] - ulat[u]) / np.maximum(others, 1), np.nan)
    return out


def denoised_latency(latency: ArrayLike, timing: ArrayLike, classes: ArrayLike) -> np.ndarray:
    """Per architecture, the median latency over all timings of its isomorphism class
    (its own included; NaN where it has no latency)."""
    unit, ucls, ulat = timing_units(latency, timing, classes)
    out = np.full(unit.size, np.nan)
    if ucls.size == 0:
        return out
    order = np.lexsort((ulat, ucls))
    sc, sl = ucls[order], ulat[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sc)) + 1]
    ends = np.r_[starts[1:], sc.size]
    med = np.full(int(sc.max()) + 1, np.nan)
    lo, hi = starts + (ends - starts - 1) // 2, starts + (ends - starts) // 2
    med[sc[starts]] = (sl[lo] + sl[hi]) / 2
    has = unit >= 0
    out[has] = med[ucls[unit[has]]]
    return out
