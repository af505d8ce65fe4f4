"""Runner registry: profile ``runtime`` name -> :class:`Runner` class, imported lazily.

Runtimes are heavy imports (TensorFlow takes seconds), so the registry maps names to
``"module:Class"`` strings and imports a runner only when a profile asks for it. An
edge runtime slots in by adding an entry here.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from latbench.harness.runners.base import (
    ARTIFACT_FORMATS,
    Runner,
    RunnerUnavailable,
    random_input,
)

if TYPE_CHECKING:
    from latbench.harness.profiles import Profile

__all__ = [
    "ARTIFACT_FORMATS",
    "RUNTIMES",
    "Runner",
    "RunnerUnavailable",
    "make_runner",
    "random_input",
    "runner_class",
]

RUNTIMES: dict[str, str] = {
    "tensorflow": "latbench.harness.runners.tf_runner:TFRunner",
    "litert": "latbench.harness.runners.litert:LiteRTRunner",
    "onnxruntime": "latbench.harness.runners.onnxrt:ONNXRuntimeRunner",
    "edgetpu": "latbench.harness.runners.edgetpu:EdgeTPURunner",
    "tensorrt": "latbench.harness.runners.tensorrt:TensorRTRunner",
    "snpe": "latbench.harness.runners.snpe:SNPERunner",
    "android-litert": "latbench.harness.runners.android_litert:AndroidLiteRTRunner",
}
"""Runtime name (a profile's ``runtime``) -> ``"module:Class"`` of its runner."""


def runner_class(runtime: str) -> type[Runner]:
    """The runner class for ``runtime``; :class:`KeyError` names close matches."""
    try:
        target = RUNTIMES[runtime]
    except KeyError:
        close = difflib.get_close_matches(runtime, RUNTIMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown runtime {runtime!r}{hint} (known: {', '.join(sorted(RUNTIMES))})"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_runner(profile: Profile) -> Runner:
    """A runner for ``profile``, after checking that its runtime and device are here.

    Raises :class:`RunnerUnavailable` with every problem :meth:`Runner.check` found.
    """
    cls = runner_class(profile.runtime)
    problems = cls.check(profile)
    if problems:
        raise RunnerUnavailable(f"profile {profile.name!r}: " + "; ".join(problems))
    return cls(profile)
