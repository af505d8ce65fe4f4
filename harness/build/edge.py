"""Dispatch for the edge artifact formats (docs/design.md §8): Edge TPU, Qualcomm DLC, TensorRT.

A profile names a runner's format (``edgetpu-tflite``, ``dlc``, ``trt-engine``); the
precision picks the build variant, which is what the cache keys on:
``dlc`` + int8 -> ``dlc-int8``, ``trt-engine`` + fp16 -> ``trt-engine-fp16``. Tool
*paths* from the profile's ``[options]`` choose which tool runs and stay out of the
key; tool *versions* and extra arguments change the output and are in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EDGE_FORMATS",
    "build_edge",
    "build_format",
    "build_problems",
    "edge_toolchain",
    "uses_tensorflow",
]

EDGE_FORMATS: dict[str, str] = {
    "edgetpu-tflite": ".tflite",
    "dlc": ".dlc",
    "dlc-int8": ".dlc",
    "trt-engine-fp32": ".engine",
    "trt-engine-fp16": ".engine",
}
"""Edge build formats and their file suffixes."""


def build_format(artifact_format: str, precision: str) -> str:
    """The build variant of a profile's ``artifact_format`` at ``precision``."""
    if artifact_format == "dlc":
        return "dlc-int8" if precision == "int8" else "dlc"
    if artifact_format == "trt-engine":
        if precision not in ("fp32", "fp16"):
            raise ValueError(
                f"TensorRT profiles are fp32 or fp16 here (int8 needs calibration caches "
                f"this harness does not build), not {precision!r}"
            )
        return f"trt-engine-{precision}"
    return artifact_format


def uses_tensorflow(fmt: str) -> bool:
    """Whether building ``fmt`` goes through Keras/TFLite (else through ONNX only)."""
    return fmt in ("keras", "tflite", "tflite-int8", "edgetpu-tflite")


def _args(options: Mapping[str, Any], key: str) -> str:
    return json.dumps([str(a) for a in options.get(key, ())])


def edge_toolchain(fmt: str, options: Mapping[str, Any]) -> dict[str, str]:
    """Versions and output-changing settings of the tools that build ``fmt``."""
    if fmt == "edgetpu-tflite":
        from latbench.harness.build.edgetpu import IO_DTYPE, compiler_version, find_compiler

        compiler = find_compiler(options)
        return {
            "edgetpu_compiler": compiler_version(compiler) if compiler else "missing",
            "compiler_args": _args(options, "compiler_args"),
            "io_dtype": IO_DTYPE,
        }
    if fmt.startswith("dlc"):
        from latbench.harness import snpe_sdk

        name, _ = snpe_sdk.converter(options)
        out = {"converter": name, "sdk": snpe_sdk.sdk_version(options),
               "converter_args": _args(options, "converter_args")}  # fmt: skip
        if fmt == "dlc-int8":
            out |= {"quantizer": snpe_sdk.quantizer(options)[0],
                    "quantize_args": _args(options, "quantize_args")}  # fmt: skip
        return out
    if fmt.startswith("trt-engine"):
        from latbench.harness.build.trt import gpu_name, trt_version

        return {"tensorrt": trt_version(options), "gpu": gpu_name(),
                "trtexec_build_args": _args(options, "trtexec_build_args")}  # fmt: skip
    raise ValueError(f"not an edge format: {fmt!r}")


def build_problems(fmt: str, options: Mapping[str, Any]) -> list[str]:
    """What is missing on this host to build ``fmt`` artifacts (empty for host formats)."""
    if fmt == "edgetpu-tflite":
        from latbench.harness.build.edgetpu import compiler_problems

        return compiler_problems(options)
    if fmt.startswith("dlc"):
        from latbench.harness.build.dlc import build_problems as dlc_problems

        return dlc_problems(options, quantize=fmt == "dlc-int8")
    if fmt.startswith("trt-engine"):
        from latbench.harness.build.trt import build_problems as trt_problems

        return trt_problems(options)
    return []


def build_edge(
    target: Any, fmt: str, seed: int, dest: Path, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Build ``target`` as an edge ``fmt`` artifact into ``dest``; return the build report."""
    if fmt == "edgetpu-tflite":
        from latbench.harness.build.edgetpu import build_edgetpu

        return build_edgetpu(target, seed, dest, options)
    if fmt.startswith("dlc"):
        from latbench.harness.build.dlc import build_dlc

        return build_dlc(target, seed, dest, options, quantize=fmt == "dlc-int8")
    if fmt.startswith("trt-engine"):
        from latbench.harness.build.trt import build_engine

        return build_engine(target, seed, dest, options, precision=fmt.rsplit("-", 1)[1])
    raise ValueError(f"not an edge format: {fmt!r}")
