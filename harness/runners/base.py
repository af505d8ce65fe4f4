"""The interface every runtime implements: prepare an artifact, run it, close.

A runner is made from a :class:`~latbench.harness.profiles.Profile`, loads one model
artifact at a time in :meth:`Runner.prepare`, and is timed through
:meth:`Runner.time`. Local runners only implement :meth:`Runner.run_once`; a runner
that times on another device (over adb, on a board) overrides :meth:`Runner.time` and
returns the per-run timings that device measured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from latbench.harness.timing import Protocol, time_calls

if TYPE_CHECKING:
    from latbench.harness.profiles import Profile

__all__ = [
    "ARTIFACT_FORMATS",
    "INSTALL_HINT",
    "Runner",
    "RunnerUnavailable",
    "random_input",
]

ARTIFACT_FORMATS = (
    "keras",
    "tflite",
    "tflite-int8",
    "onnx",
    "edgetpu-tflite",
    "dlc",
    "trt-engine",
)
"""Artifact formats a runner may consume (the last three belong to edge runtimes)."""

INSTALL_HINT = "pip install 'latbench[harness]'"


class RunnerUnavailable(RuntimeError):
    """A runtime, device or artifact a runner needs is missing; the message says which."""


def random_input(shape: Sequence[int | None], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """A random array for one model input; unknown dimensions (batch) become 1.

    Floats are standard normal, integers uniform over the dtype's range (int8 models
    get int8 values), booleans fair coin flips.
    """
    dims = tuple(d if isinstance(d, int | np.integer) and d > 0 else 1 for d in shape)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(dims).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=dims, dtype=dt, endpoint=True)
    if dt.kind == "b":
        return rng.random(dims) < 0.5
    raise RunnerUnavailable(f"cannot make a random input of dtype {dt}")


class Runner(ABC):
    """One runtime on one device, configured by a profile.

    Subclasses set :attr:`name` and implement :attr:`version`, :meth:`prepare`,
    :meth:`run_once`, :meth:`info` and :meth:`check`. Use :func:`make_runner
    <latbench.harness.runners.make_runner>` rather than the constructor: it runs
    :meth:`check` first.
    """

    name: ClassVar[str]
    """Runtime name recorded in dataset metadata (``tensorflow``, ``litert``, ...)."""

    formats: ClassVar[tuple[str, ...]]
    """Artifact formats this runner can load."""

    def __init__(self, profile: Profile) -> None:
        if profile.artifact_format not in self.formats:
            raise RunnerUnavailable(
                f"profile {profile.name!r} asks runtime {self.name!r} for artifact format "
                f"{profile.artifact_format!r}; it loads {', '.join(self.formats)}"
            )
        self.profile = profile
        self.artifact: Path | None = None
        self.inputs: dict[str, np.ndarray] = {}
        """The prepared random inputs by input name (empty until :meth:`prepare`)."""

    @property
    def artifact_format(self) -> str:
        """The format of the artifacts this runner loads (from the profile)."""
        return self.profile.artifact_format

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the runtime package actually in use."""

    @abstractmethod
    def prepare(self, artifact: Path, seed: int) -> None:
        """Load ``artifact`` and make a fixed random input from ``seed`` for every model input.

        Replaces any previously prepared model. Raises :class:`RunnerUnavailable` when
        the runtime or device is missing.
        """

    @abstractmethod
    def run_once(self) -> None:
        """Run one complete inference on the prepared input, synchronously."""

    def timed_call(self) -> Callable[[], object]:
        """The zero-argument callable the timing loop calls once per run.

        Defaults to :meth:`run_once`; runners override it with a cheaper binding (e.g.
        a :func:`functools.partial` of the runtime's own run method) to keep the
        Python overhead per run minimal.
        """
        return self.run_once

    def time(self, protocol: Protocol) -> np.ndarray:
        """Run ``protocol.warmup`` untimed runs, then return R per-run times (int64 ns)."""
        return time_calls(self.timed_call(), protocol.runs, protocol.warmup)

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free on GC
        """Release the prepared model; the runner may be prepared again afterwards."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Runtime name, version, delegate/accelerator/providers, threads and settings."""

    @classmethod
    @abstractmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems preventing ``profile`` from running here, each with how to fix it.

        An empty list means the runtime imports and the device is reachable.
        """

    def _ensure_available(self) -> None:
        """Raise :class:`RunnerUnavailable` listing :meth:`check`'s problems, if any."""
        problems = self.check(self.profile)
        if problems:
            raise RunnerUnavailable(f"profile {self.profile.name!r}: " + "; ".join(problems))

    def _require_prepared(self) -> None:
        if self.artifact is None:
            raise RuntimeError(f"{type(self).__name__}.prepare() has not been called")

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
