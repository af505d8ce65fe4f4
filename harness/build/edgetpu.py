"""Edge TPU artifacts: full-integer ``.tflite`` -> ``edgetpu_compiler`` -> ``*_edgetpu.tflite``.

The network (or layer) is written as a full-integer ``.tflite`` with int8 kernels and
uint8 input/output tensors (the I/O type Coral's tools and examples use) by the direct
builder (``[options] builder = "direct"``, the default) or the TFLite converter
(``builder = "converter"``), then
compiled with ``edgetpu_compiler -s -o OUT MODEL.tflite``. The compiler's summary
(operations mapped to the Edge TPU vs left on the CPU, subgraphs, on-chip memory) is
parsed by :func:`parse_compiler_log` and becomes the artifact's report; a model the
compiler rejects raises :class:`~latbench.harness.tools.ToolError` with its reason, so
the run records it as ``status=failed``.

The compiler exists for x86-64 Linux only; Coral boards are ARM, so build there with
``latbench-measure build`` and time on the board with ``latbench-measure run``.
"""

from __future__ import annotations

import platform
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latbench.harness.tools import ToolError, find_tool, run_tool, tool_output

__all__ = [
    "COMPILER",
    "COMPILER_INSTALL",
    "IO_DTYPE",
    "build_edgetpu",
    "compile_command",
    "compiler_problems",
    "compiler_version",
    "find_compiler",
    "parse_compiler_log",
]

COMPILER = "edgetpu_compiler"
IO_DTYPE = "uint8"
"""Input/output tensor type of the quantized model handed to the compiler."""

COMPILER_INSTALL = (
    "install the Edge TPU compiler on an x86-64 Debian/Ubuntu host: curl "
    "https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add - && echo "
    "'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' | sudo tee "
    "/etc/apt/sources.list.d/coral-edgetpu.list && sudo apt-get update && sudo apt-get "
    "install edgetpu-compiler (or set [options] edgetpu_compiler = '/path/to/edgetpu_compiler')"
)

_COMPILE_TIMEOUT_S = 600


def find_compiler(options: Mapping[str, Any]) -> Path | None:
    """``[options] edgetpu_compiler`` when set, else ``edgetpu_compiler`` on ``PATH``."""
    return find_tool(COMPILER, options.get("edgetpu_compiler"))


def compiler_version(compiler: Path) -> str:
    """The version ``edgetpu_compiler --version`` prints (e.g. ``16.0.384591198``)."""
    return tool_output(compiler, ["--version"], r"Compiler version\s+([\w.\-]+)") or "unknown"


def compiler_problems(options: Mapping[str, Any]) -> list[str]:
    """What is missing to compile Edge TPU models here, each with how to get it."""
    if find_compiler(options) is None:
        where = options.get("edgetpu_compiler")
        what = f"{where!r} (from [options] edgetpu_compiler)" if where else "edgetpu_compiler"
        hint = COMPILER_INSTALL
        if platform.machine() not in ("x86_64", "AMD64"):
            hint = (
                f"the compiler runs on x86-64 Linux only and this host is "
                f"{platform.machine()}: run 'latbench-measure build' on an x86-64 host and "
                f"'latbench-measure run' here"
            )
        return [f"Edge TPU compiler not found: {what}: {hint}"]
    return []


def compile_command(
    compiler: Path, model: Path, out_dir: Path, extra: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """``edgetpu_compiler -s -o OUT_DIR [extra...] MODEL`` (``-s``: print the operation table)."""
    return [str(compiler), "-s", "-o", str(out_dir), *map(str, extra), str(model)]


_FIELDS = {
    "version": (r"Edge TPU Compiler version\s+(\S+)", str),
    "compile_ms": (r"Model compiled successfully in\s+(\d+)\s*ms", int),
    "subgraphs": (r"Number of Edge TPU subgraphs:\s*(\d+)", int),
    "total_ops": (r"Total number of operations:\s*(\d+)", int),
    "tpu_ops": (r"Number of operations that will run on Edge TPU:\s*(\d+)", int),
    "cpu_ops": (r"Number of operations that will run on CPU:\s*(\d+)", int),
    "onchip_memory": (r"On-chip memory used for caching model parameters:\s*(\S+)", str),
    "offchip_memory": (
        r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)",
        str,
    ),
    "output_model": (r"Output model:\s*(\S+)", str),
    "operation_log": (r"Operation log:\s*(\S+)", str),
}
_OP_ROW = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(text: str) -> dict[str, Any]:
    """What ``edgetpu_compiler -s`` printed, as a dict.

    Keys (absent when not printed): ``version``, ``compiled`` (bool), ``compile_ms``,
    ``subgraphs``, ``total_ops``, ``tpu_ops``, ``cpu_ops``, ``onchip_memory``,
    ``offchip_memory``, ``output_model``, ``operation_log``, ``operations`` (rows of the
    ``Operator Count Status`` table: ``{"op", "count", "status"}``) and ``errors``
    (``ERROR:``/``Compilation failed``/``Internal compiler error`` lines). When every
    operation maps, the compiler prints no CPU count; ``cpu_ops`` is then
    ``total_ops - tpu_ops`` (or 0).
    """
    out: dict[str, Any] = {}
    for key, (pattern, cast) in _FIELDS.items():
        m = re.search(pattern, text)
        if m:
            out[key] = cast(m.group(1))
    ops = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if in_table:
            m = _OP_ROW.match(line.strip())
            if m:
                ops.append({"op": m.group(1), "count": int(m.group(2)), "status": m.group(3)})
            elif line.strip() and ops:
                in_table = False
    out["operations"] = ops
    if "tpu_ops" not in out and ops:
        out["tpu_ops"] = sum(o["count"] for o in ops if o["status"] == "Mapped to Edge TPU")
    if "cpu_ops" not in out and "tpu_ops" in out:
        out["cpu_ops"] = max(out.get("total_ops", out["tpu_ops"]) - out["tpu_ops"], 0)
    out["errors"] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*(ERROR:|Compilation failed:|Internal compiler error|Invalid model)", line):
            error = line.strip()
            # 'Invalid model: model.tflite' gives its reason on the next line
            # ('Model not quantized'; google-coral/edgetpu#313)
            after = next((t.strip() for t in lines[i + 1 :] if t.strip()), "")
            is_error = re.match(r"(ERROR:|Compilation failed|Internal compiler error)", after)
            if error.startswith("Invalid model") and after and not is_error:
                error = f"{error}: {after}"
            out["errors"].append(error)
    out["compiled"] = "compile_ms" in out or "Compilation succeeded" in text
    return out


def _convert(target: Any, seed: int, options: Mapping[str, Any]) -> bytes:
    from latbench.harness.artifacts import tflite_builder
    from latbench.network import Layer

    if tflite_builder("edgetpu-tflite", options) == "direct":
        from latbench.harness.build.tflite_direct import (
            build_layer_tflite_direct,
            build_tflite_direct,
        )

        build = build_layer_tflite_direct if isinstance(target, Layer) else build_tflite_direct
        return build(target, seed, quantize=True, io_dtype=IO_DTYPE)
    import keras

    from latbench.harness.build.keras_net import build_keras, build_layer_keras
    from latbench.harness.build.tflite_converter import convert_tflite
    from latbench.network import Layer

    try:
        model = (
            build_layer_keras(target, seed)
            if isinstance(target, Layer)
            else build_keras(target, seed)
        )
        return convert_tflite(model, quantize=True, seed=seed, io_dtype=IO_DTYPE)
    finally:
        keras.backend.clear_session()


def build_edgetpu(target: Any, seed: int, dest: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Quantize ``target``, compile it for the Edge TPU into ``dest``; return the compile report.

    Raises :class:`ToolError` when the compiler is missing, rejects the model, maps none
    of its operations to the Edge TPU, or writes no ``*_edgetpu.tflite``.
    """
    compiler = find_compiler(options)
    if compiler is None:
        raise ToolError("; ".join(compiler_problems(options)))
    with tempfile.TemporaryDirectory(prefix="latbench-edgetpu-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(_convert(target, seed, options))
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        argv = compile_command(compiler, src, out_dir, options.get("compiler_args", ()))
        res = run_tool(argv, cwd=tmp, timeout=_COMPILE_TIMEOUT_S, check=False)
        text = res.stdout + "\n" + res.stderr
        report = parse_compiler_log(text)
        compiled = out_dir / "model_edgetpu.tflite"
        if res.returncode != 0 or not report["compiled"] or not compiled.is_file():
            reason = "; ".join(report["errors"]) or text.strip().splitlines()[-1:] or ["no output"]
            raise ToolError(
                f"edgetpu_compiler rejected the model (exit status {res.returncode}): "
                f"{reason if isinstance(reason, str) else reason[0]}"
            )
        if report.get("tpu_ops") == 0 or report.get("subgraphs") == 0:
            # a successful compile can map nothing: the whole model would run on the host
            # CPU and be recorded as an Edge TPU latency
            total = report.get("total_ops", "its")
            raise ToolError(
                f"edgetpu_compiler mapped none of the model's {total} operations to the Edge"
                " TPU (every one would run on the host CPU); nothing is timed"
            )
        dest.write_bytes(compiled.read_bytes())
    report.pop("output_model", None)
    report.pop("operation_log", None)
    report.pop("errors", None)
    return {"compiler": report, "io_dtype": IO_DTYPE}
