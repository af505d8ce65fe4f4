"""``<key>.predicted.parquet``: a device's predicted latencies, kept apart from measurements.

Columns: ``arch_id`` (int32), ``valid`` (bool), ``latency_pred_ms``,
``latency_lo_ms``, ``latency_hi_ms`` (float64, the central band of
``metadata["band_level"]``; NaN for invalid architectures, which have no network to
time), ``measured`` (bool: the architecture is one of the N measured). File metadata (JSON under ``latbench``) names the measured architectures,
the prior's sources, the adapter version and the measured dataset. Written with
page checksums and SHA-256 digests (:mod:`latbench.integrity`), verified on read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = [
    "PREDICTED_COLUMNS",
    "PREDICTED_SUFFIX",
    "predicted_path",
    "read_predicted",
    "write_predicted",
]

PREDICTED_SUFFIX = ".predicted.parquet"
PREDICTED_COLUMNS = (
    "arch_id",
    "valid",
    "latency_pred_ms",
    "latency_lo_ms",
    "latency_hi_ms",
    "measured",
)
_KIND = "latbench-predicted"
_LATENCIES = ("latency_pred_ms", "latency_lo_ms", "latency_hi_ms")


def _blank_invalid(frame: pd.DataFrame) -> pd.DataFrame:
    """NaN latencies on invalid rows, as ``latbench-predict predict --all`` gives them."""
    frame = frame.copy()
    invalid = ~frame["valid"].astype(bool).to_numpy()
    for col in _LATENCIES:
        frame[col] = frame[col].astype("float64").where(~invalid)
    return frame


def predicted_path(out_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the prediction for dataset ``key`` lives in ``out_dir``."""
    return Path(out_dir) / f"{key}{PREDICTED_SUFFIX}"


def write_predicted(
    frame: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any]
) -> Path:
    """Write a prediction frame (:meth:`AdaptedDevice.predict_frame`) atomically,
    holding the write lock of the dataset ``path`` belongs to
    (:func:`latbench.lock.hold_files`; :class:`latbench.lock.KeyLocked` when another
    process holds it)."""
    from latbench.dataset import METADATA_KEY, atomic_path
    from latbench.integrity import write_verified
    from latbench.lock import hold_files

    missing = [c for c in PREDICTED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"prediction lacks column(s) {', '.join(missing)}")
    frame = _blank_invalid(frame[list(PREDICTED_COLUMNS)])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {"kind": _KIND, **dict(metadata)}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    path = Path(path)
    # a measurement run (--adapt) already holds it: the lock is re-entrant
    with hold_files([path], "written"), atomic_path(path) as tmp:
        write_verified(table, tmp, compression="zstd")
    return path


def read_predicted(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and verify a predicted file; metadata in ``attrs["metadata"]``.

    Raises :class:`latbench.dataset.DatasetError` (one line) for a damaged, foreign or
    unsound file: bounded before it is decoded as a dataset is, and its rows checked
    whatever its digest says, since anyone who edits a file can recompute that.
    """
    from latbench.dataset import METADATA_KEY, DatasetError, open_parquet
    from latbench.integrity import verify_table
    from latbench.space import N_ARCHS
    from latbench.terminal import safe, safe_line

    path = Path(path)

    def unreadable(exc: BaseException) -> DatasetError:
        return DatasetError(f"{safe(path)}: unreadable prediction ({safe_line(exc, 200)})")

    try:  # bounded before anything is decoded: a regular file, its footer and sizes
        pf = open_parquet(path, N_ARCHS)
    except DatasetError as exc:
        if exc.__cause__ is None:  # a check_bounds refusal: its own line
            raise
        raise unreadable(exc.__cause__) from None
    except (pa.ArrowException, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise unreadable(exc) from None
    try:
        table = pf.read()
        verify_table(path, table)
    # a damaged footer also surfaces as UnicodeDecodeError, KeyError or IndexError
    except (pa.ArrowException, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise unreadable(exc) from None
    try:
        meta = json.loads((table.schema.metadata or {})[METADATA_KEY])
    except (KeyError, ValueError, RecursionError):
        raise DatasetError(f"{safe(path)}: no LatBench prediction metadata") from None
    if not isinstance(meta, dict) or meta.get("kind") != _KIND:
        raise DatasetError(f"{safe(path)}: not a LatBench prediction file")
    missing = [c for c in PREDICTED_COLUMNS if c not in table.column_names]
    if missing:
        raise DatasetError(f"{safe(path)}: missing column(s) {', '.join(missing)}")
    try:
        raw = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise unreadable(exc) from None
    problem = _row_problem(raw)
    if problem:
        raise DatasetError(f"{safe(path)}: {problem}")
    df = _blank_invalid(raw)  # files written before invalid rows were NaN
    df.attrs = {"metadata": meta, "path": str(path)}
    return df


def _row_problem(df: pd.DataFrame) -> str | None:
    """What makes a prediction's rows unusable: not one row per architecture in
    ``arch_id`` order, flags that are not booleans, or a valid architecture without a
    positive, finite prediction inside its band (invalid rows are not looked at)."""
    import numpy as np

    from latbench.space import N_ARCHS

    ids = df["arch_id"]
    if (
        len(df) != N_ARCHS
        or ids.dtype.kind not in "iu"
        or (ids.to_numpy() != np.arange(N_ARCHS)).any()
    ):
        return f"rows are not the {N_ARCHS} architectures in arch_id order"
    for col in ("valid", "measured"):
        if df[col].dtype != bool:
            return f"column {col} is {df[col].dtype}, not bool"
    for col in _LATENCIES:
        if df[col].dtype.kind != "f":
            return f"column {col} is {df[col].dtype}, not numbers"
    v = df["valid"].to_numpy()
    pred, lo, hi = (df[c].to_numpy()[v] for c in _LATENCIES)
    if not (np.isfinite(pred) & (pred > 0) & (lo <= pred) & (pred <= hi)).all():
        return "a valid architecture has no positive, finite prediction inside its band"
    return None
