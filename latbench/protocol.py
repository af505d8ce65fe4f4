"""Measurement protocol and the two-stage quartile filter (docs/design.md §5, paper Section 6).

A model is run ``warmup`` times untimed, then ``R = G x g`` times, each run timed
alone with :func:`time.perf_counter_ns` while garbage collection is off. Within each
of the G groups of g consecutive runs the values between the group's first and third
quartile (numpy linear percentiles, bounds inclusive) are averaged; the same filter
over the G group means gives the reported latency, and the population standard
deviation of the group means it kept gives ``latency_std_ms``. With G = 1 the second
stage is the identity.

Only two distinct values can leave the quartile window empty (linear percentiles of
``[a, b]``, ``a < b``, are ``a + (b - a) / 4`` and ``a + 3 (b - a) / 4``); both are then
kept, so the filter is their mean (= their median).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FILTERS", "Protocol", "quartile_mask", "quartile_mean", "two_stage_filter"]

FILTERS = ("quartile2",)
"""Names of the filters :class:`Protocol` accepts (``quartile2``: the paper's two-stage filter)."""


@dataclass(frozen=True)
class Protocol:
    """How one model is timed: ``runs`` = R timed runs in groups of ``group_size`` = g.

    Raises :class:`ValueError` unless R >= 1, g >= 1, R % g == 0 and ``warmup`` >= 0.
    """

    runs: int = 1000
    group_size: int = 10
    warmup: int = 10
    filter: str = "quartile2"

    def __post_init__(self) -> None:
        for field_ in ("runs", "group_size", "warmup"):
            value = getattr(self, field_)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"protocol {field_} must be an integer, got {value!r}")
        if self.runs < 1 or self.group_size < 1:
            raise ValueError(
                f"protocol needs runs >= 1 and group_size >= 1, got runs={self.runs}, "
                f"group_size={self.group_size}"
            )
        if self.runs % self.group_size:
            raise ValueError(
                f"runs (R={self.runs}) must be a multiple of group_size (g={self.group_size}): "
                f"R = G x g"
            )
        if self.warmup < 0:
            raise ValueError(f"protocol warmup must be >= 0, got {self.warmup}")
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}; known: {', '.join(FILTERS)}")

    @property
    def groups(self) -> int:
        """G = R // g."""
        return self.runs // self.group_size

    def to_metadata(self) -> dict[str, Any]:
        """The protocol as recorded in dataset metadata (R, G, g, warm-up, filter)."""
        return {
            "runs": int(self.runs),
            "groups": int(self.groups),
            "group_size": int(self.group_size),
            "warmup": int(self.warmup),
            "filter": self.filter,
        }


def quartile_mask(x: np.ndarray) -> np.ndarray:
    """Boolean mask of ``q25 <= x <= q75`` along the last axis (all True where none is)."""
    x = np.asarray(x, dtype=np.float64)
    q25, q75 = np.percentile(x, [25.0, 75.0], axis=-1, keepdims=True)
    mask = (x >= q25) & (x <= q75)
    empty = ~mask.any(axis=-1, keepdims=True)
    return mask | empty


def _check_values(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: values must be finite")
    return x


def quartile_mean(x: np.ndarray) -> float:
    """Mean of the values of ``x`` with ``q25 <= x <= q75`` (1-D, finite, non-empty)."""
    x = _check_values(x, "quartile_mean")
    if x.ndim != 1:
        raise ValueError(f"quartile_mean expects a 1-D array, got shape {x.shape}")
    return float(x[quartile_mask(x)].mean())


def two_stage_filter(times_ms: np.ndarray, group_size: int) -> tuple[float, float]:
    """Latency and spread of ``times_ms`` (R values in run order) under the quartile filter.

    Returns ``(latency, std)``: the quartile mean of the group quartile means, and the
    population standard deviation (ddof=0) of the group means the second stage kept
    (``0.0`` when it kept one, e.g. with G = 1). Units are those of ``times_ms``.
    """
    x = _check_values(times_ms, "two_stage_filter")
    if x.ndim != 1:
        raise ValueError(f"two_stage_filter expects a 1-D array, got shape {x.shape}")
    if group_size < 1 or x.size % group_size:
        raise ValueError(
            f"{x.size} timings cannot be split into groups of {group_size} (R must be G x g)"
        )
    groups = x.reshape(-1, group_size)
    mask = quartile_mask(groups)
    means = np.where(mask, groups, 0.0).sum(axis=1) / mask.sum(axis=1)
    if means.size == 1:
        return float(means[0]), 0.0
    kept = means[quartile_mask(means)]
    return float(kept.mean()), float(kept.std())
