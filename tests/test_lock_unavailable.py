"""A lock file that cannot be created is not "another run holds it"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from latbench.harness.lock import LockUnavailable, hold


def test_out_that_is_no_folder_names_the_lock_file_not_a_holder():
    with pytest.raises(LockUnavailable) as info, hold("/proc/self", "k"):
        pass
    msg = str(info.value)
    assert "/proc/self/.k.lock" in msg and "PID ?" not in msg
    assert "\n" not in msg


def test_a_real_holder_is_still_reported_as_one(tmp_path):
    code = (
        "import sys; from latbench.harness.lock import KeyLocked, LockUnavailable, hold\n"
        "try:\n"
        "    with hold(sys.argv[1], 'k'): sys.exit(1)\n"
        "except LockUnavailable: sys.exit(3)\n"
        "except KeyLocked as exc: print(exc)\n"
    )
    with hold(tmp_path, "k"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
    assert out.returncode == 0, out.stderr
    assert f"PID {os.getpid()}" in out.stdout
