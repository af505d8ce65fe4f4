"""Checked inputs of the NAS tools: one number per model, from arrays or pandas columns.

pandas is not imported here: a frame or series is recognised by its attributes, so
the tools stay numpy-only for callers who pass arrays.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from latbench.space import N_ARCHS


def per_model(name: str, values: Any) -> np.ndarray:
    """``values`` as a flat float array, or one line saying what was passed instead."""
    if hasattr(values, "columns"):  # a DataFrame: which column is meant is a guess
        raise ValueError(
            f"{name}: pass one column (an array or Series, e.g. df['latency_ms']), not a"
            f" table of {len(values.columns)} column(s)"
        )
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers, one per model") from None


def same_order(**named: Any) -> None:
    """Refuse pandas Series whose indexes differ: arrays pair models by position, so
    two Series in different orders (one by ``arch_id``, one by ``nb201_index``, or one a
    subset) would pair one model's accuracy with another's latency."""
    indexed = [
        (n, v.index) for n, v in named.items() if hasattr(v, "index") and hasattr(v, "dtype")
    ]
    for (n0, i0), (n1, i1) in zip(indexed, indexed[1:], strict=False):
        if not i0.equals(i1):
            raise ValueError(
                f"{n0} and {n1} are Series with different indexes ({_describe(i0)} vs"
                f" {_describe(i1)}): align them first (e.g. b.reindex(a.index))"
            )


def per_arch(name: str, values: Any) -> np.ndarray:
    """``values`` as 15,625 floats in ``arch_id`` order; a Series must be indexed by
    ``arch_id`` 0..15,624 in order (a frame loaded with ``index="nb201"`` is not)."""
    index = getattr(values, "index", None) if hasattr(values, "dtype") else None
    if index is not None:
        if index.name not in (None, "arch_id"):
            raise ValueError(
                f"{name} is indexed by {index.name!r}; this needs arch_id order (load the"
                f" dataset without index=..., or sort by arch_id and reset the index)"
            )
        if len(index) != N_ARCHS or not np.array_equal(index.to_numpy(), np.arange(N_ARCHS)):
            raise ValueError(f"{name} must be indexed by arch_id 0..{N_ARCHS - 1} in order")
    a = per_model(name, values)
    if a.shape != (N_ARCHS,):
        raise ValueError(f"{name} must hold one value per arch_id ({N_ARCHS}), got {a.size}")
    return a


def count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum`` (numpy ints too; not bool, not float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def real(name: str, value: Any) -> float:
    """``value`` as a float (numpy floats and ints too; not bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _describe(index: Any) -> str:
    return f"{len(index)} rows" + (f" by {index.name}" if index.name else "")
