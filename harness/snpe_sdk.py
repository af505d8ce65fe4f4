"""Locating Qualcomm's SNPE / QAIRT SDK and its tools (host converters, device binaries).

The SDK root is ``[options] sdk_root``, else ``$SNPE_ROOT``, else ``$QAIRT_SDK_ROOT``.
Host tools live in ``<root>/bin/x86_64-linux-clang``, the device's ``snpe-net-run`` in
``<root>/bin/<target_arch>`` with its libraries in ``<root>/lib/<target_arch>``, and the
DSP skeleton libraries in ``<root>/lib/<dsp_arch>/unsigned``. Tools on ``PATH`` (after
``source $SNPE_ROOT/bin/envsetup.sh``) are used when no root is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latbench.harness.tools import find_tool

__all__ = [
    "HOST_ARCH",
    "SDK_INSTALL",
    "converter",
    "host_env",
    "host_tool",
    "quantizer",
    "sdk_root",
    "sdk_version",
    "target_arch",
    "dsp_arch",
]

HOST_ARCH = "x86_64-linux-clang"
SDK_INSTALL = (
    "download the Qualcomm AI Engine Direct / Neural Processing SDK (QAIRT or SNPE) from "
    "https://www.qualcomm.com/developer/software/qualcomm-ai-engine-direct-sdk, unpack it, "
    "and export SNPE_ROOT=/path/to/sdk (or QAIRT_SDK_ROOT, or set [options] sdk_root)"
)


def sdk_root(options: Mapping[str, Any]) -> Path | None:
    """``[options] sdk_root``, ``$SNPE_ROOT`` or ``$QAIRT_SDK_ROOT``, if one is set."""
    for value in (options.get("sdk_root"), os.environ.get("SNPE_ROOT"),
                  os.environ.get("QAIRT_SDK_ROOT")):  # fmt: skip
        if value:
            return Path(value).expanduser()
    return None


def sdk_version(options: Mapping[str, Any]) -> str:
    """The SDK version from its root folder's name (``snpe-1.36.0.746``, ``qairt/2.39.0.250926``)."""
    root = sdk_root(options)
    if root is None:
        return "unknown"
    for part in reversed(root.resolve().parts):
        m = re.search(r"(\d+\.\d+\.\d+(?:\.\d+)?)", part)
        if m:
            return m.group(1)
    return "unknown"


def target_arch(options: Mapping[str, Any]) -> str:
    """The device's SDK architecture folder (``[options] target_arch``, default ``aarch64-android``)."""
    return str(options.get("target_arch", "aarch64-android"))


def dsp_arch(options: Mapping[str, Any]) -> str:
    """The DSP's SDK folder (``[options] dsp_arch``, default ``hexagon-v66`` as on a Hexagon 690)."""
    return str(options.get("dsp_arch", "hexagon-v66"))


def host_tool(name: str, options: Mapping[str, Any], configured: str | None = None) -> Path | None:
    """A host tool of the SDK: ``configured`` path, else the SDK's host bin folder, else ``PATH``."""
    root = sdk_root(options)
    dirs = [root / "bin" / HOST_ARCH] if root else []
    return find_tool(name, configured, dirs)


def host_env(options: Mapping[str, Any]) -> dict[str, str]:
    """Environment the SDK's host tools need (its Python package and libraries), as envsetup.sh sets."""
    root = sdk_root(options)
    if root is None:
        return {}

    def prepend(var: str, value: Path) -> str:
        old = os.environ.get(var)
        return f"{value}{os.pathsep}{old}" if old else str(value)

    return {
        "PYTHONPATH": prepend("PYTHONPATH", root / "lib" / "python"),
        "LD_LIBRARY_PATH": prepend("LD_LIBRARY_PATH", root / "lib" / HOST_ARCH),
        "SNPE_ROOT": str(root),
    }


def _configured(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key, "auto")
    return None if value in ("auto", "", None) else str(value)


def converter(options: Mapping[str, Any]) -> tuple[str, Path | None]:
    """``(name, path)`` of the ONNX -> DLC converter.

    ``[options] converter`` may name ``snpe-onnx-to-dlc``, ``qairt-converter`` or a path;
    ``auto`` (default) takes ``snpe-onnx-to-dlc`` when found, else ``qairt-converter``.
    """
    chosen = _configured(options, "converter")
    if chosen:
        return Path(chosen).name, host_tool(Path(chosen).name, options, chosen)
    for name in ("snpe-onnx-to-dlc", "qairt-converter"):
        path = host_tool(name, options)
        if path is not None:
            return name, path
    return "snpe-onnx-to-dlc", None


def quantizer(options: Mapping[str, Any]) -> tuple[str, Path | None]:
    """``(name, path)`` of the DLC quantizer: ``[options] quantizer``, else the converter's sibling
    (``snpe-dlc-quantize`` for ``snpe-onnx-to-dlc``, ``qairt-quantizer`` for ``qairt-converter``)."""
    chosen = _configured(options, "quantizer")
    if chosen:
        return Path(chosen).name, host_tool(Path(chosen).name, options, chosen)
    conv_name, _ = converter(options)
    name = "qairt-quantizer" if conv_name.startswith("qairt") else "snpe-dlc-quantize"
    return name, host_tool(name, options)
