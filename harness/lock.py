"""One writer per dataset key: the lock of :mod:`latbench.lock` (imports take it too),
and :func:`one_writer`, which holds it around a measurement run."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from latbench.lock import KeyLocked, LockUnavailable, hold, holder, run_stem

__all__ = ["KeyLocked", "LockUnavailable", "hold", "holder", "one_writer", "run_stem"]

F = TypeVar("F", bound=Callable[..., Any])


def one_writer(fn: F) -> F:
    """Run ``fn(profile, plan, *, out_dir, key, fresh, ...)`` holding its key's lock.

    With ``fresh=True`` every file the key left in ``out_dir`` (dataset, raw timings,
    per-layer table, parts, passes) is removed first, under the lock.
    """

    @wraps(fn)
    def wrapper(profile: Any, plan: Any, *args: Any, **kwargs: Any) -> Any:
        from latbench.harness.keys import remove_key_files

        stem = run_stem(kwargs["key"], getattr(plan, "shard", (1, 1)))
        with hold(kwargs["out_dir"], stem):
            if kwargs.get("fresh"):
                remove_key_files(kwargs["out_dir"], stem)
            return fn(profile, plan, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
