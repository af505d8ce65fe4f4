"""Watching child processes in tests: a driver script started so that Ctrl-Z can stop it,
their state letter, waiting on a condition, and resuming a driver stopped by Ctrl-Z."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path


@contextlib.contextmanager
def driver(
    script: str, args: Sequence[str], folder: Path, tool_pids: Callable[[], Iterable[int]]
) -> Iterator[subprocess.Popen]:
    """``python -c script *args``, running for the block; nothing is left behind.

    It leads its own process group in this session: one that is not orphaned, so
    SIGTSTP's default action stops it as it stops a shell's foreground job. Afterwards,
    whatever happened, ``folder/finish`` asks it to end, it is killed if still running
    (SIGKILL ends a stopped process too), and so is the process group of every tool
    ``tool_pids()`` then names.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    try:
        yield proc
    finally:
        (folder / "finish").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        for pid in tool_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


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


def resume_and_finish(
    proc: subprocess.Popen, finish: Path, tools: Mapping[str, tuple[int, Callable[[], int]]]
) -> dict:
    """``fg`` the stopped driver ``proc``: each tool ``name: (pid, beats)`` must beat again
    and leave state ``T``; then touch ``finish`` and return the driver's JSON output."""
    stopped_at = {name: beats() for name, (_, beats) in tools.items()}
    proc.send_signal(signal.SIGCONT)
    for name, (pid, beats) in tools.items():
        wait_until(
            lambda n=name, b=beats: b() > stopped_at[n], f"{name} beat again after SIGCONT", proc
        )
        assert proc_state(pid) != "T"
    finish.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)
