"""Import the published LatBench release (Samsung Eagle pickles, DESIGN §7).

Each release file is a pickle of ``{(o1, ..., o6): latency_seconds}`` over the 15,284
valid architectures, values numpy float64 scalars. The file name selects the catalog
entry (unknown names get a key derived from the name). Latencies become milliseconds;
invalid architectures stay ``status="invalid"`` with no latency, valid ones the file
lacks are ``status="missing"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.catalog import BRP_NAS_CITATION, CATALOG, Dataset, normalize_key
from latbench.dataset import skeleton_frame
from latbench.importers.common import (
    Imported,
    ImportFormatError,
    canonical_key,
    catalog_metadata,
    select_keys,
)
from latbench.safepickle import NUMPY_SCALARS, load_pickle
from latbench.space import N_ARCHS, OPS, format_arch

__all__ = ["SUFFIXES", "eagle_latencies", "eagle_protocol", "read_eagle"]

SUFFIXES = (".pickle", ".pkl")
"""File name endings of release files."""

_N_OPS = len(OPS)


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
        raise ImportFormatError(f"{what}: key {key!r} is not a tuple of 6 op indices")
    aid = 0
    for i, op in enumerate(key):
        if isinstance(op, bool) or not isinstance(op, int | np.integer) or not 0 <= op < _N_OPS:
            raise ImportFormatError(
                f"{what}: key {key!r}: entry {i} = {op!r} is not an op index 0..{_N_OPS - 1}"
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
            raise ImportFormatError(f"{what}: latency of {key!r} is {value!r}, not a number")
        seconds = float(value)
        if not (math.isfinite(seconds) and seconds > 0):
            raise ImportFormatError(
                f"{what}: latency of {key!r} is {seconds!r}, not a positive finite number"
            )
        out[aid] = seconds
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
        name=f"{stem} (LatBench release file)",
        device_class=cls,
        hardware="unknown",
        runtime="unknown",
        precision=stem.rsplit("-", 1)[-1] if "-" in stem else "unknown",
        source="LatBench release file not in the catalog",
        citation=BRP_NAS_CITATION,
    )


def _release_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise ImportFormatError(f"{path}: no release files ({', '.join(SUFFIXES)}) here")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return [path]


def _keyed_files(path: Path) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for f in _release_files(path):
        key = canonical_key(f.stem)
        if key in keyed:
            raise ImportFormatError(
                f"{keyed[key].name} and {f.name} are both dataset {key!r}; import one of them"
            )
        keyed[key] = f
    return keyed


def read_eagle(path: str | os.PathLike[str], keys: Collection[str] | None = None) -> list[Imported]:
    """Parse a release file, or every release file in a folder, into datasets.

    ``keys`` restricts a folder import to those datasets (catalog keys or aliases).
    Pickles are read with :data:`~latbench.safepickle.NUMPY_SCALARS` as the only
    allowed globals.
    """
    path = Path(path)
    out = []
    for key, f in select_keys(_keyed_files(path), keys, path).items():
        seconds = eagle_latencies(load_pickle(f, NUMPY_SCALARS), str(f))
        fallback = _fallback(key, f.stem)
        protocol = eagle_protocol(CATALOG.get(key, fallback).device_class)
        meta = catalog_metadata(
            key,
            f,
            "eagle",
            fallback=fallback,
            protocol=protocol,
            input_shape=[1, 32, 32, 3],
            extra={"units": "seconds", "entries": int(np.count_nonzero(~np.isnan(seconds)))},
        )
        out.append(Imported(key, _frame(seconds, protocol["runs"]), meta, f))
    return out
