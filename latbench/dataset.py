"""The LatBench dataset file: one Parquet file per device configuration (docs/design.md §6).

Columns and types are fixed by :data:`SCHEMA`; file-level metadata is one JSON object
stored under the Parquet key-value key ``latbench``. Reads validate the schema and
raise :class:`DatasetError` naming the file and the problem; writes are atomic (a
temporary file in the target directory, fsync'd, then renamed over the target).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latbench.integrity import (
    INTEGRITY_KEY,
    IntegrityError,
    open_verified,
    verify_table,
    write_verified,
)
from latbench.safepickle import short_repr

__all__ = [
    "COLUMNS",
    "METADATA_KEY",
    "OPTIONAL_FIELDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "DatasetError",
    "arch_table",
    "atomic_path",
    "read_dataset",
    "read_metadata",
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; datasets are shared files
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # directory fsync is not available everywhere
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        tmp_path.unlink(missing_ok=True)


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
    problems = row_problems(table)  # what a reader would refuse is never written
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


def _open(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        return open_verified(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file (corrupt or truncated?): {_short(exc)}"
        ) from exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _metadata(path: Path, schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError(f"{path}: no LatBench metadata (key {METADATA_KEY.decode()!r})")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: LatBench metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: LatBench metadata must be a JSON object")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: schema version {version!r}, this LatBench reads {SCHEMA_VERSION}"
        )
    return meta


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


def row_problems(table: pa.Table) -> list[str]:
    """What is wrong with a dataset table's rows (empty list: nothing).

    Beyond nulls, statuses and duplicate ids: ``arch_id`` in 0..15624, ``arch_str``
    and ``valid`` equal to that id's architecture, ``status="invalid"`` exactly for
    invalid architectures, a latency on every ``ok`` row and none on ``failed`` or
    ``missing`` ones (``invalid`` rows may keep a source's figure), latencies within
    :data:`LATENCY_RANGE_MS`, non-negative spreads, runs, FLOPs and params.
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
    known = pc.is_in(status, pa.array(STATUSES))
    if len(status) and not pc.all(known).as_py():
        bad = sorted(pc.unique(pc.filter(status, pc.invert(known))).to_pylist())
        problems.append(f"unknown status value(s) {short_repr(bad)}; allowed: {STATUSES}")
    ids = table.column("arch_id").to_numpy()
    if len(ids) == 0:
        return problems
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

    def flags(value: str) -> np.ndarray:
        return pc.equal(status, value).to_numpy(zero_copy_only=False)

    invalid, ok = flags("invalid"), flags("ok")
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
        problems.append(f"latency {bad_lat!r} ms is outside the plausible {lo:g}..{hi:g} ms")
    for name in ("latency_std_ms", "runs", "flops", "params", "timed_arch_id"):
        col = table.column(name)
        if col.null_count == len(col):
            continue
        x = col.drop_null().to_numpy()
        if not (x >= 0).all() or (name == "latency_std_ms" and not np.isfinite(x).all()):
            problems.append(f"column {name!r} holds a negative or non-finite value")
        elif name == "timed_arch_id" and x.max() >= N_ARCHS:
            problems.append(f"timed_arch_id {x.max()} is outside 0..{N_ARCHS - 1}")
    return problems


def _check_rows(path: Path, table: pa.Table) -> None:
    """Row-level rules that the Parquet schema cannot express (same as :func:`to_table`)."""
    problems = row_problems(table)
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file-level metadata of a dataset file, validated, without reading rows."""
    path = Path(path)
    pf = _open(path)
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

    Returns one row per architecture with the :data:`COLUMNS`; the metadata dict is
    in ``df.attrs["metadata"]``.
    """
    path = Path(path)
    pf = _open(path)
    schema = pf.schema_arrow
    _metadata(path, schema)  # fail fast on a foreign file, before reading its rows
    _check_schema(path, schema)
    present = [f.name for f in OPTIONAL_FIELDS if f.name in schema.names]
    try:
        table = pf.read()  # every column: the digest covers them all
    except (pa.ArrowException, OSError) as exc:  # a page checksum failure lands here too
        raise DatasetError(
            f"{path}: cannot read rows (corrupt or truncated?): {_short(exc)}"
        ) from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # e.g. a damaged footer
        raise DatasetError(f"{path}: unreadable (corrupt?): {_short(exc)}") from exc
    try:
        verified = verify_table(path, table)
    except IntegrityError as exc:
        raise DatasetError(str(exc)) from None
    # The metadata users get is the copy the digest verified (the table's key-value
    # metadata), never the second copy inside the footer's Arrow schema blob.
    meta = _metadata(path, table.schema)
    table = table.select([*COLUMNS, *present])
    if verified:
        # The writer ran every row check (to_table) and the digest proves the rows are
        # those; only arch_str, which the digest leaves out, is compared with the id.
        problems = _arch_str_problems(table, table.column("arch_id").to_numpy())
        if problems:
            raise DatasetError(f"{path}: " + "; ".join(problems))
    else:
        _check_rows(path, table)
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
