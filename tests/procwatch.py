"""Watching child processes in tests: their state letter and waiting on a condition."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def proc_state(pid: int) -> str | None:
    """The process's state letter from ``/proc`` (``T`` stopped, ``Z`` dead and not yet
    reaped), ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def wait_until(
    condition: Callable[[], object],
    what: str,
    proc: subprocess.Popen | None = None,
    timeout: float = 60,
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` when ``proc`` exits first or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
