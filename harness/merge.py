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
from latbench.lock import hold_files

__all__ = ["MergeError", "merge_datasets"]

# Metadata that must agree between shards: figures measured under a different
# profile, runtime, precision or protocol are not comparable.
_MUST_MATCH = (
    "device.profile",
    "device.class",
    "runtime.name",
    "runtime.version",
    "runtime.threads",
    "precision",
    "protocol",
    "seed",
    "selection_digest",
    "artifact_format",
    "passes",
)


class MergeError(ValueError):
    """Shards that cannot be merged (different profiles/protocols, overlapping rows)."""


class HostMismatchWarning(UserWarning):
    """Shards were measured on hosts whose fingerprints differ."""


def _get(meta: dict, dotted: str) -> object:
    cur: object = meta
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _shard_of(path: object, meta: dict) -> tuple[int, int] | None:
    text = meta.get("shard")
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        return None
    return (i, n) if 1 <= i <= n else None


def _check_shards(paths: Sequence[object], metas: list[dict], allow_partial: bool) -> list[str]:
    """The shards present as ``"i/n"``; raises unless they are exactly 1..n, once each."""
    shards = [_shard_of(p, m) for p, m in zip(paths, metas, strict=True)]
    problems = []
    unknown = [str(p) for p, s in zip(paths, shards, strict=True) if s is None]
    if unknown:
        problems.append(f"no shard number in {', '.join(unknown)}")
    known = [s for s in shards if s is not None]
    counts = sorted({n for _, n in known})
    if len(counts) > 1:
        problems.append(f"shards of different splits ({', '.join(f'of {n}' for n in counts)})")
    seen: dict[tuple[int, int], object] = {}
    for p, s in zip(paths, shards, strict=True):
        if s is None:
            continue
        if s in seen:
            problems.append(f"shard {s[0]}/{s[1]} given twice ({seen[s]} and {p})")
        seen.setdefault(s, p)
    if len(counts) == 1:
        n = counts[0]
        missing = [f"{i}/{n}" for i in range(1, n + 1) if (i, n) not in seen]
        if missing:
            problems.append(f"shard(s) {', '.join(missing)} missing")
    if problems and not allow_partial:
        raise MergeError(
            "cannot merge: " + "; ".join(problems) + " (pass --allow-partial / allow_partial=True"
            " to merge what is there; the metadata then lists the shards present)"
        )
    return sorted(f"{s[0]}/{s[1]}" for s in set(known))


def merge_datasets(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    allow_partial: bool = False,
) -> Path:
    """Combine shard files into ``out`` (atomic write) and return its path.

    Raises :class:`MergeError` when shards disagree on profile, runtime (name,
    version, threads), precision, protocol, seed or selection digest, hold the same
    architecture twice with different figures, or do not form a whole split: every
    shard ``i/n`` of one ``n`` exactly once. ``allow_partial`` merges an incomplete or
    repeated set anyway and records ``partial: true`` and the shards present. Warns
    (:class:`HostMismatchWarning`) when host fingerprints differ. Holds the write lock
    of ``out``'s dataset throughout (:func:`latbench.lock.hold_files`): raises
    :class:`latbench.lock.KeyLocked`, having read and written nothing, when another
    process holds it.
    """
    if not paths:
        raise MergeError("nothing to merge: give at least one shard file")
    # the dataset and its raw timings share out's lock, as a measurement run's do
    with hold_files([out], "written"):
        return _merge(paths, Path(out), allow_partial)


def _merge(paths: Sequence[str | os.PathLike[str]], out: Path, allow_partial: bool) -> Path:
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
                stacklevel=3,  # merge_datasets' caller
            )
    present = _check_shards(paths, [df.attrs["metadata"] for df in frames], allow_partial)
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
        "shards_present": present,
        "partial": bool(allow_partial and _is_partial(present)),
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


def _is_partial(present: list[str]) -> bool:
    counts = {s.split("/")[1] for s in present}
    if len(counts) != 1:
        return True
    n = int(counts.pop())
    return present != sorted(f"{i}/{n}" for i in range(1, n + 1))


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
        warnings.warn(f"raw timings not merged: missing {missing}", stacklevel=4)
        return None
    from latbench.raw import read_raw, write_raw

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
