"""Every numeric option of ``latbench-measure`` has one range, checked here.

A campaign with ``--runs 1000000000000`` or ``--threads 1000000`` would run for hours
and end with every row "failed" (or a runtime crash); ``--seed -1`` fails in every
runtime that seeds with 32 bits. :func:`check_ranges` refuses such values before
anything runs, with one line naming the option and its range, for the main command
and for ``build`` / ``run``. The same ranges apply to values read back from an
artifact manifest (:func:`check_value`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from latbench.space import N_ARCHS

__all__ = ["RANGES", "check_ranges", "check_shard", "check_value"]

RANGES: Mapping[str, tuple[int, int]] = {
    "runs": (1, 100_000),
    "group_size": (1, 100_000),
    "warmup": (0, 100_000),
    "threads": (1, 256),
    "seed": (0, 2**31 - 1),
    "limit": (1, N_ARCHS),
    "adapt": (3, N_ARCHS),  # harness.adapt.MIN_MEASURED: the fit needs three
    "build_workers": (1, 256),
    "passes": (1, 1_000),
    "flush_every": (1, 1_000_000),
    "shard_count": (1, N_ARCHS),
}
"""Option (argparse destination) -> inclusive ``(low, high)``: far beyond any real
campaign (R = 1,000 in the paper, 15,625 architectures), far short of a runaway."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_value(name: str, value: Any, what: str | None = None) -> int:
    """``value`` as an int inside ``RANGES[name]``; raises ``ValueError`` (one line) else.

    ``what`` names the value in the message (default: the option's flag).
    """
    lo, hi = RANGES[name]
    label = what or _flag(name)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        text = repr(value) if isinstance(value, int | float) else type(value).__name__
        raise ValueError(f"{label} must be a whole number in {lo}..{hi}, got {text[:40]}")
    if not lo <= value <= hi:
        shown = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
        raise ValueError(f"{label} must be in {lo}..{hi}, got {shown}")
    return value


def check_shard(shard: Any, what: str = "--shard") -> tuple[int, int]:
    """A shard ``(i, n)`` with ``1 <= i <= n <= 15625``; raises ``ValueError`` else.

    Takes ``"i/n"`` text or a two-item sequence (as a manifest stores it).
    """
    if isinstance(shard, str):
        parts = shard.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() and len(p.strip()) < 12 for p in parts):
            raise ValueError(f"{what} must look like 'i/n' (e.g. 2/4), got {shard[:40]!r}")
        shard = [int(p) for p in parts]
    if not isinstance(shard, list | tuple) or len(shard) != 2:
        raise ValueError(f"{what} must be two whole numbers i/n, got {type(shard).__name__}")
    n = check_value("shard_count", shard[1], f"{what} count n")
    i = check_value("shard_count", shard[0], f"{what} index i")
    if i > n:
        raise ValueError(f"{what} {i}/{n}: need 1 <= i <= n")
    return i, n


def check_ranges(args: argparse.Namespace) -> None:
    """Check every numeric option ``args`` has (and that is set) against :data:`RANGES`."""
    for name in RANGES:
        value = getattr(args, name, None)
        if value is not None:
            check_value(name, value)
    shard = getattr(args, "shard", None)
    if shard:
        check_shard(shard)
    runs, group = getattr(args, "runs", None), getattr(args, "group_size", None)
    passes = getattr(args, "passes", None)
    if runs is not None and passes is not None and passes > runs:
        raise ValueError(f"--passes {passes} is more than --runs {runs}")
    if runs is not None and group is not None and group > runs:
        raise ValueError(f"--group-size {group} is more than --runs {runs}")
