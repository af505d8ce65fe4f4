"""What runs on the nodes: artifact builds (CPU tasks) and one timing actor per device.

:func:`build_bytes` builds a graph's artifact in the node's artifact cache (keyed by
graph key + format + seed + toolchain, so a node builds each graph once) and returns
its bytes, which Ray ships to the device's node through the object store.
:class:`DeviceWorker` is the body of the actor that owns one device: it makes the
profile's runner once (the runtime stays loaded), and for each graph writes the
artifact to a private folder, prepares it and times it with the run's protocol.
Formats that must be built where they run (TensorRT engines) are built by the actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from latbench.lock import process_gone

__all__ = ["DEVICE_BUILT", "SLOWDOWN_ENV", "DeviceWorker", "build_bytes", "slowdown_for"]

DEVICE_BUILT = ("trt-engine",)
"""Build-format prefixes built on the device's own node (an engine is tied to its GPU)."""

SLOWDOWN_ENV = "LATBENCH_FLEET_SLOWDOWN"
"""Test hook, read by the driver: ``<device id>=<factor>[,...]`` makes that device wait
``factor - 1`` times each run's duration after every run, inside the timing, i.e. really
run slower (sleeping, so it takes no core from the host's other devices)."""


def slowdown_for(device_id: str, spec: str | None = None) -> float:
    """The factor :data:`SLOWDOWN_ENV` sets for ``device_id`` (1.0 when none)."""
    spec = os.environ.get(SLOWDOWN_ENV, "") if spec is None else spec
    for item in filter(None, (s.strip() for s in spec.split(","))):
        dev, sep, factor = item.rpartition("=")
        if sep and dev == device_id:
            try:
                value = float(factor)
            except ValueError:
                raise ValueError(f"{SLOWDOWN_ENV}: {item!r} is not DEVICE=FACTOR") from None
            if not value >= 1.0:
                raise ValueError(f"{SLOWDOWN_ENV}: factor must be >= 1, got {item!r}")
            return value
    return 1.0


_SCRATCH = "latbench-fleet-"
"""Prefix of a device actor's artifact folder, ``latbench-fleet-<pid>-<random>``."""


def _sweep_stale(tmp: Path) -> None:
    """Remove artifact folders of device actors whose process is gone.

    A killed actor (lost device, Ctrl-C, crashed node) never runs :meth:`close`.
    """
    for d in tmp.glob(f"{_SCRATCH}*-*"):
        pid = d.name[len(_SCRATCH) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not d.is_dir() or d.is_symlink():
            continue
        if process_gone(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _cache(root: str | None) -> Any:
    from latbench.harness.artifacts import ArtifactCache

    if root:
        with contextlib.suppress(OSError):  # the driver's path may not exist on this node
            Path(root).mkdir(parents=True, exist_ok=True)
            return ArtifactCache(root)
    return ArtifactCache()


def build_bytes(
    graph: Any, fmt: str, seed: int, options: dict[str, Any], root: str | None
) -> bytes:
    """Build (or find cached) ``graph``'s ``fmt`` artifact on this node; its bytes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return Path(_cache(root).build(graph, fmt, seed, options=options)).read_bytes()


def _slowed(fn: Any, factor: float) -> Any:
    clock = time.perf_counter_ns
    extra = factor - 1.0

    def call() -> None:
        t0 = clock()
        fn()
        until = clock() + int((clock() - t0) * extra)
        # sleep, then spin only the last 0.1 ms: a slow device is slow on its own
        # hardware; spinning the whole time would take a shared host's core from the
        # other devices and slow them too (test fleets share one host)
        rest = until - clock() - 100_000
        if rest > 0:
            time.sleep(rest / 1e9)
        while clock() < until:
            pass

    return call


class DeviceWorker:
    """Owns one device: one runner, prepared once per graph, timed with the run's protocol.

    Used as a Ray actor holding the device's resource, so calls run one at a time in
    submission order. ``device_id`` may carry runner options (``host/serial=X``).
    """

    def __init__(
        self, profile: Any, device_id: str, cache_root: str | None = None, slowdown: float = 1.0
    ) -> None:
        from latbench.harness.fleet.resources import device_options
        from latbench.harness.runners import make_runner

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        overrides = device_options(device_id)
        cpus = overrides.pop("cpus", None)
        if cpus:  # several CPU devices on one node: this device owns these cores
            from latbench.harness.fleet.worker import parse_cpus

            os.sched_setaffinity(0, parse_cpus(cpus))  # threads made later inherit it
        if overrides:
            profile = dataclasses.replace(profile, options={**profile.options, **overrides})
        self.profile, self.device_id, self.cache_root = profile, device_id, cache_root
        self.runner = make_runner(profile)
        self.slowdown = float(slowdown)
        if self.slowdown != 1.0:  # shadow the method: every timed run really takes longer
            plain = self.runner.timed_call
            self.runner.timed_call = lambda: _slowed(plain(), self.slowdown)
        _sweep_stale(Path(tempfile.gettempdir()))
        self.dir = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH}{os.getpid()}-"))
        self._n = 0

    def describe(self) -> dict[str, Any]:
        """Device id, node, host fingerprint and runtime, for the dataset metadata."""
        import socket

        from latbench.harness.host import host_fingerprint

        return {
            "device_id": self.device_id,
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "host": host_fingerprint(),
            "runtime": self.runner.info(),
            **({"slowdown_hook": self.slowdown} if self.slowdown != 1.0 else {}),
        }

    def time(
        self, work: Any, artifact: bytes | None, protocol: Any, seed: int, fmt: str,
        options: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """Time one graph; a dict of the result fields (failures as ``status="failed"``)."""
        from latbench.harness.artifacts import FORMATS
        from latbench.harness.timing import time_runner

        t0 = time.perf_counter()
        out: dict[str, Any] = {
            "graph_key": work.key, "timed_arch_id": work.timed_arch_id,
            "device_id": self.device_id,
        }  # fmt: skip
        try:
            if artifact is None:
                path = Path(_cache(self.cache_root).build(work.graph, fmt, seed, options=options))
            else:
                self._n += 1
                path = self.dir / f"model-{self._n % 2}{FORMATS.get(fmt, '')}"
                path.write_bytes(artifact)
            self.runner.prepare(path, seed)
            t = time_runner(self.runner, protocol)
        except Exception as exc:  # one model failing must not stop the device
            out.update(status="failed", error=f"timing failed: {type(exc).__name__}: {exc}")
        else:
            out.update(
                status="ok", latency_ms=float(t.latency_ms),
                latency_std_ms=float(t.latency_std_ms), runs=int(t.runs), raw_ns=t.raw_ns,
            )  # fmt: skip
        out["call_s"] = time.perf_counter() - t0
        return out

    def close(self) -> None:
        """Release the runner and the private artifact folder."""
        with contextlib.suppress(Exception):
            self.runner.close()
        shutil.rmtree(self.dir, ignore_errors=True)
