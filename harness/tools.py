"""External tools the edge builders and runners drive: finding, running, versioning.

Every tool is found the same way: the path a profile's ``[options]`` names, else an
SDK folder (``SNPE_ROOT``/``QAIRT_SDK_ROOT`` for Qualcomm's tools), else ``PATH``. A
tool that fails raises :class:`ToolError` with its command and the tail of its output;
a tool that is absent is reported by the runners' and builders' ``check`` with how to
install it, never by a traceback.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "ToolError",
    "find_tool",
    "quote",
    "run_tool",
    "tool_output",
]


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


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capture stdout and stderr as text.

    Raises :class:`ToolError` naming the command and quoting the tail of its output
    when it cannot start, times out, or (with ``check``) exits non-zero.
    """
    args = [os.fspath(a) for a in argv]
    try:
        res = subprocess.run(
            args,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(f"{args[0]} not found (command: {quote(args)})") from None
    except PermissionError:
        raise ToolError(f"{args[0]} is not executable (command: {quote(args)})") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{quote(args)} did not finish within {timeout} s") from None
    if check and res.returncode != 0:
        out = _tail(res.stdout + "\n" + res.stderr)
        raise ToolError(f"{quote(args)} exited with status {res.returncode}:\n{out}")
    return res


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
