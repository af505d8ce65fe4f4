"""Android Debug Bridge: one device, chosen by serial; every command built in one place.

``adb`` is ``[options] adb``, else ``$ANDROID_HOME/platform-tools/adb``, else ``adb`` on
``PATH``. The device is ``[options] serial``, else ``$ANDROID_SERIAL``, else the only
attached device. Shell commands end with ``; echo LATBENCH_RC=$?`` so that a failing
command is caught with any adb version (old ones always exit 0).

Killing the local ``adb`` (a timeout, Ctrl-C) does not stop what it started on the
phone: a benchmark left running there would load the device the next model is timed
on. So a shell command that runs a tool names it (``stop=``), and when ``adb`` is
stopped before the command has finished, every process on the device running that
binary is killed (:func:`stop_command`), best effort.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latbench.harness.tools import ToolError, find_tool, run_tool
from latbench.terminal import safe_line

__all__ = [
    "ADB_INSTALL",
    "Adb",
    "device_problems",
    "find_adb",
    "list_devices",
    "option_problems",
    "stop_command",
]

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
"""Most seconds the command that stops a remote tool may take (it scans the device's
processes once)."""

ADB_INSTALL = (
    "install the Android platform tools (sudo apt-get install adb, or "
    "https://developer.android.com/tools/releases/platform-tools) or set [options] adb"
)
_RC = re.compile(r"LATBENCH_RC=(\d+)\s*$")
# The folder goes unquoted into 'rm -rf D && mkdir -p D' on the phone: only plain names,
# and only where adb may write anyway, so a shared profile cannot wipe the phone's storage.
_DEVICE_DIR = re.compile(r"/data/local/tmp(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+")


def option_problems(options: Mapping[str, Any], default_dir: str) -> list[str]:
    """What is wrong with ``[options] device_dir`` and ``adb_timeout_s``, each with the rule."""
    problems = []
    folder = options.get("device_dir", default_dir)
    if not isinstance(folder, str) or not _DEVICE_DIR.fullmatch(folder):
        problems.append(
            f"[options] device_dir must be a folder under /data/local/tmp named with letters, "
            f"digits and '._-' (it is removed with rm -rf on the device), not {folder!r:.60}"
        )
    timeout = options.get("adb_timeout_s", 600)
    number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not (number and 0 < timeout <= 86_400):
        problems.append(
            f"[options] adb_timeout_s must be seconds in (0, 86400], not {timeout!r:.40}"
        )
    return problems


def find_adb(options: Mapping[str, Any]) -> Path | None:
    """``[options] adb``, ``$ANDROID_HOME/platform-tools/adb`` or ``adb`` on ``PATH``."""
    home = os.environ.get("ANDROID_HOME") or os.environ.get("ANDROID_SDK_ROOT")
    dirs = [Path(home) / "platform-tools"] if home else []
    return find_tool("adb", options.get("adb"), dirs)


def list_devices(adb: Path) -> list[tuple[str, str]]:
    """``(serial, state)`` of every device ``adb devices`` lists (state: device, unauthorized, ...)."""
    res = run_tool([adb, "devices"], timeout=60)
    lines = res.stdout.splitlines()
    # adb 1.0.36 and older print '* daemon not running. starting it now ... *' on stdout,
    # above the header: only what follows the header is a device
    start = next((i + 1 for i, t in enumerate(lines) if t.startswith("List of devices")), 0)
    out = []
    for line in lines[start:]:
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("*"):
            out.append((parts[0], " ".join(parts[1:])))
    return out


# adb's own failures (its words vary by version: 'error: ...' before 1.0.39, 'adb: ...'
# since), each with what to do; the rest of its message is advice for other setups
_ADB_FAILURES = (
    (re.compile(r"device unauthorized"),
     "device {serial} is unauthorized: unlock it and accept the USB debugging prompt"),
    (re.compile(r"device offline"),
     "device {serial} is offline: replug it or run adb kill-server"),
    (re.compile(r"device '[^']*' not found|no devices/emulators found|device not found"),
     "device {serial} is no longer attached: reconnect it (adb devices lists what is)"),
    (re.compile(r"insufficient permissions for device|no permissions"),
     "no permission to use device {serial} over USB: add a udev rule for it (e.g. the"
     " android-sdk-platform-tools-common package) and replug"),
)  # fmt: skip


def adb_failure(text: str, serial: str) -> str | None:
    """One line for a failure of adb itself that ``text`` (its output) names, else None."""
    for pattern, line in _ADB_FAILURES:
        if pattern.search(text):
            return line.format(serial=serial)
    return None


def stop_command(binary: str) -> str:
    """The device shell line that kills (SIGKILL) every process running ``binary``.

    A process runs it when one of its arguments is exactly that path (``argv[0]`` for a
    binary run by its path, also after ``taskset`` has exec'd it). The binaries the
    runners start live in their own ``device_dir`` under ``/data/local/tmp``, so no
    other program matches; nor does this line's own shell, whose argument is the whole
    line (its ``grep`` processes start after the list of processes is read). Prints
    ``stopped PID`` for each process killed.
    """
    path = shlex.quote(binary)
    return (
        "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/cmdline 2>/dev/null | "
        f"grep -qxF {path} && kill -9 ${{p#/proc/}} 2>/dev/null && echo stopped ${{p#/proc/}};"
        " done; true"
    )


def _wanted_serial(options: Mapping[str, Any]) -> str | None:
    return options.get("serial") or os.environ.get("ANDROID_SERIAL") or None


def device_problems(options: Mapping[str, Any]) -> list[str]:
    """What keeps us from using the configured Android device, each with the fix."""
    adb = find_adb(options)
    if adb is None:
        return [f"adb not found: {ADB_INSTALL}"]
    try:
        devices = list_devices(adb)
    except ToolError as exc:
        return [f"adb devices failed: {exc}"]
    wanted = _wanted_serial(options)
    states = dict(devices)
    if wanted and wanted not in states:
        listed = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
        return [f"Android device {wanted!r} (serial from [options] serial or ANDROID_SERIAL) "
                f"is not attached; adb lists: {listed}"]  # fmt: skip
    if not wanted:
        if not devices:
            return ["no Android device attached: connect the phone by USB and enable USB "
                    "debugging (Settings > Developer options)"]  # fmt: skip
        if len(devices) > 1:
            return [f"several Android devices attached ({', '.join(s for s, _ in devices)}): "
                    f"choose one with [options] serial or ANDROID_SERIAL"]  # fmt: skip
        wanted = devices[0][0]
    state = states[wanted]
    if state == "unauthorized":
        return [f"device {wanted} is unauthorized: unlock it and accept the USB debugging prompt"]
    if "no permissions" in state:
        return [f"no permission to use device {wanted} over USB ({state}): add a udev rule "
                f"for it (e.g. the android-sdk-platform-tools-common package) and replug"]  # fmt: skip
    if state != "device":
        return [f"device {wanted} is {state!r}, not ready: replug it or run adb kill-server"]
    return []


class Adb:
    """Commands to one Android device over ``adb``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        """Resolve adb and the device serial from ``options``; :class:`ToolError` if impossible."""
        exe = find_adb(options)
        if exe is None:
            raise ToolError(f"adb not found: {ADB_INSTALL}")
        self.exe = exe
        serial = _wanted_serial(options)
        if serial is None:
            devices = [s for s, st in list_devices(exe) if st == "device"]
            if len(devices) != 1:
                raise ToolError("; ".join(device_problems(options)) or "no single device")
            serial = devices[0]
        self.serial: str = serial
        self.timeout = float(options.get("adb_timeout_s", 600))

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        """``adb -s SERIAL args...``."""
        return [str(self.exe), "-s", self.serial, *map(os.fspath, args)]

    def shell(self, script: str, *, stop: str | None = None) -> str:
        """Run ``script`` in the device's shell; its output, or :class:`ToolError` on failure.

        ``stop``: the device path of the binary ``script`` runs. When ``adb`` is
        stopped before ``script`` has finished (it timed out, Ctrl-C, SIGTERM), every
        process running that binary on the device is killed before the error goes on
        (:meth:`stop`).
        """
        try:
            res = self._run("shell", f"{script}; echo LATBENCH_RC=$?")
        except BaseException as exc:
            if stop is not None:
                self.stop(stop, exc)
            raise
        out = res.stdout.rstrip()
        m = _RC.search(out)
        if m is None:
            raise ToolError(f"adb shell gave no exit status for: {script}\n{out}{res.stderr}")
        out = out[: m.start()].rstrip()
        if int(m.group(1)) != 0:
            tail = "\n".join((out + "\n" + res.stderr).strip().splitlines()[-15:])
            raise ToolError(f"on {self.serial}: {script}\nexited with {m.group(1)}:\n{tail}")
        return out

    def stop(self, binary: str, cause: BaseException | None = None) -> list[int]:
        """Kill every process running ``binary`` on the device; the pids killed.

        Best effort, within :data:`STOP_TIMEOUT_S`: when it fails (the device is gone,
        adb hangs) a one-line warning says the tool may still run there, and nothing
        is raised. ``cause``, the reason ``adb`` was stopped, goes into that line.
        """
        name = binary.rsplit("/", 1)[-1]
        why = (
            "a timeout" if isinstance(cause, ToolError) and "did not finish" in str(cause)
            else "an interrupt" if isinstance(cause, KeyboardInterrupt | SystemExit)
            else "an error" if cause is not None else "a request"
        )  # fmt: skip
        try:
            res = run_tool(self.command("shell", stop_command(binary)), timeout=STOP_TIMEOUT_S)
        except (ToolError, OSError, subprocess.SubprocessError) as exc:
            log.warning(
                "%s",
                safe_line(
                    f"could not stop {name} on {self.serial} after {why} ({exc}); it may "
                    f"still run there and load the device the next model is timed on",
                    500,
                ),
            )
            return []
        pids = [int(p) for p in re.findall(r"^stopped (\d+)\s*$", res.stdout, re.M)]
        if pids:
            log.info("stopped %s on %s after %s (pid %s)", name, self.serial, why,
                     ", ".join(map(str, pids)))  # fmt: skip
        return pids

    def push(self, local: str | os.PathLike[str], remote: str) -> None:
        """``adb push LOCAL REMOTE``."""
        self._run("push", local, remote)

    def pull(self, remote: str, local: str | os.PathLike[str]) -> None:
        """``adb pull REMOTE LOCAL``."""
        self._run("pull", remote, local)

    def _run(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        """``adb -s SERIAL args...``; a failure of adb itself (the device unauthorized,
        offline, gone) as one line saying what to do, rather than adb's advice."""
        try:
            return run_tool(self.command(*args), timeout=self.timeout)
        except ToolError as exc:
            if "did not finish" not in str(exc) and (line := adb_failure(str(exc), self.serial)):
                raise ToolError(line) from None
            raise
