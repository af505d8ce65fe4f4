"""The dataset file format (docs/design.md §6): round trip, validation errors, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from latbench.dataset import (
    COLUMNS,
    METADATA_KEY,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    DatasetError,
    arch_table,
    read_dataset,
    read_metadata,
    skeleton_frame,
    to_table,
    write_dataset,
)
from latbench.network import costs
from latbench.space import N_ARCHS, N_VALID, Arch

META = {
    "device": {"key": "test-cpu-fp32", "name": "Test CPU", "class": "desktop-cpu"},
    "runtime": {"name": "none", "version": "0", "threads": 1},
    "precision": "fp32",
    "protocol": {"R": 20, "G": 2, "g": 10, "warmup": 5},
    "source": "unit test",
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A full frame with every status, nullable values present and absent."""
    df = skeleton_frame()
    rng = np.random.default_rng(0)
    ok = df["valid"].to_numpy().copy()
    failed, missing = np.flatnonzero(ok)[:2]
    ok[[failed, missing]] = False  # two valid archs: one failed, one still missing
    df.loc[ok, "status"] = "ok"
    df.loc[ok, "latency_ms"] = rng.uniform(1, 10, ok.sum())
    df.loc[ok, "latency_std_ms"] = rng.uniform(0, 0.1, ok.sum())
    df.loc[ok, "runs"] = 20
    df.loc[ok, "timed_arch_id"] = df.loc[ok, "arch_id"]
    df.loc[failed, "status"] = "failed"
    df.loc[failed, "error"] = "converter: unsupported op"
    df.loc[[0, 1, 2], "nb201_index"] = [7, 8, 9]
    assert df.loc[missing, "status"] == "missing"
    assert set(df["status"]) == set(STATUSES)
    df.attrs["failed"] = failed
    return df


def _write_raw(table: pa.Table, path) -> None:
    """Write a Parquet file directly, bypassing write_dataset's validation."""
    pq.write_table(table, path)


# --- skeleton -----------------------------------------------------------------------


def test_skeleton_frame():
    df = skeleton_frame()
    assert df.shape == (N_ARCHS, len(COLUMNS))
    assert tuple(df.columns) == COLUMNS
    assert df["arch_id"].tolist() == list(range(N_ARCHS))
    counts = df["status"].value_counts()
    assert counts["missing"] == N_VALID and counts["invalid"] == N_ARCHS - N_VALID
    assert (df["valid"] == (df["status"] == "missing")).all()
    assert df["latency_ms"].isna().all() and df["latency_std_ms"].isna().all()
    assert df["nb201_index"].isna().all() and df["timed_arch_id"].isna().all()
    assert df["error"].isna().all()
    assert (df["runs"] == 0).all()
    # static facts agree with the library, spot-checked
    for aid in (0, 1, 777, 15_624):
        a = Arch.from_id(aid)
        row = df.iloc[aid]
        assert row["arch_str"] == a.str
        assert row["graph_key"] == a.graph.key
        assert bool(row["valid"]) == a.valid
        assert (row["flops"], row["params"]) == (costs(a.vector).flops, costs(a.vector).params)
    # the skeleton frame is itself a valid dataset frame
    assert to_table(df).schema.equals(SCHEMA)


def test_arch_table_is_a_copy():
    t = arch_table()
    t.loc[0, "flops"] = -1
    assert arch_table().loc[0, "flops"] != -1


# --- round trip ---------------------------------------------------------------------


def test_round_trip_preserves_values_dtypes_and_metadata(frame, tmp_path):
    path = tmp_path / "x.parquet"
    assert write_dataset(frame, path, META) == path
    back = read_dataset(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=True)
    assert back["arch_id"].dtype == np.int32 and back["runs"].dtype == np.int32
    assert back["nb201_index"].dtype == pd.Int32Dtype()
    assert back["timed_arch_id"].dtype == pd.Int32Dtype()
    assert back["flops"].dtype == np.int64 and back["latency_ms"].dtype == np.float64
    assert back["valid"].dtype == bool
    assert back.loc[0, "nb201_index"] == 7 and back["nb201_index"].isna().sum() == N_ARCHS - 3
    assert back.loc[frame.attrs["failed"], "error"] == "converter: unsupported op"
    assert back.attrs["metadata"] == {"schema_version": SCHEMA_VERSION, **META}
    assert back.attrs["path"] == str(path)
    assert read_metadata(path) == back.attrs["metadata"]
    # the Arrow schema on disk is exactly SCHEMA
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)


def test_write_sorts_rows_and_ignores_extra_columns(frame, tmp_path):
    shuffled = frame.sample(frac=1.0, random_state=1).assign(extra=1)
    path = write_dataset(shuffled, tmp_path / "s.parquet")
    back = read_dataset(path)
    assert back["arch_id"].tolist() == list(range(N_ARCHS))
    assert tuple(back.columns) == COLUMNS
    pd.testing.assert_frame_equal(back, frame)


def test_metadata_values_are_serialized(tmp_path, frame):
    path = write_dataset(frame, tmp_path / "m.parquet", {"created": pd.Timestamp("2020-01-02")})
    assert read_metadata(path)["created"] == "2020-01-02 00:00:00"  # default=str


def test_metadata_cannot_override_schema_version_silently(tmp_path, frame):
    # a caller's metadata wins over the default; reading then rejects the wrong version
    path = write_dataset(frame, tmp_path / "v.parquet", {"schema_version": 99})
    with pytest.raises(DatasetError, match="schema version 99"):
        read_dataset(path)


# --- read errors: each names the file and the problem ---------------------------------


@pytest.fixture(scope="module")
def good_table(frame) -> pa.Table:
    return to_table(frame, META)


def _set(table: pa.Table, name: str, values, type_=None) -> pa.Table:
    i = table.schema.get_field_index(name)
    arr = pa.array(values, type=type_ or table.schema.field(name).type)
    return table.set_column(i, pa.field(name, arr.type), arr)


def _bad_tables(table: pa.Table):
    ids = table.column("arch_id").to_pylist()
    status = table.column("status").to_pylist()
    yield "missing column", table.drop_columns(["latency_ms"]), r"missing column 'latency_ms'"
    yield (
        "latency as string",
        _set(
            table,
            "latency_ms",
            [str(x) for x in table.column("latency_ms").to_pylist()],
            pa.string(),
        ),
        r"column 'latency_ms' has type string, expected double",
    )
    yield (
        "arch_id as int64",
        _set(table, "arch_id", ids, pa.int64()),
        r"column 'arch_id' has type int64, expected int32",
    )
    yield "no metadata", table.replace_schema_metadata(None), r"no LatBench metadata"
    yield (
        "wrong schema version",
        table.replace_schema_metadata({METADATA_KEY: json.dumps({"schema_version": 2}).encode()}),
        r"schema version 2, this LatBench reads 1",
    )
    yield (
        "no schema version",
        table.replace_schema_metadata({METADATA_KEY: b"{}"}),
        r"schema version None",
    )
    yield (
        "metadata not JSON",
        table.replace_schema_metadata({METADATA_KEY: b"{not json"}),
        r"metadata is not valid JSON",
    )
    yield (
        "metadata not an object",
        table.replace_schema_metadata({METADATA_KEY: b"[1, 2]"}),
        r"metadata must be a JSON object",
    )
    dup = list(ids)
    dup[100] = 99
    yield "duplicate arch_id", _set(table, "arch_id", dup), r"arch_id 99 appears more than once"
    bad = list(status)
    bad[3] = "timeout"
    yield "unknown status", _set(table, "status", bad), r"unknown status value\(s\) \['timeout'\]"
    nulls = list(status)
    nulls[4] = None
    yield "null status", _set(table, "status", nulls), r"column 'status' has 1 null value"


BAD_NAMES = [
    "missing column", "latency as string", "arch_id as int64", "no metadata",
    "wrong schema version", "no schema version", "metadata not JSON", "metadata not an object",
    "duplicate arch_id", "unknown status", "null status",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_NAMES)
def test_read_rejects_bad_files(case, good_table, tmp_path):
    ((label, table, match),) = [b for b in _bad_tables(good_table) if b[0] == case]
    path = tmp_path / f"{label.replace(' ', '_')}.parquet"
    _write_raw(table, path)
    with pytest.raises(DatasetError, match=match) as info:
        read_dataset(path)
    assert str(path) in str(info.value)


def test_truncated_file(frame, tmp_path):
    path = write_dataset(frame, tmp_path / "t.parquet", META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"not a readable Parquet file") as info:
        read_dataset(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError, match=str(path).replace("\\", "\\\\")):
        read_metadata(path)


def test_not_parquet(tmp_path):
    path = tmp_path / "n.parquet"
    path.write_text("arch_id,latency_ms\n0,1.0\n")
    with pytest.raises(DatasetError, match=r"not a readable Parquet file") as info:
        read_dataset(path)
    assert str(path) in str(info.value)
    empty = tmp_path / "e.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"not a readable Parquet file"):
        read_dataset(empty)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.parquet"
    with pytest.raises(DatasetError, match=r"absent\.parquet: no such file"):
        read_dataset(path)


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


# --- write errors -------------------------------------------------------------------


def _bad_frames(frame: pd.DataFrame):
    yield "missing column", frame.drop(columns="flops"), r"missing column\(s\): flops"
    yield "missing arch_id", frame.drop(columns="arch_id"), r"missing column\(s\): arch_id"
    f = frame.copy()
    f["latency_ms"] = f["latency_ms"].astype(str)
    yield "latency as string", f, r"column 'latency_ms' has dtype .*, expected double"
    f = frame.copy()
    f["runs"] = f["runs"] > 0
    yield "runs as bool", f, r"column 'runs' has dtype bool, expected int32"
    f = frame.copy()
    f["flops"] = f["flops"].astype(object)
    f.loc[3, "flops"] = "12"
    yield "flops object with a string", f, r"column 'flops' has dtype object, expected int64"
    f = frame.copy()
    f.loc[0, "status"] = "unknown"
    yield "unknown status", f, r"unknown status value\(s\) \['unknown'\]"
    f = frame.copy()
    f.loc[1, "arch_id"] = 0
    yield "duplicate arch_id", f, r"arch_id 0 appears more than once"
    f = frame.copy()
    f["flops"] = f["flops"].astype("float64")
    f.loc[2, "flops"] = np.nan
    yield "null flops", f, r"non-nullable"


@pytest.mark.parametrize("case", ["missing column", "missing arch_id", "latency as string",
                                  "runs as bool", "flops object with a string",
                                  "unknown status", "duplicate arch_id", "null flops"])  # fmt: skip
def test_write_rejects_bad_frames(case, frame, tmp_path):
    ((_, df, match),) = [b for b in _bad_frames(frame) if b[0] == case]
    path = tmp_path / "w.parquet"
    with pytest.raises(DatasetError, match=match) as info:
        write_dataset(df, path)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file


def test_write_accepts_equivalent_numeric_types(frame, tmp_path):
    # floats with NaN for nullable ints and Python objects holding numbers are fine
    f = frame.copy()
    f["nb201_index"] = f["nb201_index"].astype("float64")
    f["latency_ms"] = f["latency_ms"].astype(object)
    f["runs"] = f["runs"].astype("int64")
    back = read_dataset(write_dataset(f, tmp_path / "eq.parquet"))
    pd.testing.assert_frame_equal(back, frame)


def test_statuses():
    assert STATUSES == ("ok", "invalid", "failed", "missing")


# --- atomic writes ------------------------------------------------------------------


def test_failed_write_keeps_previous_file(frame, tmp_path, monkeypatch):
    path = write_dataset(frame, tmp_path / "a.parquet", META)
    before = path.read_bytes()

    def broken_write(table, where, **kwargs):
        with open(where, "wb") as fh:  # leave a half-written temp file behind
            fh.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    changed = frame.assign(latency_ms=frame["latency_ms"] * 2)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(changed, path, META)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read_dataset(path), frame)


def test_failed_first_write_leaves_nothing(frame, tmp_path, monkeypatch):
    def broken_write(table, where, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(RuntimeError):
        write_dataset(frame, tmp_path / "sub" / "b.parquet")
    assert list((tmp_path / "sub").iterdir()) == []


def test_overwrite_replaces_content(frame, tmp_path):
    path = write_dataset(frame, tmp_path / "o.parquet", {"source": "first"})
    write_dataset(frame.assign(runs=np.int32(3)), path, {"source": "second"})
    back = read_dataset(path)
    assert (back["runs"] == 3).all()
    assert back.attrs["metadata"]["source"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]


def test_skeleton_frame_subset_equals_rows_of_full_table():
    from latbench.dataset import skeleton_frame

    ids = [15624, 0, 7, 3125, 9999]
    part = skeleton_frame(ids)
    full = skeleton_frame()
    expected = full.iloc[ids].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.reset_index(drop=True), expected)
