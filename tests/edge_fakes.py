"""Fake edge tools for the tests: edgetpu_compiler, trtexec, nvpmodel, adb and an SNPE SDK.

Each fake is a small Python script that appends ``{"tool", "argv"}`` to ``$FAKE_LOG``
(one JSON line per call) and replays what the real tool prints and writes, including
failures: ``$FAKE_FAIL_<TOOL>=N`` makes the N-th call of that tool fail the way the real
one does (counted in ``$FAKE_STATE``). ``adb`` simulates one device whose file system
lives under ``$FAKE_ADB_ROOT`` and whose shell is ``sh`` with ``/data/local/tmp``
mapped there; the SDK's ``snpe-net-run`` it runs is the fake SDK's device binary.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PRELUDE = f"""#!{sys.executable}
import json, os, sys, shutil, re
from pathlib import Path
TOOL = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({{"tool": TOOL, "argv": sys.argv[1:]}}) + "\\n")
def nth_call_fails():
    state = Path(os.environ["FAKE_STATE"]) / (TOOL + ".count")
    n = int(state.read_text()) + 1 if state.exists() else 1
    state.write_text(str(n))
    return os.environ.get("FAKE_FAIL_" + re.sub("[^A-Z0-9]", "_", TOOL.upper())) == str(n)
def flag(name, default=None):
    for i, a in enumerate(sys.argv):
        if a == name:
            return sys.argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default
"""

EDGETPU_COMPILER = """
if sys.argv[1:] == ["--version"]:
    print("Edge TPU Compiler version 16.0.384591198")
    sys.exit(0)
out_dir, model = Path(flag("-o")), Path(sys.argv[-1])
print("Edge TPU Compiler version 16.0.384591198")
print("Started a compilation timeout timer of 180 seconds.")
if nth_call_fails():
    print("ERROR: Didn't find op for builtin opcode 'AVERAGE_POOL_2D' version '3'")
    print("Compilation failed: Model failed in Tflite interpreter.")
    print("Compilation child process completed within timeout period.")
    print("Compilation failed! ")
    sys.exit(1)
data = model.read_bytes()
assert data[4:8] == b"TFL3", "not a tflite flatbuffer"
stem = model.stem
(out_dir / f"{stem}_edgetpu.tflite").write_bytes(data)
(out_dir / f"{stem}_edgetpu.log").write_text("Operator Count Status\\n")
print(f'''
Model compiled successfully in 412 ms.

Input model: {model}
Input size: {len(data) / 1024:.2f}KiB
Output model: {out_dir / (stem + "_edgetpu.tflite")}
Output size: {len(data) / 1024:.2f}KiB
On-chip memory used for caching model parameters: 310.50KiB
On-chip memory remaining for caching model parameters: 7.70MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 14
Operation log: {out_dir / (stem + "_edgetpu.log")}

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 12
Number of operations that will run on CPU: 2

Operator                       Count      Status

CONV_2D                        9          Mapped to Edge TPU
ADD                            2          Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
FULLY_CONNECTED                1          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
Compilation child process completed within timeout period.
Compilation succeeded! ''')
"""

TRTEXEC = """
print("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec " + " ".join(sys.argv[1:]))
if "--help" in sys.argv:
    print("=== Model Options ===")
    sys.exit(0)
if flag("--onnx"):
    onnx_path, engine = Path(flag("--onnx")), Path(flag("--saveEngine"))
    data = onnx_path.read_bytes()
    if nth_call_fails():
        print("[E] [TRT] ModelImporter.cpp:773: While parsing node number 3 [Conv]:")
        print("[E] Failed to parse onnx file")
        print("&&&& FAILED TensorRT.trtexec [TensorRT v8201] # trtexec")
        sys.exit(1)
    prec = b"fp16" if "--fp16" in sys.argv else b"fp32"
    engine.write_bytes(b"FAKEENGINE" + prec + data)
    print("[I] Engine built in 1.23 sec.")
    print("&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec")
    sys.exit(0)
engine = Path(flag("--loadEngine"))
blob = engine.read_bytes()
if not blob.startswith(b"FAKEENGINE") or nth_call_fails():
    print("[E] Error[1]: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)")
    print("[E] Engine set up failed")
    print("&&&& FAILED TensorRT.trtexec [TensorRT v8201] # trtexec")
    sys.exit(1)
n = int(flag("--iterations"))
base = 0.4 + (len(blob) % 1000) / 1000.0
records, t = [], 0.0
for i in range(n):
    lat = base + 0.01 * ((i * 7) % 5)
    records.append({"startH2DMs": t, "endH2DMs": t + 0.01, "startComputeMs": t + 0.01,
                    "endComputeMs": t + lat - 0.01, "startD2HMs": t + lat - 0.01,
                    "endD2HMs": t + lat, "latencyMs": lat, "computeMs": lat - 0.02,
                    "h2dMs": 0.01, "d2hMs": 0.01})
    t += lat
Path(flag("--exportTimes")).write_text(json.dumps(records))
lats = sorted(r["latencyMs"] for r in records)
print("[I] === Performance summary ===")
print(f"[I] Throughput: {1000 * n / t:.2f} qps")
print(f"[I] Latency: min = {lats[0]:.4f} ms, max = {lats[-1]:.4f} ms, mean = {sum(lats) / n:.4f} ms, median = {lats[n // 2]:.4f} ms")
print("&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec")
"""

NVPMODEL = """
print("NVPM WARN: fan mode is not set!")
print("NV Power Mode: MAXN")
print("0")
"""

CONVERTER = """
onnx_path, out = Path(flag("--input_network")), Path(flag("--output_path"))
if nth_call_fails():
    print("2024-05-01 10:00:00,000 - 235 - ERROR - Conversion FAILED: ERROR_ONNX_NOT_SUPPORTED: op AveragePool with count_include_pad=0")
    sys.exit(1)
import onnx
model = onnx.load(str(onnx_path))
print(f"2024-05-01 10:00:00,000 - 235 - INFO - INFO_CONVERSION_SUCCESS: Conversion completed successfully ({len(model.graph.node)} nodes)")
out.write_bytes(b"FAKEDLC" + onnx_path.read_bytes())
"""

QUANTIZER = """
src, listing, out = Path(flag("--input_dlc")), Path(flag("--input_list")), Path(flag("--output_dlc"))
assert src.read_bytes().startswith(b"FAKEDLC")
for line in listing.read_text().split():
    assert Path(line.split(":=")[-1]).stat().st_size == 32 * 32 * 3 * 4, line
print("[INFO] Writing quantized model to: " + str(out))
out.write_bytes(b"FAKEQDLC" + src.read_bytes())
"""

NET_RUN = """
dlc, listing, out = flag("--container"), flag("--input_list"), Path(flag("--output_dir"))
assert "sdk/lib" in os.environ.get("LD_LIBRARY_PATH", ""), "LD_LIBRARY_PATH not set"
runtime = "dsp" if "--use_dsp" in sys.argv else "gpu" if "--use_gpu" in sys.argv else "cpu"
if runtime == "dsp":
    assert "sdk/dsp" in os.environ.get("ADSP_LIBRARY_PATH", ""), "ADSP_LIBRARY_PATH not set"
blob = Path(dlc).read_bytes()
if runtime == "dsp" and not blob.startswith(b"FAKEQDLC"):
    print("error_code=1002; error_message=Layer parameter value is invalid. DSP runtime needs a quantized model")
    sys.exit(1)
if nth_call_fails():
    print("error_code=201; error_message=Actual input size doesn't match expected input size")
    sys.exit(1)
def on_device(p):  # input lists hold device paths; the fake device lives under FAKE_ADB_ROOT
    return Path(os.environ["FAKE_ADB_ROOT"]) / p.lstrip("/") if p.startswith("/data/") else Path(p)
lines = [l for l in Path(listing).read_text().splitlines() if l.strip()]
for line in lines:
    assert on_device(line).stat().st_size == 32 * 32 * 3 * 4, line
out.mkdir(parents=True, exist_ok=True)
scale = {"cpu": 3000, "gpu": 1500, "dsp": 400}[runtime]
times = [scale + (len(blob) % 500) + 7 * ((i * 3) % 4) for i in range(len(lines))]
for i in range(len(lines)):
    (out / f"Result_{i}").mkdir()
    (out / f"Result_{i}" / "logits.raw").write_bytes(b"\\0" * 40)
(out / "SNPEDiag.log").write_text(json.dumps({"runtime": runtime, "total_us": times}))
"""

DIAGVIEW = """
log, csv_out = Path(flag("--input_log")), Path(flag("--output"))
diag = json.loads(log.read_text())
rows = ["Log Id,Message Name,Message Type,Message Value,Message Unit,Message Timestamp"]
rows.append("0,Load,ELAPSED_TIME,149,USEC,100")
rows.append("1,Init,ELAPSED_TIME,48856,USEC,200")
for i, t in enumerate(diag["total_us"]):
    rows.append(f"{i + 2},Total Inference Time,ELAPSED_TIME,{t},USEC,{300 + i}")
    rows.append(f"{i + 2},Forward Propagate Time,ELAPSED_TIME,{t - 10},USEC,{300 + i}")
rows.append(f"99,Avg_Total_Inference_Time,ELAPSED_TIME,{sum(diag['total_us']) // len(diag['total_us'])},USEC,999")
csv_out.write_text("\\n".join(rows) + "\\n")
"""

ADB = """
root = Path(os.environ["FAKE_ADB_ROOT"])
devices = [d.split(":") for d in os.environ.get("FAKE_ADB_DEVICES", "FAKE0001:device").split(",") if d]
args = sys.argv[1:]
if args == ["devices"]:
    print("List of devices attached")
    for serial, state in devices:
        print(f"{serial}\\t{state}")
    print()
    sys.exit(0)
serial = None
if args[:1] == ["-s"]:
    serial, args = args[1], args[2:]
ready = [s for s, st in devices if st == "device"]
if serial is None and len(ready) != 1:
    print("adb: more than one device/emulator", file=sys.stderr)
    sys.exit(1)
if (serial or ready[0]) not in ready:
    print(f"adb: device '{serial}' not found", file=sys.stderr)
    sys.exit(1)
def local(remote):
    return root / remote.lstrip("/")
if args[0] == "push":
    src, dst = args[1], args[2]
    if src.endswith("/."):
        local(dst).mkdir(parents=True, exist_ok=True)
        shutil.copytree(src[:-2], local(dst), dirs_exist_ok=True)
    else:
        shutil.copy(src, local(dst) / Path(src).name if dst.endswith("/") else local(dst))
    print(f"{src}: 1 file pushed, 0 skipped. 10.2 MB/s")
elif args[0] == "pull":
    src = local(args[1])
    if not src.exists():
        print(f"adb: error: failed to stat remote object '{args[1]}': No such file or directory", file=sys.stderr)
        sys.exit(1)
    (shutil.copytree if src.is_dir() else shutil.copy)(src, args[2])
    print(f"{args[1]}: 1 file pulled, 0 skipped.")
elif args[0] == "shell":
    cmd = args[1].replace("/data/local/tmp", str(root / "data/local/tmp"))
    env = {**os.environ, "PATH": os.environ["FAKE_DEVICE_PATH"] + os.pathsep + os.environ["PATH"]}
    import subprocess
    res = subprocess.run(["sh", "-c", cmd], env=env)
    sys.exit(0)  # like adb before Android N: the exit status is lost
else:
    sys.exit(f"fake adb: unsupported {args}")
"""

GETPROP = """
print({"ro.product.model": "Pixel 4", "ro.board.platform": "msmnile",
       "ro.build.version.release": "12"}.get(sys.argv[1], ""))
"""


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PRELUDE + body)
    path.chmod(0o755)
    return path


def install(root: Path) -> dict[str, Path]:
    """Write every fake under ``root``; return the folders to put on ``PATH`` and the SDK."""
    bin_dir, sdk, device_bin = root / "bin", root / "snpe-2.10.0.4541", root / "device-bin"
    _script(bin_dir / "edgetpu_compiler", EDGETPU_COMPILER)
    _script(bin_dir / "trtexec", TRTEXEC)
    _script(bin_dir / "nvpmodel", NVPMODEL)
    _script(bin_dir / "adb", ADB)
    _script(device_bin / "getprop", GETPROP)
    host = sdk / "bin" / "x86_64-linux-clang"
    _script(host / "snpe-onnx-to-dlc", CONVERTER)
    _script(host / "snpe-dlc-quantize", QUANTIZER)
    _script(host / "snpe-diagview", DIAGVIEW)
    _script(sdk / "bin" / "aarch64-android" / "snpe-net-run", NET_RUN)
    for lib in ("lib/aarch64-android/libSNPE.so", "lib/aarch64-android/libc++_shared.so",
                "lib/hexagon-v66/unsigned/libSnpeDspV66Skel.so"):  # fmt: skip
        (sdk / lib).parent.mkdir(parents=True, exist_ok=True)
        (sdk / lib).write_bytes(b"\x7fELF fake")
    return {"bin": bin_dir, "sdk": sdk, "device_bin": device_bin}


def calls(log: Path, tool: str | None = None) -> list[list[str]]:
    """The argv of every logged call (of ``tool`` only, when given), in order."""
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [r["argv"] for r in rows if tool is None or r["tool"] == tool]


def environment(fakes: dict[str, Path], tmp: Path) -> dict[str, str]:
    """Variables a test sets so the harness finds the fakes (and only them)."""
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    (tmp / "device").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{fakes['bin']}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp / "calls.jsonl"),
        "FAKE_STATE": str(tmp / "state"),
        "FAKE_ADB_ROOT": str(tmp / "device"),
        "FAKE_DEVICE_PATH": str(fakes["device_bin"]),
        "SNPE_ROOT": str(fakes["sdk"]),
    }
