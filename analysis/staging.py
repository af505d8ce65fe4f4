"""Write a set of result files so that an output folder holds all of them or none.

:func:`staged` hands out a hidden folder inside the output folder (so on the same
file system) to write into, and moves what was written there into the output folder
only once the writing has finished; a failure or an interrupt leaves the output
folder's earlier files as they were. A run killed outright (``kill -9``, power loss)
cannot remove its hidden folder; the next run into the same output folder removes the
ones whose owner (recorded inside: host and PID) is a process of this host that is gone,
and those without an owner (an earlier LatBench version's) once untouched for ten minutes.

Publishing rolls forward: before its first move, :func:`publish` records in the
staging folder, durably, that publishing has begun and what it moves (the journal
:data:`JOURNAL_FILE`). A run killed between two moves leaves the journal and the files
it had still to move; the next run completes those moves instead of removing them, so
the output folder never keeps a mix of two runs' files.

A run given a result-set name (``results``) records what it wrote in the output
folder's :data:`MANIFEST`, each file under the name of its result set; the next run
that writes a result set removes the files the manifest lists under that name which
it did not write again (a dataset's figure from an earlier run), and nothing else: a
file the manifest does not list (your notes) is never touched.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from latbench.files import read_capped
from latbench.lock import process_gone

__all__ = [
    "CLAIMS_FILE",
    "JOURNAL_FILE",
    "MANIFEST",
    "OWNER_FILE",
    "PREFIXES",
    "PUBLISH_WAIT_S",
    "claim",
    "publish",
    "remove_abandoned",
    "staged",
]

PREFIXES = (".latbench-partial-", ".nas-partial-")
"""Name prefixes of the staging folders the analysis commands make."""
OWNER_FILE = ".owner.json"
"""File in a staging folder naming the process that writes it (never published)."""
JOURNAL_FILE = ".publishing.json"
"""File in a staging folder saying that its publishing has begun: the files it moves
and the earlier results it removes (never published)."""
CLAIMS_FILE = ".claims.json"
"""File in a staging folder naming the result set of each file written so far (see
:func:`claim`; never published)."""
MANIFEST = ".latbench-results.json"
"""File in an output folder listing the files the runs published there, each with the
name of its result set (``{"format": 1, "files": {"a.csv": "correlation", ...}}``)."""
PUBLISH_WAIT_S = 120.0
"""How long a run waits for another's publishing into the same folder (seconds: moves,
not computation). Publishing holds a ``flock`` on the output folder: two runs at once
would each drop the other's entries from :data:`MANIFEST`."""
_PRIVATE = frozenset({OWNER_FILE, JOURNAL_FILE, JOURNAL_FILE + ".tmp", CLAIMS_FILE, MANIFEST})
_MAX_JSON_BYTES = 4 << 20  # a manifest of some thousand files is ~100 kB


@contextmanager
def staged(
    out: str | os.PathLike[str],
    *,
    prefix: str = ".latbench-partial-",
    results: str | None = None,
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
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=final))
    done = False
    try:
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        (stage / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        yield stage
        # one killed while publishing meanwhile is completed now, never over our files later
        remove_abandoned(final)
        publish(stage, final, results=results)
        done = True
    except OSError as exc:  # name the file where it was going, not the staging folder
        for attr in ("filename", "filename2"):
            name = getattr(exc, attr, None)
            if isinstance(name, str) and Path(name).is_relative_to(stage):
                setattr(exc, attr, str(final / Path(name).relative_to(stage)))
        raise
    finally:
        # a publish that began and could not finish: kept for the next run to complete
        if not os.path.lexists(stage / JOURNAL_FILE):
            shutil.rmtree(stage, ignore_errors=True)
        if made and not done:
            with suppress(OSError):  # only if empty: never a file put there meanwhile
                final.rmdir()


def claim(stage: Path, results: str) -> list[str]:
    """Record the files written in ``stage`` so far that no earlier claim took as the
    result set ``results``; return them (paths relative to ``stage``, ``/``-separated).

    :func:`publish` then records them in the manifest under that name (files nobody
    claimed go under its own ``results``), and removes the files an earlier run listed
    under any name claimed here (even by a claim of no file) that this run did not write.
    """
    claims = _read_claims(stage)
    new = [rel for rel in _staged_files(stage) if rel not in claims["files"]]
    claims["files"].update(dict.fromkeys(new, results))
    if results not in claims["sets"]:
        claims["sets"].append(results)
    (stage / CLAIMS_FILE).write_text(json.dumps(claims), encoding="utf-8")
    return new


def publish(stage: Path, out: Path, *, results: str | None = None) -> list[Path]:
    """Move every file under ``stage`` to the same place under ``out``; return the targets.

    Checks first that none would land on a folder, or under something that is not a
    folder (which would stop the moves half-way), and raises
    :class:`IsADirectoryError` / :class:`NotADirectoryError` naming it before moving
    anything. The moves are :func:`os.replace`, each atomic, and roll forward: the
    files are synced and the list of moves is written durably to :data:`JOURNAL_FILE`
    first, so a run killed midway leaves what :func:`remove_abandoned` completes.

    With ``results``, the output folder's :data:`MANIFEST` is rewritten (moved in last)
    to list each file moved under its result set (:func:`claim`; else ``results``), and
    the files the previous manifest listed under one of this run's result sets that
    this run did not write are removed: only regular files (a listed path that is now a
    folder or a symbolic link, or under one, is left alone). A file the manifest does
    not list is never removed. Without ``results`` the manifest is left as it is.
    """
    files = _staged_files(stage)
    for rel in files:
        target = out / rel
        for parent in list(PurePosixPath(rel).parents)[-2::-1]:  # out/a, out/a/b, ...
            above = out / parent
            if above.exists() and not above.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, "is in the way of a result folder; nothing was replaced",
                    str(above),
                )  # fmt: skip
        if target.is_dir() or (target.exists() and not target.is_file()):
            raise IsADirectoryError(
                errno.EISDIR, "is in the way of a result file; nothing was replaced", str(target)
            )
    with _publishing(out):  # two runs' manifests: read and rewritten one run at a time
        moves, remove = list(files), []
        if results is not None:
            manifest, remove = _next_manifest(stage, out, files, results)
            (stage / MANIFEST).write_text(_dumps(manifest), encoding="utf-8")
            moves.append(MANIFEST)  # last: it lists the files only once they are there
        for rel in moves:  # their bytes on disk before any of them replaces an earlier file
            _fsync(stage / rel)
        _write_durably(stage / JOURNAL_FILE, {"format": 1, "move": moves, "remove": remove})
        try:
            _finish(stage, out, moves, remove)
        except BaseException:
            with suppress(Exception):  # e.g. Ctrl-C between two moves: complete the set now
                _finish(stage, out, moves, remove)
            raise  # what could not be completed stays for the next run (see staged)
    return [out / rel for rel in files]


def remove_abandoned(out: Path) -> list[Path]:
    """Complete or remove the staging folders in ``out`` whose writer is gone; return them.

    Only folders named with one of :data:`PREFIXES`: one whose :data:`OWNER_FILE`
    names this host and a PID that no longer runs is removed, after completing its
    moves into ``out`` if its :data:`JOURNAL_FILE` says it was killed while publishing;
    one without an owner file (made by an earlier LatBench version) is removed when
    nothing in it was modified for :data:`latbench.dataset.STALE_TMP_AGE_S`. A folder of
    a live run, of another host (a shared file system), or with an unreadable owner is
    left alone. Warns (:class:`UserWarning`) once for each kind of folder removed.
    """
    from latbench.dataset import STALE_TMP_AGE_S

    host = socket.gethostname()
    killed: list[Path] = []
    completed: list[Path] = []
    old: list[Path] = []
    failed: list[str] = []
    cutoff = time.time() - STALE_TMP_AGE_S
    try:
        entries = sorted(p for p in out.iterdir() if p.name.startswith(PREFIXES))
    except OSError:
        return []
    for folder in entries:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            if not os.path.lexists(folder / OWNER_FILE):
                if _untouched_since(folder, cutoff):
                    old.append(folder)
                continue
            owner = json.loads(read_capped(folder / OWNER_FILE, _MAX_JSON_BYTES))
            pid = owner["pid"]
            if (
                owner["host"] != host
                or not isinstance(pid, int)
                or pid <= 0
                or not process_gone(pid)
            ):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.lexists(folder / JOURNAL_FILE):
            try:
                _complete(folder, out)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                failed.append(f"{folder.name} ({getattr(exc, 'strerror', None) or exc})")
                continue
            completed.append(folder)
        else:
            killed.append(folder)
        shutil.rmtree(folder, ignore_errors=True)
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)
    for found, what in (
        (killed, f"removed {len(killed)} unfinished result folder(s) of killed runs in {out}: "),
        (completed, f"completed the results of {len(completed)} run(s) killed while moving "
                    f"them into {out}, from: "),
        (old, f"removed {len(old)} result folder(s) an earlier LatBench version left "
              f"unfinished in {out}: "),
    ):  # fmt: skip
        if found:
            warnings.warn(what + ", ".join(p.name for p in found[:3]), stacklevel=3)
    if failed:
        warnings.warn(
            f"could not complete the results of a run killed while moving them into {out}"
            f" (left as they are): {', '.join(failed[:3])}",
            stacklevel=3,
        )
    return killed + completed + old


# --- helpers -----------------------------------------------------------------------------


def _own_stage(path: Path) -> bool:
    """Whether ``path`` is a staging folder this process made (and has not published)."""
    if not path.name.startswith(PREFIXES):
        return False
    try:
        owner = json.loads(read_capped(path / OWNER_FILE, _MAX_JSON_BYTES))
    except (OSError, ValueError):
        return False
    return owner == {"host": socket.gethostname(), "pid": os.getpid()}


def _staged_files(stage: Path) -> list[str]:
    """The files under ``stage`` to publish (``/``-separated, sorted), less its own."""
    return sorted(
        rel
        for p in stage.rglob("*")
        if not p.is_dir() and (rel := p.relative_to(stage).as_posix()) not in _PRIVATE
    )


def _safe_rel(rel: object) -> str:
    """``rel`` if it is a plain relative ``/``-separated path inside the folder, else
    :class:`ValueError` (a damaged or planted list never reaches outside it)."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        raise ValueError(f"not a relative path: {rel!r}")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "//" in rel:
        raise ValueError(f"not a relative path: {rel!r}")
    if parts[0].startswith(PREFIXES) or (len(parts) == 1 and parts[0] in _PRIVATE - {MANIFEST}):
        raise ValueError(f"not a result file: {rel!r}")
    return rel


def _read_json(path: Path) -> object:
    return json.loads(read_capped(path, _MAX_JSON_BYTES).decode("utf-8"))


def _read_claims(stage: Path) -> dict:
    try:
        claims = _read_json(stage / CLAIMS_FILE)
    except (OSError, ValueError):
        claims = None
    if (
        not isinstance(claims, dict)
        or not isinstance(claims.get("sets"), list)
        or not isinstance(claims.get("files"), dict)
    ):
        return {"sets": [], "files": {}}
    return claims


def _read_manifest(out: Path) -> dict[str, str]:
    """The previous manifest's ``{file: result set}``; empty when absent or damaged."""
    path = out / MANIFEST
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # never through a link
            return {}
        data = _read_json(path)
        files = data["files"] if isinstance(data, dict) and data.get("format") == 1 else {}
        if not isinstance(files, dict):
            return {}
    except (OSError, ValueError, KeyError):
        return {}
    listed = {}
    for rel, name in files.items():
        with suppress(ValueError):
            if isinstance(name, str) and _safe_rel(rel) != MANIFEST:
                listed[rel] = name
    return listed


def _next_manifest(
    stage: Path, out: Path, files: Sequence[str], results: str
) -> tuple[dict, list[str]]:
    """The manifest after this run, and the previous one's files this run removes."""
    previous = _read_manifest(out)
    claims = _read_claims(stage)
    claimed = claims["files"]
    written = {rel: claimed.get(rel, results) for rel in files}
    sets = {results, *claims["sets"], *written.values()}
    remove = sorted(rel for rel, s in previous.items() if s in sets and rel not in written)
    kept = {
        rel: s
        for rel, s in previous.items()
        if s not in sets and rel not in written and os.path.lexists(out / rel)
    }
    return {"format": 1, "files": dict(sorted((kept | written).items()))}, remove


def _dumps(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder: its entries) to disk, where the system can."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_durably(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` whole (a temporary renamed over it) and on disk."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_dumps(data))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def _finish(stage: Path, out: Path, moves: Iterable[str], remove: Iterable[str]) -> None:
    """Move the files of ``moves`` still in ``stage`` into ``out``, remove ``remove``
    from ``out`` and then the journal: what the journal says, from wherever it stopped."""
    folders = {out}
    for rel in moves:
        source = stage / rel
        if not os.path.lexists(source):  # moved before the interruption
            continue
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        folders.add(target.parent)
    for folder in folders:  # the renames on disk before the journal goes
        _fsync(folder)
    _remove_listed(out, remove)
    (stage / JOURNAL_FILE).unlink(missing_ok=True)
    _fsync(stage)


def _complete(stage: Path, out: Path) -> None:
    """Complete the publishing a killed run began (its :data:`JOURNAL_FILE`)."""
    journal = _read_json(stage / JOURNAL_FILE)
    if not isinstance(journal, dict) or journal.get("format") != 1:
        raise ValueError("not a journal of this LatBench")
    moves = [_safe_rel(rel) for rel in journal["move"]]
    remove = [rel for rel in journal["remove"] if _safe_rel(rel) != MANIFEST]
    with _publishing(out):
        _finish(stage, out, moves, remove)


@contextmanager
def _publishing(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder ``out`` itself (no lock file among the
    results), waiting up to :data:`PUBLISH_WAIT_S`; where ``flock`` is missing, nothing."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:  # a folder we may write but not read: publish unguarded, as before
        yield
        return
    try:
        deadline = time.monotonic() + PUBLISH_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BlockingIOError(
                        errno.EAGAIN,
                        f"another run has been publishing results here for "
                        f"{PUBLISH_WAIT_S:.0f} s; try again when it has finished",
                        str(out),
                    ) from None
                time.sleep(0.05)
            except OSError:  # a file system without flock (some network mounts): unguarded
                break
        yield  # closing the descriptor releases the lock, also if this process dies
    finally:
        os.close(fd)


def _remove_listed(out: Path, rels: Iterable[str]) -> None:
    """Remove each regular file ``out/rel``, reached through real folders only."""
    for rel in rels:
        here = out
        try:
            for part in PurePosixPath(rel).parts[:-1]:
                here = here / part
                if not stat.S_ISDIR(os.lstat(here).st_mode):  # a link: maybe elsewhere
                    raise NotADirectoryError(here)
            path = out / rel
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
        except OSError:  # gone already, or not a file: left as it is
            continue


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
