"""Ctrl-Z while external tools run in worker threads, not only in the main thread.

Python runs signal handlers in the main thread only, so before, a tool that a worker
thread started through :func:`latbench.harness.tools.run_tool` kept running on the
device while the harness was suspended. Now every live tool is registered and the main
thread's handler (:func:`latbench.harness.tools.job_control`) stops and resumes them
all. A driver process runs fake tools (each appends a heartbeat to its own file until
told to finish) from worker threads, and from the main thread at the same time; the
test plays the terminal, sending SIGTSTP and SIGCONT as ``Ctrl-Z`` and ``fg`` do.
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

# argv: folder, timeout, worker tool names (comma-separated), main-thread tool name or "-"
DRIVER = """\
import json, signal, sys, threading
from latbench.harness import tools
folder, timeout = sys.argv[1], float(sys.argv[2])
workers, main = [n for n in sys.argv[3].split(",") if n], sys.argv[4]
before = (signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT))

def script(name):
    return (
        f"echo $$ > {folder}/{name}.pid; i=0; while [ ! -e {folder}/finish ]; do"
        f" i=$((i+1)); echo $i >> {folder}/{name}.beats; sleep 0.05; done; echo {name} done"
    )

out, errors = {}, []

def work(name):
    try:
        out[name] = tools.run_tool(["sh", "-c", script(name)], timeout=timeout).stdout.strip()
    except BaseException as exc:
        errors.append(f"{name}: {exc}")

with tools.job_control():  # as latbench.harness.session.measure does around a run
    threads = [threading.Thread(target=work, args=(n,)) for n in workers]
    for t in threads:
        t.start()
    if main != "-":
        work(main)
    for t in threads:
        t.join()
after = (signal.getsignal(signal.SIGTSTP), signal.getsignal(signal.SIGCONT))
print(json.dumps({"out": out, "errors": errors, "restored": before == after}))
"""


def _beats(folder: Path, name: str) -> int:
    try:
        return len((folder / f"{name}.beats").read_text().split())
    except FileNotFoundError:
        return 0


def _pid(folder: Path, name: str) -> int | None:
    try:
        text = (folder / f"{name}.pid").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def _driver(folder: Path, timeout: float, workers: list[str], main: str | None = None):
    """The driver running the fake tools; whatever happens, nothing is left behind."""
    names = [*workers, *([main] if main else [])]
    args = [str(folder), str(timeout), ",".join(workers), main or "-"]
    tools = lambda: [p for name in names if (p := _pid(folder, name)) is not None]  # noqa: E731
    return driver(DRIVER, args, folder, tools)


def _suspend(proc: subprocess.Popen, folder: Path, names: list[str]) -> dict[str, int]:
    """Wait until every tool beats, Ctrl-Z the driver; the tools' pids once all stopped."""
    for name in names:
        wait_until(lambda n=name: _beats(folder, n) >= 3, f"{name} beat three times", proc)
    pids = {name: _pid(folder, name) for name in names}
    proc.send_signal(signal.SIGTSTP)
    wait_until(lambda: proc_state(proc.pid) == "T", "the driver stopped", proc, timeout=30)
    for name, pid in pids.items():
        # before: a tool a worker thread started ran on while the harness was stopped
        wait_until(lambda p=pid: proc_state(p) == "T", f"{name} stopped with the driver", proc, 30)
    return pids


def _resume_and_finish(proc: subprocess.Popen, folder: Path, pids: dict[str, int]) -> dict:
    tools = {name: (pid, lambda n=name: _beats(folder, n)) for name, pid in pids.items()}
    return resume_and_finish(proc, folder / "finish", tools)


def test_ctrl_z_stops_a_tool_a_worker_thread_started_and_fg_resumes_it(tmp_path):
    with _driver(tmp_path, timeout=300, workers=["worker"]) as proc:
        pids = _suspend(proc, tmp_path, ["worker"])
        beats = _beats(tmp_path, "worker")
        time.sleep(1)  # a stopped tool writes nothing, however long this takes
        assert _beats(tmp_path, "worker") == beats
        assert proc_state(proc.pid) == "T" and proc_state(pids["worker"]) == "T"
        result = _resume_and_finish(proc, tmp_path, pids)
    assert result == {"out": {"worker": "worker done"}, "errors": [], "restored": True}


def test_tools_of_several_threads_and_the_main_thread_stop_together(tmp_path):
    names = ["w1", "w2"]
    with _driver(tmp_path, timeout=300, workers=names, main="main") as proc:
        pids = _suspend(proc, tmp_path, [*names, "main"])
        beats = {n: _beats(tmp_path, n) for n in pids}
        time.sleep(1)
        assert {n: _beats(tmp_path, n) for n in pids} == beats
        result = _resume_and_finish(proc, tmp_path, pids)
    assert result["errors"] == [] and result["restored"]
    assert result["out"] == {n: f"{n} done" for n in [*names, "main"]}


def test_time_stopped_does_not_count_towards_a_worker_tools_timeout(tmp_path):
    timeout = 5.0
    with _driver(tmp_path, timeout=timeout, workers=["worker"]) as proc:
        pids = _suspend(proc, tmp_path, ["worker"])
        stopped = time.monotonic()
        while time.monotonic() - stopped < timeout + 1:  # past the whole timeout
            time.sleep(0.1)
        result = _resume_and_finish(proc, tmp_path, pids)
    assert result["errors"] == [] and result["out"] == {"worker": "worker done"}
