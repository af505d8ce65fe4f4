"""Merge shard datasets of one device configuration into one validated dataset."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from latbench.dataset import DatasetError, read_dataset, write_dataset
from latbench.harness.host import same_host

__all__ = ["MergeError", "merge_datasets"]

# Metadata that must agree between shards: figures measured under a different
# profile, runtime, precision or protocol are not comparable.
_MUST_MATCH = ("device.profile", "device.class", "runtime.name", "precision", "protocol", "seed")


class MergeError(ValueError):
    """Shards that cannot be merged (different profiles/protocols, overlapping rows)."""


class HostMismatchWarning(UserWarning):
    """Shards were measured on hosts whose fingerprints differ."""


def _get(meta: dict, dotted: str) -> object:
    cur: object = meta
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def merge_datasets(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Combine shard files into ``out`` (atomic write) and return its path.

    Raises :class:`MergeError` when shards disagree on profile, runtime, precision,
    protocol or seed, or hold the same architecture twice with different figures;
    warns (:class:`HostMismatchWarning`) when host fingerprints differ.
    """
    if not paths:
        raise MergeError("nothing to merge: give at least one shard file")
    frames = [read_dataset(p) for p in paths]
    first = frames[0].attrs["metadata"]
    for p, df in zip(paths[1:], frames[1:], strict=True):
        meta = df.attrs["metadata"]
        for field in _MUST_MATCH:
            a, b = _get(first, field), _get(meta, field)
            if a != b:
                raise MergeError(
                    f"cannot merge {paths[0]} and {p}: {field} differs "
                    f"({json.dumps(a, default=str)} vs {json.dumps(b, default=str)})"
                )
        if not same_host(first.get("host", {}), meta.get("host", {})):
            warnings.warn(
                f"{p} was measured on a different host than {paths[0]} "
                f"({_get(meta, 'host.cpu_model')} vs {_get(first, 'host.cpu_model')}); "
                "merged figures may not be comparable",
                HostMismatchWarning,
                stacklevel=2,
            )
    allrows = pd.concat(frames, ignore_index=True)
    dup = allrows[allrows["arch_id"].duplicated(keep=False)]
    if not dup.empty:
        cols = ["arch_id", "status", "latency_ms"]
        conflicting = dup.groupby("arch_id")[cols[1:]].nunique(dropna=False).gt(1).any(axis=1)
        if conflicting.any():
            aid = int(conflicting[conflicting].index[0])
            raise MergeError(f"architecture {aid} appears in several shards with different results")
        allrows = allrows.drop_duplicates("arch_id")
    shards = sorted(str(_get(df.attrs["metadata"], "shard")) for df in frames)
    meta = {
        **first,
        "shard": "merged",
        "merged_from": [str(p) for p in paths],
        "merged_shards": shards,
        "hosts": [
            json.loads(h)
            for h in sorted(
                {json.dumps(df.attrs["metadata"].get("host", {}), sort_keys=True) for df in frames}
            )
        ],
    }
    try:
        path = write_dataset(allrows, out, meta)
    except DatasetError as exc:
        raise MergeError(f"merged frame is not a valid dataset: {exc}") from exc
    _merge_raw([Path(p) for p in paths], path, first.get("protocol", {}))
    return path


def _raw_path(dataset: Path) -> Path:
    return dataset.with_name(dataset.name.removesuffix(".parquet") + ".raw.h5")


def _merge_raw(paths: list[Path], out: Path, protocol: dict) -> Path | None:
    """Concatenate the shards' raw timings next to ``out`` when every shard has them."""
    raws = [_raw_path(p) for p in paths]
    present = [r for r in raws if r.exists()]
    if not present:
        return None
    if len(present) != len(raws):
        missing = ", ".join(str(r) for r in raws if not r.exists())
        warnings.warn(f"raw timings not merged: missing {missing}", stacklevel=3)
        return None
    from latbench.harness.raw import read_raw, write_raw

    keys, ids, rows, seen = [], [], [], set()
    for r in present:
        raw = read_raw(r)
        for key, aid, row in zip(raw["graph_key"], raw["arch_id"], raw["timings_ns"], strict=True):
            if key not in seen:
                seen.add(key)
                keys.append(str(key))
                ids.append(int(aid))
                rows.append(row[row >= 0])
    return write_raw(_raw_path(out), keys, ids, rows, protocol)
