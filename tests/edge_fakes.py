"""Fake edge tools for the tests: edgetpu_compiler, trtexec, nvpmodel, adb, an SNPE SDK and
LiteRT's Android ``benchmark_model`` (with the device's getprop, dumpsys, taskset).

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
# $FAKE_EDGETPU_MAPS_NONE: a successful compile that maps no operation
sub, tpu, cpu = (0, 0, 14) if os.environ.get("FAKE_EDGETPU_MAPS_NONE") else (1, 12, 2)
print(f'''
Model compiled successfully in 412 ms.

Input model: {model}
Input size: {len(data) / 1024:.2f}KiB
Output model: {out_dir / (stem + "_edgetpu.tflite")}
Output size: {len(data) / 1024:.2f}KiB
On-chip memory used for caching model parameters: 310.50KiB
On-chip memory remaining for caching model parameters: 7.70MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: {sub}
Total number of operations: 14
Operation log: {out_dir / (stem + "_edgetpu.log")}

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: {tpu}
Number of operations that will run on CPU: {cpu}

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
states = dict(devices)
if serial is None and not devices:
    print("adb: no devices/emulators found", file=sys.stderr)
    sys.exit(1)
if serial is None and len(ready) != 1 and len(devices) > 1:
    print("adb: more than one device/emulator", file=sys.stderr)
    sys.exit(1)
state = states.get(serial) if serial else (devices[0][1] if len(devices) == 1 else "device")
if state == "unauthorized":  # adb's own words (platform-tools 35)
    print("adb: device unauthorized.\\nThis adb server's $ADB_VENDOR_KEYS is not set\\n"
          "Try 'adb kill-server' if that seems wrong.\\n"
          "Otherwise check for a confirmation dialog on your device.", file=sys.stderr)
    sys.exit(1)
if state == "offline":
    print("adb: device offline", file=sys.stderr)
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
       "ro.build.version.release": "12", "ro.product.manufacturer": "Google",
       "ro.soc.manufacturer": "QTI", "ro.soc.model": "SM8150", "ro.hardware": "flame",
       "ro.build.version.sdk": "31", "ro.product.cpu.abi": "arm64-v8a"}.get(sys.argv[1], ""))
"""

DUMPSYS = """
if sys.argv[1:] == ["thermalservice"]:  # the layout of Android 12's dumpsys thermalservice
    print("IsStatusOverride: false")
    print("ThermalEventListeners:")
    print("\\tcallbacks: 1\\n\\tkilled: false\\n\\tbroadcasts count: -1")
    print("ThermalStatusListeners:")
    print("\\tcallbacks: 1\\n\\tkilled: false\\n\\tbroadcasts count: -1")
    print("Thermal Status: " + os.environ.get("FAKE_THERMAL_STATUS", "0"))
    print("Cached temperatures:")
    print("\\tTemperature{mValue=36.2, mType=2, mName=battery, mStatus=0}")
    print("HAL Ready: true")
"""

TASKSET = """
# toybox taskset MASK CMD...: the fake runs CMD unpinned (the host has other CPUs)
os.execvp(sys.argv[2], sys.argv[2:])
"""

# LiteRT's benchmark_model (2.x): the lines it prints, its delegate messages and its
# failures. $FAKE_BENCHMARK_MODE picks a failure: gpu-fail, nnapi-fail, fallback
# (the delegate takes no node), abi (a binary for another ABI); $FAKE_FAIL_BENCHMARK_MODEL=N
# makes the N-th call crash like an out-of-memory kill. Each timed run's 'curr' is
# appended to $FAKE_STATE/benchmark_times.txt so a test can filter them itself.
BENCHMARK_MODEL = """
mode = os.environ.get("FAKE_BENCHMARK_MODE", "")
if mode == "abi":
    print('CANNOT LINK EXECUTABLE "' + sys.argv[0] + '": "libc.so" is 32-bit instead of 64-bit')
    sys.exit(1)
graph = Path(flag("--graph"))
warm, runs = int(flag("--warmup_runs", "1")), int(flag("--num_runs", "50"))
threads = flag("--num_threads", "-1")
print("INFO: STARTING!")
print("INFO: Log parameter values verbosely: [0]")
print(f"INFO: Min num runs: [{runs}]")
print(f"INFO: Num threads: [{threads}]")
print(f"INFO: Min warmup runs: [{warm}]")
print(f"INFO: Graph: [{graph}]")
if not graph.is_file():
    print(f"ERROR: Could not open '{graph}'.")
    print("ERROR: Failed to mmap model " + str(graph))
    sys.exit(1)
data = graph.read_bytes()
assert data[4:8] == b"TFL3", "not a tflite flatbuffer"
print(f"INFO: Loaded model {graph}")
print("INFO: Initialized TensorFlow Lite runtime.")
delegate = ("gpu" if flag("--use_gpu") == "true" else "nnapi" if flag("--use_nnapi") == "true"
            else "xnnpack" if flag("--use_xnnpack", "true") == "true" else "none")
nodes = 60 + len(data) % 70
if delegate == "gpu":
    print("INFO: Created TensorFlow Lite delegate for GPU.")
    if mode == "gpu-fail":
        print("ERROR: Following operations are not supported by GPU delegate:")
        print("MEAN: Unsupported MEAN op with keep_dims=false")
        print("ERROR: TfLiteGpuDelegate Prepare: delegate nodes are not supported")
        print("ERROR: Node number 134 (TfLiteGpuDelegateV2) failed to prepare.")
        print("ERROR: Failed to apply GPU delegate.")
        print("ERROR: Benchmarking failed.")
        sys.exit(1)
    print("INFO: Initialized OpenCL-based API.")
    print("INFO: Created 1 GPU delegate kernels.")
    name = "TfLiteGpuDelegateV2"
elif delegate == "nnapi":
    print("INFO: Created TensorFlow Lite delegate for NNAPI.")
    if mode == "nnapi-fail":
        print("ERROR: NN API returned error ANEURALNETWORKS_OP_FAILED at line 5132 while completing NNAPI compilation.")
        print("ERROR: Node number 134 (TfLiteNnapiDelegate) failed to prepare.")
        print("ERROR: Failed to apply NNAPI delegate.")
        print("ERROR: Benchmarking failed.")
        sys.exit(1)
    name = "TfLiteNnapiDelegate"
elif delegate == "xnnpack":
    print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    name = "TfLiteXNNPackDelegate"
if mode == "fallback" and delegate in ("gpu", "nnapi"):
    print(f"INFO: Though {delegate.upper()} delegate is explicitly applied, the model graph will not be executed by the delegate.")
elif delegate != "none":
    print(f"VERBOSE: Replacing {nodes} out of {nodes} node(s) with delegate ({name}) node, yielding 1 partitions for subgraph 0.")
print(f"INFO: The input model file size (MB): {len(data) / 1e6:.6g}")
print("INFO: Initialized session in 14.3ms.")
if nth_call_fails():
    print("Aborted", file=sys.stderr)  # the kernel's OOM killer takes it mid-run
    sys.exit(134)
state = Path(os.environ["FAKE_STATE"])
calls = state / "benchmark_model.calls"
n = int(calls.read_text()) + 1 if calls.exists() else 1
calls.write_text(str(n))
base = {"xnnpack": 2000, "none": 5000, "gpu": 900, "nnapi": 600}[delegate] + len(data) % 997
first = base * 3
ws = [first] + [base + 40 + 11 * (i % 3) for i in range(1, warm)]
print(f"INFO: Running benchmark for at least {warm} iterations and at least {flag('--warmup_min_secs', '0.5')} seconds but terminate if exceeding {flag('--max_secs', '150')} seconds.")
if warm:
    print(f"INFO: count={warm} first={ws[0]} curr={ws[-1]} min={min(ws)} max={max(ws)} avg={sum(ws) / warm:g} std={int(max(ws) - min(ws))} p5={min(ws)} median={sorted(ws)[warm // 2]} p95={max(ws)}")
print()
ts = [base + 17 * ((n * 7 + i) % 5) for i in range(runs)]
print(f"INFO: Running benchmark for at least {runs} iterations and at least {flag('--min_secs', '1')} seconds but terminate if exceeding {flag('--max_secs', '150')} seconds.")
if runs == 1:
    print(f"INFO: count=1 curr={ts[0]} p5={ts[0]} median={ts[0]} p95={ts[0]}")
else:
    print(f"INFO: count={runs} first={ts[0]} curr={ts[-1]} min={min(ts)} max={max(ts)} avg={sum(ts) / runs:g} std=9 p5={min(ts)} median={sorted(ts)[runs // 2]} p95={max(ts)}")
with open(state / "benchmark_times.txt", "a") as fh:
    fh.write("\\n".join(map(str, ts)) + "\\n")
print()
print(f"INFO: Inference timings in us: Init: 14300, First inference: {ws[0] if warm else ts[0]}, Warmup (avg): {sum(ws) / warm if warm else float('nan'):g}, Inference (avg): {sum(ts) / runs:g}")
print("INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.")
print("INFO: Memory footprint delta from the start of the tool (MB): init=4.21094 overall=9.83594")
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
    _script(device_bin / "dumpsys", DUMPSYS)
    _script(device_bin / "taskset", TASKSET)
    _script(root / "android" / "benchmark_model", BENCHMARK_MODEL)
    host = sdk / "bin" / "x86_64-linux-clang"
    _script(host / "snpe-onnx-to-dlc", CONVERTER)
    _script(host / "snpe-dlc-quantize", QUANTIZER)
    _script(host / "snpe-diagview", DIAGVIEW)
    _script(sdk / "bin" / "aarch64-android" / "snpe-net-run", NET_RUN)
    for lib in ("lib/aarch64-android/libSNPE.so", "lib/aarch64-android/libc++_shared.so",
                "lib/hexagon-v66/unsigned/libSnpeDspV66Skel.so"):  # fmt: skip
        (sdk / lib).parent.mkdir(parents=True, exist_ok=True)
        (sdk / lib).write_bytes(b"\x7fELF fake")
    return {"bin": bin_dir, "sdk": sdk, "device_bin": device_bin,
            "benchmark_model": root / "android" / "benchmark_model"}  # fmt: skip


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


REAL_DEVICE_VARIABLES = ("ANDROID_SERIAL", "QAIRT_SDK_ROOT", "ANDROID_HOME", "ANDROID_SDK_ROOT",
                         "FAKE_BENCHMARK_MODE")  # fmt: skip
"""Variables of a developer's real setup (or an earlier test) that would bypass the fakes."""


def use(monkeypatch: object, fakes: dict[str, Path], tmp: Path) -> Path:
    """Point the harness at the fakes for one test (``monkeypatch`` undoes it); ``tmp``."""
    for var in REAL_DEVICE_VARIABLES:
        monkeypatch.delenv(var, raising=False)  # type: ignore[attr-defined]
    for name, value in environment(fakes, tmp).items():
        monkeypatch.setenv(name, value)  # type: ignore[attr-defined]
    monkeypatch.setenv("LATBENCH_BENCHMARK_MODEL", str(fakes["benchmark_model"]))  # type: ignore[attr-defined]
    return tmp
