"""Raw timings in HDF5: append, resume, protocol mismatch, crash repair, re-filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from latbench.harness.timing import Protocol, two_stage_filter  # noqa: E402
from latbench.raw import RawFormatError, RawWriter, read_raw, refilter  # noqa: E402

P = Protocol(runs=20, group_size=5, warmup=2)


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(100_000, 200_000, size=(n, P.runs), dtype=np.int64)


def test_append_and_read(tmp_path: Path) -> None:
    path = tmp_path / "d.raw.h5"
    rows = _rows(2)
    with RawWriter(path, P, attrs={"device": "cpu-onnxruntime"}) as w:
        w.append("3-1---|0>1,1>7", 4, rows[0])
        w.append("ünï|0>7", 7, rows[1])
        assert len(w) == 2 and w.graph_keys() == {"3-1---|0>1,1>7", "ünï|0>7"}
    raw = read_raw(path)
    assert list(raw["graph_key"]) == ["3-1---|0>1,1>7", "ünï|0>7"]
    assert raw["arch_id"].tolist() == [4, 7]
    np.testing.assert_array_equal(raw["timings_ns"], rows)
    assert raw["timings_ns"].dtype == np.int64
    assert raw["attrs"]["runs"] == 20 and raw["attrs"]["group_size"] == 5
    assert raw["attrs"]["groups"] == 4 and raw["attrs"]["filter"] == "quartile2"
    assert raw["attrs"]["device"] == "cpu-onnxruntime"


def test_reopen_appends(tmp_path: Path) -> None:
    path = tmp_path / "d.raw.h5"
    rows = _rows(3)
    with RawWriter(path, P) as w:
        w.append("a", 1, rows[0])
    with RawWriter(path) as w:  # protocol read back from the file
        assert w.runs == 20 and len(w) == 1
        w.append("b", 2, rows[1])
    with RawWriter(path, P) as w:
        w.append("c", 3, rows[2])
    raw = read_raw(path)
    assert list(raw["graph_key"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(raw["timings_ns"], rows)


def test_mismatched_runs_raise(tmp_path: Path) -> None:
    path = tmp_path / "d.raw.h5"
    with RawWriter(path, P) as w, pytest.raises(RawFormatError, match="stores 20 timings"):
        w.append("a", 1, np.ones(10, dtype=np.int64))
    with pytest.raises(RawFormatError, match="holds 20 runs per graph.*R=30"):
        RawWriter(path, Protocol(runs=30, group_size=10))
    with pytest.raises(ValueError, match="Protocol is needed"):
        RawWriter(tmp_path / "new.raw.h5")


def test_partial_row_is_trimmed_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "d.raw.h5"
    rows = _rows(2)
    with RawWriter(path, P) as w:
        w.append("a", 1, rows[0])
    with h5py.File(path, "a") as f:  # a crash after the key was written, before timings
        f["graph_key"].resize(2, axis=0)
        f["graph_key"][1] = "half"
    assert len(read_raw(path)["graph_key"]) == 1
    with RawWriter(path) as w:
        assert len(w) == 1 and w.graph_keys() == {"a"}
        w.append("b", 2, rows[1])
    assert list(read_raw(path)["graph_key"]) == ["a", "b"]


def test_refilter_equals_two_stage_filter(tmp_path: Path) -> None:
    path = tmp_path / "d.raw.h5"
    rows = _rows(3, seed=1)
    with RawWriter(path, P) as w:
        for i, row in enumerate(rows):
            w.append(f"g{i}", 10 + i, row)
    df = refilter(path)
    assert list(df.columns) == [
        "graph_key",
        "timed_arch_id",
        "latency_ms",
        "latency_std_ms",
        "runs",
    ]
    for g in (5, 10, 20, 1):
        df = refilter(path, g) if g != 5 else df
        for i, row in enumerate(rows):
            lat, std = two_stage_filter(row / 1e6, g)
            assert df.latency_ms[i] == lat and df.latency_std_ms[i] == std
    assert df.timed_arch_id.tolist() == [10, 11, 12] and (df.runs == 20).all()
    with pytest.raises(ValueError, match="multiple of group_size"):
        refilter(path, 3)


def test_refilter_reads_one_shot_files_with_json_protocol_and_padding(tmp_path: Path) -> None:
    # The layout a finished run writes in one go: protocol as JSON, -1 padding.
    import json

    path = tmp_path / "one.raw.h5"
    rows = _rows(2, seed=2)
    padded = np.full((2, 30), -1, dtype=np.int64)
    padded[0, :20] = rows[0]
    padded[1, :10] = rows[1, :10]
    with h5py.File(path, "w") as f:
        f.create_dataset("graph_key", data=["a", "b"], dtype=h5py.string_dtype())
        f.create_dataset("arch_id", data=np.array([1, 2], np.int32))
        f.create_dataset("timings_ns", data=padded)
        f.attrs["protocol"] = json.dumps({"runs": 20, "group_size": 5})
    assert read_raw(path)["attrs"]["group_size"] == 5
    df = refilter(path)
    assert df.runs.tolist() == [20, 10]
    assert df.latency_ms[0] == two_stage_filter(rows[0] / 1e6, 5)[0]
    assert df.latency_ms[1] == two_stage_filter(rows[1, :10] / 1e6, 5)[0]
