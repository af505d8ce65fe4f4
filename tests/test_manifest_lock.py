"""Lock files a lab can share, and one writer at a time for a folder's data manifest."""

from __future__ import annotations

import stat
import threading

from hostile import ok_frame

from latbench.dataset import write_dataset
from latbench.lock import LOCK_FILE_MODE, hold
from latbench.manifest import MANIFEST_NAME, read_manifest, update_entry, write_manifest


def test_lock_files_are_group_writable_never_world(tmp_path):
    with hold(tmp_path, "k"):
        mode = stat.S_IMODE((tmp_path / ".k.lock").stat().st_mode)
    assert mode == LOCK_FILE_MODE == 0o664


def test_a_manifest_update_waits_for_another(tmp_path):
    from filelock import FileLock

    for name in ("a", "b"):
        write_dataset(
            ok_frame(300, step=5, seed=0, low=0.1, high=2.0), tmp_path / f"{name}.parquet"
        )
    write_manifest(tmp_path)
    write_dataset(ok_frame(300, step=5, seed=1, low=0.1, high=2.0), tmp_path / "a.parquet")
    done = threading.Event()
    other = FileLock(tmp_path / f".{MANIFEST_NAME}.lock")
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
    assert not (tmp_path / f".{MANIFEST_NAME}.lock").exists()
