"""Edge devices end to end against fake tools: Edge TPU, Jetson/TensorRT, SNPE over adb.

Every fake (tests/edge_fakes.py) logs its argv; the tests assert the exact commands
the harness issues, the datasets it writes (one-step and build/run), and that tool
failures become ``status=failed`` rows with the tool's reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import edge_fakes
import numpy as np
import pytest

import latbench
from latbench.dataset import read_dataset
from latbench.harness import cli
from latbench.harness.check import check_profile
from latbench.harness.profiles import PROFILE_DIR, load_profile
from latbench.harness.timing import two_stage_filter

A1 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
A3 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
AP = "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
INVALID = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
KEYS = [latbench.Arch.from_str(s).graph.key for s in (A1, A3, AP)]  # plan order (by arch_id)
EDGE_PROFILES = ["edgetpu", "jetson-nano-fp16", "jetson-nano-fp32", "tensorrt",
                 "snpe-cpu", "snpe-gpu", "snpe-dsp"]  # fmt: skip
FAST = ["--runs", "20", "--group-size", "10", "--warmup", "2", "--quiet"]


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("\n".join([A1, A3, AP, INVALID]) + "\n")
    return path


def _log(tmp: Path) -> Path:
    return tmp / "calls.jsonl"


def _validated(path: Path):
    df = read_dataset(path)  # validates schema and metadata
    assert len(df) == 4 and (df.loc[df.arch_str == INVALID, "status"] == "invalid").all()
    return df.set_index("graph_key")


# ---------------------------------------------------------------- parsers, on fixture text

COMPILER_OK = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1234 ms.

Input model: model.tflite
Input size: 1.20MiB
Output model: model_edgetpu.tflite
Output size: 1.30MiB
On-chip memory used for caching model parameters: 1.10MiB
On-chip memory remaining for caching model parameters: 6.51MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 62
Operation log: model_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU.
Number of operations that will run on Edge TPU: 60
Number of operations that will run on CPU: 2

Operator                       Count      Status

CONV_2D                        45         Mapped to Edge TPU
ADD                            15         Mapped to Edge TPU
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
Compilation child process completed within timeout period.
Compilation succeeded!
"""


def test_parse_compiler_log():
    from latbench.harness.build.edgetpu import parse_compiler_log

    r = parse_compiler_log(COMPILER_OK)
    assert (r["version"], r["compile_ms"], r["subgraphs"], r["total_ops"]) == (
        "16.0.384591198", 1234, 1, 62)  # fmt: skip
    assert (r["tpu_ops"], r["cpu_ops"], r["onchip_memory"]) == (60, 2, "1.10MiB")
    assert r["compiled"] and r["errors"] == []
    assert r["operations"] == [
        {"op": "CONV_2D", "count": 45, "status": "Mapped to Edge TPU"},
        {"op": "ADD", "count": 15, "status": "Mapped to Edge TPU"},
        {"op": "QUANTIZE", "count": 2, "status": "Operation is otherwise supported, but not "
         "mapped due to some unspecified limitation"},
    ]  # fmt: skip
    # all mapped: the compiler prints no CPU count
    all_tpu = COMPILER_OK.replace("Number of operations that will run on CPU: 2\n", "").replace(
        "run on Edge TPU: 60", "run on Edge TPU: 62")  # fmt: skip
    assert parse_compiler_log(all_tpu)["cpu_ops"] == 0
    failed = parse_compiler_log(
        "Edge TPU Compiler version 16.0.384591198\nERROR: Attempting to use a delegate that "
        "only supports static-sized tensors with a graph that has dynamic-sized tensors.\n"
        "Compilation failed: Model failed in Tflite interpreter.\nCompilation failed! \n"
    )
    assert not failed["compiled"] and len(failed["errors"]) == 2
    assert failed["errors"][0].startswith("ERROR: Attempting to use a delegate")
    # compiler 15's refusal gives its reason on the next line (google-coral/edgetpu#313)
    invalid = parse_compiler_log(
        "Edge TPU Compiler version 15.0.340273435\nInvalid model: model.tflite\n"
        "Model not quantized\n"
    )
    assert invalid["errors"] == ["Invalid model: model.tflite: Model not quantized"]
    # a successful compile that maps nothing (compiler 16, g.co/coral/model-reqs)
    nothing = parse_compiler_log(
        COMPILER_OK.replace("Edge TPU subgraphs: 1", "Edge TPU subgraphs: 0")
        .replace("run on Edge TPU: 60", "run on Edge TPU: 0")
        .replace("run on CPU: 2", "run on CPU: 62")
    )
    assert nothing["compiled"] and (nothing["tpu_ops"], nothing["cpu_ops"]) == (0, 62)


def test_parse_export_times_and_versions():
    from latbench.harness.build.trt import parse_trt_version
    from latbench.harness.runners.tensorrt import parse_export_times
    from latbench.harness.tools import ToolError

    recs = [{"startComputeMs": i, "latencyMs": 0.5 + i / 1000} for i in range(5)]
    ns = parse_export_times(json.dumps(recs), warmup=2, runs=3)
    assert ns.dtype == np.int64 and ns.tolist() == [502000, 503000, 504000]
    with pytest.raises(ToolError, match="ran 5 iterations, expected 6"):
        parse_export_times(json.dumps(recs), warmup=3, runs=3)
    with pytest.raises(ToolError, match="latencyMs"):
        parse_export_times('[{"computeMs": 1}]', 0, 1)
    assert parse_trt_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # x") == "8.2.1"
    assert parse_trt_version("[TensorRT v100300]") == "10.3.0"
    assert parse_trt_version("no banner") is None


def test_parse_diagview_csv():
    from latbench.harness.runners.snpe import parse_diagview_csv
    from latbench.harness.tools import ToolError

    text = (
        "Log Id,Message Name,Message Type,Message Value,Message Unit,Message Timestamp\n"
        "0,Init,ELAPSED_TIME,48856,USEC,1\n"
        "1,Total Inference Time,ELAPSED_TIME,3318,USEC,2\n"
        "2,Forward Propagate Time,ELAPSED_TIME,3244,USEC,2\n"
        "3,Total_Inference_Time,ELAPSED_TIME,3.5,ms,3\n"
        "4,Avg_Total_Inference_Time,ELAPSED_TIME,3400,USEC,4\n"
    )
    assert parse_diagview_csv(text).tolist() == [3318000, 3500000]
    # no header: name in column 1, value (microseconds) in column 3, as Olive reads it
    assert parse_diagview_csv("7,Total Inference Time,X,26458\n").tolist() == [26458000]
    with pytest.raises(ToolError, match="profiling_level"):
        parse_diagview_csv(text.replace("Total Inference Time", "Other").replace("Total_", "O"))
    with pytest.raises(ToolError, match="unknown unit"):
        parse_diagview_csv(text.replace("3.5,ms", "3,cycles"))


# ---------------------------------------------------------------- acceptance: real int8 here


@pytest.mark.slow
def test_full_int8_tflite_runs_in_litert_close_to_float(tmp_path):
    """A real full-integer .tflite (as the Edge TPU compiler gets it) runs in LiteRT on the CPU."""
    pytest.importorskip("ai_edge_litert")
    import keras

    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.build.keras_net import build_keras
    from latbench.harness.build.tflite_converter import convert_tflite
    from latbench.harness.runners import make_runner
    from latbench.harness.runners.litert import load_interpreter_module

    graph = latbench.Arch.from_str(A3).graph
    path = ArtifactCache(tmp_path).build(graph, "tflite-int8")  # the cpu-tflite-int8 artifact
    with make_runner(load_profile("cpu-tflite-int8").with_protocol(10, 10, 1)) as runner:
        runner.prepare(path, seed=0)
        assert runner.time(runner.profile.protocol).shape == (10,)
    model = build_keras(graph, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 32, 32, 3)).astype(np.float32)
    y_float = np.asarray(model(x)).ravel()
    for io in ("int8", "uint8"):
        module, _, _ = load_interpreter_module()
        interp = module.Interpreter(model_content=convert_tflite(model, True, 0, io_dtype=io))
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        assert i["dtype"] == np.dtype(io) and o["dtype"] == np.dtype(io)
        s, z = i["quantization"]
        q = np.clip(np.round(x / s + z), np.iinfo(io).min, np.iinfo(io).max).astype(io)
        interp.set_tensor(i["index"], q)
        interp.invoke()
        s, z = o["quantization"]
        y = (interp.get_tensor(o["index"]).astype(np.float32) - z).ravel() * s
        cos = float(y @ y_float / (np.linalg.norm(y) * np.linalg.norm(y_float)))
        assert cos > 0.95, (io, cos)
    keras.backend.clear_session()


# ---------------------------------------------------------------- Edge TPU


@pytest.fixture(scope="module")
def fake_libedgetpu(tmp_path_factory):
    """A real TFLite external-delegate library that claims no nodes (the CPU runs them)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in delegate library")
    d = tmp_path_factory.mktemp("libedgetpu")
    (d / "d.c").write_text(
        "#include <stdint.h>\n#include <stdlib.h>\n#include <stddef.h>\n"
        "typedef struct D { void* data; int (*Prepare)(void*, struct D*);"
        " void* a; void* b; void* c; int64_t flags; void* o; } D;\n"
        "static int prep(void* c, D* d) { return 0; }\n"
        "D* tflite_plugin_create_delegate(char** k, char** v, size_t n, void (*e)(const char*))"
        " { D* d = calloc(1, sizeof(D)); d->Prepare = prep; return d; }\n"
        "void tflite_plugin_destroy_delegate(D* d) { free(d); }\n"
    )
    lib = d / "libedgetpu.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(d / "d.c")], check=True)
    return lib


@pytest.fixture
def edgetpu_profile(tmp_path, fake_libedgetpu, monkeypatch):
    import latbench.harness.runners.edgetpu as etpu

    monkeypatch.setattr(etpu, "find_edgetpu_devices", lambda: ["usb:2-1"])
    text = (PROFILE_DIR / "edgetpu.toml").read_text()
    path = tmp_path / "edgetpu.toml"
    path.write_text(text.replace("[options]", f'[options]\ndelegate = "{fake_libedgetpu}"'))
    return path


def _compile_calls(log: Path) -> list[list[str]]:
    return [a for a in edge_fakes.calls(log, "edgetpu_compiler") if a != ["--version"]]


def test_edgetpu_one_step_and_build_run(env, arch_file, edgetpu_profile, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_EDGETPU_COMPILER", "2")  # rejects the second model
    out = env / "out"
    rc = cli.main(
        [
            "--device",
            str(edgetpu_profile),
            "--archs",
            str(arch_file),
            "--out",
            str(out),
            "--key",
            "etpu1",
            "--cache",
            str(env / "cache"),
            "--build-workers",
            "1",
            *FAST,
        ]
    )
    assert rc == 0
    compiles = _compile_calls(_log(env))
    assert len(compiles) == 3
    for argv in compiles:  # edgetpu_compiler -s -o <tmp>/out <tmp>/model.tflite
        assert argv[:2] == ["-s", "-o"] and len(argv) == 4
        assert Path(argv[2]).name == "out" and argv[3] == str(Path(argv[2]).parent / "model.tflite")
    df = _validated(out / "etpu1.parquet")
    assert df.loc[KEYS[1], "status"] == "failed"
    assert "edgetpu_compiler rejected the model (exit status 1): ERROR: Didn't find op for " \
           "builtin opcode 'AVERAGE_POOL_2D'" in df.loc[KEYS[1], "error"]  # fmt: skip
    ok = df.loc[[KEYS[0], KEYS[2]]]
    assert (
        (ok["status"] == "ok").all() and (ok["latency_ms"] > 0).all() and (ok["runs"] == 20).all()
    )
    meta = df.attrs["metadata"]
    assert meta["runtime"]["name"] == "edgetpu" and meta["runtime"]["devices"] == ["usb:2-1"]
    report = meta["artifact_reports"][KEYS[0]]
    assert (report["tpu_ops"], report["cpu_ops"], report["subgraphs"]) == (12, 2, 1)
    assert report["version"] == "16.0.384591198" and KEYS[1] not in meta["artifact_reports"]

    # build on the "host", run on the "board": same statuses, checksums verified
    monkeypatch.setenv("FAKE_STATE", str(env / "state2"))
    (env / "state2").mkdir()
    art = env / "artifacts"
    assert cli.main(["build", "--device", str(edgetpu_profile), "--archs", str(arch_file),
                     "--out", str(art), "--build-workers", "1", "--quiet"]) == 0  # fmt: skip
    manifest = json.loads((art / "latbench-artifacts.json").read_text())
    assert manifest["build_format"] == "edgetpu-tflite" and manifest["seed"] == 0
    assert manifest["toolchain"]["edgetpu_compiler"] == "16.0.384591198"
    entries = {e["key"]: e for e in manifest["entries"]}
    assert entries[KEYS[1]]["status"] == "failed" and "rejected" in entries[KEYS[1]]["error"]
    good = entries[KEYS[0]]
    assert good["status"] == "ok" and len(good["sha256"]) == 64
    assert good["report"]["compiler"]["operations"][0] == {
        "op": "CONV_2D", "count": 9, "status": "Mapped to Edge TPU"}  # fmt: skip
    run = ["run", "--device", str(edgetpu_profile), "--artifacts", str(art), "--out",
           str(env / "out2"), "--key", "etpu2", *FAST]  # fmt: skip
    assert cli.main(run) == 0
    df2 = _validated(env / "out2" / "etpu2.parquet")
    assert (df2["status"] == df["status"]).all()
    assert df2.attrs["metadata"]["build"]["toolchain"]["edgetpu_compiler"] == "16.0.384591198"
    # a corrupted copy is caught by its checksum and recorded, not timed
    (art / entries[KEYS[2]]["file"]).write_bytes(b"corrupted")
    assert cli.main([*run, "--fresh"]) == 2  # recorded, and the run says so in its status
    df3 = _validated(env / "out2" / "etpu2.parquet")
    assert (
        df3.loc[KEYS[2], "status"] == "failed" and "checksum mismatch" in df3.loc[KEYS[2], "error"]
    )
    assert df3.loc[KEYS[0], "status"] == "ok"


# ---------------------------------------------------------------- Jetson / TensorRT


@pytest.mark.parametrize("name", ["jetson-nano-fp16", "jetson-nano-fp32"])
def test_jetson_one_step(env, arch_file, gpu_visible, monkeypatch, name):
    monkeypatch.setenv("FAKE_FAIL_TRTEXEC", "5")  # 3 builds, then the 2nd timing fails
    rc = cli.main(
        [
            "--device",
            name,
            "--archs",
            str(arch_file),
            "--out",
            str(env / "out"),
            "--key",
            "jn",
            "--cache",
            str(env / "cache"),
            "--build-workers",
            "1",
            *FAST,
        ]
    )
    assert rc == 0
    trt = [a for a in edge_fakes.calls(_log(env), "trtexec") if a != ["--help"]]
    builds, timings = trt[:3], trt[3:]
    flag = ["--fp16"] if name.endswith("fp16") else []
    for argv in builds:  # TensorRT 8.2 (the fake's banner): --buildOnly, not --skipInference
        tmp = Path(argv[0].split("=", 1)[1]).parent
        assert argv == [f"--onnx={tmp}/model.onnx", f"--saveEngine={tmp}/model.engine", *flag,
                        "--buildOnly"]  # fmt: skip
    assert len(timings) == 3
    engines = []
    for argv in timings:
        engine = argv[0].split("=", 1)[1]
        engines.append(engine)
        times = Path(argv[-1].split("=", 1)[1])
        assert argv == [f"--loadEngine={engine}", "--iterations=22", "--warmUp=0", "--duration=0",
                        "--avgRuns=1", f"--exportTimes={times}"]  # fmt: skip
        assert engine.endswith(".engine") and Path(engine).read_bytes().startswith(
            b"FAKEENGINE" + name[-4:].encode())  # fmt: skip
    df = _validated(env / "out" / "jn.parquet")
    assert df.loc[KEYS[1], "status"] == "failed"
    assert "Cuda Runtime (out of memory)" in df.loc[KEYS[1], "error"]
    # the dataset's figure is our two-stage filter over the 20 latencies trtexec exported
    blob = Path(engines[0]).read_bytes()
    lat = [0.4 + (len(blob) % 1000) / 1000.0 + 0.01 * ((i * 7) % 5) for i in range(22)][2:]
    assert df.loc[KEYS[0], "latency_ms"] == pytest.approx(two_stage_filter(np.array(lat), 10)[0])
    info = df.attrs["metadata"]["runtime"]
    assert (info["name"], info["timer"], info["version"], info["power_mode"]) == (
        "tensorrt", "trtexec", "8.2.1", "MAXN")  # fmt: skip


def test_tensorrt_build_then_run(env, arch_file, gpu_visible):
    art = env / "art"
    assert cli.main(["build", "--device", "tensorrt", "--archs", str(arch_file), "--out", str(art),
                     "--build-workers", "1", "--quiet"]) == 0  # fmt: skip
    manifest = json.loads((art / "latbench-artifacts.json").read_text())
    assert manifest["build_format"] == "trt-engine-fp16"
    assert manifest["toolchain"]["tensorrt"] == "8.2.1"
    assert all(e["status"] == "ok" and e["report"]["builder"] == "trtexec"
               for e in manifest["entries"])  # fmt: skip
    assert cli.main(["run", "--device", "tensorrt", "--artifacts", str(art), "--out",
                     str(env / "out"), "--key", "trt", *FAST]) == 0  # fmt: skip
    df = _validated(env / "out" / "trt.parquet")
    assert (df.loc[KEYS, "status"] == "ok").all()
    loaded = [a[0] for a in edge_fakes.calls(_log(env), "trtexec") if a[0].startswith("--load")]
    assert loaded == [f"--loadEngine={art / entry['file']}" for entry in manifest["entries"]]
    # an fp32 profile refuses the fp16 folder instead of timing the wrong engines
    assert cli.main(["run", "--device", "jetson-nano-fp32", "--artifacts", str(art)]) == 2


# ---------------------------------------------------------------- SNPE over adb


def _adb(log: Path) -> list[list[str]]:
    return edge_fakes.calls(log, "adb")


def _expected_session(fakes, adb_bin, target):
    wd, sdk = "/data/local/tmp/latbench", fakes["sdk"]
    cmds = [
        ["devices"],  # make_runner's check: is the device there and authorized?
        ["devices"],  # no serial configured: the only attached device
        ["-s", "FAKE0001", "shell", f"rm -rf {wd} && mkdir -p {wd}/sdk/bin {wd}/sdk/lib "
         f"{wd}/sdk/dsp {wd}/model; echo LATBENCH_RC=$?"],
        ["-s", "FAKE0001", "push", f"{sdk}/bin/aarch64-android/snpe-net-run",
         f"{wd}/sdk/bin/snpe-net-run"],
        ["-s", "FAKE0001", "push", f"{sdk}/lib/aarch64-android/.", f"{wd}/sdk/lib/"],
    ]  # fmt: skip
    if target == "dsp":
        cmds.append(
            ["-s", "FAKE0001", "push", f"{sdk}/lib/hexagon-v66/unsigned/.", f"{wd}/sdk/dsp/"]
        )
    cmds.append(
        ["-s", "FAKE0001", "shell", f"chmod 755 {wd}/sdk/bin/snpe-net-run; echo LATBENCH_RC=$?"]
    )
    for prop in ("ro.product.model", "ro.board.platform", "ro.build.version.release"):
        cmds.append(["-s", "FAKE0001", "shell", f"getprop {prop}; echo LATBENCH_RC=$?"])
    return cmds


@pytest.mark.parametrize("target", ["cpu", "gpu", "dsp"])
def test_snpe_one_step(env, fakes, arch_file, monkeypatch, target):
    monkeypatch.setenv("FAKE_FAIL_SNPE_NET_RUN", "2")  # second model fails on the phone
    monkeypatch.setenv("FAKE_FAIL_SNPE_ONNX_TO_DLC", "3")  # third model does not convert
    name = f"snpe-{target}"
    assert cli.main(["--device", name, "--archs", str(arch_file), "--out", str(env / "out"),
                     "--key", "m", "--cache", str(env / "cache"), "--build-workers", "1",
                     "--quiet"]) == 0  # fmt: skip
    df = _validated(env / "out" / "m.parquet")
    ok, phone_fail, conv_fail = (df.loc[k] for k in KEYS)
    assert ok["status"] == "ok" and ok["runs"] == 10  # mobile default: R = 10, G = 1
    assert phone_fail["status"] == "failed" and "error_code=201" in phone_fail["error"]
    assert conv_fail["status"] == "failed" and "ERROR_ONNX_NOT_SUPPORTED" in conv_fail["error"]
    # the figure is the filter over the 10 device timings after the warm-up execution
    dlc = (env / "device" / "data/local/tmp/latbench").exists()
    assert not dlc, "the device folder is removed at the end"
    convs = edge_fakes.calls(_log(env), "snpe-onnx-to-dlc")
    assert len(convs) == 3 and all(
        a == ["--input_network", str(Path(a[1])), "--output_path", str(Path(a[1]).with_suffix(".dlc"))]
        for a in convs)  # fmt: skip
    quants = edge_fakes.calls(_log(env), "snpe-dlc-quantize")
    assert len(quants) == (2 if target == "dsp" else 0)
    for a in quants:
        tmp = Path(a[1]).parent
        assert a == ["--input_dlc", f"{tmp}/model.dlc", "--input_list", f"{tmp}/calibration_list.txt",
                     "--output_dlc", f"{tmp}/model_quantized.dlc"]  # fmt: skip
    adb = _adb(_log(env))
    session = _expected_session(fakes, None, target)
    assert adb[: len(session)] == session
    wd = "/data/local/tmp/latbench"
    flag = {"cpu": "", "gpu": " --use_gpu", "dsp": " --use_dsp"}[target]
    model_cmds = adb[len(session) : len(session) + 5]
    assert (
        model_cmds[0][:3] == ["-s", "FAKE0001", "push"]
        and model_cmds[0][4] == f"{wd}/model/model.dlc"
    )
    assert model_cmds[1][2:] == ["push", model_cmds[1][3], f"{wd}/model/input_0.raw"]
    assert model_cmds[2][2:] == ["push", model_cmds[2][3], f"{wd}/model/input_list.txt"]
    assert model_cmds[3] == ["-s", "FAKE0001", "shell",
        f"rm -rf {wd}/model/output && cd {wd}/model && LD_LIBRARY_PATH={wd}/sdk/lib "
        f"ADSP_LIBRARY_PATH='{wd}/sdk/dsp;/vendor/lib/rfsa/adsp;/system/lib/rfsa/adsp;"
        f"/vendor/dsp;/dsp' {wd}/sdk/bin/snpe-net-run --container {wd}/model/model.dlc "
        f"--input_list {wd}/model/input_list.txt --output_dir {wd}/model/output{flag} "
        f"--perf_profile burst --profiling_level basic; echo LATBENCH_RC=$?"]  # fmt: skip
    assert model_cmds[4][2] == "pull" and model_cmds[4][3] == f"{wd}/model/output"
    assert adb[-1] == ["-s", "FAKE0001", "shell", f"rm -rf {wd}; echo LATBENCH_RC=$?"]
    views = edge_fakes.calls(_log(env), "snpe-diagview")
    assert views[0] == ["--input_log", f"{model_cmds[4][4]}/SNPEDiag.log", "--output",
                        str(Path(model_cmds[4][4]).parent / "diag.csv")]  # fmt: skip
    scale = {"cpu": 3000, "gpu": 1500, "dsp": 400}[target]
    blob = (env / "cache").glob("graph-dlc*.dlc")
    sizes = {p.stat().st_size for p in blob}
    expected = [
        two_stage_filter(np.array([scale + (s % 500) + 7 * ((i * 3) % 4) for i in range(11)][1:])
                         / 1000, 10)[0]
        for s in sizes
    ]  # fmt: skip
    assert any(ok["latency_ms"] == pytest.approx(e) for e in expected)
    meta = df.attrs["metadata"]["runtime"]
    assert (
        meta["serial"] == "FAKE0001" and meta["device_properties"]["ro.board.platform"] == "msmnile"
    )


def test_snpe_dsp_build_then_run(env, arch_file):
    art = env / "art"
    assert cli.main(["build", "--device", "snpe-dsp", "--archs", str(arch_file), "--out", str(art),
                     "--build-workers", "1", "--quiet"]) == 0  # fmt: skip
    m = json.loads((art / "latbench-artifacts.json").read_text())
    assert m["build_format"] == "dlc-int8" and m["toolchain"]["sdk"] == "2.10.0.4541"
    assert m["toolchain"]["quantizer"] == "snpe-dlc-quantize"
    assert all(e["report"]["inputs"] == [{"name": "input", "shape": [1, 32, 32, 3],
                                          "dtype": "float32"}] for e in m["entries"])  # fmt: skip
    assert cli.main(["run", "--device", "snpe-dsp", "--artifacts", str(art), "--out",
                     str(env / "out"), "--key", "dsp", "--quiet"]) == 0  # fmt: skip
    df = _validated(env / "out" / "dsp.parquet")
    assert (df.loc[KEYS, "status"] == "ok").all() and (df.loc[KEYS, "runs"] == 10).all()
    pushes = [a for a in _adb(_log(env)) if a[2:3] == ["push"]]
    pushed = [a[3] for a in pushes if a[4].endswith("/model/model.dlc")]
    assert pushed == [str(art / e["file"]) for e in m["entries"]]


# ---------------------------------------------------------------- diagnostics


def test_check_lists_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    for var in ("SNPE_ROOT", "QAIRT_SDK_ROOT", "ANDROID_SERIAL", "ANDROID_HOME"):
        monkeypatch.delenv(var, raising=False)
    import latbench.harness.runners.edgetpu as etpu

    monkeypatch.setattr(etpu, "find_edgetpu_devices", lambda: [])
    needs = {
        "edgetpu": ["Edge TPU compiler not found", "apt-get install edgetpu-compiler",
                    "libedgetpu.so.1 not found", "libedgetpu1-std", "no Edge TPU found"],
        "jetson-nano-fp16": ["trtexec not found", "JetPack", "no NVIDIA GPU visible"],
        "snpe-dsp": ["snpe-onnx-to-dlc not found", "snpe-dlc-quantize not found",
                     "SNPE_ROOT", "adb not found"],
    }  # fmt: skip
    for name in EDGE_PROFILES:
        report = check_profile(load_profile(name))
        assert not report.ok and report.lines[-1] == f"{name}: not usable here", name
        text = "\n".join(report.lines)
        assert "build tools: FAILED" in text and "runtime and device: FAILED" in text, name
        for needle in needs.get(name, []):
            assert needle in text, (name, needle)
    # run-side only, as on the Coral board: the compiler is not needed there
    report = check_profile(load_profile("edgetpu"), stages=("run",))
    assert "compiler" not in "\n".join(report.lines) and "libedgetpu" in report.problems[0]


def test_check_device_states(env, monkeypatch):
    from latbench.harness.adb import device_problems

    prof = load_profile("snpe-gpu")
    assert device_problems(prof.options) == []
    cases = {
        "A:device,B:device": "several Android devices attached (A, B)",
        "A:unauthorized": "accept the USB debugging prompt",
        "A:no permissions (user in plugdev group; are your udev rules wrong?)": "udev rule",
        "": "no Android device attached",
    }
    for devices, needle in cases.items():
        monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
        problems = device_problems(prof.options)
        assert len(problems) == 1 and needle in problems[0], (devices, problems)
    monkeypatch.setenv("FAKE_ADB_DEVICES", "A:device")
    monkeypatch.setenv("ANDROID_SERIAL", "B")
    assert (
        "'B'" in device_problems(prof.options)[0]
        and "A (device)" in device_problems(prof.options)[0]
    )
    monkeypatch.setenv("ANDROID_SERIAL", "A")
    assert check_profile(prof, stages=("run",)).ok


def test_cli_check_exits_nonzero_without_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LATBENCH_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-m", "latbench.harness.cli", "--device", "snpe-gpu",
                          "--check"], capture_output=True, text=True, env=env)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "adb not found" in res.stdout and "SNPE_ROOT" in res.stdout


def test_edgetpu_compile_that_maps_nothing_is_a_failed_row(env, arch_file, edgetpu_profile,
                                                           monkeypatch):  # fmt: skip
    monkeypatch.setenv("FAKE_EDGETPU_MAPS_NONE", "1")
    out = env / "out"
    assert cli.main(["--device", str(edgetpu_profile), "--archs", str(arch_file), "--out",
                     str(out), "--key", "none", "--cache", str(env / "cache"),
                     "--build-workers", "1", *FAST]) == 0  # fmt: skip
    df = _validated(out / "none.parquet")
    timed = df.loc[KEYS]
    assert (timed["status"] == "failed").all() and timed["latency_ms"].isna().all()
    assert timed["error"].str.contains(
        "mapped none of the model's 14 operations to the Edge TPU").all()  # fmt: skip


@pytest.mark.parametrize(
    ("help_text", "flag"),
    [  # trtexec --help of TensorRT 10.3, 8.2 and 7.1 (their option lines, trimmed)
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec --help\n"
         "  --saveEngine=<file>         Save the serialized engine\n"
         "  --skipInference             Exit after the engine has been built and skip"
         " inference perf measurement (default = disabled)\n", "--skipInference"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --help\n"
         "  --saveEngine=<file>         Save the serialized engine\n"
         "  --buildOnly                 Skip inference perf measurement (default ="
         " disabled)\n", "--buildOnly"),
        ("&&&& RUNNING TensorRT.trtexec # ./trtexec --help\n"
         "  --saveEngine=<file>         Save the serialized engine\n"
         "  --loadEngine=<file>         Load a serialized engine\n", ""),
        ("Segmentation fault\n", None),
    ],
)  # fmt: skip
def test_the_build_only_flag_comes_from_trtexecs_own_help(tmp_path, help_text, flag):
    from latbench.harness.build.trt import build_only_flag, trtexec_build_command

    exe = tmp_path / "trtexec"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{help_text}EOF\n")
    exe.chmod(0o755)
    assert build_only_flag(exe) == flag
    cmd = trtexec_build_command(exe, Path("m.onnx"), Path("m.engine"), "fp16", "unknown",
                                build_flag=flag)  # fmt: skip
    wanted = flag if flag is not None else "--skipInference"  # unreadable: by version
    assert cmd[-1] == (wanted or "--fp16")
