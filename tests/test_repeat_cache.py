"""Issue 16: predictor repeats are cached on disk; more repeats compute only the new ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import latbench
from latbench.predictors import evaluate, predictions
from latbench.predictors import protocol as P
from latbench.predictors.cache import RepeatCache

SAMPLE = "xeon2c-tf-fp32"  # bundled, 1,500 architectures
SMALL = {"train": 100, "val": 10}
TINY_GCN = {"hidden": 16, "layers": 2, "max_epochs": 2}


@pytest.fixture
def counted(monkeypatch):
    """The (predictor, repeat) of every repeat actually computed."""
    calls: list[tuple[str, int]] = []
    real = P._run

    def spy(name, opts, ids, y, tr, va, te, repeat):
        calls.append((name, repeat))
        return real(name, opts, ids, y, tr, va, te, repeat)

    monkeypatch.setattr(P, "_run", spy)
    return calls


def test_more_repeats_compute_only_the_new_ones(tmp_path, counted):
    first = evaluate(SAMPLE, ["flops", "params"], repeats=3, cache=tmp_path, **SMALL)
    assert sorted(counted) == [(p, r) for p in ("flops", "params") for r in range(3)]
    assert (first.attrs["computed"], first.attrs["cached"]) == (6, 0)
    counted.clear()
    more = evaluate(SAMPLE, ["flops", "params"], repeats=5, cache=tmp_path, **SMALL)
    assert sorted(counted) == [(p, r) for p in ("flops", "params") for r in (3, 4)]
    assert (more.attrs["computed"], more.attrs["cached"]) == (4, 6)
    old = more[more["repeat"] < 3].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, first, check_like=True)
    # the same numbers as without a cache
    fresh = evaluate(SAMPLE, ["flops", "params"], repeats=5, **SMALL)
    cols = ["predictor", "repeat", "within_10pct", "spearman", "rmse_ms"]
    pd.testing.assert_frame_equal(more[cols], fresh[cols])


@pytest.mark.slow
def test_gcn_repeats_cached_and_reused_for_predictions(tmp_path, counted):
    one = evaluate(SAMPLE, "gcn", repeats=1, cache=tmp_path, options=TINY_GCN, **SMALL)
    two = evaluate(SAMPLE, "gcn", repeats=2, cache=tmp_path, options=TINY_GCN, **SMALL)
    assert counted == [("gcn", 0), ("gcn", 1)]
    assert two.loc[0, "within_10pct"] == one.loc[0, "within_10pct"]
    assert two.loc[0, "epochs"] == one.loc[0, "epochs"]  # nullable ints survive the cache
    counted.clear()
    pred = predictions(SAMPLE, "gcn", repeat=1, cache=tmp_path, options=TINY_GCN, **SMALL)
    assert counted == []  # read back, not refitted
    measured, predicted = pred["measured"].to_numpy(), pred["predicted"].to_numpy()
    assert np.mean(np.abs(predicted / measured - 1) <= 0.10) == pytest.approx(
        two.loc[1, "within_10pct"]
    )
    # any setting that changes the numbers misses the cache
    evaluate(SAMPLE, "gcn", repeats=1, cache=tmp_path, options={**TINY_GCN, "max_epochs": 3},
             **SMALL)  # fmt: skip
    evaluate(SAMPLE, "gcn", repeats=1, cache=tmp_path, options=TINY_GCN, seed=1, **SMALL)
    evaluate(SAMPLE, "gcn", repeats=1, cache=tmp_path, options=TINY_GCN, train=101, val=10)
    assert counted == [("gcn", 0)] * 3
    # ... but threads (speed, not results) do not
    counted.clear()
    evaluate(SAMPLE, "gcn", repeats=1, cache=tmp_path, options={**TINY_GCN, "threads": 1},
             **SMALL)  # fmt: skip
    assert counted == []


def test_changed_data_or_damaged_entry_is_recomputed(tmp_path, counted):
    df = latbench.load(SAMPLE)
    evaluate(df, "flops", repeats=2, cache=tmp_path, **SMALL)
    changed = df.copy()
    i = changed.index[changed["status"] == "ok"][0]
    changed.loc[i, "latency_ms"] *= 1.5
    counted.clear()
    evaluate(changed, "flops", repeats=2, cache=tmp_path, **SMALL)
    assert counted == [("flops", 0), ("flops", 1)]
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 4
    for f in files:
        f.write_bytes(b"not an npz")
    counted.clear()
    res = evaluate(df, "flops", repeats=2, cache=tmp_path, **SMALL)
    assert counted == [("flops", 0), ("flops", 1)] and res.attrs["computed"] == 2
    assert RepeatCache(tmp_path).get(RepeatCache.key({"nothing": 1})) is None


def test_analysis_rerun_with_more_repeats(tmp_path, counted):
    from latbench.analysis.data import load_datasets
    from latbench.analysis.predictors import run_predictors

    data = load_datasets([SAMPLE])
    run = run_predictors(data, ["flops"], repeats=2, n_train=100, n_val=10, cache=tmp_path)
    assert run.computed == 2 and set(run.results["protocol"]) == {"quick (2 repeats)"}
    counted.clear()
    run = run_predictors(data, ["flops"], repeats=5, n_train=100, n_val=10, cache=tmp_path)
    assert run.computed == 3 and sorted(counted) == [("flops", r) for r in (2, 3, 4)]
    assert len(run.results) == 5


def test_cli_reports_cached_repeats(tmp_path, capsys):
    from latbench.predictors.cli import main

    args = ["evaluate", "-d", SAMPLE, "-p", "flops", "--train", "100", "--val", "10", "-q",
            "--data-home", str(tmp_path)]  # fmt: skip
    assert main([*args, "-n", "2"]) == 0
    assert main([*args, "-n", "3"]) == 0
    assert "2 repeat(s) from the cache, 1 computed" in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "predictors").rglob("*.npz"))) == 3
