"""Timing one model: run it, time each run alone, and reduce with the protocol's filter.

The protocol and the two-stage quartile filter are :mod:`latbench.protocol` (a dataset's
and a raw file's readers need them too); this module is the loop that produces the
times (docs/design.md §5).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from latbench.protocol import FILTERS, Protocol, quartile_mask, quartile_mean, two_stage_filter

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
    Raises :class:`RuntimeError` if the runner returns anything but R positive timings of
    at most :data:`~latbench.raw_checks.MAX_TIMING_NS`, or if they filter to a latency
    outside :data:`~latbench.dataset.LATENCY_RANGE_MS`.
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
    from latbench.dataset import LATENCY_RANGE_MS
    from latbench.raw_checks import MAX_TIMING_NS

    if (raw > MAX_TIMING_NS).any():
        raise RuntimeError(
            f"runner {type(runner).__name__} returned a run of {int(raw.max())} ns, more than "
            f"{MAX_TIMING_NS} ns (~2.8 h): not a measurement"
        )
    latency, std = two_stage_filter(raw / 1e6, protocol.group_size)
    lo, hi = LATENCY_RANGE_MS
    # The dataset refuses such a row when it is written; refused here it is one failed
    # graph, not a stored "ok" part that stops every later write of the dataset.
    if not lo <= latency <= hi:
        raise RuntimeError(
            f"runner {type(runner).__name__} timed {latency:.3g} ms, outside the plausible "
            f"{lo:g}..{hi:g} ms: a unit error, not a measurement"
        )
    return Timing(latency, std, raw, protocol.runs, wall)
