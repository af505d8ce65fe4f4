"""latbench.files: the one way small files from outside are read."""

from __future__ import annotations

import os

import pytest

from latbench.files import FileTooLarge, NotRegularFile, read_capped, require_regular


def test_read_capped_reads_up_to_the_cap_and_refuses_beyond(tmp_path):
    f = tmp_path / "a.json"
    f.write_bytes(b"x" * 100)
    assert read_capped(f, 100) == b"x" * 100
    with pytest.raises(FileTooLarge, match="larger than 99 bytes"):
        read_capped(f, 99)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_or_folder_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)  # opening it for reading would block: the check must come first
    with pytest.raises(NotRegularFile, match="is a FIFO, not a regular file"):
        read_capped(fifo, 10)
    with pytest.raises(NotRegularFile, match="folder"):
        require_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_capped(tmp_path / "absent", 10)


def _returns_within(fn, seconds: float) -> tuple[bool, BaseException | None]:
    """Run ``fn`` in a thread; whether it returned (or raised) within ``seconds``."""
    import threading

    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    return (not t.is_alive(), outcome[0] if outcome else None)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_file_swapped_for_a_fifo_as_it_is_opened_is_refused(tmp_path, monkeypatch):
    """The check is made on what was opened: a regular file that becomes a FIFO between
    a check and the open (another user's swap in a shared folder) does not hang the read."""
    f = tmp_path / "manifest.json"
    f.write_text("{}")
    real_open = os.open

    def swap_then_open(path, flags, *args, **kwargs):
        if os.fspath(path) == os.fspath(f) and not f.is_fifo():
            f.unlink()
            os.mkfifo(f)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swap_then_open)
    done, exc = _returns_within(lambda: read_capped(f, 100), 20)
    if not done:  # release the blocked reader before failing
        fd = real_open(f, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert done, "read_capped blocked on a FIFO"
    assert isinstance(exc, NotRegularFile) and "FIFO" in str(exc)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_manifest_in_a_data_folder_is_an_error_not_a_hang(tmp_path):
    from latbench.dataset import DatasetError
    from latbench.manifest import read_manifest

    os.mkfifo(tmp_path / "manifest.json")
    done, exc = _returns_within(lambda: read_manifest(tmp_path), 20)
    if not done:
        os.close(os.open(tmp_path / "manifest.json", os.O_WRONLY | os.O_NONBLOCK))
    assert done, "reading a FIFO manifest blocked"
    assert isinstance(exc, DatasetError) and "not a regular file" in str(exc)


def test_a_socket_is_named_as_such_not_reported_as_an_errno(tmp_path):
    import socket

    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no UNIX sockets on this system")
    path = tmp_path / "manifest.json"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(NotRegularFile, match="is a socket, not a regular file"):
            read_capped(path, 10)
