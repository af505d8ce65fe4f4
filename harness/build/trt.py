"""TensorRT engines: ONNX -> serialized engine with ``trtexec`` or the TensorRT Python API.

An engine is specific to the GPU and TensorRT version that built it, so build it on
the device that times it (on a Jetson: ``latbench-measure build`` there, or the
one-step form). ``trtexec --onnx=M --saveEngine=E [--fp16] --skipInference`` builds it
(``--buildOnly`` before TensorRT 8.6, neither in TensorRT 7: whichever its ``--help``
lists); without ``trtexec`` the Python API
(``tensorrt.Builder`` + ``OnnxParser``) does the same. The artifact key holds the
TensorRT version and the GPU's name, so a cache never hands an engine to another GPU.
"""

from __future__ import annotations

import contextlib
import functools
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from latbench.harness.tools import ToolError, find_tool, run_tool, tool_output

__all__ = [
    "TRT_INSTALL",
    "TRTEXEC_DIRS",
    "build_engine",
    "build_problems",
    "engine_builder",
    "find_trtexec",
    "gpu_name",
    "import_tensorrt",
    "parse_trt_version",
    "trt_version",
    "build_only_flag",
    "trtexec_build_command",
]

TRTEXEC_DIRS = (Path("/usr/src/tensorrt/bin"), Path("/usr/local/tensorrt/bin"))
"""Where JetPack and NVIDIA's packages put ``trtexec`` (not on ``PATH`` by default)."""

TRT_INSTALL = (
    "on a Jetson, flash JetPack (TensorRT and trtexec come with it, in "
    "/usr/src/tensorrt/bin; the Python API is python3-libnvinfer); on a desktop, "
    "install TensorRT (pip install tensorrt, or NVIDIA's packages for trtexec); or set "
    "[options] trtexec = '/path/to/trtexec'"
)

_TIMEOUT_S = 1800


@functools.cache
def import_tensorrt() -> Any | None:
    """The ``tensorrt`` Python module, or ``None`` when it is not importable (asked once:
    artifact keys ask per artifact, and a failed import is not cached by Python)."""
    try:
        import tensorrt  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a broken CUDA install raising OSError
        return None
    return tensorrt


def find_trtexec(options: Mapping[str, Any]) -> Path | None:
    """``[options] trtexec``, else ``trtexec`` on ``PATH``, else JetPack's ``/usr/src/tensorrt/bin``."""
    configured = options.get("trtexec")
    if configured:
        return find_tool("trtexec", configured)
    return find_tool("trtexec") or find_tool("trtexec", None, TRTEXEC_DIRS)


def parse_trt_version(banner: str) -> str | None:
    """``8.2.1`` from trtexec's ``[TensorRT v8201]`` (``v100300`` -> ``10.3.0``)."""
    m = re.search(r"\[TensorRT v(\d+)\]", banner)
    if not m:
        return None
    d = m.group(1)
    if len(d) == 4:  # TensorRT 7-9: M m pp
        return f"{d[0]}.{d[1]}.{int(d[2:])}"
    if len(d) == 6:  # TensorRT 10+: MM mm pp
        return f"{int(d[:2])}.{int(d[2:4])}.{int(d[4:])}"
    return d


def trt_version(options: Mapping[str, Any]) -> str:
    """TensorRT's version: the Python module's, else what ``trtexec --help`` prints."""
    trt = import_tensorrt()
    if trt is not None:
        return str(getattr(trt, "__version__", "unknown"))
    exe = find_trtexec(options)
    if exe is None:
        return "missing"
    raw = tool_output(exe, ["--help"], r"(\[TensorRT v\d+\])")
    return (parse_trt_version(raw) if raw else None) or "unknown"


@functools.cache
def gpu_name() -> str:
    """The GPU engines are built for: a Jetson's board model, else the first NVIDIA GPU's name."""
    with contextlib.suppress(OSError):
        model = Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00\n ")
        if model:
            return model
    from latbench.harness.profiles import detect_hardware

    return detect_hardware("gpu")


def engine_builder(options: Mapping[str, Any]) -> str:
    """``trtexec`` or ``python``: ``[options] engine_builder``, or ``auto`` (trtexec when found)."""
    choice = str(options.get("engine_builder", "auto"))
    if choice in ("trtexec", "python"):
        return choice
    if choice != "auto":
        raise ValueError(
            f"[options] engine_builder must be auto, trtexec or python, not {choice!r}"
        )
    return "trtexec" if find_trtexec(options) is not None or import_tensorrt() is None else "python"


def build_problems(options: Mapping[str, Any]) -> list[str]:
    """What is missing to build TensorRT engines here, each with how to get it."""
    builder = engine_builder(options)
    if builder == "trtexec" and find_trtexec(options) is None:
        return [f"trtexec not found (PATH, /usr/src/tensorrt/bin) and no tensorrt Python "
                f"module: {TRT_INSTALL}"]  # fmt: skip
    if builder == "python" and import_tensorrt() is None:
        return [f"the tensorrt Python module is not importable: {TRT_INSTALL}"]
    return []


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:2]) or (0,)


def trtexec_build_command(
    trtexec: Path, onnx_path: Path, engine: Path, precision: str, version: str,
    extra: Sequence[str] = (), *, build_flag: str | None = None,
) -> list[str]:  # fmt: skip
    """``trtexec --onnx=M --saveEngine=E [--fp16] --skipInference|--buildOnly [extra...]``.

    ``build_flag`` is the flag that stops trtexec after the build, as its ``--help``
    lists it (:func:`build_only_flag`; ``""``: it has none, as TensorRT 7's). Without
    it the version decides: ``--buildOnly`` before TensorRT 8.6 (JetPack 4.6 on a
    Jetson Nano has 8.2).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"TensorRT engines are built in fp32 or fp16 here, not {precision!r}")
    if build_flag is None:
        old = version not in ("unknown", "missing") and _version_tuple(version) < (8, 6)
        build_flag = "--buildOnly" if old else "--skipInference"
    return [
        str(trtexec), f"--onnx={onnx_path}", f"--saveEngine={engine}",
        *(["--fp16"] if precision == "fp16" else []),
        *([build_flag] if build_flag else []),
        *map(str, extra),
    ]  # fmt: skip


def build_only_flag(trtexec: Path) -> str | None:
    """The flag that makes ``trtexec`` build without timing, read from its ``--help``
    (``--skipInference`` since TensorRT 8.6, ``--buildOnly`` before; ``""`` when it lists
    neither, as TensorRT 7 prints no version either); ``None`` when the help is unreadable."""
    for flag in ("--skipInference", "--buildOnly"):
        if tool_output(trtexec, ["--help"], rf"(?<![\w-])({flag})\b"):
            return flag
    return "" if tool_output(trtexec, ["--help"], r"(--saveEngine)") else None


def _build_python(onnx_bytes: bytes, precision: str) -> bytes:
    trt = import_tensorrt()
    if trt is None:
        raise ToolError(f"the tensorrt Python module is not importable: {TRT_INSTALL}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ToolError(f"TensorRT's ONNX parser rejected the model: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ToolError("TensorRT failed to build the engine (see its log above)")
    return bytes(engine)


def build_engine(
    target: Any, seed: int, dest: Path, options: Mapping[str, Any], precision: str
) -> dict[str, Any]:
    """Build ``target``'s TensorRT engine in ``precision`` into ``dest``; return its report."""
    from latbench.harness.build.dlc import onnx_inputs
    from latbench.harness.build.onnx_net import build_layer_onnx, build_onnx
    from latbench.network import Layer

    model = (
        build_layer_onnx(target, seed) if isinstance(target, Layer) else build_onnx(target, seed)
    )
    builder = engine_builder(options)
    report = {"inputs": onnx_inputs(model), "builder": builder,
              "tensorrt": trt_version(options), "gpu": gpu_name()}  # fmt: skip
    if builder == "python":
        dest.write_bytes(_build_python(model.SerializeToString(), precision))
        return report
    exe = find_trtexec(options)
    if exe is None:
        raise ToolError("; ".join(build_problems(options)))
    with tempfile.TemporaryDirectory(prefix="latbench-trt-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(model.SerializeToString())
        engine = Path(tmp) / "model.engine"
        cmd = trtexec_build_command(exe, onnx_path, engine, precision, report["tensorrt"],
                                    options.get("trtexec_build_args", ()),
                                    build_flag=build_only_flag(exe))  # fmt: skip
        run_tool(cmd, cwd=tmp, timeout=_TIMEOUT_S)
        if not engine.is_file():
            raise ToolError(f"trtexec exited 0 but wrote no engine ({' '.join(cmd)})")
        dest.write_bytes(engine.read_bytes())
    return report
