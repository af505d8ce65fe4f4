"""Write a set of result files so that an output folder holds all of them or none.

:func:`staged` hands out a hidden folder inside the output folder (so on the same
file system) to write into, and moves what was written there into the output folder
only once the writing has finished; a failure or an interrupt leaves the output
folder's earlier files as they were. A run killed outright (``kill -9``, power loss)
cannot remove its hidden folder; the next run into the same output folder removes the
ones whose owner (recorded inside: host, PID, boot and PID namespace) is a process of
this host and container that is gone, and those without an owner (an earlier LatBench
version's) once untouched for a day (:data:`OLD_STAGE_AGE_S`). Only the current user's are touched: another user's
hidden folder in a shared output folder is left alone.

Publishing rolls forward, through real folders only, and keeps the output folder's
results manifest (:mod:`latbench.analysis.publishing`): a run stopped between two moves
is completed by the next one, so the output folder never keeps a mix of two runs' files,
and no run publishes while such moves are pending.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import stat
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path, PurePosixPath

from latbench.analysis.publishing import (
    CLAIMS_FILE,
    JOURNAL_FILE,
    MANIFEST,
    MAX_JSON_BYTES,
    OWNER_FILE,
    PREFIXES,
    PUBLISH_NOTICE_S,
    claim,
    complete_journal,
    dump_json,
    error_text,
    finish_moves,
    folder_lock,
    fsync_path,
    is_mine,
    next_manifest,
    read_manifest,
    staged_files,
    write_durably,
)
from latbench.files import read_capped
from latbench.lock import pid_namespace, process_gone

__all__ = [
    "CLAIMS_FILE",
    "JOURNAL_FILE",
    "MANIFEST",
    "OLD_STAGE_AGE_S",
    "OWNER_FILE",
    "PREFIXES",
    "PUBLISH_NOTICE_S",
    "claim",
    "publish",
    "remove_abandoned",
    "staged",
]

OLD_STAGE_AGE_S = 86400.0
"""How long a staging folder without an owner file (an earlier LatBench version's) must
be untouched before it is removed (seconds): a live run may write nothing for long."""
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_active: set[tuple[int, int, int]] = set()
"""(PID, device, inode) of each staging folder this process writes now: its other ones
(kept by a publish that failed) are abandoned, completed by its next publish."""


@contextmanager
def staged(
    out: str | os.PathLike[str],
    *,
    prefix: str = ".latbench-partial-",
    results: str | None = None,
    after: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """Yield a new hidden folder inside ``out`` (made if missing) to write results into.

    When the ``with`` block ends normally, every file written there is moved into
    ``out`` (:func:`publish`), replacing files of the same name; files of ``out`` that
    the block did not write are kept, except those an earlier run of the same result
    set ``results`` wrote (see :func:`publish`). When it raises (an error, Ctrl-C),
    ``out`` is left as it was, and removed again if this call made it and it is still
    empty; an :class:`OSError` about a file in the staging folder is re-raised naming
    that file's place in ``out``. The staging folder is removed either way, unless
    its moves began and could not all be made: it is kept for the next run to complete.

    ``out`` being a staging folder of this process (a writer that stages its own
    files, called inside another's ``with`` block) yields ``out`` itself: the outer
    block moves every file once (``results``, if given, then claims the files written
    there so far, :func:`claim`).
    """
    final = Path(out)
    if _own_stage(final):
        yield final
        if results is not None:
            claim(final, results)
        return
    made = not final.is_dir()
    final.mkdir(parents=True, exist_ok=True)
    remove_abandoned(final)
    # named first and made inside the try: a signal (SIGTERM) landing right after the
    # folder is made must not leave it behind
    stage: Path | None = final / f"{prefix}{secrets.token_hex(6)}"
    key: tuple[int, int, int] | None = None
    done = False
    try:
        try:
            stage.mkdir(mode=0o700)
        except FileExistsError:  # not ours: never removed below
            stage = None
            raise
        key = _key(stage)
        _active.add(key)
        owner: dict[str, object] = {"host": socket.gethostname(), "pid": os.getpid()}
        if _boot_id():
            owner["boot"] = _boot_id()
        if pid_namespace():
            owner["pidns"] = pid_namespace()
        # on disk before any journal: a folder whose owner is unreadable is never touched
        write_durably(stage / OWNER_FILE, owner)
        yield stage
        publish(stage, final, results=results, after=after)
        done = True
    except OSError as exc:  # name the file where it was going, not the staging folder
        for attr in ("filename", "filename2"):
            name = getattr(exc, attr, None)
            if stage is not None and isinstance(name, str) and Path(name).is_relative_to(stage):
                setattr(exc, attr, str(final / Path(name).relative_to(stage)))
        raise
    finally:
        _active.discard(key)
        # a publish that began and could not finish: kept for the next run to complete
        if stage is not None and not os.path.lexists(stage / JOURNAL_FILE):
            shutil.rmtree(stage, ignore_errors=True)
        if made and not done:
            with suppress(OSError):  # only if empty: never a file put there meanwhile
                final.rmdir()


def publish(
    stage: Path, out: Path, *, results: str | None = None, after: Callable[[], None] | None = None
) -> list[Path]:
    """Move every file under ``stage`` to the same place under ``out``; return the targets.

    Checks first that none would land on a folder, or under something that is not a
    folder (a file, a symbolic link: which would stop the moves half-way), and raises
    :class:`IsADirectoryError` / :class:`NotADirectoryError` naming it before moving
    anything. Then, holding the lock on ``out``, completes the moves an earlier run of
    this host began and stopped (:func:`remove_abandoned`), or raises :class:`OSError`
    naming its folder if they cannot be: newer results never land before older ones.
    The moves are :func:`os.replace`, each atomic, and roll forward: the files are
    synced and the list of moves is written durably to :data:`JOURNAL_FILE` first, so a
    run killed midway leaves what :func:`remove_abandoned` completes.

    With ``results``, the output folder's :data:`MANIFEST` is rewritten (moved in last)
    to list each file moved under its result set (:func:`claim`; else ``results``), and
    the files the previous manifest listed under one of this run's result sets that
    this run did not write are removed: only regular files (a listed path that is now a
    folder or a symbolic link, or under one, is left alone). A file the manifest does
    not list is never removed. Without ``results`` the manifest is left as it is.
    """
    files = staged_files(stage)
    for rel in files:
        target = out / rel
        for parent in list(PurePosixPath(rel).parents)[-2::-1]:  # out/a, out/a/b, ...
            above = out / parent
            if os.path.lexists(above) and not stat.S_ISDIR(os.lstat(above).st_mode):
                raise NotADirectoryError(
                    errno.ENOTDIR, "is in the way of a result folder; nothing was replaced",
                    str(above),
                )  # fmt: skip
        if target.is_dir() or (target.exists() and not target.is_file()):
            raise IsADirectoryError(
                errno.EISDIR, "is in the way of a result file; nothing was replaced", str(target)
            )
    manifest_path = out / MANIFEST
    if results is not None and os.path.lexists(manifest_path):
        st = os.lstat(manifest_path)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(
                errno.EISDIR, "is in the way of the results manifest; nothing was replaced",
                str(manifest_path),
            )  # fmt: skip
        if not is_mine(st):  # a co-user's: neither trusted nor replaced (a sticky folder)
            warnings.warn(
                f"{manifest_path} belongs to another user: it is left as it is, and files"
                " earlier runs wrote there that this one did not are not removed",
                stacklevel=4,
            )
            results = None
    with folder_lock(out) as locked:  # two runs' manifests: read and rewritten one at a time
        completed, failed = _complete_pending(out, locked)
        _report(out, completed=completed)
        if failed:
            folder, exc = failed[0]
            raise OSError(
                getattr(exc, "errno", None) or errno.EIO,
                f"holds an earlier run's results that could not all be moved into {out} "
                f"({error_text(exc)}), so this run's were not moved in either: fix that (say, free "
                "some space) and rerun, or remove that folder to discard its results",
                str(folder),
            )
        moves, remove = list(files), []
        if results is not None:
            _keep_users_files(out, files)
            manifest, remove = next_manifest(stage, out, files, results)
            (stage / MANIFEST).write_text(dump_json(manifest), encoding="utf-8")
            moves.append(MANIFEST)  # last: it lists the files only once they are there
        for rel in moves:  # their bytes on disk before any of them replaces an earlier file
            fsync_path(stage / rel)
        write_durably(stage / JOURNAL_FILE, {"format": 1, "move": moves, "remove": remove})
        try:
            finish_moves(stage, out, moves, remove)
        except BaseException:
            with suppress(Exception):  # e.g. Ctrl-C between two moves: complete the set now
                finish_moves(stage, out, moves, remove)
            raise  # what could not be completed stays for the next run (see staged)
        if after is not None:  # still under the lock: no other run's files in between
            try:
                after()
            except OSError as exc:  # the results are in: a note on them must not undo that
                warnings.warn(f"{out}: {error_text(exc)}", stacklevel=4)
    return [out / rel for rel in files]


def _keep_users_files(out: Path, files: Sequence[str]) -> list[Path]:
    """Rename aside (``NAME.orig``, ``NAME.orig-2``, ...) each regular file of ``out`` that
    this run would replace and no earlier run published (the manifest does not list it):
    a user's own ``README.md`` in ``--out .`` is theirs, not an old result. Warns first,
    naming them; returns the new names. Each is linked to its new name before the old
    one goes, so a run stopped midway leaves it under one name or both, never none, and
    an existing ``.orig`` is never overwritten."""
    listed = read_manifest(out)
    theirs = [
        out / rel
        for rel in files
        if rel not in listed
        and os.path.lexists(out / rel)
        and stat.S_ISREG(os.lstat(out / rel).st_mode)
    ]
    if not theirs:
        return []
    shown = ", ".join(p.name for p in theirs[:5]) + (", ..." if len(theirs) > 5 else "")
    warnings.warn(
        f"{out} holds {len(theirs)} file(s) of a result's name that no earlier"
        f" latbench-analysis run wrote there ({shown}); each is kept as NAME.orig"
        " (NAME.orig-2, ... where that is taken)",
        stacklevel=5,
    )
    kept = []
    for target in theirs:
        for n in range(1, 1000):
            aside = target.with_name(f"{target.name}.orig" + (f"-{n}" if n > 1 else ""))
            try:
                os.link(target, aside)  # fails if the name is taken: nothing overwritten
            except FileExistsError:
                continue
            except OSError:  # no hard links here (some network or FAT file systems)
                if os.path.lexists(aside):
                    continue
                os.rename(target, aside)
            else:
                os.unlink(target)
            kept.append(aside)
            break
        else:
            raise FileExistsError(errno.EEXIST, "has 999 renamed copies already", str(target))
    return kept


def remove_abandoned(out: Path) -> list[Path]:
    """Complete or remove the staging folders in ``out`` whose writer is gone; return them.

    Only this user's folders named with one of :data:`PREFIXES`: one whose
    :data:`OWNER_FILE` names this host and a PID that no longer runs (or ran before the
    last reboot, or is this process, which no longer uses it) is removed, after completing
    its moves into ``out`` if its :data:`JOURNAL_FILE` says it stopped while publishing;
    one without an owner file (made by an earlier LatBench version) is removed when
    nothing in it was modified for :data:`OLD_STAGE_AGE_S`. A folder of a live run, of
    another host (a shared file system) or user, or with an unreadable owner is left
    alone. Warns (:class:`UserWarning`) once for each kind of folder removed.
    """
    completed: list[Path] = []
    failed: list[tuple[Path, Exception]] = []
    found = _scan(out)
    if any(what != "old" and os.path.lexists(f / JOURNAL_FILE) for f, what in found):
        with folder_lock(out) as locked:  # journals read under the lock: one run replays each
            completed, failed = _complete_pending(out, locked)
        found = _scan(out)
    killed = [f for f, what in found if what == "gone" and not os.path.lexists(f / JOURNAL_FILE)]
    old = [f for f, what in found if what == "old"]
    for folder in killed + old:
        shutil.rmtree(folder, ignore_errors=True)
    _report(out, killed=killed, completed=completed, old=old)
    if failed:
        warnings.warn(
            f"could not complete the results of a run stopped while moving them into {out}"
            f" (left as they are; no run publishes there until they are):"
            f" {', '.join(f'{f.name} ({error_text(exc)})' for f, exc in failed[:3])}",
            stacklevel=3,
        )
    return killed + completed + old


# --- helpers -----------------------------------------------------------------------------


def _key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return os.getpid(), st.st_dev, st.st_ino  # the PID: a forked child's stages are not its own


def _own_stage(path: Path) -> bool:
    """Whether ``path`` is a staging folder this process writes now (not yet published)."""
    try:
        return path.name.startswith(PREFIXES) and _key(path) in _active
    except OSError:
        return False


@cache
def _boot_id() -> str | None:
    """This boot's id (Linux), so that a PID recorded before a reboot is not taken as live."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except (OSError, ValueError):
        return None


def _state(folder: Path, cutoff: float) -> str | None:
    """What the staging folder ``folder`` is to this process: ``"gone"`` (its writer is),
    ``"live"`` (another process of this host and user writes it, or did, or one of
    another container whose PIDs cannot be checked from here), ``"old"`` (an
    earlier version's, untouched since ``cutoff``), or ``None``: not ours to touch."""
    try:
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or not is_mine(st):
            return None  # a link, or another user's (a planted one, in a shared folder)
        if not os.path.lexists(folder / OWNER_FILE):
            return "old" if _untouched_since(folder, cutoff) else None
        owner = json.loads(read_capped(folder / OWNER_FILE, MAX_JSON_BYTES))
        pid, boot, pidns = owner["pid"], owner.get("boot"), owner.get("pidns")
        if owner["host"] != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(boot, str) and _boot_id() not in (None, boot):
        return "gone"  # made before the last reboot: its PID may be another process's now
    if pidns is not None and pidns != pid_namespace():
        return "live"  # another container's: its PID means nothing here, so never "gone"
    if pid == os.getpid():
        return None if _own_stage(folder) else "gone"  # one a failed publish of ours kept
    return "gone" if process_gone(pid) else "live"


def _scan(out: Path) -> list[tuple[Path, str]]:
    """The staging folders in ``out`` that this process may touch, with their state."""
    cutoff = time.time() - OLD_STAGE_AGE_S
    try:
        folders = sorted(p for p in out.iterdir() if p.name.startswith(PREFIXES))
    except OSError:
        return []
    return [(f, what) for f in folders if (what := _state(f, cutoff)) is not None]


def _complete_pending(out: Path, locked: bool) -> tuple[list, list]:
    """Complete, then remove, the staging folders in ``out`` whose publishing began and
    stopped; return those completed, and ``(folder, error)`` of those that could not be.
    The caller holds :func:`folder_lock`. Taken: those whose writer is gone, and while
    the lock is held also those of live runs (a publish holds the lock from writing its
    journal to its end, so a journal found under the lock is one a failed publish kept)."""
    completed, failed = [], []
    for folder, what in _scan(out):
        if what == "old" or (what == "live" and not locked):
            continue
        if not os.path.lexists(folder / JOURNAL_FILE):  # none, or another run completed it
            continue
        try:
            complete_journal(folder, out)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            failed.append((folder, exc))
            continue
        shutil.rmtree(folder, ignore_errors=True)
        completed.append(folder)
    return completed, failed


def _report(out: Path, *, killed=(), completed=(), old=()) -> None:
    """Warn once for each kind of staging folder removed from ``out``."""
    for found, what in (
        (killed, f"removed {len(killed)} unfinished result folder(s) of killed runs in {out}: "),
        (completed, f"completed the results of {len(completed)} run(s) stopped while moving "
                    f"them into {out}, from: "),
        (old, f"removed {len(old)} result folder(s) an earlier LatBench version left "
              f"unfinished in {out}: "),
    ):  # fmt: skip
        if found:
            warnings.warn(what + ", ".join(p.name for p in found[:3]), stacklevel=4)


def _untouched_since(folder: Path, cutoff: float) -> bool:
    """Whether neither ``folder`` nor anything in it was modified at ``cutoff`` or later."""

    def fail(exc: OSError) -> None:
        raise exc

    try:
        if os.lstat(folder).st_mtime >= cutoff:
            return False
        for root, dirs, names in os.walk(folder, onerror=fail):  # links are not followed
            for name in (*dirs, *names):
                if os.lstat(os.path.join(root, name)).st_mtime >= cutoff:
                    return False
    except OSError:
        return False
    return True
