"""A timed tool that ``adb`` started on the phone is stopped with it.

Killing the local ``adb shell`` (a timeout in ``run_tool``, Ctrl-C, SIGTERM) does not
stop what it started on the device: adbd runs the command in a session of its own, so
a ``benchmark_model`` or ``snpe-net-run`` left there would load the phone the next model
is timed on. Now the runners name the binary they run (``Adb.shell(..., stop=...)``)
and, when ``adb`` is stopped before the command has finished, every process on the
device running that binary is killed (best effort; a failure is one warning line).

The fake phone is the fake ``adb`` of :mod:`edge_fakes`, except that it runs shell
commands in a session of their own, as adbd does, so that killing the fake ``adb``
leaves them running. The timed tool is a fake that records its pid and runs until the
test lets it finish.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import edge_fakes
import pytest
from procwatch import proc_state, wait_until

from latbench.harness.adb import Adb, stop_command
from latbench.harness.profiles import load_profile
from latbench.harness.runners.android_litert import AndroidLiteRTRunner
from latbench.harness.runners.snpe import SNPERunner
from latbench.harness.timing import Protocol
from latbench.harness.tools import ToolError

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs /proc to see process states"
)

LITERT_BINARY = "/data/local/tmp/latbench-litert/benchmark_model"
SNPE_BINARY = "/data/local/tmp/latbench/sdk/bin/snpe-net-run"
TIMEOUT_S = 8.0  # adb's timeout for the timed command: the fake tool never ends by itself

_SHELL = 'res = subprocess.run(["sh", "-c", cmd], env=env)'
ADB = (  # edge_fakes._script puts edge_fakes.PRELUDE (the call log) first
    """
if sys.argv[1:] != ["devices"] and (Path(os.environ["FAKE_STATE"]) / "offline").exists():
    print("adb: device offline", file=sys.stderr)  # the phone was unplugged
    sys.exit(1)
"""
    # as adbd does: the command runs in a session of its own, so it outlives this adb
    + edge_fakes.ADB.replace(_SHELL, _SHELL[:-1] + ", start_new_session=True)")
)

HANG = """
import time
state = Path(os.environ["FAKE_STATE"])
(state / "remote.pid").write_text(str(os.getpid()))
print("INFO: STARTING!", flush=True)
while not (state / "finish").exists():  # a benchmark that runs until the test says
    time.sleep(0.05)
"""

# argv: the model file, then "runner" (the LiteRT runner times it) or "bare" (the same
# command through Adb.shell without naming the binary: nothing stops it)
DRIVER = """\
import logging, sys
from pathlib import Path
from latbench.harness.profiles import load_profile
from latbench.harness.runners.android_litert import AndroidLiteRTRunner, benchmark_command
from latbench.harness.timing import Protocol
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
runner = AndroidLiteRTRunner(load_profile("android-litert-cpu"))
runner.prepare(Path(sys.argv[1]), 0)
try:
    if sys.argv[2] == "runner":
        runner.time(Protocol(runs=1, group_size=1, warmup=0))
    else:
        runner._session().shell(benchmark_command(runner.device_dir, runner.profile, 0))
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def _gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """The fakes, with the detaching adb and a benchmark_model and snpe-net-run that run
    until told to finish; whatever happens, no fake process is left behind."""
    assert _SHELL in edge_fakes.ADB, "edge_fakes' adb changed: update ADB here"
    fakes = edge_fakes.install(tmp_path / "fakes")
    edge_fakes._script(fakes["bin"] / "adb", ADB)
    hang = edge_fakes._script(tmp_path / "fakes" / "android" / "benchmark_model", HANG)
    edge_fakes._script(fakes["sdk"] / "bin" / "aarch64-android" / "snpe-net-run", HANG)
    env = tmp_path / "env"
    edge_fakes.use(monkeypatch, fakes, env)
    monkeypatch.setenv("LATBENCH_BENCHMARK_MODEL", str(hang))
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 100)
    yield env, model
    (env / "state" / "finish").touch()
    pid_file = env / "state" / "remote.pid"
    if pid_file.exists() and pid_file.read_text().strip():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _remote_pid(env: Path) -> int:
    path = env / "state" / "remote.pid"
    assert path.exists(), "the timed tool never started on the fake phone"
    return int(path.read_text())


def _shell_calls(env: Path) -> list[str]:
    return [a[3] for a in edge_fakes.calls(env / "calls.jsonl", "adb") if a[2:3] == ["shell"]]


def _assert_stopped_after_the_run(env: Path, binary: str, marker: str) -> None:
    shells = _shell_calls(env)
    runs = [i for i, cmd in enumerate(shells) if marker in cmd]
    stops = [i for i, cmd in enumerate(shells) if cmd == stop_command(binary)]
    assert len(runs) == 1 and len(stops) == 1 and stops[0] > runs[0], shells


def _driver(model: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(model), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt(proc: subprocess.Popen, env: Path, offline: bool = False) -> tuple[int, str]:
    """Ctrl-C the driver once the tool runs on the phone; its exit status and stderr."""
    try:
        wait_until(lambda: (env / "state" / "remote.pid").exists(), "the tool started", proc)
        if offline:
            (env / "state" / "offline").touch()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_the_fake_phone_keeps_running_what_a_killed_adb_started(phone):
    # the old behaviour, and what the fix is up against: adb killed, the tool runs on
    env, model = phone
    rc, err = _interrupt(_driver(model, "bare"), env)
    assert rc == 130 and "Traceback" not in err, err
    pid = _remote_pid(env)
    time.sleep(0.5)  # were it going to die with adb, it would have by now
    assert not _gone(pid)
    assert not any(cmd.startswith("for p in /proc/") for cmd in _shell_calls(env))


def test_a_timeout_stops_benchmark_model_on_the_phone(phone):
    env, model = phone
    runner = AndroidLiteRTRunner(load_profile("android-litert-cpu"))
    runner.prepare(model, 0)
    runner._session().timeout = TIMEOUT_S  # the setup above ran with the default
    with pytest.raises(ToolError, match=f"FAKE0001: .*did not finish within {TIMEOUT_S}"):
        runner.time(Protocol(runs=1, group_size=1, warmup=0))
    pid = _remote_pid(env)
    wait_until(lambda: _gone(pid), "benchmark_model was killed on the phone")
    _assert_stopped_after_the_run(env, LITERT_BINARY, "--graph=")
    runner.close()  # the device is usable again
    assert not (env / "device" / LITERT_BINARY.lstrip("/")).exists()


def test_ctrl_c_stops_benchmark_model_on_the_phone_and_says_so(phone):
    env, model = phone
    rc, err = _interrupt(_driver(model, "runner"), env)
    pid = _remote_pid(env)
    assert rc == 130 and "Traceback" not in err, err
    assert f"stopped benchmark_model on FAKE0001 after an interrupt (pid {pid})" in err
    wait_until(lambda: _gone(pid), "benchmark_model was killed on the phone")
    _assert_stopped_after_the_run(env, LITERT_BINARY, "--graph=")


def test_a_timeout_stops_snpe_net_run_on_the_phone(phone):
    env, _ = phone
    dlc = env.parent / "model.dlc"
    dlc.write_bytes(b"FAKEDLC" + b"\0" * 100)
    runner = SNPERunner(load_profile("snpe-cpu"))
    runner.prepare(dlc, 0)
    runner._session().timeout = TIMEOUT_S
    with pytest.raises(ToolError, match=f"did not finish within {TIMEOUT_S}"):
        runner.time(Protocol(runs=1, group_size=1, warmup=0))
    pid = _remote_pid(env)
    wait_until(lambda: _gone(pid), "snpe-net-run was killed on the phone")
    _assert_stopped_after_the_run(env, SNPE_BINARY, "snpe-net-run --container")


def test_a_failed_stop_is_one_warning_line_not_a_traceback(phone):
    env, model = phone
    rc, err = _interrupt(_driver(model, "runner"), env, offline=True)
    assert rc == 130 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "benchmark_model" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("could not stop benchmark_model on FAKE0001 after an interrupt")
    assert "device offline" in lines[0] and "may still run there" in lines[0]
    assert not _gone(_remote_pid(env))  # it does run on: the fixture ends it


def test_stop_kills_only_processes_running_that_binary(phone):
    env, _ = phone
    other = "/data/local/tmp/other/benchmark_model"  # the same name in another folder
    edge_fakes._script(env / "device" / other.lstrip("/"), HANG)
    Adb({}).shell(f"({other} >/dev/null 2>&1 &)")  # the fake phone runs it in the background
    wait_until(lambda: (env / "state" / "remote.pid").exists(), "the other tool started")
    pid = _remote_pid(env)
    assert Adb({}).stop(LITERT_BINARY) == []
    time.sleep(0.5)
    assert not _gone(pid)
