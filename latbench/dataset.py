"""The LatBench dataset file: one Parquet file per device configuration (docs/design.md §6).

Columns and types are fixed by :data:`SCHEMA`; file-level metadata is one JSON object
stored under the Parquet key-value key ``latbench``. Reads validate the schema and
raise :class:`DatasetError` naming the file and the problem; writes are atomic (a
temporary file in the target directory, fsync'd, then renamed over the target).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latbench.files import NotRegularFile, require_regular
from latbench.integrity import (
    INTEGRITY_KEY,
    IntegrityError,
    verify_table,
    write_verified,
)
from latbench.keys import file_kind
from latbench.safepickle import short_repr
from latbench.terminal import safe

__all__ = [
    "COLUMNS",
    "METADATA_KEY",
    "OPTIONAL_FIELDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STALE_TMP_AGE_S",
    "STATUSES",
    "DatasetError",
    "StaleTempWarning",
    "arch_table",
    "atomic_path",
    "atomic_temp_re",
    "check_bounds",
    "open_parquet",
    "parse_metadata",
    "read_dataset",
    "read_metadata",
    "remove_stale_temps",
    "warn_removed_temps",
    "skeleton_frame",
    "to_table",
    "write_dataset",
]

SCHEMA_VERSION = 1
METADATA_KEY = b"latbench"
STATUSES = ("ok", "invalid", "failed", "missing")
LATENCY_RANGE_MS = (1e-4, 1e7)
"""Latencies a dataset may hold, in ms: 100 ns to ~2.8 hours. Anything outside is a
unit error or corruption (a 5e-324 s or 1e300 s release entry), never a measurement."""
MAX_METADATA_BYTES = 64 * 1024
"""Largest metadata JSON a dataset may carry (real ones are ~2 KB)."""
MAX_METADATA_DEPTH = 32
"""Deepest nesting of ``[``/``{`` in that JSON (real ones: 3)."""
MAX_FOOTER_BYTES = 1 << 20
"""Largest Parquet footer read (schema and metadata; real ones are ~10 KB)."""
MAX_TABLE_BYTES = 64 << 20
"""Largest decoded size a dataset's column chunks may declare (real ones: ~3 MB)."""
STALE_TMP_AGE_S = 600
"""Seconds a temporary file of :func:`atomic_path` must have gone unmodified before the
next holder of its dataset's lock removes it as left by a killed write
(:func:`remove_stale_temps`)."""
DIGEST_EXCLUDES = ("arch_str",)
"""Columns the table digest leaves out: ``arch_str`` is checked equal to ``arch_id``'s
architecture on every read instead, which is cheaper and stronger."""

SCHEMA = pa.schema(
    [
        pa.field("arch_id", pa.int32(), nullable=False),
        pa.field("arch_str", pa.string(), nullable=False),
        pa.field("nb201_index", pa.int32(), nullable=True),
        pa.field("graph_key", pa.string(), nullable=False),
        pa.field("valid", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
        pa.field("latency_ms", pa.float64(), nullable=True),
        pa.field("latency_std_ms", pa.float64(), nullable=True),
        pa.field("runs", pa.int32(), nullable=False),
        pa.field("timed_arch_id", pa.int32(), nullable=True),
        pa.field("flops", pa.int64(), nullable=False),
        pa.field("params", pa.int64(), nullable=False),
    ]
)
"""Arrow schema of a dataset file."""

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)

OPTIONAL_FIELDS: tuple[pa.Field, ...] = (
    pa.field("energy_mj", pa.float64(), nullable=True),
    pa.field("device_id", pa.string(), nullable=True),
    pa.field("fleet_run", pa.int32(), nullable=True),
)
"""Columns a dataset may carry beyond :data:`COLUMNS` (energy per inference in mJ, e.g.
HW-NAS-Bench's; ``device_id``, the fleet device that timed the row; ``fleet_run``, the
run it was timed in, whose anchor ratio the metadata's ``fleet.runs`` holds); written and read
only where present."""

_PANDAS_TYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
_NULLABLE_INTS = tuple(f.name for f in SCHEMA if f.nullable and pa.types.is_integer(f.type))


class DatasetError(ValueError):
    """A dataset file or frame that does not follow the LatBench format."""


class StaleTempWarning(UserWarning):
    """Temporary files that a killed write left beside a dataset file were removed."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    Only a regular file (or nothing) is ever replaced: a FIFO, socket, device node or
    folder at ``path`` raises :class:`DatasetError` before anything is written. An
    ``OSError`` while writing (a full disk) is re-raised as one line naming ``path``.

    A write killed outright (``kill -9``, power loss) leaves its hidden temporary
    ``.<name>.<random>.tmp``; the next process to take its dataset's write lock removes
    it (:func:`remove_stale_temps`).
    """
    path = Path(path)
    _make_parent(path.parent)
    _refuse_special(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; datasets are shared
            _refuse_special(path)  # it may have appeared while we wrote
            os.replace(tmp_path, path)
        except Exception as exc:
            # pyarrow and h5py report a full disk without the file's name: add it
            if _is_disk_full(exc):
                raise _write_error(path, exc) from None
            raise
        with contextlib.suppress(OSError):  # directory fsync is not available everywhere
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_temp_re(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives its temporaries of files named ``name`` (a
    regular expression): ``.<name>.`` and mkstemp's 8 random characters, then ``.tmp``."""
    return re.compile(rf"\.(?:{name})\.[a-z0-9_]{{8}}\.tmp")


def remove_stale_temps(
    folder: str | os.PathLike[str], stem: str, quiet: Sequence[str] = ()
) -> None:
    """Remove the temporaries that killed writes of dataset ``stem``'s files
    (``<stem><suffix>``, :data:`latbench.lock.DATASET_SUFFIXES`) left in ``folder``.

    Called by :func:`latbench.lock.hold` once it holds ``stem``'s lock. Only regular
    files unmodified for :data:`STALE_TMP_AGE_S` go, with one :class:`StaleTempWarning`
    per file they were to replace. Those of the files named in ``quiet`` (the lock's own
    note, which only the holder writes) go in the same scan, at any age and silently.
    """
    from latbench.lock import DATASET_SUFFIXES

    folder = Path(folder)
    targets = [f"{stem}{suffix}" for suffix in DATASET_SUFFIXES]
    pattern = atomic_temp_re("|".join(re.escape(t) for t in targets))
    quiet_pattern = atomic_temp_re("|".join(re.escape(q) for q in quiet)) if quiet else None
    # Every command of this version that writes these files holds the lock while its
    # temporary exists, so under the lock none of theirs is alive. The age limit stays
    # for writers that take no lock: older LatBench versions (their rewrite, export and
    # merge took none), an export to a folder no locking writer had used, and library
    # calls of write_dataset or atomic_path outside any command.
    cutoff = time.time() - STALE_TMP_AGE_S
    removed: dict[str, list[tuple[str, int]]] = {}
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            hushed = quiet_pattern is not None and quiet_pattern.fullmatch(entry.name)
            if not hushed and not pattern.fullmatch(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if hushed:  # a co-user's stays: in a shared folder it is not ours to remove
                    if stat.S_ISREG(st.st_mode) and st.st_uid == getattr(os, "geteuid", int)():
                        os.unlink(entry.path)
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    os.unlink(entry.path)
                    target = entry.name[1:].rsplit(".", 2)[0]
                    removed.setdefault(target, []).append((entry.name, st.st_size))
            except OSError:  # gone meanwhile, or not ours to remove: left as it is
                continue
    for target in (t for t in targets if t in removed):
        warn_removed_temps(
            removed[target], f"an interrupted write of {safe(folder / target)}", stacklevel=5
        )


def warn_removed_temps(files: list[tuple[str, int]], by: str, stacklevel: int = 2) -> None:
    """One :class:`StaleTempWarning` for removed temporaries ``(name, size)`` that ``by``
    (e.g. ``"an interrupted write of PATH"``) left."""
    size = sum(n for _, n in files) / 1e6
    names = ", ".join(safe(name, 80) for name, _ in files[:3])
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    warnings.warn(
        f"removed {len(files)} temporary file(s) ({size:.1f} MB) that {by} left: {names}{more}",
        StaleTempWarning,
        stacklevel=stacklevel,
    )


def _refuse_special(path: Path) -> None:
    """Raise unless ``path`` is absent or a regular file (a symlink to one counts)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DatasetError(f"{safe(path)}: a dangling symbolic link; not written") from None
        return
    except OSError as exc:
        raise DatasetError(f"{safe(path)}: cannot inspect it: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(
            f"{safe(path)}: is a {file_kind(st.st_mode)}, not a regular file; not replaced"
        )


def _make_parent(parent: Path) -> None:
    for p in (parent, *parent.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise DatasetError(f"{safe(p)}: is not a folder, so nothing can be written in it")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{safe(parent)}: cannot create the folder: {exc.strerror}") from None


def _is_disk_full(exc: BaseException) -> bool:
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(exc)
    return "No space left" in text or "errno 28" in text.lower() or "Disk quota" in text


def _write_error(path: Path, exc: BaseException, detail: str | None = None) -> OSError:
    """One line naming ``path`` for an OS error while writing it (disk full: says so)."""
    if getattr(exc, "errno", None) == errno.EFBIG:
        what = "File too large (the file size limit was reached)"
    elif _is_disk_full(exc):
        what = "No space left on device (disk full)"
    else:
        what = safe(" ".join((detail or getattr(exc, "strerror", None) or str(exc)).split()))
    err = OSError(f"{safe(path)}: not written: {what}; the previous file, if any, is unchanged")
    err.errno = getattr(exc, "errno", None)
    return err


def _is_number_column(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col.dtype):
        return False
    if col.dtype == object:  # Python objects: numbers (or nulls) only, no str/bool
        return all(
            isinstance(x, int | float | np.number) and not isinstance(x, bool | np.bool_)
            for x in col.dropna()
        )
    return pd.api.types.is_numeric_dtype(col.dtype) or bool(col.isna().all())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_table(df: pd.DataFrame, metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Validate ``df`` against :data:`SCHEMA` and convert it, attaching ``metadata``."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"frame is missing column(s): {', '.join(missing)}")
    bad = sorted(set(df["status"].dropna()) - set(STATUSES))
    if bad or df["status"].isna().any():
        raise DatasetError(f"unknown status value(s) {bad or [None]}; allowed: {STATUSES}")
    if df["arch_id"].duplicated().any():
        dup = df.loc[df["arch_id"].duplicated(), "arch_id"].iloc[0]
        raise DatasetError(f"arch_id {dup} appears more than once")
    wrong = [
        f"column {f.name!r} has dtype {df[f.name].dtype}, expected {f.type}"
        for f in SCHEMA
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
        and not _is_number_column(df[f.name])
    ]
    if wrong:  # pyarrow would silently parse strings such as "1.5" into numbers
        raise DatasetError("frame does not match the LatBench schema: " + "; ".join(wrong))
    extra = [f for f in OPTIONAL_FIELDS if f.name in df.columns]
    cols = df[[*COLUMNS, *(f.name for f in extra)]]
    cols.attrs = {}  # the table's metadata is ours; don't serialize the frame's attrs
    try:
        schema = pa.schema([*SCHEMA, *extra]) if extra else SCHEMA
        table = pa.Table.from_pandas(cols, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise DatasetError(f"frame does not match the LatBench schema: {exc}") from exc
    # what a reader would refuse is never written
    problems = row_problems(table, allow_empty=_is_shard(metadata))
    if problems:
        raise DatasetError("; ".join(problems))
    meta = {"schema_version": SCHEMA_VERSION, **dict(metadata or {})}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, default=str).encode()})


def write_dataset(
    df: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``df`` atomically as a LatBench Parquet file; returns the path."""
    path = Path(path)
    try:
        if "arch_id" in df.columns:
            df = df.sort_values("arch_id", kind="stable")
        table = to_table(df, metadata)
    except DatasetError as exc:
        raise DatasetError(f"{path}: not written: {exc}") from exc
    with atomic_path(path) as tmp:
        write_verified(table, tmp, exclude=DIGEST_EXCLUDES, compression="zstd")
    return path


def open_parquet(path: str | os.PathLike[str], max_rows: int) -> pq.ParquetFile:
    """``path`` opened for reading with page checksum verification, once
    :func:`check_bounds` (``max_rows``) has passed; its parsed footer is reused.

    Raises :class:`DatasetError`: check_bounds' own refusals (no ``__cause__``), or
    ``not a readable Parquet file`` when pyarrow cannot open the file (the pyarrow or
    OS error chained as ``__cause__``).
    """
    path = Path(path)
    md = check_bounds(path, max_rows)
    try:  # the footer check_bounds parsed is reused: no second parse
        return pq.ParquetFile(path, metadata=md, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{safe(path)}: not a readable Parquet file (corrupt or truncated?): {_short(exc)}"
        ) from exc


def check_bounds(
    path: str | os.PathLike[str], max_rows: int | None = None
) -> pq.FileMetaData | None:
    """Refuse, before anything is decoded, a Parquet file too big to be a LatBench file.

    ``path`` must be a regular file (a FIFO would block the reader forever) whose
    footer is at most :data:`MAX_FOOTER_BYTES`; with ``max_rows`` (datasets: 15,625)
    its declared rows must not exceed it, its column chunks' compressed sizes must fit
    in the file and their decoded sizes in :data:`MAX_TABLE_BYTES`. Returns the parsed
    footer when it was read (with ``max_rows``).
    """
    path = Path(path)
    try:
        st = require_regular(path)
    except FileNotFoundError:
        raise DatasetError(f"{safe(path)}: no such file") from None
    except NotRegularFile as exc:
        raise DatasetError(f"{safe(path)}: {exc}") from None
    except OSError as exc:
        raise DatasetError(f"{safe(path)}: cannot open it: {exc.strerror}") from None
    size = st.st_size
    try:
        with open(path, "rb") as fh:
            if size < 12:
                raise DatasetError(f"{safe(path)}: not a readable Parquet file (only {size} bytes)")
            fh.seek(size - 8)
            tail = fh.read(8)
    except OSError as exc:
        raise DatasetError(f"{safe(path)}: cannot read it: {exc.strerror}") from None
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1":
        raise DatasetError(
            f"{safe(path)}: not a readable Parquet file (no PAR1 trailer: truncated?)"
        )
    if footer > min(MAX_FOOTER_BYTES, size - 12):
        raise DatasetError(
            f"{safe(path)}: its Parquet footer claims {footer} bytes (file {size} bytes,"
            f" at most {MAX_FOOTER_BYTES} read)"
        )
    if max_rows is None:
        return None
    try:
        md = pq.read_metadata(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(
            f"{safe(path)}: not a readable Parquet file (corrupt or truncated?): {_short(exc)}"
        ) from None
    if md.num_rows > max_rows:
        raise DatasetError(
            f"{safe(path)}: declares {md.num_rows} rows, more than the {max_rows} a"
            " dataset can hold"
        )
    if md.num_columns > 64 or md.num_row_groups > 1024:
        raise DatasetError(
            f"{safe(path)}: declares {md.num_columns} columns in {md.num_row_groups} row"
            " groups (at most 64 and 1024)"
        )
    packed = unpacked = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            packed += col.total_compressed_size
            unpacked += col.total_uncompressed_size
    if packed > size or unpacked > MAX_TABLE_BYTES:
        raise DatasetError(
            f"{safe(path)}: its columns declare {packed} bytes stored and {unpacked}"
            f" decoded (file {size} bytes, at most {MAX_TABLE_BYTES} decoded)"
        )
    return md


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, strings skipped (vectorized)."""
    body = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)
    codes = np.frombuffer(body, dtype=np.uint8)
    steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
    return int(np.cumsum(steps).max(initial=0))


def parse_metadata(path: str | os.PathLike[str], raw: bytes) -> dict[str, Any]:
    """The metadata JSON ``raw`` of ``path`` as a dict, size- and depth-capped first.

    Raises :class:`DatasetError` for more than :data:`MAX_METADATA_BYTES`, nesting
    deeper than :data:`MAX_METADATA_DEPTH`, invalid JSON, a non-object or another
    schema version.
    """
    shown = safe(Path(path))
    if len(raw) > MAX_METADATA_BYTES:
        raise DatasetError(
            f"{shown}: LatBench metadata is {len(raw)} bytes (at most {MAX_METADATA_BYTES})"
        )
    if _json_depth(raw) > MAX_METADATA_DEPTH:
        raise DatasetError(
            f"{shown}: LatBench metadata nests deeper than {MAX_METADATA_DEPTH} levels"
        )
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(f"{shown}: LatBench metadata is not valid JSON: {_short(exc)}") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{shown}: LatBench metadata must be a JSON object")
    if meta.get("kind") == "latbench-predicted":
        # a prediction renamed to <key>.parquet must not pass for measurements
        raise DatasetError(
            f"{shown}: a few-shot prediction, not a measured dataset (predictions are"
            " <key>.predicted.parquet, read with latbench.load_predicted)"
        )
    version = meta.get("schema_version")
    if version is None and Path(path).name.endswith(".layers.parquet"):
        raise DatasetError(
            f"{shown}: a per-layer table, not a dataset (read it with"
            " latbench.predictors.layerwise.read_layers)"
        )
    if version != SCHEMA_VERSION:
        raise DatasetError(
            f"{shown}: schema version {short_repr(version)}, this LatBench reads {SCHEMA_VERSION}"
        )
    return meta


def _metadata(path: Path, schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError(f"{safe(path)}: no LatBench metadata (key {METADATA_KEY.decode()!r})")
    return parse_metadata(path, raw)


def _check_schema(path: Path, schema: pa.Schema) -> None:
    problems = []
    for field in SCHEMA:
        if field.name not in schema.names:
            problems.append(f"missing column {field.name!r}")
        elif not schema.field(field.name).type.equals(field.type):
            got = schema.field(field.name).type
            problems.append(f"column {field.name!r} has type {got}, expected {field.type}")
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems))


@cache
def _space_facts() -> tuple[pa.Array, np.ndarray]:
    """Every ``arch_id``'s architecture string and validity, built vectorized (~1 ms)."""
    import pyarrow.compute as pc

    from latbench.space import N_ARCHS, OPS

    ids = np.arange(N_ARCHS)
    ops = [(ids // 5 ** (5 - k)) % 5 for k in range(6)]
    names = pa.array(OPS)
    pieces = [pc.take(names, pa.array(o)) for o in ops]
    src = (0, 0, 1, 0, 1, 2)
    parts: list[Any] = []
    for k, (piece, s) in enumerate(zip(pieces, src, strict=True)):
        sep = {0: "|", 1: "|+|", 3: "|+|"}.get(k, "|")
        parts += [sep, piece, f"~{s}"]
    strs = pc.binary_join_element_wise(*parts, "|", "")
    r1 = ops[0] != 0
    r2 = (ops[1] != 0) | (r1 & (ops[2] != 0))
    valid = (ops[3] != 0) | (r1 & (ops[4] != 0)) | (r2 & (ops[5] != 0))
    return strs, valid


def _arch_str_problems(table: pa.Table, ids: np.ndarray) -> list[str]:
    import pyarrow.compute as pc

    from latbench.space import N_ARCHS

    if len(ids) == 0:
        return []
    strs = _space_facts()[0]
    whole = len(ids) == N_ARCHS and bool((ids == np.arange(N_ARCHS)).all())
    expected = strs if whole else pc.take(strs, pa.array(ids))
    same = pc.equal(table.column("arch_str"), expected)
    if pc.all(same).as_py():
        return []
    i = pc.index(same, False).as_py()
    return [
        f"arch_str of arch_id {ids[i]} is {short_repr(table.column('arch_str')[i].as_py())},"
        f" not that id's architecture {expected[i].as_py()!r}"
    ]


def _is_shard(metadata: Mapping[str, Any] | None) -> bool:
    """A shard ``i/n`` of a sharded run (n > 1) may hold no rows; a dataset may not."""
    shard = (metadata or {}).get("shard")
    return isinstance(shard, str) and bool(re.fullmatch(r"\d+/\d+", shard)) and shard != "1/1"


def row_problems(table: pa.Table, allow_empty: bool = False) -> list[str]:
    """What is wrong with a dataset table's rows (empty list: nothing).

    Beyond nulls, statuses and duplicate ids: at least one row (unless
    ``allow_empty``: a shard of a sharded run may get none), ``arch_id`` in 0..15624,
    ``arch_str`` and ``valid`` equal to that id's architecture, ``status="invalid"``
    exactly for invalid architectures, a latency on every ``ok`` row and none on
    ``failed`` or ``missing`` ones (``invalid`` rows may keep a source's figure),
    latencies within :data:`LATENCY_RANGE_MS`, finite non-negative spreads,
    non-negative runs, FLOPs, params and optional numbers, ``timed_arch_id`` in range
    and building the same pruned network as ``arch_id``.
    """
    import pyarrow.compute as pc

    from latbench.space import N_ARCHS

    problems = []
    for field in SCHEMA:
        if not field.nullable and table.column(field.name).null_count:
            n = table.column(field.name).null_count
            problems.append(f"column {field.name!r} has {n} null value(s)")
    if problems:
        return problems
    status = table.column("status")
    # one kernel for the three status tests: the index in STATUSES, -1 for unknown
    code = pc.index_in(status, pa.array(STATUSES)).to_numpy(zero_copy_only=False)
    code = np.nan_to_num(code, nan=-1).astype(np.int8) if code.dtype.kind == "f" else code
    if len(status) and (code < 0).any():
        known = pa.array(code >= 0)
        bad = sorted(pc.unique(pc.filter(status, pc.invert(known))).to_pylist())
        problems.append(f"unknown status value(s) {short_repr(bad)}; allowed: {STATUSES}")
    ids = table.column("arch_id").to_numpy()
    if len(ids) == 0:
        return problems if allow_empty else [*problems, "the dataset holds no rows"]
    if ids.min() < 0 or ids.max() >= N_ARCHS:
        out = ids[(ids < 0) | (ids >= N_ARCHS)][0]
        return [*problems, f"arch_id {out} is outside 0..{N_ARCHS - 1}"]
    counts = np.bincount(ids, minlength=N_ARCHS)  # far cheaper than np.unique here
    if counts.max() > 1:
        problems.append(f"arch_id {int(np.argmax(counts > 1))} appears more than once")
    problems += _arch_str_problems(table, ids)
    valid = _space_facts()[1]
    want_valid = valid[ids]
    got_valid = table.column("valid").to_numpy()
    if (got_valid != want_valid).any():
        i = int(np.flatnonzero(got_valid != want_valid)[0])
        problems.append(
            f"valid of arch_id {ids[i]} is {bool(got_valid[i])}, should be {bool(want_valid[i])}"
        )

    invalid, ok = code == STATUSES.index("invalid"), code == STATUSES.index("ok")
    wrong = invalid != ~want_valid
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        problems.append(
            f"arch_id {ids[i]} has status {status[i].as_py()!r} but is"
            f" {'' if want_valid[i] else 'in'}valid"
        )
    lat_col = table.column("latency_ms")
    has_lat = ~lat_col.is_null().to_numpy(zero_copy_only=False)
    # "invalid" rows may keep a source's figure (HELP timed the unpruned networks)
    mismatch = (ok != has_lat) & ~invalid
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        what = "no latency" if ok[i] else "a latency"
        problems.append(f"arch_id {ids[i]} has status {status[i].as_py()!r} and {what}")
    lat = lat_col.to_numpy(zero_copy_only=False)[has_lat]
    lo, hi = LATENCY_RANGE_MS
    if lat.size and not ((lat >= lo) & (lat <= hi)).all():
        bad_lat = lat[~((lat >= lo) & (lat <= hi))][0]
        problems.append(f"latency {float(bad_lat):g} ms is outside the plausible {lo:g}..{hi:g} ms")
    optional = [f.name for f in OPTIONAL_FIELDS if f.name in table.column_names]
    for name in ("latency_std_ms", "runs", "flops", "params", "timed_arch_id", *optional):
        col = table.column(name)
        if (
            col.null_count == len(col)
            or not pa.types.is_floating(col.type)
            and not (pa.types.is_integer(col.type))
        ):
            continue
        x = col.drop_null().to_numpy()
        if not (x >= 0).all() or (x.dtype.kind == "f" and not np.isfinite(x).all()):
            problems.append(f"column {name!r} holds a negative or non-finite value")
        elif name == "timed_arch_id" and x.max() >= N_ARCHS:
            problems.append(f"timed_arch_id {x.max()} is outside 0..{N_ARCHS - 1}")
        elif name == "timed_arch_id":
            problems += _timed_problems(table, ids)
    return problems


def _timed_problems(table: pa.Table, ids: np.ndarray) -> list[str]:
    """A ``timed_arch_id`` must build the same pruned network as the row's ``arch_id``."""
    timed = table.column("timed_arch_id").to_numpy(zero_copy_only=False)
    has = ~np.isnan(timed) if timed.dtype.kind == "f" else np.ones(len(timed), bool)
    other = has & (np.where(has, timed, -1) != ids)
    if not other.any():  # the common case: each row timed itself, nothing to compare
        return []
    from latbench.pruned_ids import pruned_ids

    graphs = pruned_ids()
    t = timed[other].astype(np.int64)
    wrong = graphs[t] != graphs[ids[other]]
    if not wrong.any():
        return []
    i = int(np.flatnonzero(wrong)[0])
    return [
        f"arch_id {ids[other][i]} was timed as arch_id {t[i]}, which builds a different"
        " pruned network"
    ]


def _check_rows(path: Path, table: pa.Table, allow_empty: bool = False) -> None:
    """Row-level rules that the Parquet schema cannot express (same as :func:`to_table`)."""
    problems = row_problems(table, allow_empty)
    if problems:
        raise DatasetError(f"{safe(path)}: " + "; ".join(problems))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file-level metadata of a dataset file, validated, without reading rows."""
    from latbench.space import N_ARCHS

    path = Path(path)
    pf = open_parquet(path, N_ARCHS)
    # The Parquet key-value metadata is what a table read returns and what the digest
    # covers; the Arrow schema blob in the footer holds a second, unchecked copy.
    kv = {k: v for k, v in (pf.metadata.metadata or {}).items() if k != b"ARROW:schema"}
    if INTEGRITY_KEY in kv:  # a file without one warns when its rows are read, not here
        try:
            verify_table(path, pa.table({}).replace_schema_metadata(kv), columns_subset=True)
        except IntegrityError as exc:
            raise DatasetError(str(exc)) from None
    return _metadata(path, pa.schema([], metadata=kv))


def read_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a dataset file.

    Returns one row per architecture with the :data:`COLUMNS` as the file stores them
    (``nb201_index`` may be null: :func:`latbench.load` fills it); the metadata dict is
    in ``df.attrs["metadata"]``. The file is bounded before it is decoded
    (:func:`check_bounds`) and every row check runs whatever its digest says: a
    digest anyone can recompute proves the file is undamaged, not that it is sound.
    """
    from latbench.space import N_ARCHS

    path = Path(path)
    pf = open_parquet(path, N_ARCHS)
    schema = pf.schema_arrow
    _metadata(path, schema)  # fail fast on a foreign file, before reading its rows
    _check_schema(path, schema)
    present = [f.name for f in OPTIONAL_FIELDS if f.name in schema.names]
    try:
        table = pf.read()  # every column: the digest covers them all
    except (pa.ArrowException, OSError) as exc:  # a page checksum failure lands here too
        raise DatasetError(
            f"{safe(path)}: cannot read rows (corrupt or truncated?): {_short(exc)}"
        ) from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # e.g. a damaged footer
        raise DatasetError(f"{safe(path)}: unreadable (corrupt?): {_short(exc)}") from exc
    if table.num_rows > N_ARCHS:  # the footer said otherwise: never trust one number
        raise DatasetError(f"{safe(path)}: holds {table.num_rows} rows (at most {N_ARCHS})")
    try:
        verify_table(path, table)
    except IntegrityError as exc:
        raise DatasetError(str(exc)) from None
    # The metadata users get is the copy the digest verified (the table's key-value
    # metadata), never the second copy inside the footer's Arrow schema blob.
    meta = _metadata(path, table.schema)
    table = table.select([*COLUMNS, *present])
    _check_rows(path, table, allow_empty=_is_shard(meta))
    df = table.to_pandas()
    for name in _NULLABLE_INTS:  # keep nullable ints as ints, not floats with NaN
        df[name] = table.column(name).to_pandas(types_mapper=_PANDAS_TYPES.get)
    df.attrs["metadata"] = meta
    df.attrs["path"] = str(path)
    return df


def _arch_rows(ids: Sequence[int], with_iso: bool) -> pd.DataFrame:
    from latbench.graph import prune
    from latbench.network import costs
    from latbench.space import format_arch, from_id, is_valid

    vectors = [from_id(int(i)) for i in ids]
    graphs = [prune(v) for v in vectors]
    keyed: dict[str, tuple[int, int]] = {}
    flops = np.empty(len(ids), dtype=np.int64)
    params = np.empty(len(ids), dtype=np.int64)
    for i, g in enumerate(graphs):
        c = keyed.get(g.key)
        if c is None:
            cc = costs(g)
            c = keyed[g.key] = (cc.flops, cc.params)
        flops[i], params[i] = c
    cols = {
        "arch_id": pd.array(np.asarray(ids, dtype=np.int32), dtype="int32"),
        "arch_str": [format_arch(v) for v in vectors],
        "graph_key": [g.key for g in graphs],
        "iso_key": [g.iso_key for g in graphs] if with_iso else None,
        "valid": np.array([is_valid(v) for v in vectors], dtype=bool),
        "flops": flops,
        "params": params,
    }
    return pd.DataFrame({k: v for k, v in cols.items() if v is not None})


@cache
def _arch_table() -> pd.DataFrame:
    from latbench.space import N_ARCHS

    return _arch_rows(range(N_ARCHS), with_iso=True)


def arch_table() -> pd.DataFrame:
    """Static facts of all 15,625 architectures, in ``arch_id`` order (cached).

    Columns: ``arch_id``, ``arch_str``, ``graph_key``, ``iso_key``, ``valid``,
    ``flops``, ``params``. Invalid architectures get the cost of the cell-less skeleton.
    """
    return _arch_table().copy()


def skeleton_frame(arch_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """A schema-complete frame with no measurement yet, for ``arch_ids`` (default: all).

    Valid rows have ``status="missing"``, invalid ones ``status="invalid"``. Rows come
    in the order of ``arch_ids``; a short list is computed directly, without building
    the cached table of all 15,625 architectures.
    """
    if arch_ids is None:
        df = arch_table().drop(columns="iso_key")
    else:
        df = _arch_rows(list(arch_ids), with_iso=False)
    n = len(df)
    df["nb201_index"] = pd.array([pd.NA] * n, dtype="Int32")
    df["status"] = np.where(df["valid"], "missing", "invalid")
    df["error"] = pa.nulls(n, pa.string()).to_pandas()  # the string dtype read_dataset gives
    df["latency_ms"] = np.nan
    df["latency_std_ms"] = np.nan
    df["runs"] = pd.array(np.zeros(n), dtype="int32")
    df["timed_arch_id"] = pd.array([pd.NA] * n, dtype="Int32")
    return df[list(COLUMNS)]
