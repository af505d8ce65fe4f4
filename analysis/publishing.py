"""How a staging folder's files get into an output folder: journaled, link-safe moves,
and the output folder's results manifest.

:func:`latbench.analysis.staging.publish` records durably in the staging folder what it
will move (:data:`JOURNAL_FILE`) before its first move, so a run stopped midway leaves
what a later run completes (:func:`complete_journal`). Moves and removals open each folder
one level at a time without following a symbolic link (:func:`_move`,
:func:`_remove_listed`). :data:`MANIFEST` lists each published file under the name of its
result set (:func:`claim`), so the next run of a result removes that result's files it
no longer writes, and nothing else. The output folder's ``flock`` (:func:`folder_lock`)
makes two runs move their files in one at a time.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from latbench.files import read_capped

__all__ = [
    "CLAIMS_FILE",
    "JOURNAL_FILE",
    "MANIFEST",
    "MAX_JSON_BYTES",
    "OWNER_FILE",
    "PREFIXES",
    "PUBLISH_NOTICE_S",
    "claim",
    "complete_journal",
    "dump_json",
    "error_text",
    "finish_moves",
    "folder_lock",
    "fsync_path",
    "is_mine",
    "next_manifest",
    "read_manifest",
    "staged_files",
    "write_durably",
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
PUBLISH_NOTICE_S = 10.0
"""After how long waiting for another run's publishing into the same folder a run says
so (seconds; it waits as long as it takes: its results are never thrown away). Publishing
holds a ``flock`` on the output folder: two runs at once would each drop the other's
entries from :data:`MANIFEST`."""
_PRIVATE = frozenset(
    {OWNER_FILE, OWNER_FILE + ".tmp", JOURNAL_FILE, JOURNAL_FILE + ".tmp", CLAIMS_FILE, MANIFEST}
)
MAX_JSON_BYTES = 4 << 20  # a manifest of some thousand files is ~100 kB
_IN_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NOT_A_FOLDER = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})  # EMLINK: BSD's ELOOP
# os.replace takes the same src_dir_fd/dst_dir_fd as os.rename but is not listed itself
_NAME_SURROGATE = 0x20000000
"""The bit of a Windows reparse tag that makes a path stand for another name: symbolic
links, junctions, WSL links (what ``os.lstat`` itself does not follow); deduplicated or
cloud placeholder files lack it and are ordinary files."""


def _leads_elsewhere(st: os.stat_result) -> bool:
    """Whether ``st`` (from :func:`os.lstat`) is a symbolic link, a Windows junction or
    another name-surrogate reparse point."""
    return stat.S_ISLNK(st.st_mode) or bool(getattr(st, "st_reparse_tag", 0) & _NAME_SURROGATE)


_DIR_FD = {os.open, os.stat, os.rename, os.unlink, os.mkdir} <= os.supports_dir_fd
"""Whether folders can be walked by descriptor (POSIX). Elsewhere (Windows) each step is
checked by path instead: no link is followed either, but a co-user able to swap a folder
for a link between the check and the move could race it."""


def claim(stage: Path, results: str) -> list[str]:
    """Record the files written in ``stage`` so far that no earlier claim took as the
    result set ``results``; return them (paths relative to ``stage``, ``/``-separated).

    :func:`publish` then records them in the manifest under that name (files nobody
    claimed go under its own ``results``), and removes the files an earlier run listed
    under any name claimed here (even by a claim of no file) that this run did not write.
    """
    claims = _read_claims(stage)
    new = [rel for rel in staged_files(stage) if rel not in claims["files"]]
    claims["files"].update(dict.fromkeys(new, results))
    if results not in claims["sets"]:
        claims["sets"].append(results)
    (stage / CLAIMS_FILE).write_text(json.dumps(claims), encoding="utf-8")
    return new


def is_mine(st: os.stat_result) -> bool:
    """Whether this user owns what ``st`` describes (always, where there are no uids)."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def staged_files(stage: Path) -> list[str]:
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
    try:
        return json.loads(read_capped(path, MAX_JSON_BYTES).decode("utf-8"))
    except RecursionError:  # nested beyond the parser's depth: damaged, like bad syntax
        raise ValueError(f"{path}: nested too deeply") from None


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


def read_manifest(out: Path) -> dict[str, str]:
    """The previous manifest's ``{file: result set}``; empty when absent or damaged."""
    path = out / MANIFEST
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or not is_mine(st):  # never through a link, and
            return {}  # never one a co-user of a shared folder wrote: it would delete ours
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


def next_manifest(
    stage: Path, out: Path, files: Sequence[str], results: str
) -> tuple[dict, list[str]]:
    """The manifest after this run, and the previous one's files this run removes."""
    previous = read_manifest(out)
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


def dump_json(data: object) -> str:
    """``data`` as the indented, key-sorted JSON text of the journal and the manifest."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or a folder: its entries) to disk, where the system can."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_durably(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` whole (a temporary renamed over it) and on disk."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(dump_json(data))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def finish_moves(stage: Path, out: Path, moves: Iterable[str], remove: Iterable[str]) -> None:
    """Move the files of ``moves`` still in ``stage`` into ``out``, remove ``remove``
    from ``out`` and then the journal: what the journal says, from wherever it stopped.

    Each file is moved between folders opened one level at a time without following a
    symbolic link, and only a regular file: an entry reached through a link (which may
    lead anywhere) is skipped, and named in a warning."""
    folders, skipped = {out}, []
    for rel in moves:
        done = _move(stage, out, rel)
        if done == "moved":
            folders.add((out / rel).parent)
        elif done == "skipped":
            skipped.append(rel)
    for folder in folders:  # the renames on disk before the journal goes
        fsync_path(folder)
    _remove_listed(out, remove)
    (stage / JOURNAL_FILE).unlink(missing_ok=True)
    fsync_path(stage)
    if skipped:
        warnings.warn(
            f"did not move {len(skipped)} file(s) of {stage.name} into {out}: reached through"
            f" a symbolic link, or not a regular file: {', '.join(skipped[:5])}",
            stacklevel=2,
        )


def _move(stage: Path, out: Path, rel: str) -> str:
    """Move the regular file ``stage/rel`` to ``out/rel`` through real folders only; return
    ``"moved"``, ``"gone"`` (moved before an interruption) or ``"skipped"`` (a symbolic
    link on the way, or not a regular file). Another error names ``out/rel``."""
    *parts, name = PurePosixPath(rel).parts
    if not _DIR_FD:
        return _move_by_path(stage, out, parts, name, rel)
    try:
        source = _open_folder(stage, parts)
    except OSError as exc:
        if (outcome := _source_outcome(exc)) is None:
            raise
        return outcome
    try:
        try:
            mode = os.stat(name, dir_fd=source, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return "gone"
        if not stat.S_ISREG(mode):
            return "skipped"
        target = _open_folder(out, parts, make=True)
        try:
            os.replace(name, name, src_dir_fd=source, dst_dir_fd=target)
        finally:
            os.close(target)
        return "moved"
    except OSError as exc:
        if exc.errno in _NOT_A_FOLDER:
            return "skipped"
        exc.filename, exc.filename2 = str(out / rel), None  # a descriptor names no folder
        raise
    finally:
        os.close(source)


def _source_outcome(exc: OSError) -> str | None:
    """What reaching a file to move raising ``exc`` means: ``"gone"`` (moved before an
    interruption), ``"skipped"`` (a link or a file on the way), or ``None``: an error."""
    if isinstance(exc, FileNotFoundError):
        return "gone"
    return "skipped" if exc.errno in _NOT_A_FOLDER else None


def _move_by_path(stage: Path, out: Path, parts: Sequence[str], name: str, rel: str) -> str:
    """:func:`_move` where the OS has no descriptor-relative calls (:data:`_DIR_FD`)."""
    try:
        source = _real_folder(stage, parts)
        st = os.lstat(source / name)
        mode = 0 if _leads_elsewhere(st) else st.st_mode
    except OSError as exc:
        if (outcome := _source_outcome(exc)) is None:
            raise
        return outcome
    if not stat.S_ISREG(mode):
        return "skipped"
    try:
        os.replace(source / name, _real_folder(out, parts, make=True) / name)
    except OSError as exc:
        if exc.errno in _NOT_A_FOLDER:
            return "skipped"
        exc.filename, exc.filename2 = str(out / rel), None
        raise
    return "moved"


def _real_folder(root: Path, parts: Sequence[str], *, make: bool = False) -> Path:
    """``root/parts...`` after checking that each of ``parts`` is a real folder, not a
    symbolic link (:class:`OSError` ``ELOOP``, or ``ENOTDIR`` for a file); missing ones
    made if ``make``. The by-path form of :func:`_open_folder`."""
    folder = root
    for part in parts:
        folder = folder / part
        if make:
            with suppress(FileExistsError):
                os.mkdir(folder)
        st = os.lstat(folder)
        if _leads_elsewhere(st):  # a Windows junction lstat()s as a folder
            raise OSError(errno.ELOOP, "is a symbolic link", str(folder))
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "is not a folder", str(folder))
    return folder


def _open_folder(root: Path, parts: Sequence[str], *, make: bool = False) -> int:
    """A descriptor of the folder ``root/parts...``, reached through real folders only (a
    symbolic link among ``parts``: :class:`OSError` ``ELOOP``); missing ones made if ``make``."""
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts:
            if make:
                with suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            fd, above = os.open(part, _IN_FOLDER, dir_fd=fd), fd
            os.close(above)
    except BaseException:
        os.close(fd)
        raise
    return fd


def complete_journal(stage: Path, out: Path) -> None:
    """Complete the publishing that ``stage``'s :data:`JOURNAL_FILE` records; the caller
    holds :func:`folder_lock` (read under it, a journal is replayed by one run only)."""
    journal = _read_json(stage / JOURNAL_FILE)
    if not isinstance(journal, dict) or journal.get("format") != 1:
        raise ValueError("not a journal of this LatBench")
    moves = [_safe_rel(rel) for rel in journal["move"]]
    remove = [rel for rel in journal["remove"] if _safe_rel(rel) != MANIFEST]
    finish_moves(stage, out, moves, remove)


@contextmanager
def folder_lock(out: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the folder ``out`` itself (no lock file among the
    results); yield whether it is held. Waits for another run's publishing as long as it
    takes, saying so once after :data:`PUBLISH_NOTICE_S`. Where the folder cannot be read
    or the file system has no ``flock`` (some network mounts), publishing goes on unguarded."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield False
        return
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:  # a folder we may write but not read: publish unguarded, as before
        yield False
        return
    try:
        locked, notice = False, time.monotonic() + PUBLISH_NOTICE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if notice is not None and time.monotonic() >= notice:
                    notice = None
                    warnings.warn(
                        f"waiting for another run publishing results into {out} to finish"
                        " (Ctrl-C gives up: this run's results are then not moved in)",
                        stacklevel=4,
                    )
                time.sleep(0.05)
            except OSError:  # a file system without flock (some network mounts): unguarded
                break
        yield locked  # closing the descriptor releases the lock, also if this process dies
    finally:
        os.close(fd)


def _remove_listed(out: Path, rels: Iterable[str]) -> None:
    """Remove each regular file ``out/rel``, reached through real folders only."""
    for rel in rels:
        *parts, name = PurePosixPath(rel).parts
        if not _DIR_FD:
            with suppress(OSError):  # gone already, a link or not a file: left as it is
                path = _real_folder(out, parts) / name
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and is_mine(st):
                    os.unlink(path)
            continue
        try:
            folder = _open_folder(out, parts)
        except OSError:  # gone already, or a link (maybe elsewhere): left as it is
            continue
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and is_mine(st):  # an earlier run of ours wrote it
                os.unlink(name, dir_fd=folder)
        except OSError:  # gone already, or not a file: left as it is
            pass
        finally:
            os.close(folder)


def error_text(exc: BaseException) -> str:
    """What went wrong in ``exc``, for a one-line message (an ``OSError``'s reason)."""
    return str(getattr(exc, "strerror", None) or exc)
