"""Qualcomm DLC artifacts: ONNX -> ``snpe-onnx-to-dlc`` / ``qairt-converter`` [-> quantizer].

``dlc`` is the float model the CPU and GPU runtimes run; ``dlc-int8`` is it quantized
by ``snpe-dlc-quantize`` (or ``qairt-quantizer``) on seeded standard-normal calibration
inputs, which the DSP needs. The artifact's report lists the model's inputs (name,
shape, dtype) so the runner can write input files of the right size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness import snpe_sdk
from latbench.harness.tools import ToolError, run_tool

__all__ = [
    "CALIBRATION_SAMPLES",
    "build_dlc",
    "build_problems",
    "convert_command",
    "input_list_line",
    "onnx_inputs",
    "quantize_command",
]

CALIBRATION_SAMPLES = 8
"""Seeded random inputs the DSP quantizer calibrates on."""

_TIMEOUT_S = 900


def convert_command(
    tool: Path, onnx_path: Path, dlc_path: Path, extra: Sequence[str] = ()
) -> list[str]:
    """``<converter> --input_network MODEL.onnx --output_path MODEL.dlc [extra...]``.

    ``snpe-onnx-to-dlc`` and ``qairt-converter`` take the same two flags.
    """
    return [str(tool), "--input_network", str(onnx_path), "--output_path", str(dlc_path),
            *map(str, extra)]  # fmt: skip


def quantize_command(
    tool: Path, dlc_path: Path, input_list: Path, out_path: Path, extra: Sequence[str] = ()
) -> list[str]:
    """``<quantizer> --input_dlc IN.dlc --input_list LIST --output_dlc OUT.dlc [extra...]``."""
    return [str(tool), "--input_dlc", str(dlc_path), "--input_list", str(input_list),
            "--output_dlc", str(out_path), *map(str, extra)]  # fmt: skip


def input_list_line(paths: Mapping[str, str]) -> str:
    """One line of an SNPE input list: the file alone for one input, else ``name:=file`` pairs."""
    if len(paths) == 1:
        return next(iter(paths.values()))
    return " ".join(f"{name}:={path}" for name, path in paths.items())


def onnx_inputs(model: Any) -> list[dict[str, Any]]:
    """``[{"name", "shape", "dtype"}]`` of an ONNX model's graph inputs (float32 here)."""
    out = []
    for vi in model.graph.input:
        dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        out.append({"name": vi.name, "shape": dims, "dtype": "float32"})
    return out


def build_problems(options: Mapping[str, Any], quantize: bool) -> list[str]:
    """What is missing to build DLCs here, each with how to get it."""
    problems = []
    name, path = snpe_sdk.converter(options)
    if path is None:
        root = snpe_sdk.sdk_root(options)
        where = f"in {root / 'bin' / snpe_sdk.HOST_ARCH} or on PATH" if root else "on PATH"
        problems.append(
            f"Qualcomm converter {name} not found {where} (no SNPE_ROOT/QAIRT_SDK_ROOT set)"
            if root is None
            else f"Qualcomm converter {name} not found {where}"
        )
        problems[-1] += f": {snpe_sdk.SDK_INSTALL}"
    if quantize:
        qname, qpath = snpe_sdk.quantizer(options)
        if qpath is None:
            problems.append(f"Qualcomm quantizer {qname} not found: {snpe_sdk.SDK_INSTALL}")
    return problems


def _onnx_model(target: Any, seed: int) -> Any:
    from latbench.harness.build.onnx_net import build_layer_onnx, build_onnx
    from latbench.network import Layer

    return build_layer_onnx(target, seed) if isinstance(target, Layer) else build_onnx(target, seed)


def _calibration(inputs: list[dict[str, Any]], seed: int, directory: Path) -> Path:
    rng = np.random.default_rng([int(seed), 0xD1C])
    lines = []
    for i in range(CALIBRATION_SAMPLES):
        files = {}
        for spec in inputs:
            path = directory / f"calib_{i}_{spec['name']}.raw"
            rng.standard_normal(spec["shape"], dtype=np.float32).tofile(path)
            files[spec["name"]] = str(path)
        lines.append(input_list_line(files))
    listing = directory / "calibration_list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def build_dlc(
    target: Any, seed: int, dest: Path, options: Mapping[str, Any], quantize: bool
) -> dict[str, Any]:
    """Build ``target`` as a DLC into ``dest`` (quantized when ``quantize``); return its report.

    Raises :class:`ToolError` when a tool is missing or fails (its output quoted).
    """
    problems = build_problems(options, quantize)
    if problems:
        raise ToolError("; ".join(problems))
    conv_name, conv = snpe_sdk.converter(options)
    env = snpe_sdk.host_env(options)
    model = _onnx_model(target, seed)
    inputs = onnx_inputs(model)
    with tempfile.TemporaryDirectory(prefix="latbench-dlc-") as tmp:
        tmpdir = Path(tmp)
        onnx_path = tmpdir / "model.onnx"
        onnx_path.write_bytes(model.SerializeToString())
        dlc = tmpdir / "model.dlc"
        assert conv is not None
        cmd = convert_command(conv, onnx_path, dlc, options.get("converter_args", ()))
        run_tool(cmd, cwd=tmp, env=env, timeout=_TIMEOUT_S)
        if not dlc.is_file():
            raise ToolError(f"{conv_name} exited 0 but wrote no {dlc.name}")
        report: dict[str, Any] = {"inputs": inputs, "converter": conv_name,
                                  "sdk_version": snpe_sdk.sdk_version(options)}  # fmt: skip
        if quantize:
            q_name, q = snpe_sdk.quantizer(options)
            assert q is not None
            listing = _calibration(inputs, seed, tmpdir)
            out = tmpdir / "model_quantized.dlc"
            cmd = quantize_command(q, dlc, listing, out, options.get("quantize_args", ()))
            run_tool(cmd, cwd=tmp, env=env, timeout=_TIMEOUT_S)
            if not out.is_file():
                raise ToolError(f"{q_name} exited 0 but wrote no {out.name}")
            dlc = out
            report |= {"quantizer": q_name, "calibration_samples": CALIBRATION_SAMPLES}
        dest.write_bytes(dlc.read_bytes())
    return report
