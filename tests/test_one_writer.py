"""Every writer of a LatBench file in a data folder holds that dataset's write lock.

`latbench rewrite`, `latbench export` into a data folder, `latbench-measure merge` and
predicted files took none, so one of them and a measurement run or an import could
write the same file at once. Now a second writer refuses at once: one line naming the
holder, exit 2, the file unchanged, no temporary left. The lock's holder sweeps the
temporaries of killed writes once, as it takes the lock, not on every write.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hostile import ok_frame

from latbench import dataset
from latbench.cli import main
from latbench.dataset import (
    STALE_TMP_AGE_S,
    StaleTempWarning,
    read_dataset,
    skeleton_frame,
    write_dataset,
)
from latbench.harness import cli as measure_cli
from latbench.harness.merge import merge_datasets
from latbench.integrity import INTEGRITY_KEY, rewrite_file
from latbench.lock import KeyLocked, file_owner, hold, hold_files
from latbench.predicted import write_predicted

HOLDER = (
    "import sys\n"
    "from latbench.lock import hold\n"
    "with hold(sys.argv[1], sys.argv[2]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"  # until the test closes stdin
)


@contextlib.contextmanager
def held_elsewhere(folder: Path, stem: str) -> Iterator[int]:
    """Another process holds ``stem``'s lock in ``folder`` for the block; yields its PID."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), stem],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.stdin.close()
        child.wait()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _legacy(path: Path) -> Path:
    """A dataset as written before checksums: what `latbench rewrite` is for."""
    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), path, {"source": "t"})
    table = pq.read_table(path)
    meta = {k: v for k, v in table.schema.metadata.items() if k != INTEGRITY_KEY}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def _refused(rc: int, out: str, err: str, pid: int, what: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, (out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"PID {pid} on host" in lines[0] and f"not {what}" in lines[0], lines[0]
    return lines[0]


def test_file_owner_names_the_lock_each_writer_of_a_file_takes(tmp_path):
    assert file_owner(tmp_path / "k.parquet") == (tmp_path, "k")
    assert file_owner(tmp_path / "k.layers.parquet") == (tmp_path, "k")
    assert file_owner(tmp_path / "k.predicted.parquet") == (tmp_path, "k")
    assert file_owner(tmp_path / "k.raw.h5") == (tmp_path, "k")
    assert file_owner(tmp_path / "k.shard1of2.parquet") == (tmp_path, "k.shard1of2")
    assert file_owner(tmp_path / "k.parts" / "part-1.parquet") == (tmp_path, "k")
    assert file_owner(tmp_path / "k.csv") is None
    assert file_owner(tmp_path / ".parquet") is None


def test_rewrite_of_a_dataset_being_written_refuses_naming_the_holder(tmp_path, capsys):
    path = _legacy(tmp_path / "k.parquet")
    before = _snapshot(tmp_path)
    with held_elsewhere(tmp_path, "k") as pid:
        rc = main(["rewrite", str(path)])
        out, err = capsys.readouterr()
        line = _refused(rc, out, err, pid, "rewritten")
        assert "k.parquet" in line and out == ""
        with pytest.raises(KeyLocked, match=f"PID {pid}"):
            rewrite_file(path)
        after = _snapshot(tmp_path)
    # the holder's lock file may be new; nothing else is, and the dataset is as it was
    assert {k: v for k, v in after.items() if not k.startswith(".k.lock")} == before
    assert main(["rewrite", str(path)]) == 0  # once the holder is gone
    assert "rewrote" in capsys.readouterr().out


def test_rewrite_of_a_part_takes_its_runs_lock(tmp_path, capsys):
    from latbench.harness.store import GraphResult, RunStore

    store = RunStore(tmp_path, "k", {"a": 1})
    store.open()
    store.add(GraphResult("g", 1, "ok", 1.0, 0.1, 10, raw_ns=np.arange(10) + 1))
    part = store.flush()
    before = part.read_bytes()
    with held_elsewhere(tmp_path, "k") as pid:
        rc = main(["rewrite", str(part)])
        out, err = capsys.readouterr()
        _refused(rc, out, err, pid, "rewritten")
    assert part.read_bytes() == before


def _home_with_fine(tmp_path: Path) -> Path:
    """A data home holding one valid 300-row dataset, ``fine``."""
    home = tmp_path / "home"
    home.mkdir()
    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), home / "fine.parquet")
    return home


def test_export_into_the_data_home_refuses_while_the_dataset_is_written(tmp_path, capsys):
    home = _home_with_fine(tmp_path)
    target = write_dataset(skeleton_frame([0, 1]), home / "copy.parquet")
    before = target.read_bytes()
    with held_elsewhere(home, "copy") as pid:
        for fmt in ("parquet", "csv"):
            argv = ["export", "fine", "-o", str(target), "--format", fmt, "--overwrite"]
            rc = main([*argv, "--data-home", str(home)])
            out, err = capsys.readouterr()
            _refused(rc, out, err, pid, "written")
            assert target.read_bytes() == before
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]
    rc = main(["export", "fine", "-o", str(target), "--overwrite", "--data-home", str(home)])
    assert rc == 0 and len(read_dataset(target)) == 300


def test_export_into_a_run_folder_refuses_while_the_run_holds_the_key(tmp_path, capsys):
    home = _home_with_fine(tmp_path)
    runs = tmp_path / "runs"  # a latbench-measure --out, not the data home
    runs.mkdir()
    target = write_dataset(skeleton_frame([0, 1]), runs / "k.parquet")
    before = target.read_bytes()
    with held_elsewhere(runs, "k") as pid:
        rc = main(["export", "fine", "-o", str(target), "--overwrite", "--data-home", str(home)])
        out, err = capsys.readouterr()
        _refused(rc, out, err, pid, "written")
    assert target.read_bytes() == before


def test_export_to_a_folder_no_writer_uses_leaves_no_lock_file(tmp_path, capsys):
    home = _home_with_fine(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    rc = main(["export", "fine", "-o", str(elsewhere / "copy.parquet"), "--data-home", str(home)])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["copy.parquet"]


def _shard(folder: Path, name: str, shard: str, ids: list[int]) -> Path:
    meta = {"device": {"profile": "cpu-onnxruntime", "class": "desktop-cpu"},
            "runtime": {"name": "onnxruntime", "version": "1.0", "threads": 1},
            "precision": "fp32", "protocol": {"runs": 10}, "seed": 0,
            "selection_digest": "abc", "shard": shard}  # fmt: skip
    return write_dataset(skeleton_frame(ids), folder / name, meta)


def test_merge_into_a_dataset_being_written_refuses_and_writes_nothing(tmp_path, capsys):
    a = _shard(tmp_path, "k.shard1of2.parquet", "1/2", [0, 1])
    b = _shard(tmp_path, "k.shard2of2.parquet", "2/2", [2, 3])
    out = write_dataset(skeleton_frame([7]), tmp_path / "k.parquet", {"source": "earlier"})
    before = _snapshot(tmp_path)
    with held_elsewhere(tmp_path, "k") as pid:
        rc = measure_cli.main(["merge", str(a), str(b), "-o", str(out)])
        _, err = capsys.readouterr()
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert f"PID {pid} on host" in err and "not written" in err
        with pytest.raises(KeyLocked, match=f"PID {pid}"):
            merge_datasets([a, b], out)
        after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(".k.lock")} == before
    # the shards' own locks are not the merged dataset's: merging them is not refused
    with held_elsewhere(tmp_path, "k.shard1of2"):
        merged = merge_datasets([a, b], out)
    assert read_dataset(merged)["arch_id"].tolist() == [0, 1, 2, 3]


def _prediction() -> pd.DataFrame:
    valid = dataset.arch_table()["valid"].to_numpy()
    n = len(valid)
    return pd.DataFrame({"arch_id": np.arange(n), "valid": valid,
                         "latency_pred_ms": np.full(n, 2.0), "latency_lo_ms": np.full(n, 1.0),
                         "latency_hi_ms": np.full(n, 3.0), "measured": np.zeros(n, bool)})  # fmt: skip


def test_a_prediction_is_not_written_while_its_dataset_is(tmp_path):
    path = tmp_path / "k.predicted.parquet"
    with held_elsewhere(tmp_path, "k") as pid, pytest.raises(KeyLocked, match=f"PID {pid}"):
        write_predicted(_prediction(), path, {"device": "t"})
    assert not path.exists() and not list(tmp_path.glob(".k.predicted.parquet.*"))
    with hold(tmp_path, "k"):  # as latbench-measure --adapt, which holds it already
        assert write_predicted(_prediction(), path, {"device": "t"}) == path


def test_hold_files_takes_all_locks_or_none(tmp_path):
    (tmp_path / "b").mkdir()
    both = [tmp_path / "a.parquet", tmp_path / "b" / "k.parquet"]
    with (
        held_elsewhere(tmp_path / "b", "k"),
        pytest.raises(KeyLocked, match="not written"),
        hold_files(both),
    ):
        raise AssertionError("the block ran without every lock")
    # the lock taken before the refusal was released again: another process can take it
    code = "import sys; from latbench.lock import hold\nwith hold(sys.argv[1], 'a'): pass\n"
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 0


# --- the sweep of killed writes' temporaries: once per hold ----------------------------


def _stale(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"PAR1" + b"\0" * 1000)
    then = os.path.getmtime(path) - STALE_TMP_AGE_S - 60
    os.utime(path, (then, then))
    return path


def test_the_sweep_scans_the_folder_once_per_hold_not_once_per_write(tmp_path, monkeypatch):
    stale = [
        _stale(tmp_path, ".k.parquet.k1ll3d_0.tmp"),
        _stale(tmp_path, ".k.raw.h5.k1ll3d_1.tmp"),
    ]
    scans: list[Path] = []
    scandir = os.scandir

    def counting(path=".", *args):
        if Path(path) == tmp_path:
            scans.append(Path(path))
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", counting)
    with pytest.warns(StaleTempWarning) as caught, hold(tmp_path, "k"):
        assert not any(p.exists() for p in stale)  # swept as the lock was taken
        for _ in range(3):
            write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")
        with hold(tmp_path, "k"):  # re-entered: no second sweep
            write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")
    # before: one scan per write (4), each while the lock was held
    assert len(scans) == 1
    assert sorted(str(w.message).split(" left: ")[1] for w in caught) == [
        ".k.parquet.k1ll3d_0.tmp",
        ".k.raw.h5.k1ll3d_1.tmp",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleTempWarning)
        write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")  # no lock: no scan
    assert len(scans) == 1


def test_each_hold_sweeps_once_even_without_a_write(tmp_path, monkeypatch):
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        dataset, "remove_stale_temps", lambda f, s, quiet=(): calls.append((str(f), s))
    )
    with hold(tmp_path, "k"), hold(tmp_path, "k"):
        pass
    with hold(tmp_path, "k"):
        pass
    assert calls == [(str(tmp_path), "k")] * 2
