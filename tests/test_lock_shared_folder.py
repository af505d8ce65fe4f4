"""A data folder shared by a group: its lock files are group-writable whatever the umask,
so a co-user whose run follows ours can take the lock (opening it for writing is what
``flock`` through filelock needs); before, ``umask 022`` left them ``0644`` and the
co-user was refused for good by a file that holds no data."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from hostile import ok_frame
from test_files import _returns_within

from latbench.lock import LOCK_FILE_MODE, hold, open_to_group

NOBODY = 65534


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def _as_user(uid: int, gid: int):
    """Run the block with effective ``uid``/``gid`` (file permission checks use them)."""
    os.setegid(gid)
    try:
        os.seteuid(uid)
        try:
            yield
        finally:
            os.seteuid(0)
    finally:
        os.setegid(0)


def test_lock_files_are_group_writable_under_a_strict_umask(tmp_path: Path) -> None:
    with _umask(0o022), hold(tmp_path, "k", option=None):
        mode = stat.S_IMODE((tmp_path / ".k.lock").stat().st_mode)
    assert mode == LOCK_FILE_MODE
    assert mode & stat.S_IWGRP and not mode & stat.S_IWOTH


def test_manifest_lock_is_group_writable(tmp_path: Path) -> None:
    from latbench.dataset import write_dataset
    from latbench.manifest import MANIFEST_LOCK_NAME, update_entry, write_manifest

    frame = ok_frame(300, step=5, seed=0, low=0.1, high=2.0)
    write_dataset(frame, tmp_path / "k.parquet")
    write_manifest(tmp_path)
    write_dataset(ok_frame(300, step=5, seed=1, low=0.1, high=2.0), tmp_path / "k.parquet")
    with _umask(0o022):
        assert update_entry(tmp_path / "k.parquet")
    mode = stat.S_IMODE((tmp_path / MANIFEST_LOCK_NAME).stat().st_mode)
    assert mode == LOCK_FILE_MODE


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="playing a second user (seteuid) needs root",
)
def test_a_co_user_takes_the_lock_we_left() -> None:
    # outside pytest's 0700 temp root, so the second user can reach it
    folder = Path(tempfile.mkdtemp(prefix="latbench-shared-", dir="/tmp"))
    try:
        os.chown(folder, 0, NOBODY)
        os.chmod(folder, 0o2775)  # group-shared: setgid, group-writable
        with _umask(0o022), hold(folder, "k", option=None):
            pass  # our run ends, leaving the lock file behind
        lock_file = folder / ".k.lock"
        assert lock_file.stat().st_uid == 0
        with _umask(0o022), _as_user(NOBODY, NOBODY), hold(folder, "k", option=None):
            taken_by = os.geteuid()
        assert taken_by == NOBODY
        assert not (folder / ".k.lock.json").exists()  # the co-user's note went with it
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_older_lock_file_is_opened_to_the_group_by_its_owners_next_run(tmp_path) -> None:
    old = tmp_path / ".k.lock"
    old.touch()
    old.chmod(0o644)  # as earlier versions left them under umask 022
    with hold(tmp_path, "k", option=None):
        pass
    assert stat.S_IMODE(old.stat().st_mode) == LOCK_FILE_MODE


def test_a_link_in_place_of_a_lock_file_changes_nothing_elsewhere(tmp_path) -> None:
    precious = tmp_path / "id_key"
    precious.write_text("secret")
    precious.chmod(0o600)
    (tmp_path / ".k.lock").symlink_to(precious)
    open_to_group(tmp_path / ".k.lock")
    assert stat.S_IMODE(precious.stat().st_mode) == 0o600


@contextlib.contextmanager
def _shared_folder(mode: int, owner: int = 4242):
    """A folder of a third user ``owner``, group ``nogroup``, with ``mode`` (outside
    pytest's 0700 temporary root)."""
    folder = Path(tempfile.mkdtemp(prefix="latbench-shared-", dir="/tmp"))
    try:
        os.chown(folder, owner, NOBODY)
        os.chmod(folder, mode)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="playing a second user (seteuid) needs root",
)
def test_a_lock_file_a_sticky_folder_keeps_for_its_owner_is_refused_in_one_clear_line():
    from latbench.lock import LockUnavailable

    with _shared_folder(0o3775) as folder:  # sticky: filelock uses only its owner's lock files
        with hold(folder, "k", option=None):
            pass
        refused = pytest.raises(LockUnavailable)
        with _as_user(NOBODY, NOBODY), refused as exc, hold(folder, "k", option=None):
            pass
    text = str(exc.value)
    assert "\n" not in text and str(folder / ".k.lock") in text
    assert "belongs to user root (uid 0)" in text and "must be writable" not in text


def test_the_holders_note_is_never_written_through_a_planted_link(tmp_path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    for pid in (os.getpid(), os.getpid() + 1):  # the names an earlier version used
        (tmp_path / f".k.lock.json.{pid}.tmp").symlink_to(precious)
    with hold(tmp_path, "k", option=None):
        note = (tmp_path / ".k.lock.json").read_text()
    assert precious.read_text() == "keep me" and str(os.getpid()) in note


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_place_of_the_note_does_not_hang_a_refused_run(tmp_path) -> None:
    from filelock import FileLock

    from latbench.lock import KeyLocked

    other = FileLock(tmp_path / ".k.lock")  # another run's hold (another open file)
    other.acquire()
    try:
        os.mkfifo(tmp_path / ".k.lock.json")
        done, exc = _returns_within(lambda: hold(tmp_path, "k").__enter__(), 20)
        if not done:
            os.close(os.open(tmp_path / ".k.lock.json", os.O_WRONLY | os.O_NONBLOCK))
    finally:
        other.release()
    assert done, "reading a FIFO note blocked"
    assert isinstance(exc, KeyLocked) and "being written by another run" in str(exc)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_lock_file_swapped_for_a_fifo_after_locking_does_not_hang(tmp_path, monkeypatch):
    from filelock import FileLock

    real = FileLock.acquire

    def acquire_then_swap(self, *args, **kwargs):
        got = real(self, *args, **kwargs)
        os.unlink(self.lock_file)  # a co-user's swap, after the lock was taken
        os.mkfifo(self.lock_file)
        return got

    monkeypatch.setattr(FileLock, "acquire", acquire_then_swap)

    def run() -> None:
        with hold(tmp_path, "k", option=None):
            pass

    done, exc = _returns_within(run, 20)
    if not done:
        os.close(os.open(tmp_path / ".k.lock", os.O_WRONLY | os.O_NONBLOCK))
    assert done and exc is None


def test_an_older_manifest_lock_is_opened_to_the_group_too(tmp_path) -> None:
    from latbench.dataset import write_dataset
    from latbench.manifest import MANIFEST_LOCK_NAME, update_entry, write_manifest

    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / "k.parquet")
    write_manifest(tmp_path)
    old = tmp_path / MANIFEST_LOCK_NAME
    old.touch()
    old.chmod(0o644)
    assert update_entry(tmp_path / "k.parquet")
    assert stat.S_IMODE(old.stat().st_mode) == LOCK_FILE_MODE


def test_a_hard_link_in_place_of_a_lock_file_keeps_its_files_mode(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("private")
    secret.chmod(0o600)
    os.link(secret, tmp_path / ".k.lock")  # where protected_hardlinks is off, anyone can
    open_to_group(tmp_path / ".k.lock")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_long_non_ascii_command_still_names_the_holder(tmp_path, monkeypatch) -> None:
    from latbench.lock import holder

    # 500 characters kept, each a 12-byte JSON escape: the note must still be read whole
    monkeypatch.setattr(sys, "argv", ["latbench-measure", "--out", "\U0001f4ca" * 600])
    with hold(tmp_path, "k", option=None):
        note = holder(tmp_path, "k")
    assert note is not None and note["pid"] == os.getpid()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="playing a second user (seteuid) needs root",
)
def test_a_lock_held_now_in_a_sticky_folder_names_its_holder_not_a_leftover() -> None:
    import subprocess

    from latbench.lock import KeyLocked, LockUnavailable

    with _shared_folder(0o1777) as folder:  # like /tmp: we are not in its files' group
        script = (
            "import sys, time\nfrom latbench.lock import hold\n"
            "with hold(sys.argv[1], 'k', option=None):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script, str(folder)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert proc.stdout.readline().strip() == "held"
            refused = pytest.raises(KeyLocked)
            with _as_user(NOBODY, NOBODY), refused as exc, hold(folder, "k", option=None):
                pass
        finally:
            proc.kill()
            proc.wait()
    assert not isinstance(exc.value, LockUnavailable)
    assert "being written by another run" in str(exc.value) and f"PID {proc.pid}" in str(exc.value)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="playing a second user (seteuid) needs root",
)
def test_a_folder_we_may_not_write_is_named_as_such_not_its_lock_files_owner() -> None:
    from latbench.lock import LockUnavailable

    with _shared_folder(0o755) as folder:
        os.chown(folder, 4242, 4242)  # neither ours nor our group's
        with hold(folder, "k", option="--out"):
            pass
        refused = pytest.raises(LockUnavailable)
        with _as_user(NOBODY, NOBODY), refused as exc, hold(folder, "k", option="--out"):
            pass
    assert "--out must be a writable folder" in str(exc.value)
    assert "belongs to" not in str(exc.value)


def test_a_private_file_renamed_into_place_keeps_its_mode(tmp_path) -> None:
    """In a folder where a co-user may rename our files, one of our private files put at
    a lock file's name must not be opened to the group by our next run."""
    private = tmp_path / "token"
    private.write_text("s3cr3t")
    private.chmod(0o600)
    private.rename(tmp_path / ".k.lock")
    with hold(tmp_path, "k", option=None):
        pass
    kept = tmp_path / ".k.lock"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "s3cr3t"


def _refused_while_held_elsewhere(folder: Path) -> Exception:
    """What our ``hold`` raises while another open file (as another run) holds the lock."""
    from filelock import FileLock

    from latbench.lock import KeyLocked

    other = FileLock(folder / ".k.lock")
    other.acquire()
    try:
        with pytest.raises(KeyLocked) as exc, hold(folder, "k"):
            pass
    finally:
        other.release()
    return exc.value


def test_a_held_lock_without_a_note_is_still_being_written_not_unavailable(tmp_path) -> None:
    from latbench.lock import LockUnavailable

    refused = _refused_while_held_elsewhere(tmp_path)
    assert not isinstance(refused, LockUnavailable)
    assert (
        "being written by another run (a process holds its lock file and no note names it)"
        in str(refused)
    )


def test_a_dead_runs_leftover_note_is_not_named_as_the_holder(tmp_path) -> None:
    import json
    import socket

    from latbench.lock import pid_namespace

    dead = {"pid": 2**22 + 12345, "pidns": pid_namespace(), "host": socket.gethostname(),
            "started": "2020-01-01", "command": "a run killed -9 long ago"}  # fmt: skip
    (tmp_path / ".k.lock.json").write_text(json.dumps(dead))
    refused = str(_refused_while_held_elsewhere(tmp_path))
    assert "long ago" not in refused and "no note names it" in refused


@pytest.mark.parametrize("planted", ["link", "folder"])
def test_something_planted_at_the_lock_files_name_is_named(tmp_path, planted) -> None:
    from latbench.lock import LockUnavailable

    if planted == "link":
        (tmp_path / ".k.lock").symlink_to(tmp_path / "elsewhere")
    else:
        (tmp_path / ".k.lock").mkdir()
    with pytest.raises(LockUnavailable) as exc, hold(tmp_path, "k"):
        pass
    text = str(exc.value)
    assert "not a lock file: remove it" in text and "must be writable" not in text


def test_a_run_into_a_folder_not_yet_made_behind_a_link_does_not_refuse_itself(tmp_path):
    """The re-entry key is the same before and after the folder is made: ``--out`` through
    a symbolic link (``/tmp`` on macOS, ``/scratch`` on clusters) or with ``..``."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for out in (tmp_path / "link" / "new", tmp_path / "nx" / ".." / "out2"):
        with hold(out, "k"), hold(out, "k"):  # a campaign, then its session inside
            pass


def test_a_link_at_the_lock_name_is_called_a_link(tmp_path) -> None:
    from latbench.lock import LockUnavailable

    (tmp_path / ".k.lock").symlink_to(tmp_path / "elsewhere")
    refused = pytest.raises(LockUnavailable, match="is a symbolic link, not a lock file")
    with refused, hold(tmp_path, "k"):
        pass


def test_a_dataset_named_like_the_manifest_has_its_own_lock(tmp_path) -> None:
    from latbench.dataset import write_dataset
    from latbench.lock import hold_files
    from latbench.manifest import update_entry, write_manifest

    target = tmp_path / "manifest.json.parquet"
    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), target)
    write_manifest(tmp_path)
    with hold_files([target], "rewritten"):  # as `latbench rewrite` holds it
        write_dataset(ok_frame(300, step=5, seed=1, low=0.1, high=2.0), target)
        assert update_entry(target)  # no deadlock on a shared lock file name


def test_leftover_note_temporaries_of_a_killed_run_are_removed(tmp_path) -> None:
    left = tmp_path / ".k.lock.json.abcd1234.tmp"
    left.write_text("{")
    with hold(tmp_path, "k", option=None):
        assert not left.exists()
    assert not list(tmp_path.glob(".k.lock.json.*.tmp"))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="playing a second user (seteuid) needs root",
)
def test_the_advice_for_another_users_lock_file_is_only_what_will_work() -> None:
    from latbench.lock import LockUnavailable

    with _shared_folder(0o1777) as folder:  # sticky: only the owner may delete it
        lock_file = folder / ".k.lock"
        lock_file.touch()
        lock_file.chmod(0o600)  # an older version's, under umask 077: never widened
        refused = pytest.raises(LockUnavailable)
        with _as_user(NOBODY, NOBODY), refused as exc, hold(folder, "k", option=None):
            pass
    assert "its owner can delete it" in str(exc.value) and "run once more" not in str(exc.value)
    with _shared_folder(0o2775) as folder:  # not sticky: whoever may write it may delete
        (folder / ".k.lock").touch()
        (folder / ".k.lock").chmod(0o600)
        refused = pytest.raises(LockUnavailable)
        with _as_user(NOBODY, NOBODY), refused as exc, hold(folder, "k", option=None):
            pass
    assert "delete it (or its owner can)" in str(exc.value)
