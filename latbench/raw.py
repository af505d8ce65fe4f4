"""Raw per-run timings in HDF5, one row per timed graph, so anyone can re-filter.

Layout of ``<key>.raw.h5``:

- ``graph_key``  (n,)   utf-8 strings, the pruned-graph key that was timed
- ``arch_id``    (n,)   int32, the architecture whose graph was timed (``timed_arch_id``)
- ``timings_ns`` (n, R) int64, per-run times in run order
- file attributes: ``runs``, ``groups``, ``group_size``, ``warmup``, ``filter`` and any
  extra string attributes given to :class:`RawWriter`.

Rows are appended and flushed one at a time; a crash loses at most the row being
written, and reopening the file trims any partly written row and appends after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.protocol import Protocol, two_stage_filter
from latbench.raw_checks import check_raw_values

__all__ = [
    "DIGEST_ATTR",
    "MAX_CELLS",
    "MAX_ROWS",
    "RawFormatError",
    "RawWriter",
    "check_layout",
    "content_digest",
    "read_raw",
    "refilter",
    "write_raw",
]

_PROTOCOL_ATTRS = ("runs", "groups", "group_size", "warmup", "filter")
DIGEST_ATTR = "latbench_sha256"
"""File attribute holding :func:`content_digest` of the rows and other attributes."""


class RawFormatError(ValueError):
    """A raw-timings file does not match the protocol or layout expected."""


_DATASETS = ("graph_key", "arch_id", "timings_ns")
MAX_ROWS = 1 << 20
"""Most rows a raw file may declare (a campaign times at most 15,625 graphs per pass)."""
MAX_CELLS = 1 << 25
"""Most timings a raw file may declare (256 MiB of int64: 15,625 graphs x R=2,000)."""
MAX_CHUNK_BYTES = 64 << 20
"""Largest HDF5 chunk a raw file may declare (one chunk is inflated whole)."""


def check_layout(f: Any, path: str | os.PathLike[str]) -> int:
    """Refuse a raw file that reads anything but itself or declares more than it may hold.

    Every member of the root must be a hard link (no soft or external links); the three
    datasets must keep their data inside the file (contiguous, chunked or compact: no
    HDF5 external storage, no virtual dataset), have the documented rank, at most
    :data:`MAX_ROWS` rows, :data:`MAX_CELLS` timings and chunks of at most
    :data:`MAX_CHUNK_BYTES`. Returns the number of rows to read. Nothing is read before.
    """
    h5py = _h5py()
    for name in f:
        link = f.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise RawFormatError(
                f"{path}: member {_short(name)} is an HDF5 {type(link).__name__}; a raw timings"
                " file holds only its own data (no soft or external links)"
            )
    missing = [k for k in _DATASETS if k not in f]
    if missing:
        raise RawFormatError(f"{path} is not a raw timings file: no {missing}")
    lengths = []
    for key, rank in zip(_DATASETS, (1, 1, 2), strict=True):
        ds = f[key]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != rank:
            raise RawFormatError(f"{path}: {key} is not a {rank}-D dataset")
        plist = ds.id.get_create_plist()
        if plist.get_external_count() or plist.get_layout() == h5py.h5d.VIRTUAL:
            raise RawFormatError(
                f"{path}: {key} keeps its data outside the file (HDF5 external storage or a"
                " virtual dataset); refused, a raw timings file reads only itself"
            )
        chunks = ds.chunks or ()
        if chunks and int(np.prod(chunks, dtype=np.float64)) * ds.dtype.itemsize > MAX_CHUNK_BYTES:
            raise RawFormatError(f"{path}: {key} declares chunks over {MAX_CHUNK_BYTES} bytes")
        lengths.append(int(ds.shape[0]))
    n = min(lengths)
    width = int(f["timings_ns"].shape[1])
    if n > MAX_ROWS or n * width > MAX_CELLS:
        raise RawFormatError(
            f"{path}: declares {n} rows of {width} timings, more than a raw timings file"
            f" holds ({MAX_ROWS} rows, {MAX_CELLS} timings at most)"
        )
    return n


def _short(name: Any) -> str:
    text = repr(str(name))
    return text if len(text) <= 60 else text[:57] + "..."


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            "h5py is needed for raw timings files: pip install 'latbench[harness]'"
        ) from exc
    return h5py


def _attr(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class RawWriter:
    """Appends raw timings to an HDF5 file; opening an existing file resumes it.

    ``protocol`` is required for a new file; for an existing one it must have the same
    R (:class:`RawFormatError` otherwise) and may be omitted. ``attrs`` are written as
    file attributes on creation.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        protocol: Protocol | None = None,
        attrs: Mapping[str, str | int | float] | None = None,
    ) -> None:
        h5py = _h5py()
        self.path = Path(path)
        exists = self.path.exists()
        if not exists and protocol is None:
            raise ValueError(f"{self.path} does not exist; a Protocol is needed to create it")
        # HDF5 1.8+ object headers carry checksums; only new files get that format
        self._f = h5py.File(self.path, "a", **({} if exists else {"libver": ("v108", "latest")}))
        try:
            if exists and "timings_ns" in self._f:
                self.runs = self._resume(protocol)
            elif protocol is None:
                raise RawFormatError(f"{self.path} is not a raw timings file")
            else:
                self.runs = self._create(protocol, attrs or {})
        except BaseException:
            self._f.close()
            raise

    def _create(self, protocol: Protocol, attrs: Mapping[str, Any]) -> int:
        h5py = _h5py()
        f, r = self._f, protocol.runs
        str_dt = h5py.string_dtype("utf-8")
        # variable-length strings take no filters: the content digest covers them
        f.create_dataset("graph_key", (0,), maxshape=(None,), dtype=str_dt)
        f.create_dataset("arch_id", (0,), maxshape=(None,), dtype=np.int32, fletcher32=True)
        f.create_dataset(
            "timings_ns", (0, r), maxshape=(None, r), dtype=np.int64, chunks=(1, r),
            fletcher32=True,
        )  # fmt: skip
        for key, value in protocol.to_metadata().items():
            f.attrs[key] = value
        for key, value in attrs.items():
            f.attrs[key] = value
        f.flush()
        return r

    def _resume(self, protocol: Protocol | None) -> int:
        f = self._f
        check_layout(f, self.path)
        runs = int(f["timings_ns"].shape[1])
        if protocol is not None and protocol.runs != runs:
            raise RawFormatError(
                f"{self.path} holds {runs} runs per graph, but the protocol has R="
                f"{protocol.runs}: write to a new raw file or use R={runs}"
            )
        # Rows are appended dataset by dataset, so a crash can leave one dataset a
        # row longer than the others; the row is incomplete and dropped.
        n = min(len(f["graph_key"]), len(f["arch_id"]), len(f["timings_ns"]))
        for key in ("graph_key", "arch_id", "timings_ns"):
            if len(f[key]) != n:
                f[key].resize(n, axis=0)
        f.flush()
        return runs

    def __len__(self) -> int:
        return int(self._f["timings_ns"].shape[0])

    def graph_keys(self) -> set[str]:
        """Graph keys already in the file (what a resumed session may skip)."""
        return set(self._f["graph_key"].asstr()[...])

    def append(self, graph_key: str, arch_id: int, raw_ns: np.ndarray) -> None:
        """Add one timed graph's R raw timings and flush to disk."""
        raw = np.asarray(raw_ns)
        if raw.shape != (self.runs,):
            raise RawFormatError(
                f"{self.path} stores {self.runs} timings per graph, got shape {raw.shape} "
                f"for {graph_key!r}"
            )
        f = self._f
        n = len(self)
        # Timings go last: a row counts only once its timings are in.
        f["graph_key"].resize(n + 1, axis=0)
        f["graph_key"][n] = graph_key
        f["arch_id"].resize(n + 1, axis=0)
        f["arch_id"][n] = int(arch_id)
        f["timings_ns"].resize(n + 1, axis=0)
        f["timings_ns"][n] = raw.astype(np.int64, copy=False)
        f.flush()

    def close(self) -> None:
        """Record the content digest, flush and close the file."""
        if self._f.id.valid:
            try:
                f = self._f
                if f.mode != "r" and "timings_ns" in f:
                    f.attrs[DIGEST_ATTR] = content_digest(
                        f["graph_key"].asstr()[...], f["arch_id"][...], f["timings_ns"][...],
                        dict(f.attrs),
                    )  # fmt: skip
            finally:
                self._f.close()

    def __enter__(self) -> RawWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attrs(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _attr(v.item() if hasattr(v, "item") else v) for k, v in raw.items()}
    # Files written in one go keep the protocol as one JSON attribute; flatten it.
    if isinstance(out.get("protocol"), str):
        with contextlib.suppress(ValueError):
            for key, value in json.loads(out["protocol"]).items():
                out.setdefault(key, value)
    return out


def content_digest(
    graph_keys: Sequence[str], arch_ids: np.ndarray, timings: np.ndarray, attrs: Mapping[str, Any]
) -> str:
    """Hex SHA-256 of a raw file's rows and attributes (:data:`DIGEST_ATTR` excluded).

    HDF5's Fletcher-32 covers the chunks of fixed-size data, not the heap holding
    variable-length strings nor every attribute; this digest covers both.
    """
    h = hashlib.sha256(f"rows={len(graph_keys)}".encode())
    for key in graph_keys:
        b = str(key).encode()
        h.update(len(b).to_bytes(4, "little") + b)
    h.update(np.ascontiguousarray(arch_ids, dtype="<i4").tobytes())
    h.update(f"shape={tuple(timings.shape)}".encode())
    h.update(np.ascontiguousarray(timings, dtype="<i8").tobytes())
    clean = {k: _plain(v) for k, v in attrs.items() if k != DIGEST_ATTR}
    h.update(json.dumps(clean, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    value = _attr(value)
    return value.item() if hasattr(value, "item") and np.ndim(value) == 0 else value


def write_raw(
    path: str | os.PathLike[str],
    graph_keys: Sequence[str],
    arch_ids: Sequence[int],
    rows: Sequence[np.ndarray],
    protocol: Mapping[str, Any],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a whole raw-timings file at once, atomically (same layout as :class:`RawWriter`).

    Rows shorter than the widest are padded with ``-1`` (:func:`refilter` drops it).
    Datasets carry HDF5 Fletcher-32 chunk checksums (HDF5 1.8+ object headers carry
    their own), and the file a :func:`content_digest` under :data:`DIGEST_ATTR`.
    ``attrs`` are extra file attributes (a rewrite passes the old file's).
    """
    from latbench.dataset import atomic_path

    h5py = _h5py()
    width = max((len(r) for r in rows), default=0)
    timings = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        timings[i, : len(r)] = r
    ids = np.asarray(arch_ids, dtype=np.int32)
    keys = [str(k) for k in graph_keys]
    file_attrs: dict[str, Any] = {k: _plain(v) for k, v in (attrs or {}).items()}
    for key in _PROTOCOL_ATTRS:
        if protocol.get(key) is not None:
            file_attrs[key] = protocol[key]
    file_attrs["fill"] = -1
    file_attrs.pop(DIGEST_ATTR, None)
    path = Path(path)
    # HDF5 is written to memory and the bytes to disk with plain file I/O: an HDF5
    # file that hits a full disk cannot be closed cleanly, and h5py then crashes the
    # interpreter when it frees the handle (SIGSEGV instead of a one-line error).
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver=("v108", "latest")) as f:
        # chunked datasets: Fletcher-32 needs chunks (and an empty file still gets them)
        n = max(1, len(keys))
        f.create_dataset("graph_key", data=keys, dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("arch_id", data=ids, chunks=(n,), fletcher32=True)
        f.create_dataset(
            "timings_ns", data=timings, compression="gzip", fletcher32=True,
            chunks=(min(n, 128), max(1, width)),
        )  # fmt: skip
        for key, value in file_attrs.items():
            f.attrs[key] = value
        f.attrs[DIGEST_ATTR] = content_digest(keys, ids, timings, file_attrs)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return path


def read_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole file: ``graph_key`` (str array), ``arch_id``, ``timings_ns`` and ``attrs``.

    A partly written last row (from a crash) is left out. Protocol fields appear in
    ``attrs`` whether stored one per attribute or as one JSON ``protocol`` attribute.
    A bundled file is checked against the data manifest first; Fletcher-32 chunk
    checksums and the content digest are verified where the file has them (an old file
    without them reads with a :class:`~latbench.integrity.UnverifiedFileWarning`).
    Raises :class:`RawFormatError` for a damaged or foreign file.
    """
    from latbench.integrity import warn_unverified
    from latbench.manifest import verify_file

    h5py = _h5py()
    verify_file(path)
    try:
        with h5py.File(path, "r") as f:
            n = check_layout(f, path)
            out = {
                "graph_key": np.asarray(f["graph_key"].asstr()[:n], dtype=object),
                "arch_id": f["arch_id"][:n].astype(np.int32),
                "timings_ns": f["timings_ns"][:n].astype(np.int64),
                "attrs": _attrs(f.attrs),
            }
            raw_attrs = dict(f.attrs)
    except RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error on a damaged file is its damage
        # h5py reports a failed Fletcher-32 check or a damaged header as OSError
        text = " ".join(str(exc).split())[:200]
        raise RawFormatError(f"{path}: unreadable raw timings (corrupt?): {text}") from None
    stored = _attr(raw_attrs.get(DIGEST_ATTR))
    if stored is None:
        warn_unverified(path, stacklevel=2)
    elif content_digest(out["graph_key"], out["arch_id"], out["timings_ns"], raw_attrs) != stored:
        raise RawFormatError(
            f"{path}: raw timings differ from their recorded SHA-256 (corrupted or edited)"
        )
    check_raw_values(path, out)  # whatever the digest says: it proves no soundness
    return out


def refilter(path: str | os.PathLike[str], group_size: int | None = None) -> pd.DataFrame:
    """Recompute latencies from raw timings with groups of ``group_size`` (default: the file's).

    Columns: ``graph_key``, ``timed_arch_id``, ``latency_ms``, ``latency_std_ms``,
    ``runs``. Negative entries are padding of rows shorter than the widest one and are
    dropped. Raises :class:`ValueError` unless ``group_size`` divides each row's R.
    """
    raw = read_raw(path)
    if group_size is None:
        if "group_size" not in raw["attrs"]:
            raise RawFormatError(f"{path} records no group_size; pass group_size")
        group_size = int(raw["attrs"]["group_size"])
    lat, std, runs = [], [], []
    for row in raw["timings_ns"]:
        row = row[row >= 0]
        Protocol(runs=len(row), group_size=int(group_size), warmup=0)
        m, s = two_stage_filter(row / 1e6, int(group_size))
        lat.append(m)
        std.append(s)
        runs.append(len(row))
    return pd.DataFrame(
        {
            "graph_key": pd.Series(raw["graph_key"], dtype="string"),
            "timed_arch_id": raw["arch_id"],
            "latency_ms": np.array(lat, dtype=np.float64),
            "latency_std_ms": np.array(std, dtype=np.float64),
            "runs": np.array(runs, dtype=np.int32),
        }
    )
