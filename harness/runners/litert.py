"""LiteRT (TensorFlow Lite) interpreter runner for fp32 and int8 ``.tflite`` models.

The interpreter comes from ``ai_edge_litert`` when installed, else ``tflite_runtime``,
else ``tf.lite``. XNNPACK, LiteRT's default CPU delegate, stays on unless the profile
sets ``[options] xnnpack = false``; :meth:`LiteRTRunner.info` records whether it took
any nodes of the prepared model.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.profiles import Profile
from latbench.harness.runners.base import INSTALL_HINT, Runner, RunnerUnavailable, random_input

__all__ = ["InterpreterRunner", "LiteRTRunner", "load_interpreter_module"]

_SOURCES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def load_interpreter_module() -> tuple[Any, str, str]:
    """``(module, package, version)`` of the first LiteRT interpreter that imports.

    Raises :class:`RunnerUnavailable` when none does.
    """
    import importlib

    for module_name, package in _SOURCES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if package == "tensorflow":
            # The importable tensorflow.lite package is not the public tf.lite API.
            import tensorflow as tf

            return tf.lite, package, tf.__version__
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = getattr(module, "__version__", "unknown")
        return module, package, version
    raise RunnerUnavailable(
        f"no LiteRT interpreter is installed (tried ai_edge_litert, tflite_runtime, "
        f"tensorflow): {INSTALL_HINT}"
    )


def feed_random_inputs(interp: Any, seed: int) -> dict[str, np.ndarray]:
    """Allocate tensors, set seeded random inputs of the model's dtypes, invoke once.

    Shared by every TFLite-interpreter runner; returns the inputs by tensor name.
    """
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    inputs = {}
    for detail in interp.get_input_details():
        value = random_input(detail["shape"], detail["dtype"], rng)
        interp.set_tensor(detail["index"], value)
        inputs[detail["name"]] = value
    interp.invoke()  # the first invoke allocates delegate state: keep it out of timing
    return inputs


class InterpreterRunner(Runner):
    """Shared part of the runners that time a LiteRT ``Interpreter`` (CPU, Edge TPU)."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._interp: Any = None
        self._package = ""
        self._version = ""

    @property
    def version(self) -> str:
        """Version of the LiteRT interpreter package in use (``ai-edge-litert`` normally)."""
        if not self._version:
            _, self._package, self._version = load_interpreter_module()
        return self._version

    def run_once(self) -> None:
        """``interpreter.invoke()``: synchronous, it returns when the model has run."""
        self._interp.invoke()

    def timed_call(self) -> Callable[[], object]:
        """The bound ``interpreter.invoke``."""
        self._require_prepared()
        return self._interp.invoke


class LiteRTRunner(InterpreterRunner):
    """Times ``.tflite`` models with the LiteRT interpreter on the CPU."""

    name = "litert"
    formats = ("tflite", "tflite-int8")

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._delegated: bool | None = None

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: no interpreter importable, or a non-CPU target."""
        problems = []
        try:
            load_interpreter_module()
        except RunnerUnavailable as exc:
            problems.append(str(exc))
        if profile.target != "cpu":
            problems.append(
                f"the litert runner times on the CPU only, profile {profile.name!r} targets "
                f"{profile.target!r}: use a runtime for that device"
            )
        return problems

    @property
    def xnnpack(self) -> bool:
        """Whether the profile keeps LiteRT's default XNNPACK delegate on."""
        return bool(self.profile.options.get("xnnpack", True))

    def prepare(self, artifact: Path, seed: int) -> None:
        """Load the model, allocate tensors and set seeded random inputs of the model's dtypes."""
        self._ensure_available()
        self.close()
        module, self._package, self._version = load_interpreter_module()
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"TFLite model not found: {artifact}")
        kwargs: dict[str, Any] = {"model_path": str(artifact)}
        if self.profile.threads > 0:
            kwargs["num_threads"] = self.profile.threads
        if not self.xnnpack:
            # tf.lite keeps OpResolverType under tf.lite.experimental.
            resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interp = module.Interpreter(**kwargs)
        inputs = feed_random_inputs(interp, seed)
        self._interp, self.inputs = interp, inputs
        self._delegated = self._has_delegate(interp)
        self.artifact = artifact

    @staticmethod
    def _has_delegate(interp: Any) -> bool | None:
        # Delegated subgraphs show up as 'DELEGATE' nodes; the API is private, so a
        # missing one means "unknown", not "no".
        try:
            return any(op["op_name"] == "DELEGATE" for op in interp._get_ops_details())
        except Exception:
            return None

    def close(self) -> None:
        """Drop the interpreter."""
        self._interp, self._delegated, self.artifact, self.inputs = None, None, None, {}

    def info(self) -> dict[str, Any]:
        """Runtime name, interpreter package and version, delegate, threads, settings."""
        return {
            "name": self.name,
            "version": self.version,
            "package": self._package,
            "delegate": "xnnpack" if self.xnnpack else "none",
            "delegate_applied": self._delegated,
            "accelerator": "cpu",
            "threads": self.profile.threads,
            "settings": {
                "num_threads": self.profile.threads or "default",
                "xnnpack": self.xnnpack,
            },
        }
