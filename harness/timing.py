"""Measurement protocol and the two-stage quartile filter (docs/design.md §5, paper Section 6).

A model is run ``warmup`` times untimed, then ``R = G x g`` times, each run timed
alone with :func:`time.perf_counter_ns` while garbage collection is off. Within each
of the G groups of g consecutive runs the values between the group's first and third
quartile (numpy linear percentiles, bounds inclusive) are averaged; the same filter
over the G group means gives the reported latency, and the population standard
deviation of the group means it kept gives ``latency_std_ms``. With G = 1 the second
stage is the identity.

Only two distinct values can leave the quartile window empty (linear percentiles of
``[a, b]``, ``a < b``, are ``a + (b - a) / 4`` and ``a + 3 (b - a) / 4``); both are then
kept, so the filter is their mean (= their median).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from latbench.harness.runners.base import Runner

__all__ = [
    "FILTERS",
    "Protocol",
    "Timing",
    "quartile_mask",
    "quartile_mean",
    "time_calls",
    "time_runner",
    "two_stage_filter",
]

FILTERS = ("quartile2",)
"""Names of the filters :class:`Protocol` accepts (``quartile2``: the paper's two-stage filter)."""


@dataclass(frozen=True)
class Protocol:
    """How one model is timed: ``runs`` = R timed runs in groups of ``group_size`` = g.

    Raises :class:`ValueError` unless R >= 1, g >= 1, R % g == 0 and ``warmup`` >= 0.
    """

    runs: int = 1000
    group_size: int = 10
    warmup: int = 10
    filter: str = "quartile2"

    def __post_init__(self) -> None:
        for field_ in ("runs", "group_size", "warmup"):
            value = getattr(self, field_)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"protocol {field_} must be an integer, got {value!r}")
        if self.runs < 1 or self.group_size < 1:
            raise ValueError(
                f"protocol needs runs >= 1 and group_size >= 1, got runs={self.runs}, "
                f"group_size={self.group_size}"
            )
        if self.runs % self.group_size:
            raise ValueError(
                f"runs (R={self.runs}) must be a multiple of group_size (g={self.group_size}): "
                f"R = G x g"
            )
        if self.warmup < 0:
            raise ValueError(f"protocol warmup must be >= 0, got {self.warmup}")
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}; known: {', '.join(FILTERS)}")

    @property
    def groups(self) -> int:
        """G = R // g."""
        return self.runs // self.group_size

    def to_metadata(self) -> dict[str, Any]:
        """The protocol as recorded in dataset metadata (R, G, g, warm-up, filter)."""
        return {
            "runs": int(self.runs),
            "groups": int(self.groups),
            "group_size": int(self.group_size),
            "warmup": int(self.warmup),
            "filter": self.filter,
        }


def quartile_mask(x: np.ndarray) -> np.ndarray:
    """Boolean mask of ``q25 <= x <= q75`` along the last axis (all True where none is)."""
    x = np.asarray(x, dtype=np.float64)
    q25, q75 = np.percentile(x, [25.0, 75.0], axis=-1, keepdims=True)
    mask = (x >= q25) & (x <= q75)
    empty = ~mask.any(axis=-1, keepdims=True)
    return mask | empty


def _check_values(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: values must be finite")
    return x


def quartile_mean(x: np.ndarray) -> float:
    """Mean of the values of ``x`` with ``q25 <= x <= q75`` (1-D, finite, non-empty)."""
    x = _check_values(x, "quartile_mean")
    if x.ndim != 1:
        raise ValueError(f"quartile_mean expects a 1-D array, got shape {x.shape}")
    return float(x[quartile_mask(x)].mean())


def two_stage_filter(times_ms: np.ndarray, group_size: int) -> tuple[float, float]:
    """Latency and spread of ``times_ms`` (R values in run order) under the quartile filter.

    Returns ``(latency, std)``: the quartile mean of the group quartile means, and the
    population standard deviation (ddof=0) of the group means the second stage kept
    (``0.0`` when it kept one, e.g. with G = 1). Units are those of ``times_ms``.
    """
    x = _check_values(times_ms, "two_stage_filter")
    if x.ndim != 1:
        raise ValueError(f"two_stage_filter expects a 1-D array, got shape {x.shape}")
    if group_size < 1 or x.size % group_size:
        raise ValueError(
            f"{x.size} timings cannot be split into groups of {group_size} (R must be G x g)"
        )
    groups = x.reshape(-1, group_size)
    mask = quartile_mask(groups)
    means = np.where(mask, groups, 0.0).sum(axis=1) / mask.sum(axis=1)
    if means.size == 1:
        return float(means[0]), 0.0
    kept = means[quartile_mask(means)]
    return float(kept.mean()), float(kept.std())


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 0) -> np.ndarray:
    """Call ``fn`` ``warmup`` times, then ``runs`` times each timed alone; int64 ns.

    The loop is deliberately bare (local names, preallocated list) so that it adds
    well under a microsecond per run around ``fn``. Garbage collection is the
    caller's business (:func:`time_runner` turns it off).
    """
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    out = [0] * runs
    for i in range(runs):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class Timing:
    """The outcome of timing one model.

    ``raw_ns`` holds the R per-run times in run order; ``wall_ns`` is the wall time of
    the whole :meth:`Runner.time` call (warm-up included).
    """

    latency_ms: float
    latency_std_ms: float
    raw_ns: np.ndarray
    runs: int
    wall_ns: int

    @property
    def overhead(self) -> float:
        """Harness overhead: ``wall_ns`` over the sum of the timed runs (>= 1)."""
        return self.wall_ns / max(int(self.raw_ns.sum()), 1)


def time_runner(runner: Runner, protocol: Protocol) -> Timing:
    """Time a prepared runner under ``protocol`` with garbage collection off.

    The runner's :meth:`~latbench.harness.runners.base.Runner.time` does the warm-up and
    the R timed runs; the previous GC state is restored afterwards, also on error.
    Raises :class:`RuntimeError` if the runner returns anything but R positive timings.
    """
    was_enabled = gc.isenabled()
    # Young generations only: a full collection costs ~20 ms on a large heap, more than
    # R = 100 runs of a small model, and nothing is collected while timing anyway.
    gc.collect(1)
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        raw = runner.time(protocol)
        wall = time.perf_counter_ns() - t0
    finally:
        if was_enabled:
            gc.enable()
    raw = np.asarray(raw)
    if raw.shape != (protocol.runs,) or not np.issubdtype(raw.dtype, np.integer):
        raise RuntimeError(
            f"runner {type(runner).__name__} returned timings of shape {raw.shape} and dtype "
            f"{raw.dtype}; expected ({protocol.runs},) integers in ns"
        )
    raw = raw.astype(np.int64, copy=False)
    if (raw <= 0).any():
        raise RuntimeError(
            f"runner {type(runner).__name__} returned non-positive timings; the clock "
            f"or the runner is broken"
        )
    latency, std = two_stage_filter(raw / 1e6, protocol.group_size)
    return Timing(latency, std, raw, protocol.runs, wall)
