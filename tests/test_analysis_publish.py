"""latbench-analysis publishes its results crash-safe and without stale files.

A run killed between two of its moves into the output folder is completed by the
next run (never a mix of two runs' files); each result's files are listed in the
output folder's manifest, so a rerun of that result removes the files it no longer
writes (a dataset's figure from an earlier run), and nothing else; the NAS files are
moved once; staging folders of an earlier LatBench version are removed once old.

The command-level runs use the bundled datasets, a synthetic accuracy table and the
cheapest NAS settings (seconds).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from synthetic_accuracy import write_synthetic_accuracy

from latbench.analysis import publishing, staging
from latbench.analysis.cli import main
from latbench.analysis.staging import (
    JOURNAL_FILE,
    MANIFEST,
    OWNER_FILE,
    PREFIXES,
    claim,
    remove_abandoned,
    staged,
)

PARTIAL = "xeon2c-tf-fp32"  # 1,500 measured models: aging evolution skipped (seconds)
FULL = "xeon2c-tflite-fp32"  # all measured: aging evolution runs
NAS_FAST = ("--predictors", "flops", "--ae-steps", "64", "--ae-seeds", "1", "--quiet")
NOTES = "notes.txt"  # a user's own file in the output folder


def _manifest(out: Path) -> dict[str, str]:
    data = json.loads((out / MANIFEST).read_text())
    assert data["format"] == 1
    return data["files"]


def _names(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (PIDs are not reused this fast)


def _results(out: Path, files: dict[str, str], manifest: dict[str, str] | None = None) -> None:
    """An output folder holding ``files`` (name: text) and, if given, a manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    if manifest is not None:
        (out / MANIFEST).write_text(json.dumps({"format": 1, "files": manifest}))


def _stages(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name.startswith(PREFIXES))


def _plant(
    out: Path, files: dict[str, str], moves: list[str], *, owner: dict | None = None
) -> Path:
    """A staging folder of ``owner`` (by default a process of this host that is gone)
    that began publishing: ``files`` in it, its journal moving ``moves``."""
    stage = out / f".latbench-partial-{len(_stages(out)) if out.is_dir() else 0}"
    _results(stage, files)
    owner = owner or {"host": socket.gethostname(), "pid": _dead_pid()}
    (stage / OWNER_FILE).write_text(json.dumps(owner))
    (stage / JOURNAL_FILE).write_text(json.dumps({"format": 1, "move": moves, "remove": []}))
    return stage


def _owned(stage: Path, files: dict[str, str], owner: dict) -> Path:
    """A staging folder holding ``files``, its owner file naming ``owner``; no journal."""
    _results(stage, files)
    (stage / OWNER_FILE).write_text(json.dumps(owner))
    return stage


def _disk_full_for(monkeypatch, name: str) -> None:
    """Make every move of a file named ``name`` fail with ENOSPC."""
    real = os.replace

    def replace(src, dst, **kw):
        if Path(dst).name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)


def publish_move(src, dst, kw) -> tuple[int, str] | None:
    """``(inode of the folder it goes into, name)`` if this ``os.replace`` is a publish's
    move out of a staging folder (by descriptor, or by path where there are none), else
    ``None`` (a temporary renamed inside a folder)."""
    if "dst_dir_fd" in kw:
        return os.fstat(kw["dst_dir_fd"]).st_ino, os.fspath(dst)
    staged_src, staged_dst = (any(p in os.fspath(x) for p in PREFIXES) for x in (src, dst))
    if staged_src and not staged_dst:
        return os.stat(Path(dst).parent).st_ino, Path(dst).name
    return None


# --- 1. a publish killed midway is completed by the next run ---------------------------------

_KILLED_PUBLISH = """
import os, sys
from pathlib import Path
from latbench.analysis import staging

out, k = Path(sys.argv[1]), int(sys.argv[2])
real, moved = os.replace, []
if os.environ.get("LATBENCH_TEST_PUBLISH_BY_PATH"):  # as on Windows
    from latbench.analysis import publishing
    publishing._DIR_FD = False

def replace(src, dst, **kw):  # the publish's moves, not a temporary
    if "dst_dir_fd" in kw or (".latbench-partial-" in str(src) and ".latbench-partial-" not in str(dst)):
        if len(moved) == k:
            os._exit(9)  # as kill -9: no cleanup at all
        moved.append(dst)
    return real(src, dst, **kw)

os.replace = replace
with staging.staged(out, results="r") as stage:
    for name in ("a.csv", "b.csv", "c.png", "d.md"):
        (stage / name).write_text(f"new {name}\\n")
"""
NEW = ("a.csv", "b.csv", "c.png", "d.md")


def _killed_while_publishing(out: Path, k: int) -> None:
    """A previous run's results (``old <name>``, ``gone.png`` among them), the user's
    notes and another result's file, then a run killed after ``k`` of its moves."""
    old = {n: f"old {n}\n" for n in (*NEW, "gone.png")}
    _results(out, {**old, NOTES: "my notes\n", "other.csv": "other\n"},
             manifest={**dict.fromkeys(old, "r"), "other.csv": "s"})  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _KILLED_PUBLISH, str(out), str(k)])
    assert proc.returncode == 9


def _completed(out: Path) -> None:
    assert _names(out) == sorted([MANIFEST, *NEW, NOTES, "other.csv"])  # gone.png removed
    assert all((out / n).read_text() == f"new {n}\n" for n in NEW)
    assert (out / NOTES).read_text() == "my notes\n" and (
        out / "other.csv"
    ).read_text() == "other\n"
    assert _manifest(out) == {**dict.fromkeys(NEW, "r"), "other.csv": "s"}


@pytest.mark.parametrize("k", [0, 2, 4])  # before the first move, midway, before the manifest
def test_a_publish_killed_midway_is_completed_by_the_next_run(tmp_path, k):
    out = tmp_path / "out"
    _killed_while_publishing(out, k)
    (stage,) = [p for p in out.iterdir() if p.name.startswith(PREFIXES)]
    assert (stage / JOURNAL_FILE).is_file()
    fresh = [n for n in NEW if (out / n).read_text() == f"new {n}\n"]
    assert fresh == list(NEW[:k])  # the mix the kill left: k new files, the rest old
    with pytest.warns(UserWarning, match=r"completed the results of 1 run\(s\) stopped") as w:
        assert remove_abandoned(out) == [stage]
    assert len(w) == 1
    _completed(out)


def test_the_next_run_completes_a_killed_publish_before_its_own(tmp_path):
    out = tmp_path / "out"
    _killed_while_publishing(out, 2)
    with pytest.warns(UserWarning, match="completed the results"), staged(out, results="r") as s:
        (s / "a.csv").write_text("newest a.csv\n")
    # the killed run's set is completed, then replaced by this one's: b, c, d are the
    # killed run's files of result r, which this run no longer writes
    assert _names(out) == sorted([MANIFEST, "a.csv", NOTES, "other.csv"])
    assert (out / "a.csv").read_text() == "newest a.csv\n"
    assert _manifest(out) == {"a.csv": "r", "other.csv": "s"}


def test_a_staging_folder_killed_before_publishing_is_removed_not_published(tmp_path):
    out = tmp_path / "out"
    _results(out, {"a.csv": "old a\n"})
    stage = out / ".latbench-partial-dead"
    _results(stage, {"a.csv": "half-written\n"})
    (stage / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    with pytest.warns(UserWarning, match="unfinished result folder"):
        remove_abandoned(out)
    assert _names(out) == ["a.csv"] and (out / "a.csv").read_text() == "old a\n"


def test_a_planted_journal_reaching_outside_completes_nothing(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    stage = out / ".latbench-partial-planted"
    _results(stage, {"a.csv": "a\n"})
    (stage / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    journal = {"format": 1, "move": ["a.csv"], "remove": ["../outside.txt"]}
    (stage / JOURNAL_FILE).write_text(json.dumps(journal))
    with pytest.warns(UserWarning, match="could not complete"):
        assert remove_abandoned(out) == []
    assert outside.read_text() == "keep me\n" and (stage / "a.csv").is_file()


def test_a_journal_never_moves_a_file_through_a_link(tmp_path):
    """A planted journal (this user's, say through a shared folder) neither moves a file
    out of the folder through a link nor over a file elsewhere: those entries are skipped."""
    out, home, secret = tmp_path / "out", tmp_path / "home", tmp_path / "secret"
    _results(home, {".bashrc": "mine\n"})
    _results(secret, {"id_rsa": "KEY\n"})
    moves = ["a.csv", "home/.bashrc", "link.csv", "loot/id_rsa"]
    stage = _plant(out, {"a.csv": "a\n", "home/.bashrc": "evil\n"}, moves)
    (out / "home").symlink_to(home)  # the target side leads out of the output folder
    (stage / "loot").symlink_to(secret)  # the source side leads out of the staging folder
    (stage / "link.csv").symlink_to(secret / "id_rsa")  # a link, not a file
    with pytest.warns(UserWarning) as w:
        remove_abandoned(out)
    assert (home / ".bashrc").read_text() == "mine\n"
    assert (secret / "id_rsa").read_text() == "KEY\n" and sorted(os.listdir(secret)) == ["id_rsa"]
    assert (out / "a.csv").read_text() == "a\n"  # the rest of the set is completed
    assert sorted(os.listdir(out)) == ["a.csv", "home"] and (out / "home").is_symlink()
    skipped = [str(x.message) for x in w if "did not move" in str(x.message)]
    assert len(skipped) == 1
    assert all(rel in skipped[0] for rel in ("home/.bashrc", "link.csv", "loot/id_rsa"))
    # a run's own publish stops before its first move on a link where a folder goes
    with pytest.raises(NotADirectoryError, match="in the way"), staged(out) as s:
        _results(s, {"b.csv": "b\n", "home/x.csv": "x\n"})
    assert sorted(os.listdir(home)) == [".bashrc"] and not (out / "b.csv").exists()


def test_another_users_staging_folders_are_left_alone(tmp_path, monkeypatch):
    out = tmp_path / "out"
    journaled = _plant(out, {"a.csv": "theirs\n"}, ["a.csv"])
    killed = out / ".latbench-partial-killed"
    _results(killed, {"b.csv": "half-written\n"})
    (killed / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    ownerless = out / ".latbench-partial-old"
    _results(ownerless, {"c.csv": "half-written\n"})
    _age(ownerless, 3 * 86400)
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)  # made by another user
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert remove_abandoned(out) == []
        with staged(out, results="r") as s:
            _results(s, {"d.csv": "d\n"})
    assert _stages(out) == sorted([journaled, killed, ownerless])
    assert (journaled / JOURNAL_FILE).is_file() and not (out / "a.csv").exists()
    assert (out / "d.csv").read_text() == "d\n"


def test_an_earlier_failed_publish_of_this_process_goes_in_before_its_next(tmp_path, monkeypatch):
    """A publish that failed midway (a full disk) keeps its journal; the same process (a
    notebook) publishing again completes it first, so no later run replays it."""
    out = tmp_path / "out"
    _disk_full_for(monkeypatch, "b.csv")
    with pytest.raises(OSError, match="No space") as exc, staged(out, results="r") as s:
        _results(s, {"a.csv": "run1\n", "b.csv": "run1\n"})
    assert exc.value.filename == str(out / "b.csv")  # where it was going
    (kept,) = _stages(out)
    assert (kept / JOURNAL_FILE).is_file() and (out / "a.csv").read_text() == "run1\n"
    monkeypatch.undo()  # room on the disk again
    with pytest.warns(UserWarning, match="completed the results"), staged(out, results="r") as s:
        _results(s, {"a.csv": "run2\n", "b.csv": "run2\n"})
    assert _stages(out) == []  # nothing left for a later run to replay over run2's files
    with staged(out, results="s") as s:
        _results(s, {"s.csv": "run3\n"})
    assert [(out / n).read_text() for n in ("a.csv", "b.csv")] == ["run2\n", "run2\n"]
    assert _manifest(out) == {"a.csv": "r", "b.csv": "r", "s.csv": "s"}


def test_a_staging_folder_from_before_a_reboot_is_abandoned(tmp_path):
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pytest.skip("no boot id on this system")
    out, host, alive = tmp_path / "out", socket.gethostname(), os.getppid()
    # its PID runs again since, another process's
    before = _plant(out, {"a.csv": "a\n"}, ["a.csv"],
                    owner={"host": host, "pid": alive, "boot": "another boot"})  # fmt: skip
    killed = _owned(out / ".latbench-partial-killed", {"b.csv": "half-written\n"},
                    {"host": host, "pid": alive, "boot": "x"})  # fmt: skip
    live = _owned(out / ".latbench-partial-live", {"c.csv": "writing\n"},
                  {"host": host, "pid": alive, "boot": boot})  # fmt: skip
    with pytest.warns(UserWarning):
        assert sorted(remove_abandoned(out)) == sorted([before, killed])
    assert _stages(out) == [live] and (out / "a.csv").read_text() == "a\n"
    with staged(out) as s:
        assert json.loads((s / OWNER_FILE).read_text())["boot"] == boot


def test_another_containers_staging_folder_is_not_taken_for_abandoned(tmp_path):
    """Containers sharing host name and boot (host networking, one bind-mounted output
    folder) number processes apart: a PID recorded in another PID namespace that does
    not run here is no proof its writer is gone; one of ours is."""
    ours = staging.pid_namespace()
    if ours is None:
        pytest.skip("no /proc/self/ns/pid on this system")
    out, host, dead = tmp_path / "out", socket.gethostname(), _dead_pid()
    theirs = _owned(out / ".latbench-partial-theirs", {"a.csv": "writing\n"},
                    {"host": host, "pid": dead, "pidns": "0:1"})  # fmt: skip
    mine = _owned(out / ".latbench-partial-mine", {"b.csv": "half-written\n"},
                  {"host": host, "pid": dead, "pidns": ours})  # fmt: skip
    with pytest.warns(UserWarning, match="1 "):
        assert remove_abandoned(out) == [mine]
    assert _stages(out) == [theirs]
    with staged(out) as s:
        assert json.loads((s / OWNER_FILE).read_text())["pidns"] == ours


def test_a_journal_of_another_container_is_completed_under_the_folder_lock(tmp_path):
    """The folder lock (``flock``) is shared by containers on one file system, and a
    publish holds it while its journal exists: a journal found under it is a stopped one."""
    out, host = tmp_path / "out", socket.gethostname()
    stage = _plant(out, {"a.csv": "theirs\n"}, ["a.csv"],
                   owner={"host": host, "pid": _dead_pid(), "pidns": "0:1"})  # fmt: skip
    with pytest.warns(UserWarning, match="completed"), staged(out, results="r") as s:
        _results(s, {"b.csv": "ours\n"})
    assert not stage.exists()
    assert (out / "a.csv").read_text() == "theirs\n" and (out / "b.csv").read_text() == "ours\n"


def test_no_run_publishes_before_an_earlier_runs_pending_moves(tmp_path, monkeypatch):
    """Moves a killed run began that cannot be completed (a full disk) stop the next
    publish in one error naming the folder: newer results never land before older ones."""
    out = tmp_path / "out"
    _results(out, {"old.csv": "older\n"})
    stage = _plant(out, {"old.csv": "killed run\n"}, ["old.csv"])
    _disk_full_for(monkeypatch, "old.csv")
    stopped = pytest.raises(OSError, match=r"could not all be moved.* remove")
    disk_full = pytest.warns(UserWarning, match="could not complete")
    with disk_full, stopped as exc, staged(out, results="r") as s:
        _results(s, {"new.csv": "newer\n"})
    assert exc.value.filename == str(stage) and "No space left" in exc.value.strerror
    assert not (out / "new.csv").exists() and (out / "old.csv").read_text() == "older\n"
    assert _stages(out) == [stage] and (stage / JOURNAL_FILE).is_file()
    monkeypatch.undo()  # room again: the rerun completes the earlier moves, then its own
    with pytest.warns(UserWarning, match="completed the results"), staged(out, results="r") as s:
        _results(s, {"new.csv": "newer\n"})
    assert (out / "old.csv").read_text() == "killed run\n"
    assert (out / "new.csv").read_text() == "newer\n" and _stages(out) == []


def test_a_journal_is_read_under_the_lock_and_completed_once(tmp_path, monkeypatch):
    """A run descheduled between finding a killed run's journal and taking the lock, while
    another completes that journal and publishes: it replays nothing (the other's file stays)."""
    out = tmp_path / "out"
    _results(out, {"a.csv": "old\n", "gone.png": "old\n"},
             manifest={"a.csv": "r", "gone.png": "r"})  # fmt: skip
    man = {"format": 1, "files": {"a.csv": "r"}}
    stage = _plant(out, {"a.csv": "killed run\n", MANIFEST: json.dumps(man)}, ["a.csv", MANIFEST])
    (stage / JOURNAL_FILE).write_text(
        json.dumps({"format": 1, "move": ["a.csv", MANIFEST], "remove": ["gone.png"]})
    )
    real, ran = staging.folder_lock, []

    @contextmanager
    def late(folder):
        if not ran:  # meanwhile run A completes the journal and publishes a new gone.png
            ran.append(True)
            with staged(out, results="r") as s:
                _results(s, {"a.csv": "A\n", "gone.png": "A's new figure\n"})
        with real(folder) as locked:
            yield locked

    monkeypatch.setattr(staging, "folder_lock", late)
    with pytest.warns(UserWarning, match="completed the results") as w:
        remove_abandoned(out)  # run B
    assert ran and len(w) == 1  # A's warning only: B found the journal gone
    assert (out / "gone.png").read_text() == "A's new figure\n"
    assert (out / "a.csv").read_text() == "A\n" and _stages(out) == []
    assert _manifest(out) == {"a.csv": "r", "gone.png": "r"}


def test_ctrl_c_between_two_moves_still_publishes_the_whole_set(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _results(out, {n: f"old {n}\n" for n in NEW}, {n: "r" for n in NEW})
    real, calls = os.replace, []

    def replace(src, dst, **kw):
        if publish_move(src, dst, kw):  # into out: the files are not nested
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), staged(out, results="r") as stage:
        for n in NEW:
            (stage / n).write_text(f"new {n}\n")
    assert _names(out) == sorted([MANIFEST, *NEW])  # no staging folder left
    assert all((out / n).read_text() == f"new {n}\n" for n in NEW)


# --- 2. a rerun removes the files of its result it no longer writes, and nothing else --------


def test_a_rerun_removes_only_its_own_results_it_no_longer_writes(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    _results(out, {NOTES: "my notes\n"})
    _results(elsewhere, {"y.png": "theirs\n", "b.csv": "theirs\n"})
    with staged(out, results="r") as stage:
        _results(stage, {n: "1\n" for n in ("a.csv", "sub/b.csv", "x.png", "y.png", "z.png")})
    with staged(out, results="s") as stage:
        _results(stage, {"s.csv": "1\n"})
    assert _manifest(out) == {**dict.fromkeys(["a.csv", "sub/b.csv", "x.png", "y.png",
                                               "z.png"], "r"), "s.csv": "s"}  # fmt: skip
    (out / "x.png").unlink()
    (out / "x.png").mkdir()  # a listed path that is now a folder ...
    (out / "y.png").unlink()
    (out / "y.png").symlink_to(elsewhere / "y.png")  # ... or a link: left alone
    (out / "sub" / "b.csv").unlink()
    (out / "sub").rmdir()
    (out / "sub").symlink_to(elsewhere)  # a listed file under a link: never reached
    with staged(out, results="r") as stage:
        _results(stage, {"a.csv": "2\n"})
    assert _names(out) == sorted([MANIFEST, "a.csv", NOTES, "s.csv", "sub", "x.png", "y.png"])
    assert not (out / "z.png").exists()  # the earlier run's file of r: removed
    assert (out / NOTES).read_text() == "my notes\n" and (out / "s.csv").read_text() == "1\n"
    assert (elsewhere / "y.png").read_text() == "theirs\n"
    assert (elsewhere / "b.csv").read_text() == "theirs\n"
    assert _manifest(out) == {"a.csv": "r", "s.csv": "s"}


def test_a_file_another_result_wrote_changes_hands(tmp_path):
    out = tmp_path / "out"
    with staged(out, results="s") as stage:
        _results(stage, {"shared.csv": "s\n", "s.csv": "s\n"})
    with staged(out, results="r") as stage:
        _results(stage, {"shared.csv": "r\n"})
    assert _manifest(out) == {"shared.csv": "r", "s.csv": "s"}
    with staged(out, results="s") as stage:
        _results(stage, {"s.csv": "s2\n"})  # shared.csv is r's now: kept
    assert (out / "shared.csv").read_text() == "r\n"


def test_claims_split_one_run_into_result_sets(tmp_path):
    out = tmp_path / "out"
    with staged(out, results="all") as stage:
        _results(stage, {"p1.csv": "1\n", "p2.csv": "1\n"})
        assert claim(stage, "p") == ["p1.csv", "p2.csv"]
        _results(stage, {"q1.csv": "1\n"})
        assert claim(stage, "q") == ["q1.csv"]
        _results(stage, {"README.md": "1\n"})
    assert _manifest(out) == {"README.md": "all", "p1.csv": "p", "p2.csv": "p", "q1.csv": "q"}
    with staged(out, results="p") as stage:
        _results(stage, {"p1.csv": "2\n"})
    assert _names(out) == sorted([MANIFEST, "README.md", "p1.csv", "q1.csv"])
    with staged(out, results="all") as stage:
        claim(stage, "q")  # q ran and wrote nothing: its earlier files go
    assert _names(out) == sorted([MANIFEST, "p1.csv"])


@pytest.mark.parametrize(
    "manifest",
    [
        "old .latbench-results.json\n",
        json.dumps({"format": 2, "files": {"a.csv": "r"}}),
        json.dumps({"format": 1, "files": {"../outside.txt": "r", "/abs": "r", "": "r"}}),
    ],
)
def test_a_damaged_or_planted_manifest_removes_nothing(tmp_path, manifest):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    _results(out, {"a.csv": "old\n", MANIFEST: manifest})
    with staged(out, results="r") as stage:
        _results(stage, {"b.csv": "new\n"})
    assert (out / "a.csv").read_text() == "old\n" and outside.read_text() == "keep me\n"
    assert _manifest(out) == {"b.csv": "r"}


def test_staged_without_a_result_name_keeps_no_manifest(tmp_path):
    out = tmp_path / "out"
    with staged(out) as stage:
        _results(stage, {"a.csv": "1\n"})
    assert _names(out) == ["a.csv"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A data home whose only content is a synthetic accuracy table."""
    home = tmp_path_factory.mktemp("publish-home")
    write_synthetic_accuracy(home)
    return home


def _nas(home: Path, out: Path, devices: str) -> int:
    return main(["nas", "--devices", devices, "--data-home", str(home), "--out", str(out),
                 *NAS_FAST])  # fmt: skip


def test_a_nas_rerun_removes_the_figures_of_a_dataset_it_left_out(home, tmp_path, capsys):
    out = tmp_path / "out"
    assert _nas(home, out, f"{PARTIAL},{FULL}") == 0
    gone = [f"nas_{fig}_{FULL}.png" for fig in ("fig2", "fig3", "figS3")] + ["cross_device.csv"]
    assert all((out / n).is_file() for n in gone)
    (out / NOTES).write_text("my notes\n")
    # another command's results in the same folder: `all` without the accuracy table (no NAS)
    no_accuracy = tmp_path / "home"
    rc = main(["all", "--devices", PARTIAL, "--data-home", str(no_accuracy), "--out", str(out),
               "--predictors", "flops", "--repeats", "1", "--quiet"])  # fmt: skip
    assert rc == 0 and all((out / n).is_file() for n in gone)  # `all` ran no NAS: kept
    listed = _manifest(out)
    assert listed["README.md"] == "all" and listed["pairs.png"] == "pairs"
    assert listed["correlation_pearson.csv"] == "correlation" and listed[gone[0]] == "nas"
    not_nas = {n for n, s in listed.items() if s != "nas"}
    assert _nas(home, out, PARTIAL) == 0
    assert not any((out / n).exists() for n in gone)
    assert all((out / n).is_file() for n in not_nas) and (out / NOTES).read_text() == "my notes\n"
    assert {n for n, s in _manifest(out).items() if s != "nas"} == not_nas
    assert "Traceback" not in capsys.readouterr().err


# --- 3. the NAS files are moved once ----------------------------------------------------------


def test_each_nas_file_is_moved_into_the_output_folder_once(home, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real, moves = os.replace, []

    def replace(src, dst, **kw):
        if move := publish_move(src, dst, kw):  # (the folder it goes into, the name)
            moves.append(move)
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    assert _nas(home, out, PARTIAL) == 0
    assert "nas.md" in {name for _, name in moves}
    # never into another staging folder
    assert all(folder == out.stat().st_ino for folder, _ in moves), moves
    assert max(Counter(moves).values()) == 1


def test_a_stage_inside_a_stage_is_the_same_folder(tmp_path):
    out = tmp_path / "out"
    with staged(out, results="all") as outer:
        with staged(outer, prefix=".nas-partial-", results="nas") as inner:
            assert inner == outer
            _results(inner, {"nas.md": "1\n"})
        _results(outer, {"README.md": "1\n"})
    assert _names(out) == sorted([MANIFEST, "README.md", "nas.md"])
    assert _manifest(out) == {"README.md": "all", "nas.md": "nas"}


# --- 4. staging folders of an earlier LatBench version (no owner file) ------------------------


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [*folder.rglob("*"), folder]:
        os.utime(p, (then, then), follow_symlinks=False)


def test_an_old_ownerless_staging_folder_is_removed_a_young_one_kept(
    tmp_path, recwarn, monkeypatch
):
    """An earlier version's run may go long without writing (a long NAS step): its folder
    is removed only once untouched for much longer than the temporaries of a dataset."""
    from latbench.dataset import STALE_TMP_AGE_S

    age = 3600.0  # an hour here; a day by default
    monkeypatch.setattr(staging, "OLD_STAGE_AGE_S", age)
    assert age > STALE_TMP_AGE_S + 60
    out = tmp_path / "out"
    folders = {}
    for name in ("old1", "old2", "young", "touched", "garbled"):
        prefix = ".nas-partial-" if name == "old2" else ".latbench-partial-"
        folders[name] = out / f"{prefix}{name}"
        _results(folders[name], {"sub/a.csv": "half-written\n"})
    (folders["garbled"] / OWNER_FILE).write_text("not an owner")
    for name in ("old1", "old2", "touched", "garbled"):
        _age(folders[name], age + 60)
    _age(folders["young"], age - 60)  # untouched for longer than a temporary's age
    (folders["touched"] / "sub" / "a.csv").write_text("still writing\n")  # modified just now
    removed = remove_abandoned(out)
    assert sorted(p.name for p in removed) == [".latbench-partial-old1", ".nas-partial-old2"]
    texts = [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]
    assert len(texts) == 1 and "2 result folder(s) an earlier LatBench version left" in texts[0]
    assert not folders["old1"].exists() and not folders["old2"].exists()
    for kept in ("young", "touched", "garbled"):
        assert (folders[kept] / "sub" / "a.csv").is_file()
    recwarn.clear()
    assert staging.remove_abandoned(out) == [] and not recwarn.list  # nothing left to say


def test_a_publish_waits_for_another_as_long_as_it_takes_and_says_so(tmp_path, monkeypatch):
    """Two runs publishing into one folder take turns, however long the other takes (the
    computed results are never thrown away): one warning tells the user, and the manifest
    keeps both sets."""
    import fcntl
    import threading

    out = tmp_path / "out"
    with staged(out, results="first") as stage:
        (stage / "a.csv").write_text("a\n")
    held, seen = threading.Event(), []

    def other_run() -> None:  # another process's publish: its own lock on the folder
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.set()
            time.sleep(1.5)  # well past the notice
            seen.append((out / "b.csv").exists())
        finally:
            os.close(fd)

    monkeypatch.setattr(publishing, "PUBLISH_NOTICE_S", 0.2)
    t = threading.Thread(target=other_run)
    t.start()
    held.wait(30)
    waits = pytest.warns(UserWarning, match="waiting for another run")
    with waits as w, staged(out, results="second") as stage:
        (stage / "b.csv").write_text("b\n")
    t.join()
    assert seen == [False]  # nothing moved while the other run published
    texts = [str(x.message) for x in w]
    assert len(texts) == 1 and str(out) in texts[0] and "Ctrl-C" in texts[0], texts
    assert (out / "b.csv").read_text() == "b\n"
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert files == {"a.csv": "first", "b.csv": "second"}
    assert not [p for p in out.iterdir() if p.name.startswith(PREFIXES)]


def test_a_co_users_manifest_never_deletes_this_users_files(tmp_path, monkeypatch):
    """In a shared folder a co-user may write the manifest: listing our notes under a
    result must not make our next run of that result delete them."""
    out = tmp_path / "out"
    _results(out, {"notes.txt": "mine\n", "sub/thesis.tex": "mine\n"},
             {"notes.txt": "r", "sub/thesis.tex": "r"})  # fmt: skip
    uid = os.getuid()
    real_lstat = os.lstat

    def planted(path, *a, **kw):  # the manifest is the co-user's, the rest is ours
        st = real_lstat(path, *a, **kw)
        if Path(path).name == MANIFEST:
            return os.stat_result((*st[:4], uid + 1, *st[5:]))
        return st

    monkeypatch.setattr(os, "lstat", planted)
    warned = pytest.warns(UserWarning, match="belongs to another user")
    with warned, staged(out, results="r") as s:
        _results(s, {"a.csv": "a\n"})
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "sub" / "thesis.tex").read_text() == "mine\n"
    assert (out / "a.csv").read_text() == "a\n"


def test_a_manifest_nested_too_deeply_is_damage_not_a_crash(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text("[" * 200_000)
    with staged(out, results="r") as s:
        _results(s, {"a.csv": "a\n"})
    assert _manifest(out) == {"a.csv": "r"}


def test_a_folder_where_the_manifest_goes_stops_the_run_before_any_move(tmp_path):
    out = tmp_path / "out"
    _results(out, {"a.csv": "old\n"})
    (out / MANIFEST).mkdir()
    refused = pytest.raises(IsADirectoryError, match="results manifest")
    with refused, staged(out, results="r") as s:
        _results(s, {"a.csv": "new\n"})
    assert (out / "a.csv").read_text() == "old\n" and _stages(out) == []
    with staged(out) as s:  # a run that keeps no manifest is not stopped by it
        _results(s, {"a.csv": "new\n"})
    assert (out / "a.csv").read_text() == "new\n"


def test_a_users_file_of_a_results_name_is_kept_aside_not_replaced(tmp_path):
    out = tmp_path / "out"
    # the user's README and an earlier copy they kept; b.csv an earlier run's result
    _results(out, {"README.md": "# mine\n", "README.md.orig": "# older\n", "b.csv": "old\n"},
             {"b.csv": "r"})  # fmt: skip
    with (
        pytest.warns(
            UserWarning,
            match=r"no earlier latbench-analysis run wrote there \(README.md\); each is kept as NAME.orig",
        ),
        staged(out, results="r") as stage,
    ):
        for n in ("README.md", "b.csv"):
            (stage / n).write_text(f"new {n}\n")
    assert (out / "README.md").read_text() == "new README.md\n"
    assert (out / "README.md.orig-2").read_text() == "# mine\n"
    assert (out / "README.md.orig").read_text() == "# older\n"
    assert (out / "b.csv").read_text() == "new b.csv\n" and not (out / "b.csv.orig").exists()
    # the next run replaces its README: it is listed now
    with staged(out, results="r") as stage:
        (stage / "README.md").write_text("newer\n")
    assert not (out / "README.md.orig-3").exists()
