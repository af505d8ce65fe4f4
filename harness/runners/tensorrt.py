"""TensorRT runner: serialized engines on a Jetson (or any NVIDIA GPU).

Two timers, same protocol. With the ``tensorrt`` Python module and ``cuda-python``
present, a run is host->device copy, ``execute_v2``, device->host copy (all
synchronous), timed by the harness's own loop. Otherwise ``trtexec`` runs the engine
``W + R`` times with its own warm-up and duration off and writes one record per
iteration (``--exportTimes``); the harness drops the first ``W`` and keeps the ``R``
``latencyMs`` values (H2D + compute + D2H), so the two-stage filter sees R per-run
timings as on every other device. ``[options] timer`` forces one (``python`` or
``trtexec``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.build.trt import TRT_INSTALL, find_trtexec, import_tensorrt, trt_version
from latbench.harness.profiles import Profile
from latbench.harness.runners.base import Runner, RunnerUnavailable
from latbench.harness.timing import Protocol, time_calls
from latbench.harness.tools import ToolError, check_wall, reported_ns, run_tool

__all__ = [
    "TensorRTRunner",
    "jetson_info",
    "parse_export_times",
    "trtexec_time_command",
]

_TIMEOUT_S = 1800


def trtexec_time_command(
    trtexec: Path, engine: Path, iterations: int, times_json: Path, extra: Sequence[str] = ()
) -> list[str]:
    """``trtexec --loadEngine=E --iterations=N --warmUp=0 --duration=0 --avgRuns=1
    --exportTimes=T.json [extra...]``: exactly N timed iterations, one record each."""
    return [
        str(trtexec), f"--loadEngine={engine}", f"--iterations={iterations}", "--warmUp=0",
        "--duration=0", "--avgRuns=1", f"--exportTimes={times_json}", *map(str, extra),
    ]  # fmt: skip


def parse_export_times(text: str, warmup: int, runs: int) -> np.ndarray:
    """R per-run latencies (int64 ns) from a trtexec ``--exportTimes`` JSON list.

    Each record's ``latencyMs`` (end-to-end: host-to-device copy, compute, copy back)
    is one run; the first ``warmup`` records are dropped. Raises :class:`ToolError`
    when the JSON is not a list of such records, holds fewer than ``warmup + runs``, or
    a timed ``latencyMs`` is not a number above 0 (:func:`reported_ns`).
    """
    try:
        records = json.loads(text)
    except ValueError as exc:
        raise ToolError(f"trtexec --exportTimes output is not JSON: {exc}") from None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and "latencyMs" in r for r in records
    ):
        raise ToolError("trtexec --exportTimes output is not a list of records with latencyMs")
    if len(records) < warmup + runs:
        raise ToolError(
            f"trtexec ran {len(records)} iterations, expected {warmup + runs} "
            f"({warmup} warm-up + {runs} timed)"
        )
    timed = [r["latencyMs"] for r in records[warmup : warmup + runs]]
    return reported_ns(timed, "ms", "trtexec --exportTimes latencyMs")


def _read(path: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    return None


def _command(argv: list[str]) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        if res.returncode == 0:
            return res.stdout.strip()
    return None


def jetson_info() -> dict[str, Any]:
    """Board model, L4T release, JetPack version and power mode (``nvpmodel -q``), when readable."""
    out: dict[str, Any] = {}
    model = _read("/proc/device-tree/model")
    if model:
        out["board"] = model
    release = _read("/etc/nv_tegra_release")
    if release:
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
        out["l4t"] = f"{m.group(1)}.{m.group(2)}" if m else release.splitlines()[0]
    jetpack = _command(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    if jetpack:
        out["jetpack"] = jetpack
    power = _command(["nvpmodel", "-q"])
    if power:
        m = re.search(r"NV Power Mode:\s*(.+)", power)
        out["power_mode"] = m.group(1).strip() if m else power.splitlines()[0]
    return out


@functools.cache
def _import_cudart() -> Any | None:
    try:
        from cuda import cudart  # type: ignore[import-not-found]
    except Exception:
        return None
    return cudart


def _timer(options: Mapping[str, Any]) -> str:
    choice = str(options.get("timer", "auto"))
    if choice in ("python", "trtexec"):
        return choice
    python_ok = import_tensorrt() is not None and _import_cudart() is not None
    return "python" if python_ok else "trtexec"


def _cuda(result: Any) -> Any:
    # cuda-python returns (error, value...) tuples; fail loudly on any error code.
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class _Engine:
    """An engine deserialized with the Python API, with host and device buffers bound."""

    def __init__(self, data: bytes, seed: int) -> None:
        trt, self.cudart = import_tensorrt(), _import_cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RunnerUnavailable(
                "TensorRT could not deserialize the engine: it was built by another "
                "TensorRT version or for another GPU; rebuild it on this device"
            )
        self.context = self.engine.create_execution_context()
        rng = np.random.default_rng(seed)
        self.host: list[np.ndarray] = []
        self.device: list[int] = []
        self.is_input: list[bool] = []
        self.inputs: dict[str, np.ndarray] = {}
        for name, is_input, shape, dtype in self._tensors(trt):
            arr = (rng.standard_normal(shape) if is_input else np.zeros(shape)).astype(dtype)
            self.host.append(np.ascontiguousarray(arr))
            self.device.append(int(_cuda(self.cudart.cudaMalloc(max(arr.nbytes, 1)))))
            self.is_input.append(is_input)
            if is_input:
                self.inputs[name] = arr

    def _tensors(self, trt: Any) -> list[tuple[str, bool, tuple[int, ...], Any]]:
        e = self.engine
        if hasattr(e, "num_io_tensors"):  # TensorRT >= 8.5
            names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
            return [(n, e.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                     tuple(max(d, 1) for d in e.get_tensor_shape(n)),
                     trt.nptype(e.get_tensor_dtype(n))) for n in names]  # fmt: skip
        return [(e.get_binding_name(i), e.binding_is_input(i),
                 tuple(max(d, 1) for d in e.get_binding_shape(i)),
                 trt.nptype(e.get_binding_dtype(i))) for i in range(e.num_bindings)]  # fmt: skip

    def run(self) -> None:
        rt = self.cudart
        h2d, d2h = (
            rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        for arr, ptr, is_in in zip(self.host, self.device, self.is_input, strict=True):
            if is_in:
                _cuda(rt.cudaMemcpy(ptr, arr.ctypes.data, arr.nbytes, h2d))
        if not self.context.execute_v2(self.device):
            raise RuntimeError("TensorRT execute_v2 failed")
        for arr, ptr, is_in in zip(self.host, self.device, self.is_input, strict=True):
            if not is_in:
                _cuda(rt.cudaMemcpy(arr.ctypes.data, ptr, arr.nbytes, d2h))

    def free(self) -> None:
        for ptr in self.device:
            with contextlib.suppress(Exception):
                self.cudart.cudaFree(ptr)
        self.device = []


class TensorRTRunner(Runner):
    """Times TensorRT engines with the Python API or ``trtexec``."""

    name = "tensorrt"
    formats = ("trt-engine",)
    host_bound = True
    """Engines are built on the GPU that times them: build every one before timing."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._engine: _Engine | None = None
        self.timer = _timer(profile.options)
        """``python`` or ``trtexec``: how runs are timed."""

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: no way to run engines (trtexec / tensorrt + cuda-python), or no GPU."""
        from latbench.harness.runners.onnxrt import nvidia_gpu_visible

        problems = []
        timer = _timer(profile.options)
        if timer == "trtexec" and find_trtexec(profile.options) is None:
            problems.append(
                f"neither trtexec (PATH, /usr/src/tensorrt/bin) nor the tensorrt Python module "
                f"with cuda-python (pip install cuda-python) is available: {TRT_INSTALL}"
            )
        if timer == "python" and (import_tensorrt() is None or _import_cudart() is None):
            problems.append(
                f"[options] timer = 'python' needs the tensorrt module and cuda-python "
                f"(pip install cuda-python): {TRT_INSTALL}"
            )
        if not nvidia_gpu_visible():
            problems.append(
                "no NVIDIA GPU visible (no /dev/nvidia* or /dev/nvhost-ctrl-gpu): run on the "
                "Jetson (or a machine with an NVIDIA GPU and its driver)"
            )
        return problems

    @property
    def version(self) -> str:
        """TensorRT's version (Python module, else trtexec's banner)."""
        return trt_version(self.profile.options)

    def prepare(self, artifact: Path, seed: int) -> None:
        """Check the engine file; with the Python timer deserialize it and bind seeded inputs."""
        self._ensure_available()
        self.close()
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"TensorRT engine not found: {artifact}")
        if self.timer == "python":
            self._engine = _Engine(artifact.read_bytes(), seed)
            self.inputs = dict(self._engine.inputs)
            self._engine.run()
        self.artifact = artifact

    def run_once(self) -> None:
        """One inference (Python API), or one ``trtexec`` iteration."""
        if self._engine is not None:
            self._engine.run()
        else:
            self.time(Protocol(runs=1, group_size=1, warmup=0))

    def time(self, protocol: Protocol) -> np.ndarray:
        """R per-run times (int64 ns) after W warm-up runs, by the configured timer."""
        self._require_prepared()
        if self._engine is not None:
            return time_calls(self._engine.run, protocol.runs, protocol.warmup)
        exe = find_trtexec(self.profile.options)
        if exe is None:
            raise RunnerUnavailable(f"trtexec not found: {TRT_INSTALL}")
        with tempfile.TemporaryDirectory(prefix="latbench-trtexec-") as tmp:
            times = Path(tmp) / "times.json"
            assert self.artifact is not None
            cmd = trtexec_time_command(
                exe, self.artifact, protocol.warmup + protocol.runs, times,
                self.profile.options.get("trtexec_args", ()),
            )  # fmt: skip
            t0 = time.perf_counter()
            run_tool(cmd, cwd=tmp, timeout=_TIMEOUT_S)
            wall = time.perf_counter() - t0
            if not times.is_file():
                raise ToolError(f"trtexec wrote no {times.name} (command: {' '.join(cmd)})")
            raw = parse_export_times(times.read_text(), protocol.warmup, protocol.runs)
            check_wall(raw, wall, "trtexec --exportTimes")
            return raw

    def close(self) -> None:
        """Free the engine's device buffers."""
        if self._engine is not None:
            self._engine.free()
        self._engine, self.artifact, self.inputs = None, None, {}

    def info(self) -> dict[str, Any]:
        """TensorRT version, timer, precision, and the Jetson's JetPack / L4T / power mode."""
        from latbench.harness.build.trt import gpu_name

        return {
            "name": self.name,
            "version": self.version,
            "timer": self.timer,
            "accelerator": gpu_name(),
            "precision": self.profile.precision,
            "threads": self.profile.threads,
            **jetson_info(),
            "settings": {"trtexec_args": list(self.profile.options.get("trtexec_args", ()))},
        }
