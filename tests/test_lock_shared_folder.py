"""A data folder shared by a group: its lock files are group-writable whatever the umask,
so a co-user whose run follows ours can take the lock (opening it for writing is what
``flock`` through filelock needs); before, ``umask 022`` left them ``0644`` and the
co-user was refused for good by a file that holds no data."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hostile import ok_frame
from test_files import _returns_within

from latbench.lock import LOCK_FILE_MODE, hold

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
    from latbench.manifest import MANIFEST_NAME, update_entry, write_manifest

    frame = ok_frame(300, step=5, seed=0, low=0.1, high=2.0)
    write_dataset(frame, tmp_path / "k.parquet")
    write_manifest(tmp_path)
    write_dataset(ok_frame(300, step=5, seed=1, low=0.1, high=2.0), tmp_path / "k.parquet")
    with _umask(0o022):
        assert update_entry(tmp_path / "k.parquet")
    mode = stat.S_IMODE((tmp_path / f".{MANIFEST_NAME}.lock").stat().st_mode)
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
    from latbench.lock import _open_to_group

    precious = tmp_path / "id_key"
    precious.write_text("secret")
    precious.chmod(0o600)
    (tmp_path / ".k.lock").symlink_to(precious)
    _open_to_group(tmp_path / ".k.lock")
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
