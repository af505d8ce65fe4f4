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
