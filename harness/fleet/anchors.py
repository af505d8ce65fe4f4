"""Anchor graphs: the same few networks timed first on every device of a fleet.

Several physical devices in one dataset add a systematic error: two boards of one
kind differ (binning, thermals, firmware, background load). Every device therefore
times the same :data:`ANCHOR_ARCHS` (small to large networks) before its share of the
campaign. A device's *ratio* is the median over anchors of its latency divided by the
fleet median for that anchor; 1.0 is the typical device, 1.3 one that is 30 % slower.
A ratio further from 1 than the protocol's noise floor is warned about; with
``--max-device-spread`` it is an error.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from latbench.harness.plan import GraphWork, make_plan
from latbench.space import Arch

__all__ = ["ANCHOR_ARCHS", "NOISE_FLOOR", "SpreadCheck", "anchor_work", "check_spread"]

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


def anchor_work(archs: Sequence[str] = ANCHOR_ARCHS) -> tuple[GraphWork, ...]:
    """The anchor graphs (default :data:`ANCHOR_ARCHS`) as plan entries, one per network."""
    return make_plan([Arch.from_str(s) for s in archs]).work


@dataclass(frozen=True)
class SpreadCheck:
    """Each device's ratio to the fleet median on the anchors, and what is out of line."""

    ratios: dict[str, float]
    noise_floor: float
    outliers: dict[str, float]
    """Devices whose ratio is further from 1 than the noise floor (or the limit)."""
    limit: float | None

    @property
    def spread(self) -> float:
        """Largest ``|ratio - 1|`` over devices (0 with one device)."""
        return max((abs(r - 1.0) for r in self.ratios.values()), default=0.0)

    def messages(self) -> list[str]:
        """One line per outlier, naming the device, its ratio and the bound."""
        bound = self.limit if self.limit is not None else self.noise_floor
        what = "--max-device-spread" if self.limit is not None else "the noise floor"
        return [
            f"device {dev} runs the anchor graphs at {r:.3f} x the fleet median "
            f"({abs(r - 1) * 100:.1f} % off, beyond {what} of {bound * 100:.1f} %)"
            for dev, r in sorted(self.outliers.items())
        ]


def check_spread(
    anchors_ms: Mapping[str, Mapping[str, float]],
    rel_spread: Mapping[str, float] | None = None,
    *,
    limit: float | None = None,
) -> SpreadCheck:
    """Ratios of each device to the fleet median over the anchors they all timed.

    ``anchors_ms`` maps device id -> anchor graph key -> latency. ``rel_spread`` (device
    -> median ``latency_std_ms / latency_ms`` of its anchors) raises the noise floor to
    twice the typical spread when the protocol is noisier than :data:`NOISE_FLOOR`.
    Outliers are the devices beyond the noise floor, or beyond ``limit`` when given.
    """
    devices = {d: a for d, a in anchors_ms.items() if a}
    keys = sorted(set.intersection(*(set(a) for a in devices.values()))) if devices else []
    ratios: dict[str, float] = {}
    if keys:
        medians = {k: statistics.median(devices[d][k] for d in devices) for k in keys}
        for d, a in devices.items():
            ratios[d] = statistics.median(a[k] / medians[k] for k in keys)
    spreads = [s for s in (rel_spread or {}).values() if s == s]  # drop NaN
    floor = max(NOISE_FLOOR, 2 * statistics.median(spreads)) if spreads else NOISE_FLOOR
    bound = limit if limit is not None else floor
    outliers = {d: r for d, r in ratios.items() if abs(r - 1.0) > bound}
    return SpreadCheck(ratios, floor, outliers, limit)
