"""The fleet's campaign state file (``fleet.json`` beside the parts): read and checked.

It records each run's number, start, devices and anchor timings; the run numbers
label the rows (``fleet_run``) and the anchors give each device's ratio.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from latbench.files import FileTooLarge, NotRegularFile, read_capped
from latbench.harness.fleet import FleetError

__all__ = ["read_state"]

_STATE_BYTES = 16 << 20
"""Largest fleet state file read (a campaign's is a few kB per run)."""


def read_state(path: Path) -> dict[str, Any]:
    """The campaign's fleet state (runs, devices), checked; :class:`FleetError` in one line.

    The run numbers in it number the rows of the parts folder, so a damaged file is
    refused rather than ignored: ignoring it would number the next run 1 again.
    """
    from latbench.keys import safe

    def bad(why: str) -> FleetError:
        return FleetError(
            f"fleet state {safe(path)}: {why}; restore it, or pass --fresh to start the "
            "campaign again"
        )

    try:
        loaded = json.loads(read_capped(path, _STATE_BYTES))
    except (FileTooLarge, NotRegularFile) as exc:
        raise bad(str(exc)) from None
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(loaded, dict):
        raise bad("not a JSON object")
    runs, devices = loaded.get("runs", {}), loaded.get("devices", {})
    if not isinstance(runs, dict) or not isinstance(devices, dict):
        raise bad("'runs' and 'devices' must be objects")
    for run, info in runs.items():
        if not (run.isascii() and run.isdigit() and 0 < int(run) < 10**9):
            raise bad(f"run {run[:20]!r} is not a run number")
        if not isinstance(info, dict) or not isinstance(info.get("devices", {}), dict):
            raise bad(f"run {run} is not an object with a 'devices' object")
        for dev, v in info.get("devices", {}).items():
            if not isinstance(v, dict) or not _anchors_ok(v.get("anchors_ms", {})):
                raise bad(f"run {run}, device {dev[:40]!r}: anchors are not positive times")
            spread = v.get("anchor_spread")
            if spread is not None and not (_number(spread) and 0 <= spread < 1e3):
                raise bad(f"run {run}, device {dev[:40]!r}: anchor spread {spread!r:.20}")
    if not all(isinstance(v, dict) for v in devices.values()):
        raise bad("a device entry is not an object")
    return {"runs": dict(runs), "devices": dict(devices)}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _anchors_ok(anchors: Any) -> bool:
    return isinstance(anchors, dict) and all(
        isinstance(k, str) and _number(v) and 0 < v < 1e7 for k, v in anchors.items()
    )
