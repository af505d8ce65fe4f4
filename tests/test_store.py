"""Crash-safe result parts and the final dataset expansion."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from latbench.dataset import DatasetError, read_dataset
from latbench.harness.plan import make_plan, select_archs
from latbench.harness.store import GraphResult, RunConfigMismatch, RunStore
from latbench.space import Arch

CFG = {"profile": "cpu-onnxruntime", "protocol": {"runs": 20, "group_size": 10}, "seed": 0}


@pytest.fixture
def plan():
    archs = select_archs(limit=40, seed=2)
    # two architectures that share one pruned graph: a skip on an edge into an unused node
    a = Arch.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|")
    b = Arch.from_str("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|nor_conv_1x1~1|none~2|")
    assert a.graph.key == b.graph.key and a.id != b.id
    invalid = Arch.from_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    return make_plan([*archs, a, b, invalid])


def _result(w, lat, status="ok"):
    raw = np.arange(20, dtype=np.int64) + int(lat * 1e6)
    if status != "ok":
        return GraphResult(w.key, w.timed_arch_id, status, error="boom")
    return GraphResult(w.key, w.timed_arch_id, "ok", lat, 0.01, 20, raw_ns=raw)


def test_parts_survive_reopen_and_unflushed_are_lost(tmp_path, plan):
    s = RunStore(tmp_path, "k", CFG)
    assert s.open() == {}
    s.add(_result(plan.work[0], 1.0))
    s.add(_result(plan.work[1], 2.0))
    s.flush()
    s.add(_result(plan.work[2], 3.0))  # never flushed: as if killed here
    again = RunStore(tmp_path, "k", CFG).open()
    assert set(again) == {plan.work[0].key, plan.work[1].key}
    assert again[plan.work[1].key].latency_ms == 2.0
    np.testing.assert_array_equal(again[plan.work[0].key].raw_ns, _result(plan.work[0], 1.0).raw_ns)
    assert not list(tmp_path.glob("k.parts/*.tmp"))


def test_ok_result_wins_over_failure_on_retry(tmp_path, plan):
    s = RunStore(tmp_path, "k", CFG)
    s.open()
    s.add(_result(plan.work[0], 0, status="failed"))
    s.flush()
    s.add(_result(plan.work[0], 5.0))
    s.flush()
    got = RunStore(tmp_path, "k", CFG).open()
    assert got[plan.work[0].key].status == "ok" and got[plan.work[0].key].latency_ms == 5.0


def test_config_mismatch_is_refused_unless_fresh(tmp_path, plan):
    s = RunStore(tmp_path, "k", CFG)
    s.open()
    s.add(_result(plan.work[0], 1.0))
    s.flush()
    other = {**CFG, "protocol": {"runs": 100, "group_size": 10}}
    with pytest.raises(RunConfigMismatch, match="protocol"):
        RunStore(tmp_path, "k", other).open()
    assert len(RunStore(tmp_path, "k", CFG).open()) == 1  # refusal destroyed nothing
    assert RunStore(tmp_path, "k", other).open(fresh=True) == {}
    with pytest.raises(RunConfigMismatch):
        RunStore(tmp_path, "k", CFG).open()


def test_unreadable_part_is_skipped_not_fatal(tmp_path, plan, caplog):
    s = RunStore(tmp_path, "k", CFG)
    s.open()
    s.add(_result(plan.work[0], 1.0))
    s.flush()
    (tmp_path / "k.parts" / "part-99999999999999999999-deadbeef.parquet").write_bytes(
        b"PAR1garbage"
    )
    got = RunStore(tmp_path, "k", CFG).open()
    assert set(got) == {plan.work[0].key}
    assert "ignoring unreadable part" in caplog.text


def test_finalize_expands_graphs_to_archs(tmp_path, plan):
    s = RunStore(tmp_path, "k", CFG)
    s.open()
    for i, w in enumerate(plan.work):
        s.add(_result(w, 1.0 + i) if i != 3 else _result(w, 0, status="failed"))
    path = s.finalize(plan, {"protocol": CFG["protocol"]})
    df = read_dataset(path)
    assert sorted(df["arch_id"]) == sorted(plan.arch_ids)
    assert not df["arch_id"].duplicated().any()
    by_id = df.set_index("arch_id")
    for i, w in enumerate(plan.work):
        rows = by_id.loc[list(w.arch_ids)]
        assert (rows["timed_arch_id"] == w.timed_arch_id).all()
        if i == 3:
            assert (rows["status"] == "failed").all() and rows["latency_ms"].isna().all()
            assert (rows["error"] == "boom").all()
        else:
            assert (rows["status"] == "ok").all() and (rows["latency_ms"] == 1.0 + i).all()
    for aid in plan.invalid:
        assert by_id.loc[aid, "status"] == "invalid" and np.isnan(by_id.loc[aid, "latency_ms"])
    with h5py.File(s.raw_path) as h5:
        assert h5["timings_ns"].shape == (len(plan.work) - 1, 20)
        keys = [k.decode() for k in h5["graph_key"][:]]
        assert plan.work[3].key not in keys and plan.work[0].key in keys


@pytest.mark.parametrize("content", [b"PAR1 damaged in transit", b"not parquet at all"])
def test_unreadable_dataset_at_the_output_is_kept_not_replaced(tmp_path, plan, content):
    # the run would write k.parquet at its end: a file there it cannot read may be
    # the user's only copy (a damaged dataset, a prediction filed under the wrong name)
    target = tmp_path / "k.parquet"
    target.write_bytes(content)
    with pytest.raises(RunConfigMismatch, match="writes nothing.*--fresh"):
        RunStore(tmp_path, "k", CFG).open()
    assert target.read_bytes() == content and not (tmp_path / "k.parts").exists()
    assert RunStore(tmp_path, "k", CFG).open(fresh=True) == {}  # asked for: measure again


def test_an_implausible_stored_figure_is_timed_again_not_blocking(tmp_path, plan, caplog):
    # parts written before tools' figures were checked may hold a clamped 1 ns "ok"
    s = RunStore(tmp_path, "k", CFG)
    s.open()
    s.add(_result(plan.work[0], 1.0))
    s.add(_result(plan.work[1], 1e-6))
    s.flush()
    got = RunStore(tmp_path, "k", CFG).open()
    assert set(got) == {plan.work[0].key} and "re-timed" in caplog.text
    # one that reaches finalize is refused before any raw file is written
    s = RunStore(tmp_path / "b", "k", CFG)
    s.open()
    for i, w in enumerate(plan.work):
        s.add(_result(w, 1e-6 if i == 1 else 1.0 + i))
    with pytest.raises(DatasetError, match="1e-06 ms is outside"):
        s.finalize(plan, {"protocol": CFG["protocol"]})
    assert not s.raw_path.exists() and not s.dataset_path.exists()


def test_a_folder_where_the_dataset_goes_is_refused_at_open(tmp_path, plan):
    (tmp_path / "k.parquet").mkdir()
    with pytest.raises(RunConfigMismatch, match="stops now and writes nothing"):
        RunStore(tmp_path, "k", CFG).open()
    assert not (tmp_path / "k.parts").exists()
