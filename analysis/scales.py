"""Axis-scale choice shared by the scatter figures."""

from __future__ import annotations

import numpy as np

__all__ = ["LOG_RATIO", "point_alpha", "wants_log"]

LOG_RATIO = 30.0
"""max/min ratio from which an axis is drawn in log scale (more than ~1.5 decades)."""


def wants_log(values: np.ndarray, ratio: float = LOG_RATIO) -> bool:
    """Whether positive ``values`` span enough orders of magnitude to call for a log axis."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.min() <= 0:
        return False
    return bool(v.max() / v.min() >= ratio)


def point_alpha(n: int) -> float:
    """Marker alpha so that ``n`` overlapping points still show where the mass is."""
    return float(np.clip(1500.0 / max(n, 1), 0.12, 0.8))
