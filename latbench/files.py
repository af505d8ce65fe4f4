"""Paths from outside, checked: regular files only, never more than a cap, folders that are.

Opening a FIFO for reading blocks until someone writes to it, and a device or an
endless file would be read forever; every reader of a small file (settings, state,
manifests, pickles) goes through :func:`read_capped`. A folder a command will write
into is checked with :func:`require_folder` before any work, where creating it would
fail late with a bare ``[Errno 17] File exists``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from latbench.keys import file_kind

__all__ = ["FileTooLarge", "NotRegularFile", "read_capped", "require_folder", "require_regular"]


class NotRegularFile(ValueError):
    """The path names a folder, FIFO, socket or device, not a regular file."""


class FileTooLarge(ValueError):
    """The file is larger than its reader's cap."""


def require_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``path``'s stat (symbolic links followed) if it is a regular file.

    Raises :class:`FileNotFoundError` when it is absent and :class:`NotRegularFile`
    ("is a FIFO, not a regular file") otherwise.
    """
    st = Path(path).stat()
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"is a {file_kind(st.st_mode)}, not a regular file")
    return st


def read_capped(path: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of the regular file ``path``, refused beyond ``cap`` bytes.

    Reads at most ``cap + 1`` bytes whatever the file claims. Raises
    :class:`FileNotFoundError`, :class:`NotRegularFile`, :class:`FileTooLarge`
    ("larger than N bytes") or another :class:`OSError`; messages omit the path,
    which the caller names in its own words.
    """
    require_regular(path)  # a socket or device is named as such, never opened
    # and checked again on the descriptor it reads: a file swapped for a FIFO after the
    # check would block the open, and O_NONBLOCK makes opening a FIFO return at once
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    with open(fd, "rb", closefd=True) as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"is a {file_kind(mode)}, not a regular file")
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise FileTooLarge(f"larger than {cap:,} bytes")
    return data


def require_folder(
    path: str | os.PathLike[str],
    what: str = "the output",
    *,
    creatable: bool = False,
    writable: bool = False,
) -> Path:
    """``path`` if it is a folder or does not exist yet; else a :class:`ValueError`
    naming it, ``what`` it was meant for and what it is (a file, a FIFO, a broken link).

    With ``creatable``, a missing ``path`` must have a folder as its nearest existing
    ancestor (not a file); with ``writable``, that folder (or ``path``) must be
    writable by this user. Checked before any work, not at the first write.
    """
    from latbench.terminal import safe

    p = Path(path).expanduser()
    if p.is_dir() or not (p.exists() or p.is_symlink()):
        if creatable or writable:
            _require_reachable(p, what, writable)
        return p
    if not p.exists():
        kind = "broken link"
    else:
        mode = p.stat().st_mode
        kind = "file" if stat.S_ISREG(mode) else file_kind(mode)
    raise ValueError(
        f"{safe(p)}: is not a folder but a {kind}, no place for {what}; nothing was written"
    )


def _require_reachable(path: Path, what: str, writable: bool) -> None:
    from latbench.terminal import safe

    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ValueError(
            f"{safe(path)}: cannot create the folder for {what}, {safe(p)} is not a folder;"
            " nothing was written"
        )
    if writable and not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{safe(p)}: not writable, no place for {what}; nothing was written")
