"""Host fingerprint recorded with every measured dataset (in the spirit of pyperf)."""

from __future__ import annotations

import os
import platform
import re
import socket
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_flags", "cpu_model", "host_fingerprint", "host_name", "same_host"]

_PACKAGES = (
    "latbench",
    "numpy",
    "pandas",
    "pyarrow",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "ai-edge-litert",
    "tflite-runtime",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "h5py",
)


@cache
def cpu_flags() -> tuple[str, ...]:
    """CPU feature flags (``/proc/cpuinfo`` on Linux; empty elsewhere), sorted."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("flags", "features")):
                return tuple(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return ()


@cache
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_name() -> str:
    """A short, file-name-safe host name for dataset keys."""
    name = socket.gethostname().split(".")[0].lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "host"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _governor() -> str | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return p.read_text().strip()
    except OSError:
        return None


def host_fingerprint() -> dict[str, Any]:
    """CPU, cores, OS, Python and package versions of this machine.

    Shards whose fingerprints differ were measured on different hosts; ``merge``
    warns about that.
    """
    return {
        "hostname": host_name(),
        "cpu_model": cpu_model(),
        "cpu_flags": list(cpu_flags()),
        "machine": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_governor": _governor(),
        "packages": _versions(),
    }


def same_host(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two fingerprints describe the same machine and software."""
    fields = ("cpu_model", "cpu_flags", "machine", "cores_logical", "os", "python", "packages")
    return all(a.get(f) == b.get(f) for f in fields)
