"""Protocol, the two-stage quartile filter (hand-computed values) and the timing loop."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import pytest

from latbench.harness.profiles import load_profile
from latbench.harness.runners.base import Runner
from latbench.harness.timing import (
    Protocol,
    quartile_mean,
    time_calls,
    time_runner,
    two_stage_filter,
)

# --- quartile_mean: numpy linear percentiles, bounds inclusive -----------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3, 4, 5], 3.0),  # odd: q25=2, q75=4 -> {2,3,4}
        ([4, 1, 3, 2], 2.5),  # even: q25=1.75, q75=3.25 -> {2,3}
        ([5, 5, 5, 1, 9], 5.0),  # ties on both quartiles: q25=q75=5 -> the three 5s
        ([1, 2, 2, 2, 3, 100], 2.0),  # q25=2, q75=2.75 -> the three 2s (inclusive bound)
        ([10, 1000, 11, 12], 11.5),  # outlier: q25=10.75, q75=259 -> {11,12}
        ([7, 7, 7, 7], 7.0),  # constant
        ([7], 7.0),  # single value
        ([3, 1], 2.0),  # window [1.5, 2.5] holds nothing: both kept
    ],
)
def test_quartile_mean_hand_computed(values: list[float], expected: float) -> None:
    assert quartile_mean(np.array(values, dtype=float)) == pytest.approx(expected, abs=1e-12)


def test_quartile_mean_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="no values"):
        quartile_mean(np.array([]))
    with pytest.raises(ValueError, match="finite"):
        quartile_mean(np.array([1.0, np.nan, 2.0]))


# --- two_stage_filter -----------------------------------------------------------------


def test_two_stage_hand_computed() -> None:
    # Group means: [1..5] -> 3; all 2 -> 2; [10..50] -> 30; [4,4,4,4,100] -> 4 (ties).
    # Means sorted 2,3,4,30: q25=2.75, q75=10.5 -> keep {3,4}: latency 3.5, std 0.5.
    times = np.array([1, 2, 3, 4, 5, 2, 2, 2, 2, 2, 50, 40, 30, 20, 10, 4, 100, 4, 4, 4], float)
    lat, std = two_stage_filter(times, 5)
    assert lat == pytest.approx(3.5)
    assert std == pytest.approx(0.5)


def test_two_stage_g1_second_stage_is_identity() -> None:
    # One group of 10: q25=3.25, q75=7.75 -> {4,5,6,7}: 5.5; a second quartile stage
    # over one value changes nothing and the spread is 0.
    times = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], float)
    assert two_stage_filter(times, 10) == (pytest.approx(5.5), 0.0)


def test_two_stage_two_groups_keeps_both_means() -> None:
    # Means 2 and 4: the quartile window [2.5, 3.5] is empty, so both are kept.
    lat, std = two_stage_filter(np.array([2, 2, 2, 4, 4, 4], float), 3)
    assert (lat, std) == (pytest.approx(3.0), pytest.approx(1.0))


def test_two_stage_group_size_one() -> None:
    # g=1: the first stage is the identity, the second filters [1..5] -> {2,3,4}.
    lat, std = two_stage_filter(np.arange(1, 6, dtype=float), 1)
    assert lat == pytest.approx(3.0)
    assert std == pytest.approx(math.sqrt(2 / 3))


def test_two_stage_constant_and_order_within_group() -> None:
    assert two_stage_filter(np.full(100, 1.25), 10) == (1.25, 0.0)
    rng = np.random.default_rng(0)
    x = rng.random(100)
    shuffled = np.concatenate([rng.permutation(g) for g in x.reshape(10, 10)])
    assert two_stage_filter(shuffled, 10) == pytest.approx(two_stage_filter(x, 10))


def test_two_stage_rejects_bad_group_size() -> None:
    with pytest.raises(ValueError, match="groups of 3"):
        two_stage_filter(np.ones(10), 3)


# --- Protocol -------------------------------------------------------------------------


def test_protocol_defaults_and_validation() -> None:
    p = Protocol()
    assert (p.runs, p.group_size, p.groups, p.warmup) == (1000, 10, 100, 10)
    assert p.to_metadata() == {
        "runs": 1000,
        "groups": 100,
        "group_size": 10,
        "warmup": 10,
        "filter": "quartile2",
    }
    with pytest.raises(ValueError, match="multiple of group_size"):
        Protocol(runs=1001, group_size=10)
    with pytest.raises(ValueError, match=">= 1"):
        Protocol(runs=0)
    with pytest.raises(ValueError, match="warmup"):
        Protocol(warmup=-1)
    with pytest.raises(ValueError, match="integer"):
        Protocol(runs=10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown filter"):
        Protocol(filter="median")


# --- the timing loop ------------------------------------------------------------------


class CountingRunner(Runner):
    """Counts run_once calls and records whether GC was on during each."""

    name = "fake"
    formats = ("onnx",)

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__(load_profile("cpu-onnxruntime"))
        self.calls = 0
        self.gc_seen: set[bool] = set()
        self.fail_at = fail_at

    @property
    def version(self) -> str:
        return "0"

    def prepare(self, artifact: Path, seed: int) -> None:
        self.artifact = artifact

    def run_once(self) -> None:
        self.calls += 1
        self.gc_seen.add(gc.isenabled())
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        sum(range(50))

    def info(self) -> dict:
        return {"name": self.name}

    @classmethod
    def check(cls, profile) -> list[str]:
        return []


@pytest.mark.parametrize("gc_on", [True, False])
def test_time_runner_counts_and_restores_gc(gc_on: bool) -> None:
    runner = CountingRunner()
    (gc.enable if gc_on else gc.disable)()
    try:
        t = time_runner(runner, Protocol(runs=40, group_size=10, warmup=7))
        assert gc.isenabled() is gc_on
    finally:
        gc.enable()
    assert runner.calls == 47
    assert runner.gc_seen == {False}
    assert t.raw_ns.dtype == np.int64 and t.raw_ns.shape == (40,) and t.runs == 40
    assert (t.raw_ns > 0).all()
    lat, std = two_stage_filter(t.raw_ns / 1e6, 10)
    assert (t.latency_ms, t.latency_std_ms) == (lat, std)
    assert t.overhead >= 1.0


def test_time_runner_restores_gc_on_error() -> None:
    runner = CountingRunner(fail_at=5)
    gc.enable()
    with pytest.raises(RuntimeError, match="boom"):
        time_runner(runner, Protocol(runs=10, group_size=10, warmup=2))
    assert gc.isenabled()


def test_time_runner_rejects_bad_timings() -> None:
    class Short(CountingRunner):
        def time(self, protocol: Protocol) -> np.ndarray:
            return np.ones(protocol.runs - 1, dtype=np.int64)

    with pytest.raises(RuntimeError, match="expected \\(10,\\)"):
        time_runner(Short(), Protocol(runs=10, group_size=5, warmup=0))


def test_time_runner_uses_runner_time_hook() -> None:
    # A remote runner returns the device's own per-run timings instead of run_once.
    class Remote(CountingRunner):
        def time(self, protocol: Protocol) -> np.ndarray:
            return np.arange(1, protocol.runs + 1, dtype=np.int64) * 1_000_000

    t = time_runner(Remote(), Protocol(runs=5, group_size=5, warmup=0))
    assert t.latency_ms == pytest.approx(3.0)


def test_time_calls_counts() -> None:
    calls = []
    out = time_calls(lambda: calls.append(1), runs=12, warmup=3)
    assert len(calls) == 15 and out.shape == (12,) and out.dtype == np.int64
