"""Pieces every importer shares: the result type, file selection and metadata."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.catalog import CATALOG, Dataset, normalize_key, resolve
from latbench.manifest import sha256_file  # one checksum routine for every file we record
from latbench.safepickle import (
    CorruptPickleError,
    Limits,
    PickleProgress,
    UnsafePickleError,
    load_pickle,
    short_repr,
)

__all__ = [
    "ImportFormatError",
    "Imported",
    "KeyLockedError",
    "canonical_key",
    "catalog_metadata",
    "load_source_pickle",
    "packed_kind",
    "refuse_duplicates",
    "select_keys",
    "sha256_file",
    "source_problem",
    "write_lock",
]


class ImportFormatError(ValueError):
    """A source file whose content does not follow the format its importer reads."""


@dataclass(frozen=True)
class Imported:
    """One dataset parsed from a source file, ready to be written."""

    key: str
    frame: pd.DataFrame
    metadata: dict[str, Any]
    source: Path

    def counts(self) -> dict[str, int]:
        """Number of rows per status (``ok``, ``invalid``, ``failed``, ``missing``)."""
        vc = self.frame["status"].value_counts()
        return {s: int(vc.get(s, 0)) for s in ("ok", "invalid", "failed", "missing")}


# First bytes of what users hold instead of the file itself: a browser's or Drive's
# compressed download. None of them starts a pickle that loads.
_PACKED = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive", "unzip it and import what it holds"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it and import what it holds"),
)
PACKED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".7z")
"""File name endings of compressed copies (``x.pickle.gz``) a folder import reports."""


def packed_kind(path: Path) -> tuple[str, str] | None:
    """``(what it is, what to do)`` for a compressed file or archive; ``None`` otherwise.

    Only for a regular file: opening a FIFO would block.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return next(((kind, todo) for magic, kind, todo in _PACKED if head.startswith(magic)), None)


def source_problem(path: Path, max_bytes: int) -> str | None:
    """Why ``path`` cannot be a source file of at most ``max_bytes``, or ``None``.

    Checked before a file is hashed or read: a FIFO or ``/dev/zero`` would block or
    never end, and a multi-gigabyte file would be hashed in full before being refused.
    """
    from latbench.files import NotRegularFile, require_regular

    try:
        size = require_regular(path).st_size
    except NotRegularFile as exc:
        return str(exc)
    if size > max_bytes:
        return f"refused: {size} bytes, more than the {max_bytes} this file's layout needs"
    found = packed_kind(path)
    if found is not None:
        return f"{found[0]}, not the file itself; {found[1]}"
    return None


def _text_head(path: Path) -> bytes:
    """The file's first bytes when they are text (a CSV, a JSON or a protocol-0 pickle);
    ``b""`` otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return b""
    if not head or head[0] == 0x80:  # protocol 2+ pickles open with PROTO
        return b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not a character cut by the 512-byte read
            return b""
        text = head[: exc.start].decode("utf-8")
    return head if all(c.isprintable() or c in "\r\n\t" for c in text) else b""


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MEMOIZE"})


def _runs_as_pickle(progress: PickleProgress, head: bytes) -> bool:
    """Whether the opcodes a text file ran as are a pickle's, not those a CSV or JSON
    file's first letters happen to spell: two or more valid ones (the one cut short or
    refused counts), the first opening a container or naming a class (MARK, GLOBAL) or a
    memo opcode among them."""
    last_valid = progress.opcode is not None and progress.damage != "corrupt"
    memo = progress.memo > 0 or (last_valid and progress.opcode in _MEMO_OPS)
    return progress.ops + last_valid >= 2 and (head[:1] in (b"(", b"c") or memo)


def load_source_pickle(path: Path, allowed: Mapping[tuple[str, str], Any], limits: Limits) -> Any:
    """:func:`~latbench.safepickle.load_pickle`, saying so when the file is text (a CSV or
    JSON given where a pickle is expected) rather than reporting a bare opcode error.

    A protocol-0 pickle is text too: one that is truncated or corrupt is said to be a
    damaged pickle, told from other text by how far the loader got in it (its error's
    ``progress``, see :func:`_runs_as_pickle`). Text whose first bytes the loader refused
    as an opcode it never runs (``Value,x`` then ``None,1``: OBJ) or a malformed class name
    (``cpu,latency``) is text as well; a well-formed class reference stays an unsafe pickle.
    """
    try:
        return load_pickle(path, allowed, limits)
    except (CorruptPickleError, UnsafePickleError) as exc:
        progress, head = exc.progress, _text_head(path)
        if progress is None or not head:
            raise
        pickle_like = _runs_as_pickle(progress, head)
        named = progress.opcode in ("GLOBAL", "INST") and progress.damage is None
        if isinstance(exc, UnsafePickleError) and (pickle_like or named):
            raise  # a pickle's opcodes, or a class reference: refused as the loader says
        if not pickle_like:
            raise CorruptPickleError(
                f"{path}: text (a CSV or JSON file?), not a pickle; give the published .pickle file"
            ) from None
        if progress.damage == "truncated":
            damage = f"truncated: its {path.stat().st_size} bytes end inside the pickle"
        elif progress.damage == "corrupt":
            damage = f"corrupt at byte {progress.offset}"
        else:
            raise  # valid opcodes the loader refused: its reason stands
        raise CorruptPickleError(
            f"{path}: a damaged protocol-0 pickle ({damage}), not a CSV or JSON file;"
            " get an intact copy of the file"
        ) from None


def canonical_key(key: str) -> str:
    """Catalog key for a key or alias; other keys are normalized."""
    return resolve(key) or normalize_key(key)


def select_keys(
    available: Mapping[str, Path], keys: Collection[str] | None, where: Path
) -> dict[str, Path]:
    """The ``key -> file`` entries of ``available`` named by ``keys`` (all when None).

    Raises :class:`ImportFormatError` naming any requested key the source lacks.
    """
    if keys is None:
        return dict(available)
    wanted = {canonical_key(k): k for k in keys}
    absent = [raw for k, raw in wanted.items() if k not in available]
    if absent:
        raise ImportFormatError(
            f"{where} holds no dataset for {', '.join(map(repr, absent))}"
            f" (it holds: {', '.join(sorted(available)) or 'nothing'})"
        )
    return {k: p for k, p in available.items() if k in wanted}


def refuse_duplicates(keyed: Mapping[Path, str], where: Path) -> None:
    """Refuse two files whose names are equal ignoring case, or that map to one key.

    ``keyed`` maps each file to the dataset key it would become. On a case-insensitive
    file system only one of ``pixel2.pt`` and ``Pixel2.pt`` exists; elsewhere both
    would silently become one dataset, so neither is imported.
    """
    seen_names: dict[str, Path] = {}
    seen_keys: dict[str, Path] = {}
    for f, key in keyed.items():
        for seen, tag, why in (
            (seen_names, f.name.casefold(), "names equal ignoring case"),
            (seen_keys, key, f"both dataset {key!r}"),
        ):
            other = seen.setdefault(tag, f)
            if other != f:
                raise ImportFormatError(
                    f"{where}: {short_repr(other.name, 60)} and {short_repr(f.name, 60)}"
                    f" are {why}; keep one of them"
                )


def _split_runtime(runtime: str) -> dict[str, str]:
    name, _, version = runtime.rpartition(" ")
    if name and version[:1].isdigit():
        return {"name": name, "version": version}
    return {"name": runtime, "version": ""}


def catalog_metadata(
    key: str,
    source: Path,
    importer: str,
    *,
    fallback: Dataset | None = None,
    protocol: Mapping[str, Any],
    input_shape: list[int],
    extra: Mapping[str, Any] | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """File metadata of an imported dataset: device and provenance from the catalog.

    ``fallback`` describes a source the catalog does not know. ``sha256``: the source's,
    where the importer hashed it already to identify it (else it is hashed here).
    """
    from latbench import __version__

    entry = CATALOG.get(key, fallback)
    if entry is None:
        raise ValueError(f"no catalog entry and no fallback description for {key!r}")
    return {
        "key": key,
        "device": {
            "key": key,
            "name": entry.name,
            "class": entry.device_class,
            "hardware": entry.hardware,
        },
        "runtime": _split_runtime(entry.runtime),
        "precision": entry.precision,
        "batch": entry.batch,
        "input_shape": input_shape,
        "units": "ms",
        "protocol": dict(protocol),
        "source": entry.source,
        "imported_from": {
            "importer": importer,
            "file": source.name,
            "sha256": sha256 or sha256_file(source),
            **dict(extra or {}),
        },
        "citation": entry.citation,
        "license": entry.license,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latbench_version": __version__,
    }


class KeyLockedError(BlockingIOError):
    """Another process holds the dataset key's write lock; nothing was imported."""


@contextlib.contextmanager
def write_lock(folder: Path, key: str) -> Iterator[None]:
    """Hold ``latbench-measure``'s write lock of ``key`` in ``folder`` (``<folder>/.<key>.lock``),
    so an import never replaces a dataset a campaign is writing, nor the reverse.

    Raises :class:`KeyLockedError` naming the holder, or ``OSError`` naming ``folder``
    when the lock cannot be taken at all (a read-only or full data home).
    """
    from latbench.lock import KeyLocked, LockUnavailable, hold

    held = False
    try:
        with hold(folder, key):
            held = True
            yield
    except LockUnavailable as exc:  # no process holds it: the folder refuses the file
        raise OSError(f"{exc}; nothing imported".replace("--out", "the data home")) from None
    except KeyLocked as exc:
        # lock.py's advice is latbench-measure's (--key, --out); an import has neither
        # (--key is eagle's, for a file's dataset), but every import takes --data-home
        advice = re.sub(
            r"wait for it to finish, stop it, or use another --key or \S+$",
            "wait for it to finish or stop it, or import into another --data-home",
            str(exc),
        )
        raise KeyLockedError(
            f"{key!r} in {folder}: nothing imported, another process holds its write lock: {advice}"
        ) from None
    except OSError as exc:
        if held:  # the write itself failed: its own message names the file
            raise
        # filelock's bare "[Errno 30] ...: '.x.lock'"
        err = OSError(
            f"{folder}: cannot take the write lock of {key!r} ({exc.strerror or exc});"
            " the data home must be a writable folder; nothing imported"
        )
        err.errno = exc.errno
        raise err from None
