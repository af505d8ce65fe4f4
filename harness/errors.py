"""Expected failures of a run, as the one line the command prints."""

from __future__ import annotations

import errno

from latbench.terminal import safe_line

__all__ = ["os_error_line"]

_ADVICE = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota)",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
    errno.EROFS: "choose a folder on a writable file system (--out, --cache, LATBENCH_HOME)",
}


def os_error_line(exc: OSError) -> str:
    """``exc`` as one line: what failed, on which file, and how to go on.

    Everything flushed before the error is kept in the run's ``.parts`` folder, so
    the advice always ends with rerunning the same command to resume.
    """
    what = exc.strerror or (exc.args[0] if exc.args else type(exc).__name__)
    where = f" ({exc.filename})" if exc.filename else ""
    code = f" [errno {exc.errno}: {errno.errorcode.get(exc.errno, '?')}]" if exc.errno else ""
    advice = _ADVICE.get(exc.errno or 0, "fix the cause")
    text = safe_line(f"{what}{where}{code}")  # a path may hold ESC or newlines
    return (
        f"{text}; results flushed so far are kept: {advice}, then rerun the same command to resume"
    )
