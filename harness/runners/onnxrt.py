"""ONNX Runtime runner: CPU, CUDA and TensorRT execution providers.

The session uses every graph optimization, ``intra_op_num_threads`` from the profile
(0 = ONNX Runtime's default) and the profile's provider list in priority order.
``[options] execution_mode = "parallel"`` runs independent branches of the graph
concurrently (``ORT_PARALLEL``, ``inter_op_threads`` of them, default 0 = ONNX
Runtime's choice), as runtimes with a concurrent scheduler do; the default is
``"sequential"``. A run
is ``session.run(None, feed)`` on a feed built once in :meth:`prepare`; outputs come
back as host arrays, so GPU work is finished when a run returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.profiles import Profile
from latbench.harness.runners.base import INSTALL_HINT, Runner, RunnerUnavailable, random_input

__all__ = ["ONNXRuntimeRunner", "nvidia_gpu_visible"]

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

_PROVIDER_HINTS = {
    "CUDAExecutionProvider": (
        "pip uninstall onnxruntime && pip install onnxruntime-gpu, on a machine with an "
        "NVIDIA GPU, its driver, CUDA 12 and cuDNN 9"
    ),
    "TensorrtExecutionProvider": (
        "pip uninstall onnxruntime && pip install onnxruntime-gpu tensorrt, on a machine "
        "with an NVIDIA GPU, its driver, CUDA 12 and cuDNN 9"
    ),
}


_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
_MODES = ("sequential", "parallel")


def nvidia_gpu_visible() -> bool:
    """True when an NVIDIA GPU device node exists (desktop ``/dev/nvidia0``, Jetson ``nvhost``)."""
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "nvhost-ctrl-gpu").exists()


def _import_ort() -> Any:
    import onnxruntime

    return onnxruntime


class ONNXRuntimeRunner(Runner):
    """Times ``.onnx`` models with :class:`onnxruntime.InferenceSession`."""

    name = "onnxruntime"
    formats = ("onnx",)

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._session: Any = None
        self._feed: dict[str, np.ndarray] = {}
        self._active: list[str] = []

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: onnxruntime missing, or a requested provider not available."""
        try:
            ort = _import_ort()
        except ImportError:
            return [f"onnxruntime is not installed: {INSTALL_HINT}"]
        available = ort.get_available_providers()
        problems = []
        for provider in profile.providers or ("CPUExecutionProvider",):
            if provider not in available:
                hint = _PROVIDER_HINTS.get(provider, "install an onnxruntime build that has it")
                problems.append(
                    f"ONNX Runtime {ort.__version__} has no {provider} (available: "
                    f"{', '.join(available)}): {hint}"
                )
        mode = profile.options.get("execution_mode", "sequential")
        if mode not in _MODES:
            problems.append(
                f"[options] execution_mode must be one of {', '.join(_MODES)}, not {mode!r}"
            )
        inter = profile.options.get("inter_op_threads", 0)
        if isinstance(inter, bool) or not isinstance(inter, int) or inter < 0:
            problems.append(
                f"[options] inter_op_threads must be a whole number >= 0, not {inter!r}"
            )
        wants_gpu = any(p in _GPU_PROVIDERS for p in profile.providers)
        if (profile.target == "gpu" or wants_gpu) and not nvidia_gpu_visible():
            problems.append(
                "no GPU visible (no /dev/nvidia* device): run on a machine with an NVIDIA "
                "GPU and its driver installed"
            )
        return problems

    @property
    def version(self) -> str:
        """``onnxruntime.__version__``."""
        return _import_ort().__version__

    @property
    def parallel(self) -> bool:
        """Whether the profile asks for ``execution_mode = "parallel"``."""
        return self.profile.options.get("execution_mode", "sequential") == "parallel"

    def _options(self) -> Any:
        ort = _import_ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.parallel:
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            so.inter_op_num_threads = int(self.profile.options.get("inter_op_threads", 0))
        else:
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.profile.threads
        so.log_severity_level = 3
        return so

    def _providers(self) -> list[Any]:
        requested = list(self.profile.providers) or ["CPUExecutionProvider"]
        extra = dict(self.profile.options.get("provider_options", {}))
        out: list[Any] = []
        for p in requested:
            opts = dict(extra.get(p, {}))
            if p == "TensorrtExecutionProvider" and self.profile.precision == "fp16":
                opts.setdefault("trt_fp16_enable", True)
            if p == "CUDAExecutionProvider" and self.profile.precision == "fp16":
                raise RunnerUnavailable(
                    "fp16 on CUDAExecutionProvider needs an fp16 ONNX model; use "
                    "precision = 'fp32' or the TensorrtExecutionProvider"
                )
            out.append((p, opts) if opts else p)
        return out

    def prepare(self, artifact: Path, seed: int) -> None:
        """Create the session and a seeded random feed for every graph input."""
        self._ensure_available()
        self.close()
        ort = _import_ort()
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"ONNX model not found: {artifact}")
        session = ort.InferenceSession(
            str(artifact), sess_options=self._options(), providers=self._providers()
        )
        active = session.get_providers()
        wanted = (self.profile.providers or ("CPUExecutionProvider",))[0]
        if wanted not in active:
            raise RunnerUnavailable(
                f"ONNX Runtime fell back to {', '.join(active)} instead of {wanted}: "
                f"{_PROVIDER_HINTS.get(wanted, 'check the provider installation')}"
            )
        rng = np.random.default_rng(seed)
        feed = {}
        for node in session.get_inputs():
            if node.type not in _DTYPES:
                raise RunnerUnavailable(f"input {node.name!r} has unsupported type {node.type}")
            feed[node.name] = random_input(node.shape, _DTYPES[node.type], rng)
        self._session, self._feed, self._active = session, feed, active
        self.inputs = dict(feed)
        self.artifact = artifact
        self._session.run(None, self._feed)

    def run_once(self) -> None:
        """``session.run(None, feed)``."""
        self._session.run(None, self._feed)

    def timed_call(self) -> Callable[[], object]:
        """``functools.partial(session.run, None, feed)``: no Python frame per run."""
        self._require_prepared()
        return functools.partial(self._session.run, None, self._feed)

    def close(self) -> None:
        """Drop the session."""
        self._session, self._feed, self.artifact, self.inputs = None, {}, None, {}

    def info(self) -> dict[str, Any]:
        """Runtime name, version, requested and active providers, threads, settings."""
        return {
            "name": self.name,
            "version": self.version,
            "providers": list(self.profile.providers) or ["CPUExecutionProvider"],
            "active_providers": list(self._active),
            "accelerator": (self._active or list(self.profile.providers) or ["CPU"])[0],
            "threads": self.profile.threads,
            "settings": {
                "intra_op_num_threads": self.profile.threads,
                "graph_optimization_level": "ORT_ENABLE_ALL",
                "execution_mode": "ORT_PARALLEL" if self.parallel else "ORT_SEQUENTIAL",
                **(
                    {"inter_op_num_threads": int(self.profile.options.get("inter_op_threads", 0))}
                    if self.parallel
                    else {}
                ),
            },
        }
