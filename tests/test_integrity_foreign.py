"""`latbench check` / `latbench rewrite` take only files LatBench wrote.

Before, any Parquet file passed `check` as a "readable table ... but NO checksums", and
`rewrite` then added checksums to it, so a foreign table came out "verified". Every
kind LatBench writes is recognised by its markers (`latbench_kind`); anything else is
refused: one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import ok_frame
from synthetic_accuracy import write_synthetic_accuracy

from latbench.cli import main
from latbench.dataset import METADATA_KEY, write_dataset
from latbench.harness.store import PART_SCHEMA
from latbench.integrity import (
    INTEGRITY_KEY,
    NotLatBenchFile,
    UnverifiedFileWarning,
    check_file,
    rewrite_file,
    write_verified,
)

NOT_OURS = "not a LatBench file (no LatBench metadata)"

# a run's part as the first harness wrote it: no key-value metadata, and the fleet
# columns not yet added
OLD_PART_SCHEMA = pa.schema([f for f in PART_SCHEMA if f.name not in ("device_id", "fleet_run")])


def test_the_recognised_part_columns_are_the_harness_ones():
    # the core keeps its own copy (it cannot import the harness): they must not drift
    from latbench import integrity

    cols = {**integrity._PART_COLUMNS, **integrity._PART_COLUMNS_LATER}
    assert list(cols) == PART_SCHEMA.names
    assert all(cols[f.name].equals(f.type) for f in PART_SCHEMA)


PART_ROWS = [
    {"graph_key": "g1", "timed_arch_id": 1, "status": "ok", "error": None, "latency_ms": 1.5,
     "latency_std_ms": 0.1, "runs": 3, "raw_ns": [1, 2, 3]},
    {"graph_key": "g2", "timed_arch_id": 2, "status": "failed", "error": "E: x",
     "latency_ms": None, "latency_std_ms": None, "runs": 0, "raw_ns": None},
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _refused_by_both(capsys, path: Path) -> None:
    """`check` and `rewrite` each refuse ``path``: one line, exit 2, nothing written."""
    before = _snapshot(path.parent)
    with pytest.raises(NotLatBenchFile, match=r"no LatBench metadata"):
        check_file(path)
    for command in ("check", "rewrite"):
        rc, out, err = _cli(capsys, command, str(path))
        assert rc == 2, (command, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("latbench: error: "), lines
        assert NOT_OURS in lines[0] and path.name in lines[0] and f"latbench {command}" in lines[0]
        assert "Traceback" not in err and out == ""
        assert _snapshot(path.parent) == before, command  # nothing rewritten, no temp file


def _quiet_check(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        return check_file(path)


def _legacy(path: Path, table: pa.Table) -> Path:
    """``table`` as written before checksums existed: its metadata minus the integrity key."""
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != INTEGRITY_KEY}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def _stripped(path: Path, table: pa.Table) -> Path:
    """The same rows with every LatBench marker gone (only what pandas would write)."""
    pq.write_table(table.replace_schema_metadata(None), path)
    return path


def test_the_reported_foreign_parquet_file_is_refused(tmp_path, capsys):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    # before: check said "readable table, 2 rows, but NO checksums" (exit 0) and
    # rewrite added checksums, after which check said "ok (table, 2 rows, checksums verified)"
    _refused_by_both(capsys, path)


FOREIGN = {
    "pandas frame": lambda p: pd.DataFrame({"x": [1.0, np.nan], "y": ["a", "b"]}).to_parquet(p),
    "other metadata": lambda p: pq.write_table(
        pa.table({"arch_id": [1, 2]}).replace_schema_metadata({b"geo": b"{}"}), p
    ),
    "dataset columns, no metadata": lambda p: pq.write_table(
        pa.Table.from_pandas(ok_frame(50, step=5, seed=0, low=0.1, high=2.0), preserve_index=False)
        .replace_schema_metadata(None), p
    ),
    "page checksums, no metadata": lambda p: pq.write_table(
        pa.table({"a": [1, 2, 3]}), p, write_page_checksum=True
    ),
    "part columns, not a part's name": lambda p: pq.write_table(
        pa.Table.from_pylist(PART_ROWS, schema=OLD_PART_SCHEMA), p
    ),
}  # fmt: skip
NAMES = {
    "pandas frame": "x.parquet",
    "other metadata": "k.layers.parquet",
    "dataset columns, no metadata": "k.parquet",
    "page checksums, no metadata": "k.predicted.parquet",
    "part columns, not a part's name": "results.parquet",
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_foreign_parquet_files_are_refused_whatever_their_name(tmp_path, capsys, case):
    path = tmp_path / NAMES[case]
    FOREIGN[case](path)
    _refused_by_both(capsys, path)


def test_a_part_named_file_needs_exactly_a_parts_columns(tmp_path, capsys):
    parts = tmp_path / "k.parts"
    parts.mkdir()
    pq.write_table(
        pa.Table.from_pylist(PART_ROWS, schema=OLD_PART_SCHEMA), parts / "part-1.parquet"
    )
    # a part written before checksums (no metadata at all) is still one of ours
    assert "NO checksums" in _quiet_check(parts / "part-1.parquet")
    # ... but another table under a part's name is not
    extra = pa.Table.from_pylist(PART_ROWS, schema=OLD_PART_SCHEMA).append_column(
        "secret", pa.array(["a", "b"])
    )
    pq.write_table(extra, parts / "part-2.parquet")
    retyped = pa.Table.from_pylist(PART_ROWS, schema=OLD_PART_SCHEMA)
    retyped = retyped.set_column(1, "timed_arch_id", retyped["timed_arch_id"].cast(pa.string()))
    pq.write_table(retyped, parts / "part-3.parquet")
    pq.write_table(pa.table({"a": [1]}), parts / "part-4.parquet")
    for name in ("part-2.parquet", "part-3.parquet", "part-4.parquet"):
        _refused_by_both(capsys, parts / name)


def _predicted(path: Path) -> Path:
    from latbench.dataset import arch_table
    from latbench.predicted import write_predicted

    valid = arch_table()["valid"].to_numpy()
    n = len(valid)
    frame = pd.DataFrame({"arch_id": np.arange(n), "valid": valid, "latency_pred_ms": np.full(n, 2.0),
                          "latency_lo_ms": np.full(n, 1.0), "latency_hi_ms": np.full(n, 3.0),
                          "measured": np.zeros(n, bool)})  # fmt: skip
    return write_predicted(frame, path, {"device": "test"})


def test_predictions_are_checked_and_rewritten_with_their_own_row_checks(tmp_path, capsys):
    path = _predicted(tmp_path / "k.predicted.parquet")
    # before: "a few-shot prediction, not a measured dataset" from both commands
    assert "ok (prediction, 15625 rows, values valid, checksums verified)" in check_file(path)
    assert "unchanged" in (said := rewrite_file(path)) and "prediction, 15625 rows" in said
    assert "checksums verified" in check_file(path)
    # a prediction renamed to a dataset's name still does not pass for measurements
    renamed = path.rename(tmp_path / "k.parquet")
    rc, _, err = _cli(capsys, "check", str(renamed))
    assert rc == 2 and "few-shot prediction, not a measured dataset" in err


def _kinds(tmp_path: Path) -> dict[str, Path]:
    """One file of every Parquet kind LatBench writes, current and pre-checksum."""
    from latbench.harness.store import GraphResult, RunStore

    frame = ok_frame(300, step=5, seed=0, low=0.1, high=2.0)
    ds = write_dataset(frame, tmp_path / "d.parquet", {"source": "test"})
    layers_table = pa.table({"signature": ["a", "b"], "latency_ms": [1.0, float("nan")]})
    layers_table = layers_table.replace_schema_metadata(
        {METADATA_KEY: json.dumps({"table": "layers", "key": "d"}).encode()}
    )
    write_verified(layers_table, tmp_path / "d.layers.parquet")
    store = RunStore(tmp_path, "run", {"a": 1})
    store.open()
    store.add(GraphResult("g", 1, "ok", 1.0, 0.1, 10, raw_ns=np.arange(10) + 1))
    part = store.flush()
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.parts").mkdir()
    return {
        "dataset": ds,
        "layers": tmp_path / "d.layers.parquet",
        "prediction": _predicted(tmp_path / "d.predicted.parquet"),
        "accuracy": write_synthetic_accuracy(tmp_path / "home"),
        "part": part,
        "old dataset": _legacy(old / "d.parquet", pq.read_table(ds)),
        "old layers": _legacy(old / "d.layers.parquet", pq.read_table(tmp_path / "d.layers.parquet")),
        "old part": _legacy(old / "run.parts" / part.name, pq.read_table(part)),
    }  # fmt: skip


def test_every_latbench_kind_passes_and_the_same_rows_without_its_markers_do_not(tmp_path, capsys):
    files = _kinds(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for kind, path in files.items():
        verdict = _quiet_check(path)
        if kind.startswith("old"):
            assert "NO checksums" in verdict, (kind, verdict)
            assert "rewrote" in rewrite_file(path)
        assert "checksums verified" in check_file(path), (kind, check_file(path))
        # the same rows, every LatBench marker stripped, under a name no part has
        name = "data.parquet" if kind.endswith("part") else path.name
        (foreign / kind).mkdir()
        _refused_by_both(capsys, _stripped(foreign / kind / name, pq.read_table(path)))


def test_check_of_several_files_reports_each_and_fails_for_the_foreign_one(tmp_path, capsys):
    ds = write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / "d.parquet")
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(other)
    rc, out, err = _cli(capsys, "check", str(ds), str(other))
    assert rc == 2  # before: 0
    assert "d.parquet: ok (dataset" in out and "other.parquet" not in out
    assert len(err.strip().splitlines()) == 1 and NOT_OURS in err
