"""On-disk results of protocol repeats, so a rerun computes only what it lacks.

One ``.npz`` per repeat, named by the SHA-256 of everything that determines the
result: the dataset's content (arch ids, latencies, graph keys), the per-layer table
for ``layerwise``, the predictor and its settings, the split sizes and unit, the
protocol seed and the repeat number, and :data:`CACHE_VERSION`. Rerunning with more
repeats finds the earlier ones; changing any input misses. Each file holds the
repeat's metrics and its test-set predictions and is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CACHE_VERSION", "RepeatCache", "default_cache_dir", "frame_checksum"]

CACHE_VERSION = 2
"""Bump when a change of code changes the numbers a repeat produces."""


def default_cache_dir(data_home: str | os.PathLike[str] | None = None) -> Path:
    """``<data home>/cache/predictors``: beside the datasets whose results it holds."""
    from latbench.loader import data_home as home

    return home(data_home) / "cache" / "predictors"


def frame_checksum(rows: pd.DataFrame) -> str:
    """SHA-256 of the usable rows' ``arch_id``, ``latency_ms`` and ``graph_key``."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(rows["arch_id"].to_numpy(dtype=np.int64)).tobytes())
    h.update(np.ascontiguousarray(rows["latency_ms"].to_numpy(dtype=np.float64)).tobytes())
    if "graph_key" in rows.columns:
        h.update("\n".join(map(str, rows["graph_key"])).encode())
    return h.hexdigest()


def series_checksum(s: pd.Series) -> str:
    """SHA-256 of a Series' index and float values (a per-layer latency table)."""
    h = hashlib.sha256()
    h.update("\n".join(map(str, s.index)).encode())
    h.update(np.ascontiguousarray(s.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


class RepeatCache:
    """Repeat results under ``folder`` (created on first write)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._unwritable = False

    @staticmethod
    def key(fields: Mapping[str, Any]) -> str:
        """The file stem for these result-determining fields."""
        text = json.dumps({"cache_version": CACHE_VERSION, **fields}, sort_keys=True,
                          default=str)  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[dict[str, Any], np.ndarray] | None:
        """``(result, test predictions)`` stored under ``key``, or None (also if unreadable)."""
        path = self._path(key)
        if not path.exists():
            return None
        from latbench.predictors.npzfile import NpzError, json_header, read_npz

        try:
            arrays = read_npz(path, "repeat result")
            result = json_header(arrays["result"], path, "repeat result")
            predicted = np.asarray(arrays["predicted"], dtype=np.float64)
        except (NpzError, KeyError, ValueError, TypeError):
            return None  # a damaged entry is recomputed and overwritten
        return result, predicted

    def put(self, key: str, result: Mapping[str, Any], predicted: np.ndarray,
            fields: Mapping[str, Any]) -> None:  # fmt: skip
        """Store one repeat (``fields`` kept in the file, for whoever inspects it).

        A cache that cannot be written (a read-only data home, a full disk) warns once
        and is not written to again: the result is the run's, the cache only saves time.
        """
        from latbench.dataset import atomic_path

        if self._unwritable:
            return
        path = self._path(key)
        clean = {k: (None if v is pd.NA else v) for k, v in result.items()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    result=np.array(json.dumps(clean, default=_plain)),
                    fields=np.array(json.dumps(dict(fields), sort_keys=True, default=str)),
                    predicted=np.asarray(predicted, dtype=np.float64),
                )
        except OSError as exc:
            import warnings

            self._unwritable = True
            warnings.warn(
                f"cannot write the repeat cache in {path.parent} ({exc.strerror or exc});"
                " going on without caching (--no-cache skips it)",
                stacklevel=2,
            )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
