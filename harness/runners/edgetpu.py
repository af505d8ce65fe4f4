"""Edge TPU runner: a compiled ``*_edgetpu.tflite`` in the LiteRT interpreter with the
``libedgetpu.so.1`` delegate (Coral USB Accelerator, M.2/PCIe card, Dev Board).

With pycoral installed (Coral's own package from ``https://google-coral.github.io/py-repo/``;
the PyPI project named ``pycoral`` is unrelated) its ``make_interpreter`` loads the
model; otherwise the LiteRT interpreter gets ``load_delegate("libedgetpu.so.1",
{"device": ...})``. The interpreter runs on the host and waits for the TPU, so
``invoke()`` is timed locally like any LiteRT model.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import subprocess
from pathlib import Path
from typing import Any

from latbench.harness.profiles import Profile
from latbench.harness.runners.base import RunnerUnavailable
from latbench.harness.runners.litert import (
    InterpreterRunner,
    feed_random_inputs,
    load_interpreter_module,
)

__all__ = ["EdgeTPURunner", "find_edgetpu_devices", "runtime_install_hint"]

DELEGATE = "libedgetpu.so.1"
_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # before / after the runtime loads firmware


def runtime_install_hint() -> str:
    """How to install the Edge TPU runtime (``libedgetpu.so.1``)."""
    return (
        "install the Edge TPU runtime: echo 'deb https://packages.cloud.google.com/apt "
        "coral-edgetpu-stable main' | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list && "
        "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add - && "
        "sudo apt-get update && sudo apt-get install libedgetpu1-std (or set [options] "
        "delegate = '/path/to/libedgetpu.so.1')"
    )


def find_edgetpu_devices() -> list[str]:
    """Edge TPUs visible here: ``pci:/dev/apex_N`` nodes and ``usb:BUS-PORT`` Coral sticks."""
    found = [f"pci:{p}" for p in sorted(Path("/dev").glob("apex_*"))]
    for dev in sorted(Path("/sys/bus/usb/devices").glob("*")):
        with contextlib.suppress(OSError):
            ids = ((dev / "idVendor").read_text().strip(), (dev / "idProduct").read_text().strip())
            if ids in _USB_IDS:
                found.append(f"usb:{dev.name}")
    return found


def _usb_node(sysfs_name: str) -> Path | None:
    try:
        base = Path("/sys/bus/usb/devices") / sysfs_name
        bus = int((base / "busnum").read_text())
        num = int((base / "devnum").read_text())
    except (OSError, ValueError):
        return None
    return Path(f"/dev/bus/usb/{bus:03d}/{num:03d}")


def _delegate_library(profile: Profile) -> str:
    return str(profile.options.get("delegate", DELEGATE))


def _library_loadable(name: str) -> bool:
    if os.sep in name:
        return Path(name).is_file()
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return ctypes.util.find_library("edgetpu") is not None


def _pycoral() -> Any | None:
    try:
        from pycoral.utils import edgetpu  # type: ignore[import-not-found]
    except ImportError:
        return None
    return edgetpu


class EdgeTPURunner(InterpreterRunner):
    """Times Edge TPU-compiled ``.tflite`` models through the ``libedgetpu`` delegate."""

    name = "edgetpu"
    formats = ("edgetpu-tflite",)
    host_bound = True
    """The interpreter's CPU side runs on this host: build every artifact before timing."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._tpu_nodes: int | None = None

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: no LiteRT interpreter, no ``libedgetpu.so.1``, no Edge TPU, no permission."""
        problems = []
        try:
            load_interpreter_module()
        except RunnerUnavailable as exc:
            problems.append(str(exc))
        library = _delegate_library(profile)
        if not _library_loadable(library):
            problems.append(
                f"Edge TPU runtime library {library} not found: {runtime_install_hint()}"
            )
        devices = find_edgetpu_devices()
        if not devices:
            problems.append(
                "no Edge TPU found (no /dev/apex_* node, no Coral USB device 1a6e:089a or "
                "18d1:9302): plug in the USB Accelerator (USB 3 port), or for M.2/PCIe cards "
                "install the driver: sudo apt-get install gasket-dkms libedgetpu1-std"
            )
        for dev in devices:
            node = Path(dev[4:]) if dev.startswith("pci:") else _usb_node(dev[4:])
            if node is not None and node.exists() and not os.access(node, os.R_OK | os.W_OK):
                problems.append(
                    f"no permission to use the Edge TPU at {node}: add your user to the "
                    f"'apex' (PCIe) or 'plugdev' (USB) group and install the udev rules of "
                    f"libedgetpu1-std, then log in again"
                )
        return problems

    def _make_interpreter(self, artifact: Path) -> Any:
        device = self.profile.options.get("device")
        library = _delegate_library(self.profile)
        coral = _pycoral()
        if coral is not None and library == DELEGATE:
            self._package, self._version = "pycoral", getattr(coral, "__version__", "")
            return coral.make_interpreter(str(artifact), device=device)
        module, self._package, self._version = load_interpreter_module()
        try:
            delegate = module.load_delegate(library, {"device": device} if device else {})
        except (ValueError, OSError) as exc:
            raise RunnerUnavailable(
                f"cannot load the Edge TPU delegate {library} ({exc}): is the Edge TPU "
                f"plugged in and not used by another process?"
            ) from exc
        kwargs: dict[str, Any] = {"model_path": str(artifact), "experimental_delegates": [delegate]}
        if self.profile.threads > 0:
            kwargs["num_threads"] = self.profile.threads
        return module.Interpreter(**kwargs)

    def prepare(self, artifact: Path, seed: int) -> None:
        """Load the model with the Edge TPU delegate and set seeded inputs of its dtypes."""
        self._ensure_available()
        self.close()
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"Edge TPU model not found: {artifact}")
        interp = self._make_interpreter(artifact)
        inputs = feed_random_inputs(interp, seed)
        with contextlib.suppress(Exception):  # private API: unknown rather than wrong
            self._tpu_nodes = sum(
                op["op_name"] in ("DELEGATE", "edgetpu-custom-op")
                for op in interp._get_ops_details()
            )
        self._interp, self.inputs, self.artifact = interp, inputs, artifact

    def close(self) -> None:
        """Drop the interpreter (and with it the delegate's hold on the TPU)."""
        self._interp, self.artifact, self.inputs, self._tpu_nodes = None, None, {}, None

    def info(self) -> dict[str, Any]:
        """Runtime, interpreter package, delegate library, Edge TPU runtime version, device."""
        return {
            "name": self.name,
            "version": self.version,
            "package": self._package,
            "delegate": _delegate_library(self.profile),
            "edgetpu_runtime": _runtime_version(),
            "devices": find_edgetpu_devices(),
            "accelerator": "edgetpu",
            "threads": self.profile.threads,
            "settings": {"device": self.profile.options.get("device", "default")},
        }


def _runtime_version() -> str:
    coral = _pycoral()
    if coral is not None:
        with contextlib.suppress(Exception):
            return str(coral.get_runtime_version())
    for pkg in ("libedgetpu1-std", "libedgetpu1-max"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                return f"{pkg} {out.stdout.strip()}"
    return "unknown"
