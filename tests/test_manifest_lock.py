"""One writer at a time for a folder's data manifest, and a word when one waits."""

from __future__ import annotations

import threading

import pytest
from hostile import ok_frame

from latbench.dataset import write_dataset
from latbench.manifest import MANIFEST_LOCK_NAME, read_manifest, update_entry, write_manifest


def test_a_manifest_update_waits_for_another(tmp_path):
    from filelock import FileLock

    for name in ("a", "b"):
        write_dataset(
            ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / f"{name}.parquet"
        )
    write_manifest(tmp_path)
    write_dataset(ok_frame(300, step=5, seed=1, low=0.1, high=2.0), tmp_path / "a.parquet")
    done = threading.Event()
    other = FileLock(tmp_path / MANIFEST_LOCK_NAME)
    other.acquire()
    try:
        t = threading.Thread(target=lambda: (update_entry(tmp_path / "a.parquet"), done.set()))
        t.start()
        assert not done.wait(0.5)  # held by the other writer: not read, not rewritten
    finally:
        other.release()
    t.join(30)
    assert done.is_set()
    entry = read_manifest(tmp_path)["files"]["a.parquet"]
    assert entry["bytes"] == (tmp_path / "a.parquet").stat().st_size


def test_no_lock_file_where_there_is_no_manifest(tmp_path):
    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / "a.parquet")
    assert update_entry(tmp_path / "a.parquet") is False
    assert not (tmp_path / MANIFEST_LOCK_NAME).exists()


def test_a_long_wait_for_the_manifest_says_so(tmp_path, monkeypatch):
    from filelock import FileLock

    from latbench import manifest

    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / "a.parquet")
    write_manifest(tmp_path)
    monkeypatch.setattr(manifest, "MANIFEST_WAIT_NOTICE_S", 0.2)
    other = FileLock(tmp_path / MANIFEST_LOCK_NAME)
    held = threading.Event()

    def hold_a_while() -> None:
        with other:
            held.set()
            threading.Event().wait(1.0)

    t = threading.Thread(target=hold_a_while)
    t.start()
    held.wait(30)
    with pytest.warns(UserWarning, match="waiting for another process updating"):
        assert update_entry(tmp_path / "a.parquet") is True
    t.join(30)
    lock = FileLock(tmp_path / MANIFEST_LOCK_NAME)
    lock.acquire(timeout=0)  # released again by the update
    lock.release()
