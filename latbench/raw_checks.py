"""Value checks of raw timings, run on every read whatever the file's digest says.

The digest (:data:`~latbench.raw.DIGEST_ATTR`) carries no secret, so anyone
who rebuilds a file recomputes it: it proves a file undamaged, never sound. These
checks bound what a sound file holds: ids in the space, timings that are positive and
at most :data:`MAX_TIMING_NS` (or the ``-1`` padding), printable graph keys, and, next
to a dataset, only graphs that dataset says it timed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_TIMING_NS", "check_raw_values", "raw_dataset_problems"]

MAX_TIMING_NS = 10**13
"""Longest plausible single run (~2.8 hours), the dataset's latency bound in ns."""
_FILL = -1
_MAX_KEY = 256


def check_raw_values(path: str | os.PathLike[str], raw: Mapping[str, Any]) -> None:
    """Raise :class:`~latbench.raw.RawFormatError` naming the first bad value.

    ``raw`` is :func:`~latbench.raw.read_raw`'s dict, whose ranks and equal row
    counts :func:`~latbench.raw.check_layout` already checked: at most 15,625
    rows per pass recorded, ``arch_id`` in 0..15624, each row at least one timing
    in 1..:data:`MAX_TIMING_NS` ns with ``-1`` padding only at its end, and graph keys of
    printable characters, at most 256 long.
    """
    from latbench.raw import RawFormatError
    from latbench.space import N_ARCHS
    from latbench.terminal import safe

    keys, ids, t = raw["graph_key"], np.asarray(raw["arch_id"]), np.asarray(raw["timings_ns"])
    where = safe(path)
    passes = raw.get("attrs", {}).get("passes", 1)
    limit = N_ARCHS * (passes if isinstance(passes, int) and 1 <= passes <= 64 else 1)
    if len(ids) > limit:
        raise RawFormatError(f"{where}: {len(ids)} raw rows, more than {limit}")
    if len(ids) and (ids.min() < 0 or ids.max() >= N_ARCHS):
        bad = ids[(ids < 0) | (ids >= N_ARCHS)][0]
        raise RawFormatError(f"{where}: raw arch_id {bad} is outside 0..{N_ARCHS - 1}")
    if t.size:
        pad = t == _FILL
        out = ~pad & ((t <= 0) | (t > MAX_TIMING_NS))
        if out.any():
            r, c = np.argwhere(out)[0]
            raise RawFormatError(
                f"{where}: raw timing {t[r, c]} ns (row {r}) is outside 1..{MAX_TIMING_NS} ns"
            )
        # padding only trails a row, and no row is padding only
        if (pad[:, :-1] & ~pad[:, 1:]).any() or (t.shape[1] and pad[:, 0].any()):
            r = int(np.flatnonzero((pad[:, :-1] & ~pad[:, 1:]).any(axis=1) | pad[:, 0])[0])
            raise RawFormatError(f"{where}: raw row {r} has padding before or instead of timings")
    elif len(ids):
        raise RawFormatError(f"{where}: raw rows hold no timings")
    for i, k in enumerate(keys):
        if not isinstance(k, str) or len(k) > _MAX_KEY or not k.isprintable():
            raise RawFormatError(
                f"{where}: raw graph_key of row {i} ({safe(repr(k), 80)}) is not a printable"
                f" string of at most {_MAX_KEY} characters"
            )


def raw_dataset_problems(raw: Mapping[str, Any], dataset: Any) -> list[str]:
    """What in a raw file its dataset (a :func:`~latbench.dataset.read_dataset` frame)
    contradicts: raw rows timing an ``arch_id`` no dataset row names as its
    ``timed_arch_id``, or under another graph key than that row's (a run killed between
    the two writes leaves such rows; rerunning the command rewrites both)."""
    from latbench.terminal import safe

    timed = dataset["timed_arch_id"].dropna().astype("int64").to_numpy()
    ids = np.asarray(raw["arch_id"], dtype=np.int64)
    extra = np.setdiff1d(ids, timed)
    problems = []
    if extra.size:
        shown = ", ".join(str(x) for x in extra[:5]) + (", ..." if extra.size > 5 else "")
        problems.append(
            f"{extra.size} raw arch_id(s) the dataset does not list as timed ({shown});"
            " rerun the same latbench-measure command to rewrite both"
        )
    by_id = dict(zip(dataset["arch_id"].to_numpy(), dataset["graph_key"].to_numpy(), strict=True))
    for aid, key in zip(ids, raw["graph_key"], strict=True):
        want = by_id.get(int(aid))
        if want is not None and want != key:
            problems.append(
                f"raw graph_key {safe(repr(key), 60)} of arch_id {aid} differs from the"
                f" dataset's {safe(repr(want), 60)}"
            )
            break
    return problems


def sibling(path: str | os.PathLike[str], suffix: str) -> Path:
    """``x.raw.h5`` <-> ``x.parquet``: the other file of the same key."""
    path = Path(path)
    name = path.name
    stem = name[: -len(".raw.h5")] if name.endswith(".raw.h5") else name[: -len(".parquet")]
    return path.with_name(stem + suffix)
