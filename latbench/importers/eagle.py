"""Import the published LatBench release (Samsung Eagle pickles, docs/design.md §7).

Each release file is a pickle of ``{(o1, ..., o6): latency_seconds}`` over the 15,284
valid architectures, values numpy float64 scalars. A file's content (SHA-256) selects
its catalog entry, its name (any published spelling) only as a fallback, recorded in
the metadata and checked against the published median where the name is ambiguous; a
file that matches neither is never imported under a made-up key.
Latencies become milliseconds; invalid architectures stay ``status="invalid"`` with no
latency, valid ones the file lacks are ``status="missing"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.catalog import BRP_NAS_CITATION, CATALOG, Dataset, normalize_key
from latbench.dataset import LATENCY_RANGE_MS, skeleton_frame
from latbench.importers.common import (
    PACKED_SUFFIXES,
    Imported,
    ImportFormatError,
    canonical_key,
    catalog_metadata,
    load_source_pickle,
    packed_kind,
    refuse_duplicates,
    select_keys,
    source_problem,
)
from latbench.importers.registry import (
    JETSON_LABEL_HISTORY,
    MEDIAN_FACTOR,
    REGISTRY,
    Identification,
    by_median,
    identify,
    median_fits,
    median_mismatch,
)
from latbench.safepickle import NUMPY_SCALARS, Limits, short_repr
from latbench.space import N_ARCHS, OPS, format_arch

__all__ = ["SUFFIXES", "SkippedFileWarning", "eagle_latencies", "eagle_protocol", "read_eagle"]

SUFFIXES = (".pickle", ".pkl")
"""File name endings of release files."""

_N_OPS = len(OPS)
_LO_S, _HI_S = (x / 1000.0 for x in LATENCY_RANGE_MS)


LIMITS = Limits(
    max_bytes=8 << 20,
    max_ops=40 * N_ARCHS,
    max_items=N_ARCHS,
    max_depth=2,
    max_nodes=8 * N_ARCHS,
    containers=frozenset({dict, tuple}),
)
"""What a release pickle may cost: a dict of at most 15,625 flat 6-int tuples to float
scalars (0.76 MB and about 280,000 opcodes for the published files)."""


class SkippedFileWarning(UserWarning):
    """A file in a release folder that was not imported (unrecognised or a duplicate)."""


def eagle_protocol(device_class: str) -> dict[str, Any]:
    """The paper's measurement protocol for a device class (Section 6 of BRP-NAS)."""
    mobile = device_class.startswith("mobile")
    groups, per_group = (1, 10) if mobile else (100, 10)
    # Same keys as harness protocols (Protocol.to_metadata) so the two compare directly;
    # the release does not say how many warm-up runs it used.
    return {
        "runs": groups * per_group,
        "groups": groups,
        "group_size": per_group,
        "warmup": None,
        "filter": "quartile2",
        "reference": "BRP-NAS Section 6",
    }


def _arch_index(key: Any, what: str) -> int:
    if not isinstance(key, tuple) or len(key) != 6:
        raise ImportFormatError(f"{what}: key {short_repr(key)} is not a tuple of 6 op indices")
    aid = 0
    for i, op in enumerate(key):
        if isinstance(op, bool) or not isinstance(op, int | np.integer) or not 0 <= op < _N_OPS:
            raise ImportFormatError(
                f"{what}: key {short_repr(key)}: entry {i} = {short_repr(op)} is not an op"
                f" index 0..{_N_OPS - 1}"
            )
        aid = aid * _N_OPS + int(op)
    return aid


def eagle_latencies(obj: Any, what: str = "release file") -> np.ndarray:
    """Validate an unpickled release dict; latency in seconds per ``arch_id`` (NaN: absent).

    Raises :class:`ImportFormatError` for a non-dict, a malformed key, an invalid
    architecture, or a latency that is not a finite positive number.
    """
    if not isinstance(obj, Mapping):
        raise ImportFormatError(
            f"{what}: expected a dict of architecture vectors to latencies,"
            f" got {type(obj).__name__}"
        )
    valid = skeleton_frame()["valid"].to_numpy()
    out = np.full(N_ARCHS, np.nan)
    for key, value in obj.items():
        aid = _arch_index(key, what)
        if not valid[aid]:
            raise ImportFormatError(
                f"{what}: key {key!r} ({format_arch(key)}) is an invalid architecture"
                " (output not reachable); release files hold only valid ones"
            )
        if isinstance(value, bool) or not isinstance(value, float | int | np.number):
            raise ImportFormatError(
                f"{what}: latency of {key!r} is {short_repr(value)}, not a number"
            )
        seconds = float(value)
        if not (math.isfinite(seconds) and seconds > 0):
            raise ImportFormatError(
                f"{what}: latency of {key!r} is {seconds!r}, not a positive finite number"
            )
        if not _LO_S <= seconds <= _HI_S:  # 5e-324 s or 1e300 s: corruption, not a timing
            raise ImportFormatError(
                f"{what}: latency of {key!r} is {seconds!r} s, outside the plausible"
                f" {_LO_S:g}..{_HI_S:g} s"
            )
        out[aid] = seconds
    if not obj:
        raise ImportFormatError(f"{what}: holds no latencies (an empty dict)")
    return out


def _frame(seconds: np.ndarray, runs: int) -> pd.DataFrame:
    df = skeleton_frame()
    have = ~np.isnan(seconds)
    df["latency_ms"] = seconds * 1000.0
    df["status"] = np.where(df["valid"], np.where(have, "ok", "missing"), "invalid")
    ok = (df["status"] == "ok").to_numpy()
    df["runs"] = pd.array(np.where(ok, runs, 0), dtype="int32")
    df["timed_arch_id"] = df["arch_id"].astype("Int32").where(ok, pd.NA)
    return df


def _fallback(key: str, stem: str) -> Dataset:
    cls = "-".join(normalize_key(stem).split("-")[:2])
    return Dataset(
        key=key,
        name=f"{stem} (file given as a LatBench release file)",
        device_class=cls,
        hardware="unknown",
        runtime="unknown",
        precision=stem.rsplit("-", 1)[-1] if "-" in stem else "unknown",
        source="a pickle in the release's format that is not a published release file"
        " (imported under a key the user gave)",
        citation=BRP_NAS_CITATION,
    )


def _release_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The release pickles at ``path`` and, for a folder, its compressed copies of some."""
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if p.is_file())
        files = [p for p in entries if p.suffix.lower() in SUFFIXES]
        packed = [
            p
            for p in entries
            if p.suffix.lower() in PACKED_SUFFIXES and Path(p.stem).suffix.lower() in SUFFIXES
        ]
        refuse_duplicates({f: f.name.casefold() for f in files}, path)
        if not files:
            raise ImportFormatError(
                f"{path}: no release files ({', '.join(SUFFIXES)}) here"
                + _hint(path, packed, entries)
            )
        return files, packed
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return [path], []


def _hint(path: Path, packed: list[Path], entries: list[Path]) -> str:
    if packed:
        return f"; {packed[0].name} is compressed: decompress it first"
    # a Drive "download folder" zip (LatBench-2024...-001.zip) or another archive
    for f in entries:
        kind = packed_kind(f)
        if kind is None and f.suffix.lower() in PACKED_SUFFIXES:
            kind = ("an archive or compressed file", "extract it and import what it holds")
        if kind is not None:
            return f"; {f.name} is {kind[0]}: {kind[1]}"
    # a Drive download unzipped one level deeper than the folder given
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        with contextlib.suppress(OSError):
            if any(f.suffix.lower() in SUFFIXES for f in sub.iterdir()):
                return f"; give the folder that holds them, e.g. {sub}"
    return ""


def _not_release(ident: Identification) -> str:
    return (
        f"{ident.path.name} is not a file of the LatBench release: its SHA-256"
        f" ({ident.sha256[:12]}...) matches no published file and its name none of the"
        " published names (see `latbench.importers.registry.REGISTRY`)"
    )


def _median_ms(seconds: np.ndarray) -> float:
    return float(np.nanmedian(seconds) * 1000.0) if np.any(~np.isnan(seconds)) else math.nan


def _refuse_key(ident: Identification, key: str, given: str) -> None:
    """Refuse ``--key`` giving ``ident``'s file a catalog identity it does not have.

    A file whose SHA-256 is a published file's keeps that file's key; a catalog key (or
    alias) is taken only by a file whose name says it is that dataset (its median then
    unchecked: the user vouches for it). A key of the user's own is always allowed.
    """
    name = ident.path.name
    if ident.how == "sha256" and ident.entry is not None and ident.entry.key != key:
        raise ImportFormatError(
            f"--key {given}: {name} is the published file {ident.entry.name} (its SHA-256"
            f" matches), dataset {ident.entry.key!r}; drop --key to import it as that"
        )
    entry = CATALOG.get(key)
    if entry is None or ident.how == "sha256":
        return
    if ident.how == "name" and key in {c.key for c in ident.candidates}:
        return
    if entry.importer != "eagle":
        what = f"the catalog's {entry.importer or 'measured'} dataset {key!r}"
    else:
        published = next((f.name for f in REGISTRY.values() if f.key == key), key)
        what = f"the catalog's release dataset {key!r} (published as {published}.pickle)"
    said = (
        f"its name says {' or '.join(repr(c.key) for c in ident.candidates)}"
        if ident.how == "name"
        else "its SHA-256 and name match no published file"
    )
    raise ImportFormatError(
        f"--key {given}: names {what}, but {name} is not that file ({said}); choose a key"
        " of your own"
    )


def _by_median(
    ident: Identification, loaded: dict[Path, np.ndarray], alone: bool
) -> tuple[Identification | None, str]:
    """A name-only ``ident`` with the entry its median fits, or ``None`` and why not."""
    seconds = eagle_latencies(
        load_source_pickle(ident.path, NUMPY_SCALARS, LIMITS), str(ident.path)
    )
    loaded[ident.path] = seconds
    median = _median_ms(seconds)
    chosen = by_median(ident.candidates, median)
    if chosen is None:
        return None, median_mismatch(ident.path.name, ident.candidates, median, alone=alone)
    return dataclasses.replace(ident, entry=chosen), ""


def _identified(
    path: Path,
    key: str | None,
    keys: Collection[str] | None = None,
    loaded: dict[Path, np.ndarray] | None = None,
) -> dict[str, Identification]:
    """Release files under ``path`` by catalog key; unrecognised ones warned about and skipped.

    A file identified by name only is read to check its median (``loaded`` keeps what
    was read), unless ``keys`` wants none of the datasets its name may mean.
    """
    loaded = {} if loaded is None else loaded
    files, packed = _release_files(path)
    if key is not None and len(files) != 1:
        raise ImportFormatError(
            f"--key names the dataset of one file, but {path} holds {len(files)}; give the file"
        )
    wanted = None if keys is None else {canonical_key(k) for k in keys}
    keyed: dict[str, Identification] = {}
    skipped = []
    unread = [f"skipped {f.name}: compressed, decompress it first" for f in packed]
    for f in files:
        problem = source_problem(f, LIMITS.max_bytes)
        if problem is not None:  # checked before hashing: a FIFO or /dev/zero never ends
            if not path.is_dir():
                raise ImportFormatError(f"{f}: {problem}")
            unread.append(f"skipped {f.name}: {problem}")
            continue
        ident = identify(f)
        if key is not None:
            k = canonical_key(key)
            _refuse_key(ident, k, key)
            named = [c for c in ident.candidates if c.key == k]
            if ident.how == "name" and named:  # the one of its name's files the key says
                ident = dataclasses.replace(ident, entry=named[0])
            keyed[k] = ident
            continue
        if ident.entry is None:
            if path.is_file():
                raise ImportFormatError(
                    _not_release(ident) + "; pass --key KEY to import it under a key of your own"
                )
            skipped.append(ident)
            continue
        # a name that two published files have had (the older copies' jetson-nono-fp16):
        # the file's median says which; a single-meaning name's median is noted instead
        ambiguous = ident.how == "name" and len(ident.candidates) > 1
        if ambiguous and (wanted is None or wanted & {c.key for c in ident.candidates}):
            chosen, why = _by_median(ident, loaded, alone=path.is_dir())
            if chosen is None:
                if path.is_file():
                    raise ImportFormatError(why)
                unread.append(f"skipped {why}")
                continue
            ident = chosen
        k = ident.entry.key
        if k in keyed:
            if keyed[k].sha256 == ident.sha256:  # e.g. a .pkl and a .pickle copy
                warnings.warn(
                    f"skipped {f.name}: same content as {keyed[k].path.name}",
                    SkippedFileWarning,
                    stacklevel=3,
                )
                continue
            raise ImportFormatError(
                f"{keyed[k].path.name} and {f.name} are both dataset {k!r} but differ;"
                " import one of them"
            )
        keyed[k] = ident
    for ident in skipped:
        warnings.warn(
            f"skipped {_not_release(ident)} (import it alone with --key KEY)",
            SkippedFileWarning,
            stacklevel=3,
        )
    for message in unread:
        warnings.warn(message, SkippedFileWarning, stacklevel=3)
    if not keyed:
        raise ImportFormatError(f"{path}: none of its {len(files)} pickle(s) is a release file")
    return keyed


def _release_metadata(ident: Identification, key: str, seconds: np.ndarray) -> dict[str, Any]:
    entry = ident.entry
    entries = int(np.count_nonzero(~np.isnan(seconds)))
    median = _median_ms(seconds) if entries else None
    info: dict[str, Any] = {
        "identified_by": ident.how if key == (entry.key if entry else None) else "key",
        "published_name": entry.name if entry else None,
        "published_names": list(entry.names()) if entry else [],
        "published_sha256": entry.sha256 if entry else None,
        "matches_published": ident.how == "sha256",
        "published_rows": entry.rows if entry else None,
        "median_ms": median,
        "published_median_ms": entry.median_ms if entry else None,
    }
    notes = []
    if ident.warning:
        notes.append(ident.warning)
        if entry is not None and entry.rows is not None and entries != entry.rows:
            notes.append(f"{entries} entries where the published file has {entry.rows}")
        if entry is not None and median is not None and not median_fits(entry, median):
            notes.append(
                f"its median latency is {median:.3g} ms where the published file's is"
                f" {entry.median_ms:g} ms, more than a factor {MEDIAN_FACTOR:g} apart: it may"
                " not be this device's data"
            )
    if entry is None:
        notes.append(f"{ident.path.name} differs from every published file; imported as {key!r}")
    if entry is not None and entry.note:
        info["note"] = entry.note
    if key.startswith("jetson-nano"):
        info["label_history"] = JETSON_LABEL_HISTORY
    if notes:
        info["warnings"] = notes
    return info


def read_eagle(
    path: str | os.PathLike[str],
    keys: Collection[str] | None = None,
    *,
    key: str | None = None,
) -> list[Imported]:
    """Parse a release file, or every release file in a folder, into datasets.

    Files are identified by SHA-256 against :data:`~latbench.importers.registry.REGISTRY`,
    then by any published spelling of their name (recorded in the metadata as differing
    from the published file); a name two published files have had (the older copies'
    ``jetson-nono-fp16``) takes the entry its median fits, and one that fits neither is
    refused (skipped in a folder). A folder's unrecognised pickles are skipped with a
    :class:`SkippedFileWarning`; a single unrecognised file is refused unless ``key``
    names the dataset to import it as: a key of the user's own, or the catalog key its
    name says (a published file's SHA-256 keeps its own key). ``keys`` restricts a folder import to those
    datasets (catalog keys or aliases). Pickles are read with
    :data:`~latbench.safepickle.NUMPY_SCALARS` as the only allowed globals.
    """
    path = Path(path)
    loaded: dict[Path, np.ndarray] = {}
    found = _identified(path, key, keys, loaded)
    out = []
    for k in select_keys({k: i.path for k, i in found.items()}, keys, path):
        f = found[k].path
        seconds = loaded.get(f)
        if seconds is None:
            seconds = eagle_latencies(load_source_pickle(f, NUMPY_SCALARS, LIMITS), str(f))
        fallback = _fallback(k, f.stem)
        protocol = eagle_protocol(CATALOG.get(k, fallback).device_class)
        release = _release_metadata(found[k], k, seconds)
        meta = catalog_metadata(
            k,
            f,
            "eagle",
            fallback=fallback,
            protocol=protocol,
            input_shape=[1, 32, 32, 3],
            extra={
                "units": "seconds",
                "entries": int(np.count_nonzero(~np.isnan(seconds))),
                "release": release,
            },
            sha256=found[k].sha256,  # hashed once, to identify it
        )
        if release.get("warnings"):
            meta["warnings"] = list(release["warnings"])
        out.append(Imported(k, _frame(seconds, protocol["runs"]), meta, f))
    return out
