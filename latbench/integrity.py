"""Checksums inside LatBench Parquet files, written and verified with pyarrow's own means.

Every Parquet file LatBench writes (datasets, per-layer tables, a run's parts) carries

- CRC-32 page checksums (``write_page_checksum=True``), verified on every read
  (``page_checksum_verification=True``), so a flipped bit in the data is caught
  before it is decoded;
- under the key-value key ``latbench.integrity``, a SHA-256 of the decoded table
  (:func:`table_digest`: column names, types, nulls and values) and of the stored
  metadata JSON, so damage the page checksums cannot see (the footer, the schema, the
  metadata) is caught too.

Files written before this existed have neither; :func:`read_verified` reads them
with a :class:`UnverifiedFileWarning` naming the command that rewrites them
(``latbench rewrite FILE``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "INTEGRITY_KEY",
    "check_file",
    "IntegrityError",
    "NotLatBenchFile",
    "UnverifiedFileWarning",
    "latbench_kind",
    "warn_unverified",
    "integrity_entry",
    "read_table_file",
    "read_verified",
    "rewrite_file",
    "rewrite_files",
    "table_digest",
    "write_verified",
]

INTEGRITY_KEY = b"latbench.integrity"
INTEGRITY_VERSION = 1
REWRITE_HINT = "rewrite it with checksums: latbench rewrite {path}"


class IntegrityError(ValueError):
    """A file whose checksums or digests do not match its content."""


class UnverifiedFileWarning(UserWarning):
    """A file written before LatBench stored checksums: it loads, but unchecked."""


class NotLatBenchFile(ValueError):
    """A readable Parquet file that LatBench did not write (no LatBench metadata)."""


# A run's part (harness/store.py PART_SCHEMA; the core cannot import the harness). Parts
# written before checksums carry no key-value metadata at all: they are recognised by
# their name and exactly these columns (the last two were added later, so optional).
_PART_COLUMNS = {
    "graph_key": pa.string(), "timed_arch_id": pa.int32(), "status": pa.string(),
    "error": pa.string(), "latency_ms": pa.float64(), "latency_std_ms": pa.float64(),
    "runs": pa.int32(), "raw_ns": pa.list_(pa.int64()),
}  # fmt: skip
_PART_COLUMNS_LATER = {"device_id": pa.string(), "fleet_run": pa.int32()}
_WHAT = (
    "datasets, per-layer tables, predictions, the accuracy table and a run's parts"
    " written by LatBench"
)


def latbench_kind(path: str | os.PathLike[str], schema: pa.Schema, command: str = "check") -> str:
    """What LatBench file ``path`` (with Parquet ``schema``) is, from its markers.

    ``"dataset"``, ``"layers"`` or ``"prediction"`` (the ``latbench`` metadata key, told
    apart by the file name), ``"accuracy"`` (``latbench.accuracy``), ``"table"`` (only
    ``latbench.integrity``: a run's part) or ``"part"`` (a part written before checksums:
    named ``part-*.parquet`` with exactly a part's columns). Raises
    :class:`NotLatBenchFile` for anything else, such as a Parquet file from elsewhere
    (its message names ``latbench COMMAND``).
    """
    from latbench.accuracy_table import ACCURACY_METADATA_KEY
    from latbench.dataset import METADATA_KEY

    name = Path(path).name
    meta = schema.metadata or {}
    if METADATA_KEY in meta:
        if name.endswith(".layers.parquet"):
            return "layers"
        return "prediction" if name.endswith(".predicted.parquet") else "dataset"
    if ACCURACY_METADATA_KEY in meta:
        return "accuracy"
    if INTEGRITY_KEY in meta:
        return "table"
    if name.startswith("part-") and name.endswith(".parquet") and _is_part_schema(schema):
        return "part"
    raise NotLatBenchFile(not_latbench_message(path, command))


def _is_part_schema(schema: pa.Schema) -> bool:
    """A part's columns in a part's order, with a part's types (list items may be renamed)."""
    names = list(schema.names)
    want = list(_PART_COLUMNS)
    later = names[len(want) :]
    if names[: len(want)] != want or later != list(_PART_COLUMNS_LATER)[: len(later)]:
        return False
    types = {**_PART_COLUMNS, **_PART_COLUMNS_LATER}
    return all(_type_name(f.type) == _type_name(types[f.name]) for f in schema)


def not_latbench_message(path: str | os.PathLike[str], command: str = "check") -> str:
    """The one line that refuses a Parquet file LatBench did not write."""
    from latbench.terminal import safe

    return (
        f"{safe(Path(path))}: not a LatBench file (no LatBench metadata); `latbench {command}`"
        f" {'verifies' if command == 'check' else 'rewrites'} {_WHAT}"
    )


def warn_unverified(path: str | os.PathLike[str], stacklevel: int = 2) -> None:
    """Warn that ``path`` has no checksums, naming the command that adds them.

    ``stacklevel`` counts from the caller of this function, as for :func:`warnings.warn`.
    """
    warnings.warn(
        f"{path}: written without checksums, so corruption cannot be detected; "
        + REWRITE_HINT.format(path=path),
        UnverifiedFileWarning,
        stacklevel=stacklevel + 1,
    )


def _validity(arr: pa.Array) -> bytes:
    # The bitmap itself when it starts on a byte; bits past the end are masked off.
    buf = arr.buffers()[0]
    n = len(arr)
    if buf is None or arr.offset % 8:
        return np.packbits(
            arr.is_valid().to_numpy(zero_copy_only=False), bitorder="little"
        ).tobytes()
    start = arr.offset // 8
    bits = bytearray(memoryview(buf)[start : start + (n + 7) // 8])
    if n % 8:
        bits[-1] &= (1 << (n % 8)) - 1
    return bytes(bits)


def _column_bytes(arr: pa.Array) -> list[bytes | memoryview]:
    """Canonical bytes of one column: the same values give the same bytes whatever
    the chunking, slicing or the undefined content of null slots."""
    n, t = len(arr), arr.type
    if arr.null_count == n:
        return [b"all-null"]
    out: list[bytes | memoryview] = []
    if arr.null_count:
        out.append(_validity(arr))
    if pa.types.is_string(t) or pa.types.is_binary(t):
        if arr.null_count:
            arr = arr.fill_null("" if pa.types.is_string(t) else b"")
        offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
        start, end = int(offsets[0]), int(offsets[-1])
        out.append((offsets - start).tobytes() if start else memoryview(offsets))
        data = arr.buffers()[2]
        out.append(memoryview(data)[start:end] if data is not None else b"")
    elif pa.types.is_boolean(t):
        out.append(_validity(arr.fill_null(False)) if arr.null_count else _validity_values(arr))
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        if arr.null_count:
            arr = arr.fill_null(pa.scalar(0, t))
        out.append(memoryview(np.ascontiguousarray(arr.to_numpy(zero_copy_only=False))))
    elif pa.types.is_list(t):  # e.g. a part's raw timings
        offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
        start, end = int(offsets[0]), int(offsets[-1])
        out.append((offsets - start).tobytes())
        out += _column_bytes(arr.values.slice(start, end - start))
    else:  # other nested or exotic types: rare and small, their JSON is canonical enough
        out.append(json.dumps(arr.to_pylist(), default=str).encode())
    return out


def _type_name(t: pa.DataType) -> str:
    # Parquet renames a list's item field ("item" -> "element"): name the types only.
    return f"list<{_type_name(t.value_type)}>" if pa.types.is_list(t) else str(t)


def _validity_values(arr: pa.BooleanArray) -> bytes:
    return np.packbits(arr.to_numpy(zero_copy_only=False), bitorder="little").tobytes()


def table_digest(table: pa.Table, exclude: Sequence[str] = ()) -> str:
    """Hex SHA-256 of a table's column names, types, nulls and values.

    Columns in ``exclude`` contribute their name and type only (datasets exclude
    ``arch_str``, which their row checks compare with ``arch_id`` instead).
    """
    h = hashlib.sha256(f"rows={table.num_rows}".encode())
    for name, col in zip(table.column_names, table.columns, strict=True):
        h.update(f"\0{name}\0{_type_name(col.type)}\0".encode())
        if name in exclude:
            continue
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        for part in _column_bytes(arr):
            h.update(part)
    return h.hexdigest()


def integrity_entry(table: pa.Table, exclude: Sequence[str] = ()) -> bytes:
    """The ``latbench.integrity`` value for ``table`` and its current metadata."""
    meta = dict(table.schema.metadata or {})
    meta.pop(INTEGRITY_KEY, None)
    return json.dumps(
        {
            "version": INTEGRITY_VERSION,
            "page_checksums": "crc32",
            "table_sha256": table_digest(table, exclude),
            "table_sha256_excludes": sorted(exclude),
            "metadata_sha256": {
                k.decode(): hashlib.sha256(v).hexdigest() for k, v in sorted(meta.items())
            },
        },
        sort_keys=True,
    ).encode()


def write_verified(
    table: pa.Table, path: str | os.PathLike[str], exclude: Sequence[str] = (), **kwargs: Any
) -> None:
    """Write ``table`` to ``path`` with page checksums and the integrity entry.

    ``path`` is written directly (callers wrap it in :func:`latbench.dataset.atomic_path`);
    ``kwargs`` go to :func:`pyarrow.parquet.write_table`.
    """
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != INTEGRITY_KEY}
    table = table.replace_schema_metadata(meta)
    table = table.replace_schema_metadata({**meta, INTEGRITY_KEY: integrity_entry(table, exclude)})
    pq.write_table(table, path, write_page_checksum=True, **kwargs)


def open_verified(path: str | os.PathLike[str]) -> pq.ParquetFile:
    """A :class:`pyarrow.parquet.ParquetFile` that checks page checksums as it reads."""
    return pq.ParquetFile(path, page_checksum_verification=True)


def verify_table(
    path: str | os.PathLike[str], table: pa.Table, *, columns_subset: bool = False
) -> bool:
    """Check ``table`` (as read from ``path``) against its integrity entry.

    Returns ``False`` (and warns) for a file without one; raises :class:`IntegrityError`
    for a mismatch. With ``columns_subset`` only the metadata is checked.
    """
    meta = dict(table.schema.metadata or {})
    raw = meta.pop(INTEGRITY_KEY, None)
    if raw is None:
        warn_unverified(path, stacklevel=3)
        return False
    try:
        entry = json.loads(raw)
        stored_table = entry["table_sha256"]
        stored_meta = entry["metadata_sha256"]
        exclude = entry.get("table_sha256_excludes", [])
        if (
            not isinstance(stored_meta, dict)
            or not isinstance(stored_table, str)
            or not isinstance(exclude, list)
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path}: its integrity record is damaged (corrupted file)") from None
    got_meta = {k.decode(errors="replace"): hashlib.sha256(v).hexdigest() for k, v in meta.items()}
    if got_meta != stored_meta:
        bad = sorted(set(got_meta.items()) ^ set(stored_meta.items()))
        key = bad[0][0] if bad else "?"
        raise IntegrityError(
            f"{path}: file metadata {key!r} differs from its recorded SHA-256 (corrupted or edited)"
        )
    if not columns_subset and table_digest(table, exclude) != stored_table:
        raise IntegrityError(
            f"{path}: table content differs from its recorded SHA-256 (corrupted or edited)"
        )
    return True


def read_verified(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pa.Table:
    """Read a Parquet file checking page checksums and, when present, its digests.

    Raises :class:`IntegrityError` (or the reader's ``OSError``/``ArrowInvalid`` for a
    page whose checksum fails) and warns :class:`UnverifiedFileWarning` for an old file.
    """
    table = open_verified(path).read(columns=list(columns) if columns is not None else None)
    verify_table(path, table, columns_subset=columns is not None)
    return table


def is_verified(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` carries an integrity entry (metadata only; nothing is checked)."""
    return INTEGRITY_KEY in (pq.read_schema(Path(path)).metadata or {})


@dataclass
class _Checked:
    """What :func:`_read_checked` found: the kind, a description and what was read."""

    kind: str  # "raw", or latbench_kind's "dataset", "prediction", "layers", ...
    what: str  # e.g. "dataset, 15625 rows, values valid"
    table: pa.Table | None = None  # Parquet as stored: what rewrite writes back
    raw: Any = None  # raw timings as read_raw returns them
    unverified: bool = False  # written without checksums


def _read_checked(path: Path, command: str) -> _Checked:
    """Read the LatBench file ``path`` fully as its reader would, every check included.

    ``command`` is ``"check"`` (also compares a dataset and its raw file) or
    ``"rewrite"`` (also returns the Parquet table as stored). Raises the reader's error
    (:class:`ValueError` subclasses, ``OSError``), :class:`NotLatBenchFile` for a
    Parquet file LatBench did not write.
    """
    from latbench.manifest import verify_file

    _regular_only(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    verify_file(path)  # never launder a damaged bundled file into a "verified" one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnverifiedFileWarning)
        if path.name.endswith(".raw.h5"):
            from latbench.raw import read_raw

            raw = read_raw(path)
            n = len(raw["arch_id"])
            found = _Checked("raw", f"raw timings, {n} rows, values valid", raw=raw)
            if command == "check":
                _check_beside_dataset(path, raw)
        elif not path.name.endswith(".parquet"):
            raise ValueError(f"{path}: not a LatBench file (.parquet or .raw.h5)")
        else:
            found = _read_parquet(path, command)
    for w in caught:  # only the missing checksums are this function's to report
        if issubclass(w.category, UnverifiedFileWarning):
            found.unverified = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return found


def _read_parquet(path: Path, command: str) -> _Checked:
    from latbench.dataset import DatasetError, check_bounds, read_dataset

    unreadable = IntegrityError if command == "check" else DatasetError
    check_bounds(path)  # a regular file whose footer is bounded, before parsing it
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(f"{path}: not a readable Parquet file: {exc}") from None
    # a Parquet file from elsewhere is refused before it is read, let alone "verified"
    kind = latbench_kind(path, schema, command)
    table = None
    if command == "rewrite":
        try:
            table = open_verified(path).read()
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"{path}: not a readable Parquet file: {exc}") from None
        verify_table(path, table)
    if kind == "dataset":
        df = read_dataset(path)
        if command == "check":
            _check_beside_raw(path, df)
        what = f"dataset, {len(df)} rows, values valid"
    elif kind == "prediction":
        from latbench.predicted import read_predicted

        what = f"prediction, {len(read_predicted(path))} rows, values valid"
    else:
        if table is None:
            try:
                table = read_verified(path)
            except (pa.ArrowException, OSError) as exc:
                raise IntegrityError(f"{path}: cannot read rows: {exc}") from None
        what = f"table, {table.num_rows} rows"
    return _Checked(kind, what, table)


def rewrite_file(path: str | os.PathLike[str]) -> str:
    """Rewrite a LatBench file in place with checksums, its content unchanged.

    The same as :func:`rewrite_files` for one file; returns its one-line description.
    """
    return rewrite_files([path])[0]


def rewrite_files(
    paths: Sequence[str | os.PathLike[str]], report: Callable[[str], None] | None = None
) -> list[str]:
    """Rewrite LatBench files in place with checksums, their content unchanged.

    Datasets (``*.parquet``) and tables (``*.layers.parquet``, parts) get page
    checksums and the integrity entry; raw timings (``*.raw.h5``) Fletcher-32 and a
    content digest. Every file is fully read and checked first (a dataset's or a
    prediction's row checks too): one refusal raises and nothing is rewritten. A
    Parquet file LatBench did not write is refused unread (:class:`NotLatBenchFile`,
    see :func:`latbench_kind`). Then, holding the write lock of every dataset the files
    belong to (:func:`latbench.lock.hold_files`; :class:`latbench.lock.KeyLocked` when
    another process holds one), all are read and checked again, then each is replaced
    atomically, ``report`` called with its line as soon as it is. A failure while
    writing (a full disk) leaves the files before it rewritten, their content unchanged,
    and those after it as they were. Returns one line per file saying what was done.
    """
    from latbench.lock import hold_files

    files = [Path(p) for p in paths]
    for path in files:  # before any lock is taken, so a refused file leaves no lock file
        _read_checked(path, "rewrite")
    with hold_files(files, "rewritten"):
        # read again under the locks: another writer may have replaced a file since
        found = [_read_checked(path, "rewrite") for path in files]
        done = []
        for path, f in zip(files, found, strict=True):
            done.append(_rewrite_checked(path, f))
            if report is not None:
                report(done[-1])
        return done


def _rewrite_checked(path: Path, found: _Checked) -> str:
    """Replace ``path``, read and checked as ``found``, with a checksummed copy; one that
    has its checksums already is left as it is (rewriting it would change nothing)."""
    from latbench.dataset import DIGEST_EXCLUDES, atomic_path

    if not found.unverified:
        sums = "Fletcher-32 and SHA-256" if found.kind == "raw" else "page checksums and SHA-256"
        return f"{path}: unchanged, it has its {sums} already ({found.what})"

    if found.kind == "raw":
        from latbench.raw import read_raw, write_raw

        raw = found.raw
        h5 = _h5_attrs(path)
        write_raw(path, raw["graph_key"], raw["arch_id"], raw["timings_ns"], {}, attrs=h5)
        _record_in_manifest(path)
        after = read_raw(path)
        same = all(np.array_equal(raw[k], after[k]) for k in ("graph_key", "arch_id", "timings_ns"))
        if not same:  # pragma: no cover - write_raw pads only rows shorter than the widest
            raise IntegrityError(f"{path}: rewrite changed the timings; restore it from a copy")
        return f"rewrote {path}: {len(raw['arch_id'])} raw rows, Fletcher-32 and SHA-256 added"
    table = found.table
    assert table is not None  # _read_parquet returns it for "rewrite"
    exclude = DIGEST_EXCLUDES if found.kind == "dataset" else ()
    with atomic_path(path) as tmp:
        write_verified(table, tmp, exclude=exclude, compression="zstd")
        # checked before the rename, so a failure leaves the file as it was; digests,
        # not Table.equals, which calls a NaN unequal to itself
        if table_digest(read_verified(tmp)) != table_digest(table):
            raise IntegrityError(f"{path}: rewriting would change the table; left as it was")
    _record_in_manifest(path)
    what = found.kind if found.kind in ("dataset", "prediction") else "table"
    return f"rewrote {path}: {what} of {table.num_rows} rows, page checksums and SHA-256 added"


def _record_in_manifest(path: Path) -> None:
    """:func:`latbench.manifest.update_entry` for a file just replaced: its failure (a full
    disk) says the file was rewritten, which the caller's report has not said yet."""
    from latbench.manifest import MANIFEST_NAME, update_entry

    try:
        update_entry(path)
    except Exception as exc:
        raise IntegrityError(
            f"{path}: rewritten (content unchanged), but its entry in"
            f" {path.parent / MANIFEST_NAME} could not be updated ({exc}), so it will fail"
            " its checksum there; write that folder's manifest again"
            " (latbench.manifest.write_manifest)"
        ) from None


def _h5_attrs(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        return dict(f.attrs)


def check_file(path: str | os.PathLike[str]) -> str:
    """Verify one LatBench file as its reader would; returns a one-line verdict.

    Raises the reader's error (:class:`ValueError` subclasses, ``OSError``) for a file
    that fails, :class:`NotLatBenchFile` for a Parquet file LatBench did not write; a
    file without checksums passes with a note saying how to add them.
    """
    path = Path(path)
    found = _read_checked(path, "check")
    if found.unverified:
        return f"{path}: readable {found.what}, but NO checksums: latbench rewrite {path}"
    return f"{path}: ok ({found.what}, checksums verified)"


def _regular_only(path: Path) -> None:
    """Refuse a FIFO, socket or device node by name (opening a FIFO blocks forever)."""
    from latbench.files import NotRegularFile, require_regular
    from latbench.terminal import safe

    try:
        require_regular(path)
    except NotRegularFile as exc:
        raise ValueError(f"{safe(path)}: {exc}") from None
    except OSError:
        return  # absent: the caller says "no such file"


def _check_beside_raw(path: Path, df: Any) -> None:
    """A dataset and the raw file of the same key must agree (a kill between the writes)."""
    from latbench.raw_checks import sibling

    raw_path = sibling(path, ".raw.h5")
    try:
        import h5py  # noqa: F401 - a core install cannot read raw files; nothing to compare
    except ImportError:
        return
    if raw_path.is_file():
        _raw_vs_dataset(raw_path, path, df=df)  # the dataset just read: not read twice


def _check_beside_dataset(path: Path, raw: Any) -> None:
    from latbench.raw_checks import sibling

    ds = sibling(path, ".parquet")
    if ds.is_file():
        _raw_vs_dataset(path, ds, raw)


def _raw_vs_dataset(raw_path: Path, ds_path: Path, raw: Any = None, df: Any = None) -> None:
    from latbench.dataset import read_dataset
    from latbench.raw import read_raw
    from latbench.raw_checks import raw_dataset_problems
    from latbench.terminal import safe

    raw = read_raw(raw_path) if raw is None else raw
    df = read_dataset(ds_path) if df is None else df
    problems = raw_dataset_problems(raw, df)
    if problems:
        raise IntegrityError(
            f"{safe(raw_path)} and {safe(ds_path.name)} disagree: " + "; ".join(problems)
        )


def read_table_file(path: str | os.PathLike[str]) -> Any:
    """A per-layer (or other LatBench) table as a DataFrame, verified like a dataset:
    the bundled manifest, page checksums and digests. Raises ``DatasetError``."""
    from latbench.dataset import DatasetError
    from latbench.manifest import verify_file

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    verify_file(path)
    from latbench.dataset import check_bounds

    check_bounds(path)  # footer size bounded before it is parsed
    try:
        return read_verified(path).to_pandas()
    except IntegrityError as exc:
        raise DatasetError(str(exc)) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet table (corrupt?): {exc}") from None
