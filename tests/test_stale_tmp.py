"""Temporaries a killed write left (``kill -9``, power loss) are removed by the next writer.

:func:`latbench.dataset.atomic_path` writes ``.<name>.<random>.tmp`` beside its target;
a hard kill leaves it there, hidden, for good. The next process to take the dataset's
write lock removes those temporaries as it takes it: only that dataset's, only regular
files, only ones no live writer has touched lately.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from latbench import cli
from latbench.dataset import (
    STALE_TMP_AGE_S,
    StaleTempWarning,
    atomic_path,
    skeleton_frame,
    write_dataset,
)
from latbench.importers import import_path
from latbench.lock import hold, holds
from latbench.space import all_archs

CPU_FILE = "desktop-cpu-core-i7-7820x-fp32"  # a published release file name ...
KEY = "desktop-cpu-i7-7820x-fp32"  # ... and the key it is imported under


def _leftover(folder: Path, name: str, *, age: float = STALE_TMP_AGE_S + 60) -> Path:
    """A partly written temporary ``name`` in ``folder``, last written ``age`` s ago."""
    path = folder / name
    path.write_bytes(b"PAR1" + b"\0" * 50_000)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _similar(folder: Path, target: str) -> list[Path]:
    """Files named like the temporaries of ``target`` that are not ones, or not stale."""
    outside = folder / "elsewhere" / "data.bin"
    outside.parent.mkdir()
    outside.write_bytes(b"not ours")
    link = folder / f".{target}.link0001.tmp"
    link.symlink_to(outside)
    os.utime(link, (0, 0), follow_symlinks=False)
    directory = folder / f".{target}.dir00001.tmp"
    directory.mkdir()
    os.utime(directory, (0, 0))
    return [
        _leftover(folder, ".other-key.parquet.abcd1234.tmp"),  # another dataset's
        _leftover(folder, f".{KEY}.shard1of2.parquet.abcd1234.tmp"),  # another stem's
        _leftover(folder, f".{target}.abcd1234.tmp.bak"),  # not the pattern
        _leftover(folder, f".{target}.abc.tmp"),  # not mkstemp's 8 characters
        _leftover(folder, f".{target}.ABCD1234.tmp"),  # mkstemp uses lowercase
        _leftover(folder, f"{target}.abcd1234.tmp"),  # not hidden
        _leftover(folder, f".{target}.young123.tmp", age=5),  # a live writer's, maybe
        link,
        directory,
        outside,
    ]


def _release(n: int = 60) -> dict:
    rng = np.random.default_rng(0)
    valid = [a.vector for a in all_archs() if a.valid][:n]
    return {v: np.float64(x) for v, x in zip(valid, rng.uniform(1e-3, 5e-2, n), strict=True)}


@pytest.fixture
def release(tmp_path) -> Path:
    d = tmp_path / "release"
    d.mkdir()
    (d / f"{CPU_FILE}.pickle").write_bytes(pickle.dumps(_release(), protocol=3))
    return d


def test_an_import_removes_what_a_killed_import_left_and_nothing_else(tmp_path, release):
    home = tmp_path / "home"
    home.mkdir()
    stale = [_leftover(home, f".{KEY}.parquet.{r}.tmp") for r in ("k1ll3d_9", "zz_00001")]
    kept = _similar(home, f"{KEY}.parquet")
    with pytest.warns(StaleTempWarning, match=f"removed 2 temporary file.*{KEY}.parquet"):
        (written,) = import_path("eagle", release, data_home=home)
    assert written == home / f"{KEY}.parquet" and written.is_file()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() or p.is_symlink() for p in kept)
    assert (home / "elsewhere" / "data.bin").read_bytes() == b"not ours"


def test_the_cli_says_what_it_removed_in_one_warning_line(tmp_path, release, capsys):
    home = tmp_path / "home"
    home.mkdir()
    stale = _leftover(home, f".{KEY}.parquet.k1ll3d_9.tmp")
    assert cli.main(["import", "eagle", str(release), "--data-home", str(home)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert not stale.exists()
    assert [e for e in err if "temporary" in e] == [
        f"latbench: warning: removed 1 temporary file(s) (0.1 MB) that an interrupted write"
        f" of {home / (KEY + '.parquet')} left: .{KEY}.parquet.k1ll3d_9.tmp"
    ]


def test_a_measurement_run_removes_them_beside_its_dataset_and_raw_timings(tmp_path):
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.store import GraphResult, RunStore

    plan = make_plan(select_archs(limit=6, seed=1))
    targets = ("k.parquet", "k.raw.h5")
    stale = [_leftover(tmp_path, f".{t}.s7ale_0{i}.tmp") for i, t in enumerate(targets)]
    kept = _similar(tmp_path, "k.parquet")
    cfg = {"profile": "cpu-onnxruntime", "protocol": {"runs": 4, "group_size": 2}, "seed": 0}
    # the sweep runs as the lock is taken, so the warnings come from hold itself
    with pytest.warns(StaleTempWarning) as caught, hold(tmp_path, "k"):  # as latbench-measure
        store = RunStore(tmp_path, "k", cfg)
        store.open()
        for w in plan.work:
            raw = np.arange(4, dtype=np.int64) + 1_000_000
            store.add(GraphResult(w.key, w.timed_arch_id, "ok", 1.0, 0.01, 4, raw_ns=raw))
        store.finalize(plan, {"protocol": cfg["protocol"]})
    assert len(caught) == 2  # one line per file the temporaries were for
    assert not any(p.exists() for p in stale)
    assert all(p.exists() or p.is_symlink() for p in kept)


def test_a_write_without_the_lock_leaves_them(tmp_path):
    stale = _leftover(tmp_path, ".k.parquet.abcd1234.tmp")
    other = tmp_path / "other"
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleTempWarning)
        write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")  # no lock at all
        with hold(tmp_path, "j"):  # another key's lock
            write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")
        with hold(other, "k"):  # the same key's, in another folder
            write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")
    assert stale.exists()
    with pytest.warns(StaleTempWarning), hold(tmp_path, "k"):
        write_dataset(skeleton_frame([0, 1]), tmp_path / "k.parquet")
    assert not stale.exists()


@pytest.mark.parametrize(
    ("name", "held"),
    [("k.parquet", True), ("k.raw.h5", True), ("k.layers.parquet", True),
     ("k.predicted.parquet", True), ("k.shard1of2.parquet", False), ("k.v2.parquet", False),
     ("k.json", False), ("j.parquet", False)],
)  # fmt: skip
def test_which_files_a_key_lock_covers(tmp_path, name, held):
    assert not holds(tmp_path / name)
    with hold(tmp_path, "k"):
        assert holds(tmp_path / name) is held
        assert not holds(tmp_path / "sub" / name)
    assert not holds(tmp_path / name)


def test_a_shard_lock_covers_only_its_own_files(tmp_path):
    shard = _leftover(tmp_path, ".k.shard1of2.parquet.abcd1234.tmp")
    whole = _leftover(tmp_path, ".k.parquet.abcd1234.tmp")
    with (
        pytest.warns(StaleTempWarning),
        hold(tmp_path, "k.shard1of2"),
        atomic_path(tmp_path / "k.shard1of2.parquet") as tmp,
    ):
        tmp.write_bytes(b"x")
    assert not shard.exists() and whole.exists()


def test_a_finished_runs_parts_folder_goes_with_its_killed_writes_temporaries(tmp_path):
    # part files get a new name on every flush, so no later write of the same name
    # would ever clean a killed flush's temporary: the finished run's cleanup does
    from latbench.harness.store import RunStore

    parts = tmp_path / "k.parts"
    parts.mkdir()
    (parts / "part-00000000000000000001-abcdef12.parquet").write_bytes(b"part")
    (parts / "run.json").write_text("{}")
    (parts / ".part-00000000000000000002-0badf00d.parquet.k1ll3d_9.tmp").write_bytes(b"half")
    (parts / ".run.json.ab_cd123.tmp").write_text("{")
    assert RunStore(tmp_path, "k", {}).discard_parts()
    assert not parts.exists()
    # anything else (a fleet's state, a damaged part kept aside) keeps the folder
    parts.mkdir()
    (parts / ".part-1.parquet.k1ll3d_9.tmp").write_bytes(b"half")
    (parts / "fleet.json").write_text("{}")
    (parts / ".other.k1ll3d_9.tmp").write_text("not ours")
    assert not RunStore(tmp_path, "k", {}).discard_parts()
    assert sorted(p.name for p in parts.iterdir()) == [".other.k1ll3d_9.tmp", "fleet.json"]
