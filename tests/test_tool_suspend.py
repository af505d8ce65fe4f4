"""Ctrl-Z while ``latbench-measure`` waits on an external tool.

The tool leads its own process group (:func:`latbench.harness.tools.run_tool`), so the
terminal's SIGTSTP reaches only the harness; the harness must stop the tool with itself,
else a timing tool keeps loading the machine while the run is suspended. Here a fake
tool appends a heartbeat to a file until told to finish, and a tiny driver process runs
it through ``run_tool``; the test plays the terminal, sending SIGTSTP and SIGCONT to the
driver as ``Ctrl-Z`` and ``fg`` do.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from procwatch import driver, proc_state, resume_and_finish, wait_until

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGTSTP") or not Path("/proc/self/stat").exists(),
    reason="needs POSIX job control and /proc to see process states",
)

DRIVER = """\
import json, signal, sys
from latbench.harness import tools
folder, timeout = sys.argv[1], float(sys.argv[2])
before = (signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT))
script = (
    f"echo $$ > {folder}/tool.pid; i=0; while [ ! -e {folder}/finish ]; do"
    f" i=$((i+1)); echo $i >> {folder}/heartbeat; sleep 0.05; done; echo finished"
)
res = tools.run_tool(["sh", "-c", script], timeout=timeout)
after = (signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT))
print(json.dumps({"stdout": res.stdout.strip(), "restored": before == after}))
"""


def _beats(folder: Path) -> int:
    try:
        return len((folder / "heartbeat").read_text().split())
    except FileNotFoundError:
        return 0


def _driver(folder: Path, timeout: float):
    """The driver running the fake tool; whatever happens, nothing is left behind."""

    def tool() -> list[int]:
        text = (folder / "tool.pid").read_text().strip() if (folder / "tool.pid").exists() else ""
        return [int(text)] if text else []

    return driver(DRIVER, [str(folder), str(timeout)], folder, tool)


def _suspend(proc: subprocess.Popen, folder: Path) -> int:
    """Wait until the tool beats, Ctrl-Z the driver; returns the tool's pid once both
    are stopped."""
    wait_until(lambda: _beats(folder) >= 3, "the tool beat three times", proc)
    tool = int((folder / "tool.pid").read_text())
    proc.send_signal(signal.SIGTSTP)
    wait_until(lambda: proc_state(proc.pid) == "T", "the driver stopped", proc, timeout=30)
    # old behaviour: the tool ran on while the harness was stopped
    wait_until(
        lambda: proc_state(tool) == "T", "the tool stopped with the driver", proc, timeout=30
    )
    return tool


def _resume_and_finish(proc: subprocess.Popen, folder: Path, tool: int) -> dict:
    return resume_and_finish(proc, folder / "finish", {"the tool": (tool, lambda: _beats(folder))})


def test_ctrl_z_stops_the_tool_with_the_harness_and_fg_resumes_both(tmp_path):
    with _driver(tmp_path, timeout=300) as proc:
        tool = _suspend(proc, tmp_path)
        beats = _beats(tmp_path)
        time.sleep(1)  # a stopped tool writes nothing, however long this takes
        assert _beats(tmp_path) == beats
        assert proc_state(proc.pid) == "T" and proc_state(tool) == "T"
        result = _resume_and_finish(proc, tmp_path, tool)
    assert result == {"stdout": "finished", "restored": True}


def test_time_stopped_does_not_count_towards_the_tool_timeout(tmp_path):
    timeout = 5.0
    with _driver(tmp_path, timeout=timeout) as proc:
        tool = _suspend(proc, tmp_path)
        stopped = time.monotonic()
        while time.monotonic() - stopped < timeout + 1:  # past the whole timeout
            time.sleep(0.1)
        result = _resume_and_finish(proc, tmp_path, tool)
    assert result["stdout"] == "finished"
