"""A resumed run removes the temporaries that killed part writes left in its parts folder.

Each flush of a measurement run writes a new part, ``<key>.parts/part-<time>-<id>.parquet``,
through :func:`latbench.dataset.atomic_path`; a flush killed outright (``kill -9``,
power loss) leaves its hidden ``.part-....parquet.<random>.tmp``. Part names are new on
every flush, so no later write of that name would ever sweep it; before, only a run
that finished removed them, and a run that never finishes kept them for good. Now the
run that resumes (it holds the key's write lock, so no other writer of those parts is
alive) removes them first, with a one-line :class:`~latbench.dataset.StaleTempWarning`,
and leaves the parts, and everything that is not such a temporary, as they are.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from latbench.dataset import StaleTempWarning, read_dataset
from latbench.harness.artifacts import ArtifactCache
from latbench.harness.plan import make_plan, select_archs
from latbench.harness.profiles import load_profile
from latbench.harness.session import measure
from latbench.harness.store import GraphResult, RunStore
from latbench.lock import hold

KILLED = [
    ".part-00000001754000000000000-0badf00d.parquet.k1ll3d_9.tmp",  # a flush killed mid-write
    ".part-00000001754000000000001-feedbeef.parquet.zz_00001.tmp",
    ".run.json.ab_cd123.tmp",  # the first run's settings, killed mid-write
]


def _latency(key: str) -> float:
    return 1.0 + int.from_bytes(key.encode()[-2:], "big") % 97 / 100


def _result(w) -> GraphResult:
    ms = _latency(w.key)
    raw = np.full(4, int(ms * 1e6), np.int64) + np.arange(4)
    return GraphResult(w.key, w.timed_arch_id, "ok", ms, 0.001, 4, raw_ns=raw)


class _Executor:
    """Times nothing: each graph's figure follows from its key. ``stop_after`` results
    in, it raises KeyboardInterrupt, as Ctrl-C does mid-campaign; ``seen`` records what
    the parts folder held when timing began."""

    build_s = 0.0

    def __init__(self, parts: Path, stop_after: int | None = None) -> None:
        self.parts, self.stop_after = parts, stop_after
        self.seen: dict[str, bytes] | None = None
        self.asked: list[str] = []

    def run(self, profile, work, seed):
        self.seen = {p.name: p.read_bytes() for p in self.parts.iterdir() if p.is_file()}
        for n, w in enumerate(work):
            if n == self.stop_after:
                raise KeyboardInterrupt
            self.asked.append(w.key)
            yield _result(w)

    def info(self):
        return {"name": "fake", "version": "0"}

    def metadata(self):
        return {}

    def close(self):
        pass


def _run(tmp_path: Path, plan, ex: _Executor):
    prof = load_profile("cpu-onnxruntime").with_protocol(runs=4, group_size=2, warmup=0)
    return measure(prof, plan, out_dir=tmp_path / "out", key="k", cache=ArtifactCache(
        tmp_path / "cache"), progress=False, flush_every=1, executor=ex)  # fmt: skip


def _plant(parts: Path) -> tuple[list[Path], list[Path]]:
    """Killed writes' temporaries, and look-alikes that are not ones (they stay)."""
    killed = []
    for name in KILLED:
        (parts / name).write_bytes(b"PAR1" + b"\0" * 30_000)
        killed.append(parts / name)
    outside = parts.parent / "elsewhere.bin"
    outside.write_bytes(b"not ours")
    link = parts / ".part-2.parquet.link0001.tmp"
    link.symlink_to(outside)
    folder = parts / ".part-3.parquet.dir00001.tmp"
    folder.mkdir()
    kept = [
        link,
        folder,
        parts / ".other.k1ll3d_9.tmp",  # not a part's or run.json's
        parts / ".part-4.parquet.ABCD1234.tmp",  # mkstemp uses lowercase
        parts / "fleet.json",  # a fleet's state
    ]
    for p in kept[2:]:
        p.write_text("keep")
    return killed, kept


def test_a_resumed_run_removes_killed_part_writes_and_keeps_its_parts(tmp_path):
    plan = make_plan(select_archs(limit=6, seed=1))
    parts = tmp_path / "out" / "k.parts"
    first = _Executor(parts, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, plan, first)
    stored = {p.name: p.read_bytes() for p in parts.glob("part-*.parquet")}
    assert len(stored) == 3 and (parts / "run.json").is_file()
    killed, kept = _plant(parts)

    again = _Executor(parts)
    with pytest.warns(StaleTempWarning) as caught:
        summary = _run(tmp_path, plan, again)

    # the resumed run found its parts as they were, and no temporary beside them
    assert again.seen is not None
    assert {n: b for n, b in again.seen.items() if n.startswith("part-")} == stored
    assert not any(p.exists() for p in killed)
    assert not set(again.seen) & {p.name for p in killed}
    assert all(p.exists() or p.is_symlink() for p in kept)
    assert (tmp_path / "out" / "elsewhere.bin").read_bytes() == b"not ours"
    # one line naming the folder, the count and the files
    msgs = [str(w.message) for w in caught if issubclass(w.category, StaleTempWarning)]
    assert len(msgs) == 1 and "\n" not in msgs[0], msgs
    assert msgs[0].startswith("removed 3 temporary file(s) (0.1 MB) that interrupted writes")
    assert str(parts) in msgs[0] and all(name in msgs[0] for name in KILLED)
    # ... and resumed: only the three graphs not stored were timed, all six are in the dataset
    assert summary.reused == 3 and sorted(first.asked + again.asked) == sorted(
        w.key for w in plan.work
    )
    df = read_dataset(summary.dataset)
    ok = df[df["status"] == "ok"].drop_duplicates("graph_key")
    assert len(ok) == len(plan.work)
    for row in ok.itertuples():
        assert row.latency_ms == pytest.approx(_latency(row.graph_key), abs=1e-6)


def test_without_the_lock_the_temporaries_stay(tmp_path):
    parts = tmp_path / "k.parts"
    parts.mkdir()
    killed, _ = _plant(parts)
    cfg = {"profile": "p", "seed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleTempWarning)
        RunStore(tmp_path, "k", cfg).open()  # a reader, or a writer without the lock
        with hold(tmp_path, "j"):  # another key's lock
            RunStore(tmp_path, "k", cfg).open()
    assert all(p.exists() for p in killed)
    with hold(tmp_path, "k"), pytest.warns(StaleTempWarning, match="removed 3 temporary"):
        RunStore(tmp_path, "k", cfg).open()
    assert not any(p.exists() for p in killed)


def test_a_temporary_being_removed_meanwhile_is_no_error(tmp_path, monkeypatch):
    parts = tmp_path / "k.parts"
    parts.mkdir()
    killed, _ = _plant(parts)
    real_unlink = Path.unlink

    def racing_unlink(self, *args, **kwargs):
        if self == killed[0]:
            real_unlink(self)  # another cleaner got there first
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", racing_unlink)
    with hold(tmp_path, "k"), pytest.warns(StaleTempWarning, match="removed 2 temporary"):
        RunStore(tmp_path, "k", {"seed": 0}).open()
    assert not any(os.path.lexists(p) for p in killed)
