"""One writer per dataset key: an OS-level lock held for the whole run.

:func:`hold` takes ``<out>/.<stem>.lock`` with :mod:`filelock` (``flock`` on POSIX,
released by the kernel when the process dies, so a ``kill -9`` never leaves a stale
lock) and writes who holds it -- PID, host, start time, command -- beside it in
``.<stem>.lock.json``. A second run on the same key refuses at once with
:class:`KeyLocked` naming that holder; it never waits and never touches the first
run's files. The lock is re-entrant within one process (a campaign's CLI holds it for the
whole run and its session takes it again inside). :func:`holds` tells whether this
process holds the lock a given dataset file belongs to; :func:`file_owner` names that
lock and :func:`hold_files` takes it for writers of single files (rewrite, export, merge).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import os
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from latbench.terminal import safe

__all__ = [
    "DATASET_SUFFIXES",
    "LOCK_FILE_MODE",
    "KeyLocked",
    "LockUnavailable",
    "file_owner",
    "hold",
    "hold_files",
    "holder",
    "open_to_group",
    "pid_namespace",
    "holds",
    "process_gone",
    "run_stem",
]

_held: dict[str, list] = {}  # lock path -> [FileLock, depth], this process's locks
_guard = threading.Lock()

LOCK_FILE_MODE = 0o664
"""Permissions of the lock files (set whatever the umask; an older one is changed by its
owner's next run): a co-user of a group-shared data folder must open a lock file to take
it, so it is group-writable; it holds no data. (filelock's own default, 0666 less the
umask, takes the same path on a file system without ``flock``: a soft lock, whose stale
holders filelock detects.)"""

_PROBE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_NOFOLLOW", 0)
"""How a lock file is opened to look at it: read only, following no symbolic link, and
without waiting on a FIFO someone put in its place."""

MAX_NOTE_BYTES = 16384
"""The holder's note is read only up to this size (its command line is cut at 500
characters, at most 12 bytes each as JSON escapes)."""

DATASET_SUFFIXES = (".parquet", ".raw.h5", ".layers.parquet", ".predicted.parquet")
"""Endings of the files ``<stem><suffix>`` beside ``.<stem>.lock`` that belong to its
dataset. Keys never end in ``.layers``, ``.raw`` or ``.predicted``
(:data:`latbench.keys.RESERVED_SUFFIXES`), so each file belongs to one stem only."""


class KeyLocked(RuntimeError):
    """Another process is writing the same dataset key."""


class LockUnavailable(KeyLocked):
    """The lock file cannot be created at all (``--out`` is no writable folder)."""


def _lock_file_error(lock_path: Path) -> OSError | None:
    """Why ``lock_path`` cannot be opened for writing, or ``None`` if it can.

    filelock reports an unopenable file as a timeout, which would read as
    "another run holds it"; this tells the two apart.
    """
    flags = os.O_WRONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    if not os.path.lexists(lock_path):  # O_CREAT on a co-user's file: protected_regular
        flags |= os.O_CREAT
    try:
        fd = os.open(lock_path, flags, LOCK_FILE_MODE)
    except OSError as exc:
        return exc
    os.close(fd)
    return None


def open_to_group(lock_path: str | os.PathLike[str]) -> None:
    """Let the group write a lock file an earlier version made (``0644`` under umask 022),
    if it is ours and nothing else: an empty, group-readable regular file with one name
    (a hard link planted there, or a private file renamed into place, keeps its mode),
    reached through a descriptor that follows no symbolic link and opens a FIFO at once."""
    if not hasattr(os, "fchmod"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(lock_path, _PROBE)
        try:
            st = os.fstat(fd)
            mine = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
            # and still the file at that name
            if mine and _widenable(st) and os.path.samestat(st, os.lstat(lock_path)):
                os.fchmod(fd, stat.S_IMODE(st.st_mode) | stat.S_IWGRP)
        finally:
            os.close(fd)


def _widenable(st: os.stat_result) -> bool:
    """Whether ``st`` is an earlier version's lock file that only lacks group write: an
    empty, group-readable regular file with one name (a hard link planted there, or a
    private file renamed into its place, is not)."""
    mode = stat.S_IMODE(st.st_mode)
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and st.st_size == 0
        and bool(mode & stat.S_IRGRP)
        and not mode & stat.S_IWGRP
    )


def _being_written(out_dir: str | os.PathLike[str], stem: str, option: str | None) -> str:
    """The refusal of a run that finds ``stem``'s lock held, naming the holder from its
    note unless the note is missing or a leftover of a run of this host that is gone."""
    info = holder(out_dir, stem) or {}
    pid = info.get("pid")
    here = info.get("host") == socket.gethostname() and info.get("pidns") == pid_namespace()
    if here and isinstance(pid, int) and process_gone(pid):
        info = {}  # a killed run's note that the holder could not replace (a sticky folder)
    who = (
        f"PID {info.get('pid', '?')} on host {info.get('host', '?')}"
        f" since {info.get('started', '?')}: {info.get('command', '?')}"
        if info
        else "a process holds its lock file and no note names it"
    )
    advice = (
        f"wait for it to finish, stop it, or use another --key or {option}"
        if option
        else "wait for it to finish or stop it"
    )
    return f"dataset {stem!r} in {Path(out_dir)} is being written by another run ({who}); {advice}"


def _refuse_planted(lock_path: Path) -> None:
    """Refuse a lock path that holds something other than a regular file (a link, a
    folder, a FIFO or socket someone put there), naming it, before filelock reports it as
    an unwritable folder."""
    try:
        st = os.lstat(lock_path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        from latbench.keys import file_kind

        raise LockUnavailable(
            f"{lock_path} is a {file_kind(st.st_mode)}, not a lock file: remove it (a lock"
            " file holds no data)"
        )


def _held_by_another(lock_path: Path) -> bool:
    """Whether a process holds the ``flock`` of ``lock_path``, which we may only read."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    try:
        fd = os.open(lock_path, _PROBE)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # and with it the shared lock, if taken
    return False


def _writable(folder: Path) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(folder, os.W_OK | os.X_OK, effective_ids=effective)


def _foreign_lock_file(lock_path: Path, exc: OSError, option: str | None) -> str:
    """Why a lock file we may not open for writing refuses us, and what to do about it
    (the lock being held is told apart by the caller)."""
    try:
        uid = os.lstat(lock_path).st_uid
    except OSError:
        uid = None
    if uid is None or not _writable(lock_path.parent):
        where = f"{option} must be a writable folder" if option else "its folder must be writable"
        return f"cannot create the write lock {lock_path}: {exc.strerror or exc}; {where}"
    try:
        import pwd

        owner = f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        owner = f"uid {uid}"
    return (
        f"cannot take the write lock {lock_path}: {exc.strerror or exc}; it belongs to {owner}"
        f" and holds no data: {_foreign_lock_advice(lock_path)}"
    )


def _foreign_lock_advice(lock_path: Path) -> str:
    """What will make another user's lock file usable to us: only what will work."""
    try:
        st, folder = os.lstat(lock_path), os.stat(lock_path.parent)
    except OSError:
        return "its owner can delete it"
    if not folder.st_mode & stat.S_ISVTX:  # who may write a folder may delete in it
        return "delete it (or its owner can)"
    ours = hasattr(os, "getgroups") and st.st_gid in {os.getegid(), *os.getgroups()}
    widens = ours and _widenable(st)
    return (
        "its owner can delete it, or run once more here to open it to the group"
        if widens
        else "its owner can delete it"
    )


def _write_note(info_path: Path, info: dict) -> None:
    """Write the holder's note whole, best effort.

    The note only names the holder to a refused run: a co-user's stale note that a sticky
    folder will not let us replace must not stop the run the lock allows. Its temporary
    is a new file (``O_EXCL``), never a name a co-user could have planted a link at.
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{info_path.name}.", suffix=".tmp", dir=info_path.parent)
        os.fchmod(fd, 0o644)  # readable by the run it refuses, whoever runs it
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(info))
        os.replace(tmp, info_path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _paths(out_dir: str | os.PathLike[str], stem: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    return out / f".{stem}.lock", out / f".{stem}.lock.json"


def holder(out_dir: str | os.PathLike[str], stem: str) -> dict | None:
    """What the holder of ``stem``'s lock wrote about itself, or ``None``."""
    from latbench.files import read_capped

    try:  # a co-user's FIFO or giant file in its place is no note
        info = json.loads(read_capped(_paths(out_dir, stem)[1], MAX_NOTE_BYTES))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


@functools.cache
def pid_namespace() -> str | None:
    """This process's PID namespace (Linux), or ``None``: containers that share a host
    name (host networking) number their processes apart, so a PID recorded in another
    namespace says nothing about a process here."""
    try:
        st = os.stat("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def process_gone(pid: int) -> bool:
    """Whether no process of this host has ``pid`` (one of another user's still runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: it runs, as another user
        return False
    return False


def holds(path: str | os.PathLike[str]) -> bool:
    """Whether this process holds the write lock of the dataset file ``path``: the lock
    ``.<stem>.lock`` in ``path``'s folder, ``path`` named ``<stem>`` plus one of
    :data:`DATASET_SUFFIXES` (``k.parquet`` is k's; ``k.shard1of2.parquet`` is not)."""
    path = Path(path)
    stems = [path.name[: -len(s)] for s in DATASET_SUFFIXES if path.name.endswith(s)]
    if not stems:
        return False
    with _guard:
        if not _held:
            return False
        held = set(_held)
    for stem in stems:
        lock_path = path.parent / f".{stem}.lock"
        with contextlib.suppress(OSError, RuntimeError):  # a symlink loop
            if str(lock_path.resolve()) in held or str(lock_path.absolute()) in held:
                return True
    return False


def file_owner(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """The folder and stem of the dataset whose lock covers the file ``path``, or ``None``.

    ``<dir>/<stem><suffix>`` with the longest of :data:`DATASET_SUFFIXES` that fits
    (``k.layers.parquet`` is k's, ``k.shard1of2.parquet`` is ``k.shard1of2``'s), or a
    run's part ``<dir>/<stem>.parts/<name>``.
    """
    path = Path(path)
    if path.parent.name.endswith(".parts") and len(path.parent.name) > len(".parts"):
        return path.parent.parent, path.parent.name.removesuffix(".parts")
    for suffix in sorted(DATASET_SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.parent, path.name.removesuffix(suffix)
    return None


@contextlib.contextmanager
def hold_files(paths: Sequence[str | os.PathLike[str]], action: str = "written") -> Iterator[None]:
    """Hold the write lock of every dataset the files ``paths`` belong to
    (:func:`file_owner`; a file no dataset owns needs none) for the ``with`` block.

    All are taken before the block runs, or none: :class:`KeyLocked` names the file,
    says it was not ``action`` and names the holder; an ``OSError`` says why the lock
    could not be taken at all.
    """
    owners: dict[tuple[str, str], tuple[Path, str, Path]] = {}
    for p in paths:
        owner = file_owner(p)
        if owner is not None:
            owners.setdefault((str(owner[0].absolute()), owner[1]), (*owner, Path(p)))
    with contextlib.ExitStack() as stack:
        for folder, stem, path in (owners[k] for k in sorted(owners)):
            shown = safe(path)
            try:
                stack.enter_context(hold(folder, stem, option=None))
            except LockUnavailable as exc:
                raise LockUnavailable(f"{shown}: not {action}: {exc}") from None
            except KeyLocked as exc:
                raise KeyLocked(f"{shown}: not {action}: {exc}") from None
            except OSError as exc:  # filelock's bare "[Errno 13] ...: '.k.lock'"
                err = OSError(
                    f"{shown}: not {action}: cannot take the write lock of {stem!r} in"
                    f" {safe(folder)} ({exc.strerror or exc}); its folder must be writable"
                )
                err.errno = exc.errno
                raise err from None
        yield


@contextlib.contextmanager
def hold(
    out_dir: str | os.PathLike[str], stem: str, *, option: str | None = "--out"
) -> Iterator[None]:
    """Hold the write lock of dataset ``stem`` in ``out_dir`` for the ``with`` block.

    Raises :class:`KeyLocked` at once when another process holds it; its message
    suggests another ``--key`` or ``option`` (``None``: no option chose the folder).
    Once the lock is taken (not again when re-entered), the temporaries that killed
    writes of the dataset's files left in ``out_dir`` are removed
    (:func:`latbench.dataset.remove_stale_temps`).
    """
    lock_path, info_path = _paths(out_dir, stem)
    # resolved whether or not the folder exists yet: the same key before and after it is
    # made, through a symbolic link or a ".." (else a run would refuse its own inner hold)
    try:
        key = str(lock_path.resolve())
    except (OSError, RuntimeError):  # a symbolic link loop on the way: filelock says so
        key = str(lock_path.absolute())
    with _guard:
        mine = _held.get(key)
        if mine is not None:
            mine[1] += 1
    if mine is not None:
        try:
            yield
        finally:
            with _guard:
                mine[1] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_planted(lock_path)
    lock = FileLock(lock_path, timeout=0, mode=LOCK_FILE_MODE)
    try:
        lock.acquire()
    except PermissionError as exc:  # filelock: a lock file we may not open to write
        if not _held_by_another(lock_path):
            raise LockUnavailable(_foreign_lock_file(lock_path, exc, option)) from None
        raise KeyLocked(_being_written(out_dir, stem, option)) from None
    except Timeout:
        problem = _lock_file_error(lock_path) if holder(out_dir, stem) is None else None
        if problem is not None and not _held_by_another(lock_path):
            where = (
                f"{option} must be a writable folder" if option else "its folder must be writable"
            )
            raise LockUnavailable(
                f"cannot create the write lock {lock_path}: {problem.strerror or problem}; {where}"
            ) from None
        raise KeyLocked(_being_written(out_dir, stem, option)) from None
    open_to_group(lock_path)
    try:
        info = {
            "pid": os.getpid(),
            "pidns": pid_namespace(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:500],
        }
        _write_note(info_path, info)
        with _guard:
            _held[key] = [lock, 1]
        from latbench.dataset import remove_stale_temps

        # here, once per hold, not on every write: under the lock no writer that takes
        # it can own a temporary, and the scan of the folder is paid once per run; the
        # note's temporaries too, which only a holder writes (so they are a killed run's)
        remove_stale_temps(out_dir, stem, quiet=[info_path.name[1:]])
        yield
    finally:
        with _guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            info_path.unlink()
        lock.release()


def run_stem(key: str, shard: tuple[int, int] = (1, 1)) -> str:
    """The file stem of a run: the key, or ``<key>.shard<i>of<n>`` for a shard."""
    return key if tuple(shard) == (1, 1) else f"{key}.shard{shard[0]}of{shard[1]}"
