"""Anchor graphs: the same few networks timed on every device in every run of a fleet.

Several physical devices in one dataset add a systematic error: two boards of one
kind differ (binning, thermals, firmware, background load), and one board differs
from itself between two runs of a resumed campaign. Every device therefore times the
same :data:`ANCHOR_ARCHS` (small to large networks) each time it joins a run, before
its share of the campaign: one *session* per (run, device). A session's *ratio* is the
median over anchors of its latency divided by the anchor's *reference*, the low median
over every session of the campaign (all runs); 1.0 is the typical device, 1.3 one
that was 30 % slower in that run. The low median (the faster of the two middle values
when their number is even) is the reference because load and throttling only ever
slow a device down: of two devices that disagree, the slower one is off. A session
further from 1 than the noise floor is warned about (``--max-device-spread``: an
error), and so is a device whose ratio moved between runs by more than the floor.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latbench.harness.plan import GraphWork, make_plan
from latbench.space import Arch

__all__ = [
    "ANCHOR_ARCHS",
    "NOISE_FLOOR",
    "SpreadCheck",
    "anchor_work",
    "check_spread",
    "moved_ratios",
    "relative_spread",
    "row_ratios",
]

ANCHOR_ARCHS: tuple[str, ...] = (
    "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
)
"""Four networks from 12 to 220 MFLOPs (two 1x1 convolutions per cell to all 3x3)."""

NOISE_FLOOR = 0.05
"""Smallest relative deviation taken as a real device difference. On the VM behind the
bundled data, graphs re-timed back to back differ by 1.5 % CV (p90 3.4 %) and a later
re-time by 3.5 % (median, docs/datasets.md), so 5 % is about the p90 of the protocol's
own repeatability; noisier anchor timings raise it (:func:`check_spread`)."""

PSEUDO_GROUPS = 5
"""With one group of runs (G = 1) an anchor's spread is taken over this many
consecutive slices of its runs, as if they were groups."""


def anchor_work(archs: Sequence[str] = ANCHOR_ARCHS) -> tuple[GraphWork, ...]:
    """The anchor graphs (default :data:`ANCHOR_ARCHS`) as plan entries, one per network."""
    return make_plan([Arch.from_str(s) for s in archs]).work


def relative_spread(raw_ns: Sequence[int] | np.ndarray, group_size: int) -> float:
    """Relative spread of one timing from its own runs: std / mean of the group means.

    With two or more groups of ``group_size`` runs these are the protocol's groups; with
    one group (G = 1, e.g. every ``snpe-*`` profile) the runs are cut into
    :data:`PSEUDO_GROUPS` consecutive slices instead. NaN with fewer than 2 runs.
    """
    from latbench.harness.timing import two_stage_filter

    x = np.asarray(raw_ns, np.float64)
    g = group_size if group_size >= 1 and x.size // group_size >= 2 else x.size // PSEUDO_GROUPS
    if g < 1 or x.size < 2:
        return float("nan")
    x = x[: x.size - x.size % g]
    lat, std = two_stage_filter(x, g)
    return std / lat if lat > 0 else float("nan")


@dataclass(frozen=True)
class SpreadCheck:
    """Each session's ratio to the anchors' reference, and what is out of line."""

    ratios: dict[Any, float]
    """Session label (``(run, device)`` in a fleet) -> ratio to the reference."""
    noise_floor: float
    outliers: dict[Any, float]
    """Sessions whose ratio is further from 1 than the noise floor (or the limit)."""
    limit: float | None
    reference_ms: dict[str, float]
    """Anchor graph key -> the low median of its latency over all sessions."""

    @property
    def spread(self) -> float:
        """Largest ``|ratio - 1|`` over sessions (0 with one)."""
        return max((abs(r - 1.0) for r in self.ratios.values()), default=0.0)

    def messages(self) -> list[str]:
        """One line per outlier, naming the session, its ratio and the bound."""
        bound = self.limit if self.limit is not None else self.noise_floor
        what = "--max-device-spread" if self.limit is not None else "the noise floor"
        return [
            f"{_name(s)} runs the anchor graphs at {r:.3f} x the fleet reference "
            f"({abs(r - 1) * 100:.1f} % off, beyond {what} of {bound * 100:.1f} %)"
            for s, r in sorted(self.outliers.items(), key=lambda kv: str(kv[0]))
        ]


def _name(session: Hashable) -> str:
    if isinstance(session, tuple) and len(session) == 2:
        return f"device {session[1]} (run {session[0]})"
    return f"device {session}"


def check_spread(
    anchors_ms: Mapping[Hashable, Mapping[str, float]],
    rel_spread: Mapping[Hashable, float] | None = None,
    *,
    limit: float | None = None,
) -> SpreadCheck:
    """Ratios of each session to the anchors' reference over the anchors all of them timed.

    ``anchors_ms`` maps a session (a device, or ``(run, device)``) -> anchor graph key ->
    latency. ``rel_spread`` (session -> median relative spread of its anchors, see
    :func:`relative_spread`) raises the noise floor to twice the typical spread when
    the protocol is noisier than :data:`NOISE_FLOOR`. Outliers are the sessions beyond
    the noise floor, or beyond ``limit`` when given.
    """
    sessions = {s: a for s, a in anchors_ms.items() if a}
    keys = sorted(set.intersection(*(set(a) for a in sessions.values()))) if sessions else []
    ratios: dict[Any, float] = {}
    reference: dict[str, float] = {}
    if keys:
        reference = {k: statistics.median_low(sessions[s][k] for s in sessions) for k in keys}
        for s, a in sessions.items():
            ratios[s] = statistics.median(a[k] / reference[k] for k in keys)
    spreads = [s for s in (rel_spread or {}).values() if s == s]  # drop NaN
    floor = max(NOISE_FLOOR, 2 * statistics.median(spreads)) if spreads else NOISE_FLOOR
    bound = limit if limit is not None else floor
    outliers = {s: r for s, r in ratios.items() if abs(r - 1.0) > bound}
    return SpreadCheck(ratios, floor, outliers, limit, reference)


def moved_ratios(ratios: Mapping[tuple[int, str], float], floor: float) -> list[str]:
    """One line per device whose ratio moved by more than ``floor`` from its previous run.

    Ratios are taken relative to the low median of their run when the run has two or
    more sessions, so a change that hits the whole fleet alike (the campaign resumed on a
    hotter day, on a busier shared host) is not a device moving; that shows as the run's
    sessions leaving the noise floor instead.
    """
    per_run: dict[int, list[float]] = {}
    for (run, _), r in ratios.items():
        per_run.setdefault(run, []).append(r)
    level = {run: statistics.median_low(rs) if len(rs) > 1 else 1.0 for run, rs in per_run.items()}
    by_device: dict[str, list[tuple[int, float]]] = {}
    for (run, dev), r in ratios.items():
        by_device.setdefault(dev, []).append((run, r / level[run]))
    out = []
    for dev, seq in sorted(by_device.items()):
        seq.sort()
        for (r0, a), (r1, b) in zip(seq, seq[1:], strict=False):
            if abs(b / a - 1.0) > floor:
                out.append(
                    f"device {dev}: anchor ratio to its run's fleet moved from {a:.3f} (run "
                    f"{r0}) to {b:.3f} (run {r1}), {abs(b / a - 1) * 100:.1f} % beyond the "
                    f"noise floor of {floor * 100:.1f} %; its rows of the two runs are not "
                    "comparable as they are"
                )
    return out


def row_ratios(df: Any) -> Any:
    """Per row of a fleet dataset, the anchor ratio of the device in the run that timed it.

    ``df`` is a dataset frame with ``device_id`` and ``fleet_run`` columns and the
    ``fleet`` metadata (``read_dataset`` keeps it in ``df.attrs``). NaN for rows no
    device timed. ``df.latency_ms / row_ratios(df)`` puts every row on the reference.
    """
    import pandas as pd

    runs = df.attrs.get("metadata", {}).get("fleet", {}).get("runs", {})
    lookup = {
        (int(run), dev): v.get("ratio")
        for run, info in runs.items()
        for dev, v in info.get("devices", {}).items()
    }
    if "device_id" not in df or "fleet_run" not in df:
        return pd.Series(float("nan"), index=df.index)
    pairs = zip(df["fleet_run"], df["device_id"], strict=True)
    vals = [lookup.get((int(r), d)) if pd.notna(r) and pd.notna(d) else None for r, d in pairs]
    return pd.Series([float("nan") if v is None else float(v) for v in vals], index=df.index)
