"""Per-device throughput of a fleet run: a log line every ~10 s and a closing table."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

__all__ = ["DeviceStats", "FleetProgress"]

log = logging.getLogger("latbench.measure")


@dataclass
class DeviceStats:
    """What one device did in this run (driver clock for the span)."""

    graphs: int = 0
    failed: int = 0
    requeued: int = 0
    busy_s: float = 0.0
    """Wall time inside the device's timing calls (model load, warm-up, timed runs)."""
    inference_s: float = 0.0
    """Sum of the timed runs."""
    first: float | None = None
    last: float | None = None
    lost: str | None = None
    """Why the device dropped out of the run, if it did."""

    @property
    def span_s(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last else 0.0

    @property
    def rate(self) -> float:
        """Graphs per second over the device's span."""
        return self.graphs / self.span_s if self.span_s > 0 else 0.0


class FleetProgress:
    """Counts results per device; logs throughput periodically when enabled."""

    def __init__(self, enabled: bool = True, every_s: float = 10.0) -> None:
        from latbench.progress import progress_enabled

        self.enabled, self.every_s = progress_enabled(enabled), every_s
        self.devices: dict[str, DeviceStats] = {}
        self._last_log = time.perf_counter()

    def device(self, device_id: str) -> DeviceStats:
        return self.devices.setdefault(device_id, DeviceStats())

    def started(self, device_id: str) -> None:
        """The first call went to ``device_id`` now (its span starts here)."""
        stats = self.device(device_id)
        if stats.first is None:
            stats.first = time.perf_counter()

    def done(self, device_id: str, ok: bool, busy_s: float, inference_s: float) -> None:
        stats = self.device(device_id)
        stats.graphs += 1
        stats.failed += 0 if ok else 1
        stats.busy_s += busy_s
        stats.inference_s += inference_s
        stats.last = time.perf_counter()
        if self.enabled and stats.last - self._last_log > self.every_s:
            self._last_log = stats.last
            log.info("fleet: %s", self.line())

    def line(self) -> str:
        """``dev 12 (1.9/s)`` for every device, in one line."""
        return ", ".join(
            f"{d} {s.graphs} ({s.rate:.2f}/s)" for d, s in sorted(self.devices.items())
        )

    def overhead_per_graph_s(self, device_id: str) -> float:
        """Device idle time between calls per graph: span minus busy time, over graphs."""
        s = self.devices[device_id]
        return max(s.span_s - s.busy_s, 0.0) / s.graphs if s.graphs else 0.0

    def lines(self) -> list[str]:
        """A table: graphs, failures, re-queued, throughput, busy share, idle per graph."""
        out = []
        for d, s in sorted(self.devices.items()):
            busy = s.busy_s / s.span_s if s.span_s > 0 else 0.0
            out.append(
                f"  device {d}: {s.graphs} graphs ({s.failed} failed, {s.requeued} re-queued), "
                f"{s.rate:.2f} graphs/s, busy {busy * 100:.0f} %, "
                f"idle {self.overhead_per_graph_s(d) * 1e3:.1f} ms/graph"
                + (f"; lost ({s.lost})" if s.lost else "")
            )
        return out
