"""Pieces every importer shares: the result type, file selection and metadata."""

from __future__ import annotations

import contextlib
import io
import pickletools
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


def _is_text(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    if not head or head[0] == 0x80:  # protocol 2+ pickles open with PROTO
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not a character cut by the 512-byte read
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\r\n\t" for c in text)


# Protocol 0 (and 1) opcodes, by byte: a protocol-0 pickle is ASCII text, so a damaged
# one must be told from a CSV or JSON file by its opcode structure.
_TEXT_PICKLE_OPS = {op.code.encode("latin-1"): op for op in pickletools.opcodes if op.proto <= 1}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
_OPENERS = frozenset({"MARK", "GLOBAL"})  # how a container or object pickle starts
MAX_TEXT_PICKLE_SCAN = 16 << 20
"""Most bytes of a text file read to tell a damaged protocol-0 pickle's damage."""
_HEAD = 64 << 10  # enough to tell a pickle's opcodes from a CSV's or JSON's


@dataclass(frozen=True)
class _TextPickleScan:
    ops: int  # opcodes that follow the pickle machine's rules, from the first byte
    opened: bool  # the first opens a container or names a class, or a memo opcode follows
    end: int  # where the first opcode that breaks them starts (len(data): none does)
    truncated: bool  # the data ends inside an opcode, or before the STOP opcode
    complete: bool  # a whole pickle, STOP and all
    named: bool  # a well-formed class reference (GLOBAL, INST) among them


def _scan_text_pickle(data: bytes) -> _TextPickleScan:
    """Run the protocol-0/1 opcodes that ``data`` starts with on a model of the pickle
    machine's stack, marks and memo (nothing is built), up to the first that breaks it."""
    stream = io.BytesIO(data)
    depth, marks, memo = 0, [], set()
    ops, opened, named, pos = 0, False, False, 0

    def scan(truncated: bool, complete: bool = False) -> _TextPickleScan:
        return _TextPickleScan(ops, opened, pos, truncated, complete, named)

    while True:
        pos = stream.tell()
        op = _TEXT_PICKLE_OPS.get(stream.read(1))
        if op is None:
            return scan(truncated=pos == len(data))
        try:
            arg = op.arg.reader(stream) if op.arg is not None else None
        except (ValueError, UnicodeDecodeError, OverflowError):
            # a line or field cut by the end of the data: truncated (the opcode counts);
            # a bad literal: corrupt
            if stream.tell() < len(data):
                return scan(truncated=False)
            opened = opened or op.name in _MEMO_OPS or (ops == 0 and op.name in _OPENERS)
            ops += 1
            return scan(truncated=True)
        if op.name in ("GLOBAL", "INST"):
            if not all(map(_NAME.fullmatch, arg.split(" "))):
                return scan(truncated=False)
            named = True
        if op.name.endswith("GET") and arg not in memo:
            return scan(truncated=False)
        before = op.stack_before
        if pickletools.markobject in before:
            i = before.index(pickletools.markobject)
            above = [x for x in before[i + 1 :] if x is not pickletools.stackslice]
            if not marks or depth - marks[-1] < len(above) or marks[-1] < i:
                return scan(truncated=False)
            depth = marks.pop() - i
        elif depth < len(before):
            return scan(truncated=False)
        else:
            depth -= len(before)
        if op.name == "MARK":
            marks.append(depth)
        else:
            depth += len(op.stack_after)
        if op.name.endswith("PUT"):
            memo.add(arg)
        opened = opened or op.name in _MEMO_OPS or (ops == 0 and op.name in _OPENERS)
        ops += 1
        if op.name == "STOP":  # a whole pickle; a stack left over makes it corrupt
            if depth or marks:
                return scan(truncated=False)
            pos = stream.tell()
            return scan(truncated=False, complete=True)


def _text_pickle_damage(path: Path) -> tuple[str | None, bool]:
    """How a text file that failed to load as a pickle is damaged, if it is one, and
    whether its first bytes name a class as a pickle does.

    ``None``: its opcodes are not a pickle's (a CSV, JSON or other text); ``""``: a whole
    protocol-0 pickle, or one too long to scan, whose loader's own message stands;
    otherwise where it is truncated or corrupt.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(_HEAD)
            scan = _scan_text_pickle(data)
            if scan.ops < 2 or not scan.opened:
                return None, scan.named  # a CSV or JSON file is told from its first bytes
            if len(data) == _HEAD:  # more to read: the damage may lie further on
                data += fh.read(MAX_TEXT_PICKLE_SCAN + 1 - _HEAD)
                scan = _scan_text_pickle(data[:MAX_TEXT_PICKLE_SCAN])
    except OSError:
        return None, True
    cut = len(data) > MAX_TEXT_PICKLE_SCAN  # only the first MAX_TEXT_PICKLE_SCAN bytes seen
    if scan.complete or (cut and scan.truncated):
        return "", scan.named
    if scan.truncated:
        return f"truncated: its {len(data)} bytes end inside the pickle", scan.named
    return f"corrupt at byte {scan.end}", scan.named


def load_source_pickle(path: Path, allowed: Mapping[tuple[str, str], Any], limits: Limits) -> Any:
    """:func:`~latbench.safepickle.load_pickle`, saying so when the file is text (a CSV or
    JSON given where a pickle is expected) rather than reporting a bare opcode error.

    A protocol-0 pickle is text too: one that is truncated or corrupt is said to be a
    damaged pickle, told from other text by its opcodes (see :func:`_scan_text_pickle`).
    Text whose first bytes the loader refused as an opcode it never runs (``Value,x`` then
    ``None,1``: OBJ) or a malformed class name (``cpu,latency``) is text as well; a
    well-formed class reference stays an unsafe pickle.
    """
    try:
        return load_pickle(path, allowed, limits)
    except (CorruptPickleError, UnsafePickleError) as exc:
        if not _is_text(path):
            raise
        damage, named = _text_pickle_damage(path)
        if isinstance(exc, UnsafePickleError) and (damage is not None or named):
            raise  # a pickle's opcodes, or a class reference: refused as the loader says
        if damage == "":
            raise  # a whole protocol-0 pickle: its loader's reason stands
        if damage is not None:
            raise CorruptPickleError(
                f"{path}: a damaged protocol-0 pickle ({damage}), not a CSV or JSON file;"
                " get an intact copy of the file"
            ) from None
        raise CorruptPickleError(
            f"{path}: text (a CSV or JSON file?), not a pickle; give the published .pickle file"
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
) -> dict[str, Any]:
    """File metadata of an imported dataset: device and provenance from the catalog.

    ``fallback`` describes a source the catalog does not know.
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
            "sha256": sha256_file(source),
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
        raise KeyLockedError(
            f"{key!r} in {folder}: nothing imported, another process holds its write lock: {exc}"
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
