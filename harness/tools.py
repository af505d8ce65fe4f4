"""External tools the edge builders and runners drive: finding, running, versioning.

Every tool is found the same way: the path a profile's ``[options]`` names, else an
SDK folder (``SNPE_ROOT``/``QAIRT_SDK_ROOT`` for Qualcomm's tools), else ``PATH``. A
tool that fails raises :class:`ToolError` with its command and the tail of its output;
a tool that is absent is reported by the runners' and builders' ``check`` with how to
install it, never by a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import locale
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ToolError",
    "check_wall",
    "find_tool",
    "job_control",
    "quote",
    "reported_ns",
    "run_tool",
    "tool_output",
]

UNITS_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6}
"""Factor from a unit a tool prints its run times in to nanoseconds."""

WALL_SLACK = 10
"""How many times the wall time a tool ran for its reported runs may add up to. An honest
tool's runs fit inside the time it ran (overlapping transfers at most double them); a
unit read wrong is off by 1,000."""


class ToolError(RuntimeError):
    """An external tool failed or printed something we cannot use; the message says what."""


def find_tool(
    name: str, configured: str | os.PathLike[str] | None = None, dirs: Sequence[Path] = ()
) -> Path | None:
    """``configured`` if it is an executable file (or a name on ``PATH``), else ``name``
    in one of ``dirs``, else ``name`` on ``PATH``; ``None`` when none is found."""
    if configured:
        text = os.fspath(configured)
        path = Path(text).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        found = shutil.which(text)
        return Path(found) if found else None
    for d in dirs:
        cand = Path(d) / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    found = shutil.which(name)
    return Path(found) if found else None


def quote(argv: Sequence[str | os.PathLike[str]]) -> str:
    """``argv`` as one shell-quoted line (for messages and logs)."""
    return shlex.join(os.fspath(a) for a in argv)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


MAX_OUTPUT_BYTES = 64 << 20
"""Most a tool may print (stdout and stderr together) before it is stopped: real tools
print kilobytes, a runaway one would fill memory before its timeout."""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The tool leads its own process group: a child it forked (a compiler's worker,
    # a shell's pipeline) would otherwise outlive it and load the CPU the next model
    # is timed on.
    _signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # a setuid tool
        proc.kill()
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the tool's process group, unless the tool was already reaped."""
    if proc.returncode is None:  # not reaped yet, so its pid is still its group's id
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


class _Jobs:
    """The tools running now, in any thread, for the main thread's Ctrl-Z handler.

    Python runs signal handlers in the main thread only, so one handler there stops and
    resumes every registered tool's process group, whichever thread started it. All
    fields are guarded by :attr:`lock`, which is reentrant: the handler may interrupt
    the main thread while it holds it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.live: set[subprocess.Popen[bytes]] = set()
        """Started and not yet unregistered (a pid is its group's id until it is reaped)."""
        self.starting: set[int] = set()
        """Threads between starting a tool and registering it."""
        self.deferred = False
        """A Ctrl-Z came while the main thread was starting a tool: raised again after."""
        self.paused = 0.0
        """Seconds this process has spent stopped by Ctrl-Z, in all."""
        self.stopped_at: float | None = None
        """When the stop in progress began (until its handler has resumed the tools)."""
        self.depth = 0
        """Nesting of :func:`job_control` on the main thread (installed while > 0)."""
        self.previous: dict[int, Any] = {}


_jobs = _Jobs()


def _paused_s() -> float:
    """Seconds this process has been stopped by Ctrl-Z so far, a stop in progress included
    (a worker thread may run on after ``fg`` before the handler has counted it)."""
    with _jobs.lock:
        since = _jobs.stopped_at
        return _jobs.paused + (0.0 if since is None else max(0.0, time.monotonic() - since))


def _signal_all(sig: int) -> None:
    with _jobs.lock:
        for proc in list(_jobs.live):
            _signal_group(proc, sig)


def _on_tstp(_signum: int, _frame: object) -> None:
    with _jobs.lock:  # a worker registering a tool it just started finishes first
        if threading.get_ident() in _jobs.starting:  # we interrupted our own start
            _jobs.deferred = True
            return
        _signal_all(signal.SIGSTOP)
        _jobs.stopped_at = time.monotonic()
    signal.signal(signal.SIGTSTP, signal.SIG_DFL)
    try:
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
    finally:
        signal.signal(signal.SIGTSTP, _on_tstp)
        with _jobs.lock:
            if _jobs.stopped_at is not None:
                _jobs.paused += max(0.0, time.monotonic() - _jobs.stopped_at)
            _jobs.stopped_at = None
            _signal_all(signal.SIGCONT)


def _on_cont(_signum: int, _frame: object) -> None:
    _signal_all(signal.SIGCONT)  # continued by someone else than our own handler


@contextlib.contextmanager
def job_control() -> Iterator[None]:
    """Within, Ctrl-Z (SIGTSTP) stops every tool :func:`run_tool` runs, then this process.

    Each tool leads its own process group in its own session, so the terminal's
    SIGTSTP reaches only us; a timing tool left running would keep loading the machine.
    The handler sends SIGSTOP to every live tool's group (an orphaned group ignores
    SIGTSTP, and a tool cannot catch SIGSTOP), whichever thread started it, then stops
    this process with SIGTSTP's default action; on SIGCONT (``fg``) the groups are
    resumed, and the time stopped is not counted towards any tool's timeout.

    Handlers can be installed by the main thread only: :func:`run_tool` enters this
    itself there, and code that starts tools from worker threads enters it around that
    work on the main thread (only around it: while installed, a Ctrl-Z waits for the
    main thread to leave native code, such as an in-process engine build). Nested
    uses install once; the previous handlers are restored when the outermost ends.
    Elsewhere (another thread, no job control, SIGTSTP ignored) it does nothing.
    """
    if (
        not hasattr(signal, "SIGTSTP")
        or threading.current_thread() is not threading.main_thread()
        or (_jobs.depth == 0 and signal.getsignal(signal.SIGTSTP) == signal.SIG_IGN)
    ):
        yield
        return
    if _jobs.depth == 0:
        _jobs.previous = {
            signal.SIGTSTP: signal.signal(signal.SIGTSTP, _on_tstp),
            signal.SIGCONT: signal.signal(signal.SIGCONT, _on_cont),
        }
    _jobs.depth += 1
    try:
        yield
    finally:
        _jobs.depth -= 1
        if _jobs.depth == 0:
            previous, _jobs.previous = _jobs.previous, {}
            for sig, handler in previous.items():  # None: set outside Python, the default
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _start(
    args: list[str], cwd: str | os.PathLike[str] | None, env: Mapping[str, str] | None
) -> subprocess.Popen[bytes]:
    """Start ``args`` leading its own session and register it for :func:`job_control`.

    The Ctrl-Z handler waits for a worker thread's start to register (the lock); one
    that interrupted the main thread in here is deferred (:func:`_deferred_ctrl_z`).
    """
    me = threading.get_ident()
    with _jobs.lock:
        _jobs.starting.add(me)
        try:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=None if env is None else {**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            _jobs.live.add(proc)
        except FileNotFoundError:
            raise ToolError(f"{args[0]} not found (command: {quote(args)})") from None
        except PermissionError:
            raise ToolError(f"{args[0]} is not executable (command: {quote(args)})") from None
        finally:
            _jobs.starting.discard(me)
    return proc


def _deferred_ctrl_z() -> None:
    """Act on a Ctrl-Z that came while the main thread was starting a tool."""
    if _jobs.deferred and threading.current_thread() is threading.main_thread():
        _jobs.deferred = False
        signal.raise_signal(signal.SIGTSTP)


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> None:
    """``proc.wait(timeout)``, the time this process was stopped by Ctrl-Z not counted."""
    if timeout is None:
        proc.wait()
        return
    start, paused = time.monotonic(), _paused_s()
    while True:
        deadline = start + timeout + _paused_s() - paused
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            return
        except subprocess.TimeoutExpired:
            if start + timeout + _paused_s() - paused <= time.monotonic():
                raise  # no pause moved the deadline while it waited: time is up


def _decode(data: bytes) -> str:
    text = data.decode(locale.getpreferredencoding(False), errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text=True reads it


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell, stdin from ``/dev/null``), capture stdout and stderr as text.

    Raises :class:`ToolError` naming the command and quoting the tail of its output
    when it cannot start, times out, prints more than :data:`MAX_OUTPUT_BYTES`, or
    (with ``check``) exits non-zero. A tool that times out or floods is killed with
    every process it started. Ctrl-Z stops the tool's process group with us and ``fg``
    resumes it, from whichever thread it was started (:func:`job_control`); the time
    stopped does not count towards ``timeout``.
    """
    args = [os.fspath(a) for a in argv]
    with job_control():  # on the main thread; a worker's tool is stopped by its handler
        try:
            proc = _start(args, cwd, env)
        except ToolError:
            _deferred_ctrl_z()
            raise
        try:  # from here on a Ctrl-C or SIGTERM (raised here) must not leave it running
            _deferred_ctrl_z()
            bufs, flooded = (bytearray(), bytearray()), threading.Event()

            def pump(stream: Any, buf: bytearray) -> None:
                with stream:
                    while chunk := stream.read1(1 << 16):
                        if len(bufs[0]) + len(bufs[1]) + len(chunk) > MAX_OUTPUT_BYTES:
                            flooded.set()
                            _stop(proc)
                            return
                        buf += chunk

            pumps = [threading.Thread(target=pump, args=(stream, buf), daemon=True)
                     for stream, buf in zip((proc.stdout, proc.stderr), bufs, strict=True)]  # fmt: skip
            for t in pumps:
                t.start()
            _wait(proc, timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise ToolError(f"{quote(args)} did not finish within {timeout} s") from None
        except BaseException:  # Ctrl-C: its processes must not outlive the run
            _stop(proc)
            raise
        finally:
            with _jobs.lock:  # reaped: its pid is no longer its group's to signal
                _jobs.live.discard(proc)
    # a daemon it started (adb's server) may hold a pipe open: wait 10 s in all, not on
    # it; such a child, left running by a tool that exited normally, is not ours to stop
    end = time.monotonic() + 10
    for t in pumps:
        t.join(timeout=max(0.0, end - time.monotonic()))
    if flooded.is_set():
        raise ToolError(f"{quote(args)} printed more than {MAX_OUTPUT_BYTES >> 20} MiB; stopped")
    res = subprocess.CompletedProcess(args, proc.returncode, _decode(bufs[0]), _decode(bufs[1]))
    if check and res.returncode != 0:
        out = _tail(res.stdout + "\n" + res.stderr)
        raise ToolError(f"{quote(args)} exited with status {res.returncode}:\n{out}")
    return res


def reported_ns(values: Iterable[Any], unit: str, source: str, first: int = 1) -> np.ndarray:
    """Per-run times ``source`` printed in ``unit`` (``ns``, ``us``, ``ms``), as int64 ns.

    A tool's figures are refused, never clamped: each must be a number (not a bool or
    text), finite, above 0 and at most :data:`~latbench.raw_checks.MAX_TIMING_NS` once
    in ns, else :class:`ToolError` names the first bad one (runs numbered from
    ``first``). A clamp would turn a negative or zero figure into a 1 ns "measurement".
    Positive figures under 1 ns (a tool's rounding) are stored as 1 ns, the resolution
    of the raw timings.
    """
    from latbench.raw_checks import MAX_TIMING_NS

    scale, out = UNITS_NS[unit], []
    for i, v in enumerate(values):
        number = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        try:
            ns = float(v) * scale if number else math.nan
        except OverflowError:  # an int from JSON beyond any float
            ns = math.inf
        if not (math.isfinite(ns) and 0 < ns <= MAX_TIMING_NS):
            text = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
            what = f"{text} {unit}" if number else f"{text} ({type(v).__name__})"
            raise ToolError(
                f"{source} reported {what} for run {first + i}; a run time must be a number "
                f"above 0 and at most {MAX_TIMING_NS / 1e9:g} s, so none is recorded"
            )
        out.append(ns)
    return np.maximum(np.rint(np.asarray(out, np.float64)), 1).astype(np.int64)


def check_wall(times_ns: np.ndarray, wall_s: float, source: str) -> None:
    """Raise :class:`ToolError` when ``times_ns`` add up to more than :data:`WALL_SLACK`
    times the ``wall_s`` seconds the tool that reported them ran for (a unit error)."""
    total = float(np.sum(times_ns)) / 1e9
    if total > WALL_SLACK * max(wall_s, 0.0):
        raise ToolError(
            f"{source} reported {total:.3g} s of runs while it ran for {wall_s:.3g} s: its "
            f"unit is not the one read (another version, or microseconds labelled as "
            f"milliseconds?), so none is recorded"
        )


@functools.lru_cache(maxsize=64)
def _cached_output(path: str, mtime_ns: int, args: tuple[str, ...]) -> str:
    try:
        res = run_tool([path, *args], timeout=120, check=False)
    except ToolError:
        return ""
    return res.stdout + "\n" + res.stderr


def tool_output(path: Path, args: Sequence[str], pattern: str) -> str | None:
    """First group of ``pattern`` in what ``path args`` prints, or ``None``.

    Cached per tool file and modification time: artifact keys ask for tool versions
    once per artifact, and probing must not cost a process launch each time.
    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    match = re.search(pattern, _cached_output(str(path), mtime, tuple(args)))
    return match.group(1) if match else None
