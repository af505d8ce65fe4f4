"""``latbench.load`` of a full 15,625-row dataset under pytest-benchmark.

Benchmarks are disabled by default (``--benchmark-disable`` in pyproject's addopts):
then each benchmarked function runs once, as a plain test. For figures run
``pytest tests/test_bench_load.py --benchmark-enable`` or ``python benchmarks/bench_load.py``.
No assertion here is about time.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import latbench
from latbench import loader
from latbench.dataset import read_dataset

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_load", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


bench_load = _bench_module()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("bench-home")
    return bench_load.make_dataset(home)


@pytest.fixture
def home(dataset, monkeypatch) -> Path:
    monkeypatch.setenv("LATBENCH_HOME", str(dataset.parent))
    return dataset.parent


def _check(df) -> None:
    assert len(df) == 15_625
    assert df["arch_id"].is_monotonic_increasing
    counts = df["status"].value_counts()
    assert counts["ok"] == 15_284 - 10 and counts["failed"] == 10 and counts["invalid"] == 341


def test_warm_load(benchmark, home):
    latbench.load(bench_load.KEY)  # fill the cache
    df = benchmark(latbench.load, bench_load.KEY)
    _check(df)


def test_cold_load(benchmark, home):
    df = benchmark.pedantic(
        latbench.load, args=(bench_load.KEY,), setup=loader._read_cached.cache_clear, rounds=5
    )
    _check(df)


def test_read_dataset(benchmark, dataset):
    _check(benchmark(read_dataset, dataset))


def test_bench_script_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LATBENCH_HOME", "/nonexistent-before")
    out = tmp_path / "figures.json"
    assert bench_load.main(["--repeat", "3", "--cold-repeat", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "warm" in text and "read_dataset" in text and "15,625-row" in text
    res = json.loads(out.read_text())
    assert res["rows"] == 15_625 and res["warm"]["n"] == 3 and res["cold"]["n"] == 2
    assert res["warm"]["min_ms"] <= res["warm"]["median_ms"] <= res["warm"]["max_ms"]
    import os

    assert os.environ["LATBENCH_HOME"] == "/nonexistent-before"  # restored


def test_bench_script_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        bench_load.main(["--repeat", "0"])
