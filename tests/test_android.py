"""LiteRT on Android (benchmark_model over adb) end to end against fake adb/device tools.

The fakes (tests/edge_fakes.py) replay benchmark_model's real log format, its delegate
messages and failures, and adb's device states; the tests assert the exact commands,
that each timed run's ``curr=`` feeds the two-stage filter, the device fingerprint,
and that every failure becomes a failed row (or a ``--check`` line) with its reason.
"""

from __future__ import annotations

import json
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
from latbench.harness.profiles import load_profile
from latbench.harness.runners.android_litert import (
    benchmark_command,
    parse_benchmark_output,
)
from latbench.harness.timing import two_stage_filter

A1 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
A3 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
AP = "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
INVALID = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
KEYS = [latbench.Arch.from_str(s).graph.key for s in (A1, A3, AP)]
WD = "/data/local/tmp/latbench-litert"
PROFILES = ["android-litert-cpu", "android-litert-gpu", "android-litert-nnapi"]

# Real benchmark_model output (LiteRT 2.x on a phone, trimmed): warm-up block, one run.
REAL_LOG = """INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/latbench-litert/model.tflite]
INFO: Loaded model /data/local/tmp/latbench-litert/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 73 out of 73 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 1.27595
INFO: Initialized session in 21.402ms.
INFO: Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=5 first=6602 curr=2211 min=2190 max=6602 avg=3076.4 std=1760 p5=2190 median=2211 p95=6602

INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=1 curr=2189 p5=2189 median=2189 p95=2189

INFO: Inference timings in us: Init: 21402, First inference: 6602, Warmup (avg): 3076.4, Inference (avg): 2189
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=4.21094 overall=9.83594
"""

# An older binary (TF 2.3 era): no INFO prefixes, scientific notation, no percentiles.
OLD_LOG = """Loaded model ./m.tflite
Initialized session in 17.187ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=3512391

Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=1 curr=2.95034e+06

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
"""


def test_parse_real_and_old_output():
    run = parse_benchmark_output(REAL_LOG)
    assert run["init_us"] == 21402 and run["first_us"] == 6602
    assert run["warmup_avg_us"] == 3076.4 and run["inference_avg_us"] == 2189
    assert [b["count"] for b in run["blocks"]] == [5, 1] and run["blocks"][1]["curr"] == 2189
    assert run["delegated"] == [(73, 73, "TfLiteXNNPackDelegate")] and run["errors"] == []
    old = parse_benchmark_output(OLD_LOG)
    assert old["blocks"][-1] == {"count": 1, "curr": 2.95034e06}
    assert old["inference_avg_us"] == 2.95034e06
    assert parse_benchmark_output("garbage\n")["blocks"] == []


def test_command_carries_threads_mask_delegate_and_protocol():
    prof = load_profile("android-litert-cpu").with_options(cpu_mask="f0").with_threads(2)
    cmd = benchmark_command(WD, prof, warmup=5)
    assert cmd == (
        f"cd {WD} && taskset f0 {WD}/benchmark_model --graph={WD}/model.tflite "
        "--warmup_runs=5 --warmup_min_secs=0 --num_runs=1 --min_secs=0 --max_secs=150.0 "
        "--enable_op_profiling=false --use_xnnpack=true --num_threads=2 2>&1"
    )
    gpu = benchmark_command(WD, load_profile("android-litert-gpu"), warmup=3)
    assert "--use_gpu=true --gpu_precision_loss_allowed=true" in gpu and "taskset" not in gpu
    nnapi = load_profile("android-litert-nnapi").with_options(nnapi_accelerator_name="qti-dsp")
    assert "--use_nnapi=true --nnapi_accelerator_name=qti-dsp" in benchmark_command(WD, nnapi, 1)


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("\n".join([A1, A3, AP, INVALID]) + "\n")
    return path


def _adb(tmp: Path) -> list[list[str]]:
    return [a for a in edge_fakes.calls(tmp / "calls.jsonl", "adb") if a != ["devices"]]


def _measure(env: Path, arch_file: Path, name: str, *extra: str) -> object:
    assert cli.main(["--device", name, "--archs", str(arch_file), "--out", str(env / "out"),
                     "--key", "m", "--cache", str(env / "cache"), "--build-workers", "1",
                     "--quiet", *extra]) == 0  # fmt: skip
    df = read_dataset(env / "out" / "m.parquet")  # validates schema and metadata
    assert len(df) == 4 and (df.loc[df.arch_str == INVALID, "status"] == "invalid").all()
    return df.set_index("graph_key")


@pytest.mark.slow
@pytest.mark.parametrize("name", PROFILES)
def test_profile_one_step(env, arch_file, monkeypatch, name):
    monkeypatch.setenv("FAKE_FAIL_BENCHMARK_MODEL", "9")  # the 2nd model's 3rd run is killed
    df = _measure(env, arch_file, name, "--runs", "6", "--group-size", "3", "--warmup", "2")
    rows = df.loc[KEYS]
    # builds and timing overlap (a phone profile pipelines), so the order may vary
    killed = rows[rows.status == "failed"]
    assert (
        len(killed) == 1 and "benchmark_model failed on FAKE0001: Aborted" in killed.error.iloc[0]
    )
    ok = rows[rows.status == "ok"]
    assert len(ok) == 2 and (ok.runs == 6).all()
    # each figure is the two-stage filter of the 'curr=' of that model's 6 runs, in order
    times = [int(t) for t in (env / "state" / "benchmark_times.txt").read_text().split()]
    assert len(times) == 6 + 2 + 6  # the killed model's 2 runs before the crash are not kept
    expected = {two_stage_filter(np.asarray(ts, float) / 1e3, 3) for ts in (times[:6], times[-6:])}
    got = {(r.latency_ms, r.latency_std_ms) for r in ok.itertuples()}
    assert len(expected) == 2 and {tuple(round(v, 9) for v in e) for e in expected} == {
        tuple(round(v, 9) for v in g) for g in got
    }
    meta = df.attrs["metadata"]
    rt = meta["runtime"]
    delegate = {"android-litert-cpu": "xnnpack", "android-litert-gpu": "gpu",
                "android-litert-nnapi": "nnapi"}[name]  # fmt: skip
    assert rt["name"] == "android-litert" and rt["delegate"] == delegate
    assert rt["serial"] == "FAKE0001" and rt["device"]["thermal_status"] == 0
    props = rt["device"]["properties"]
    assert props["ro.product.model"] == "Pixel 4" and props["ro.soc.model"] == "SM8150"
    assert props["ro.build.version.release"] == "12"
    adb = _adb(env)
    assert adb[0] == [
        "-s",
        "FAKE0001",
        "shell",
        f"rm -rf {WD} && mkdir -p {WD}; echo LATBENCH_RC=$?",
    ]
    assert adb[1] == ["-s", "FAKE0001", "push", str(edge_fakes_path(env)), f"{WD}/benchmark_model"]
    runs = [a[3] for a in adb if a[2] == "shell" and "--graph=" in a[3]]
    assert len(runs) == 6 + 3 + 6 and all(
        "--warmup_runs=2 " in r and "--num_runs=1 " in r for r in runs
    )
    if name == "android-litert-cpu":
        assert all("--num_threads=1" in r and "--use_xnnpack=true" in r for r in runs)
    assert adb[-1] == ["-s", "FAKE0001", "shell", f"rm -rf {WD}; echo LATBENCH_RC=$?"]
    assert not (env / "device" / WD.lstrip("/")).exists()


def edge_fakes_path(env: Path) -> Path:
    import os

    return Path(os.environ["LATBENCH_BENCHMARK_MODEL"])


@pytest.mark.parametrize(
    ("name", "mode", "needle"),
    [
        ("android-litert-gpu", "gpu-fail", "FAKE0001: not supported by the delegate: MEAN: "
                                           "Unsupported MEAN op"),
        ("android-litert-nnapi", "nnapi-fail", "ANEURALNETWORKS_OP_FAILED"),
        ("android-litert-gpu", "fallback", "will not be executed by the delegate"),
        ("android-litert-cpu", "abi", "CANNOT LINK EXECUTABLE"),
    ],
)  # fmt: skip
def test_phone_failures_become_failed_rows(env, monkeypatch, name, mode, needle):
    monkeypatch.setenv("FAKE_BENCHMARK_MODE", mode)
    one = env / "one.txt"
    one.write_text(A1 + "\n")
    assert cli.main(["--device", name, "--archs", str(one), "--out", str(env / "out"), "--key",
                     "m", "--cache", str(env / "cache"), "--quiet", "--runs", "2",
                     "--group-size", "2", "--warmup", "1"]) == 0  # fmt: skip
    row = read_dataset(env / "out" / "m.parquet").iloc[0]
    assert row["status"] == "failed" and needle in row["error"], row["error"]


def test_device_states_in_check_and_run(env, arch_file, monkeypatch):
    prof = load_profile("android-litert-cpu")
    assert check_profile(prof, stages=("run",)).ok
    for devices, needle in {"A:unauthorized": "accept the USB debugging prompt",
                            "A:offline": "'offline', not ready",
                            "": "no Android device attached"}.items():  # fmt: skip
        monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
        report = check_profile(prof, stages=("run",))
        assert not report.ok and any(needle in p for p in report.problems), report.problems
    # a phone that drops to 'unauthorized' mid-campaign: adb's own message, run goes on
    monkeypatch.setenv("FAKE_ADB_DEVICES", "FAKE0001:unauthorized")
    monkeypatch.setenv("ANDROID_SERIAL", "FAKE0001")
    res = subprocess.run(
        [sys.executable, "-m", "latbench.harness.cli", "--device", "android-litert-cpu",
         "--archs", str(arch_file), "--out", str(env / "o2"), "--key", "m", "--cache",
         str(env / "cache"), "--build-workers", "1", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "Traceback" not in res.stderr, res.stderr
    if res.returncode == 0:
        df = read_dataset(env / "o2" / "m.parquet")
        errs = df.loc[df.status == "failed", "error"]
        # one line saying what to do, not adb's advice for other setups
        assert len(errs) == 3
        assert all("FAKE0001 is unauthorized: unlock it" in e for e in errs), list(errs)
        assert not any("ADB_VENDOR_KEYS" in e for e in errs)
    else:  # refused up front: the check names the state
        assert res.returncode == 2 and "unauthorized" in res.stderr + res.stdout


def test_check_without_adb_binary_or_phone(tmp_path, monkeypatch):
    monkeypatch.delenv("LATBENCH_BENCHMARK_MODEL", raising=False)
    env = {"PATH": "/usr/bin:/bin", "LATBENCH_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-m", "latbench.harness.cli", "--device",
                          "android-litert-gpu", "--check"], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "adb not found" in res.stdout and "apt-get install adb" in res.stdout
    assert "no benchmark_model binary configured" in res.stdout
    assert (
        "LATBENCH_BENCHMARK_MODEL" in res.stdout and "android_aarch64_benchmark_model" in res.stdout
    )
    env["LATBENCH_BENCHMARK_MODEL"] = str(tmp_path / "nope")
    res = subprocess.run([sys.executable, "-m", "latbench.harness.cli", "--device",
                          "android-litert-cpu", "--check"], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert f"benchmark_model not found at '{tmp_path / 'nope'}'" in res.stdout


def test_bad_options_are_refused(tmp_path):
    text = (Path(load_profile("android-litert-cpu").source)).read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace('delegate = "xnnpack"', 'delegate = "hexagon"'))
    report = check_profile(load_profile(path), stages=("run",))
    assert any("delegate is 'hexagon'" in p for p in report.problems)
    assert json.dumps(report.problems)  # plain strings


# Real output of other benchmark_model versions (tensorflow/tensorflow#43541, #58379,
# #56301; Stat::OutputToStream in stats_calculator.h; the pre-2.3 tools README).
FULL_GPU_NO_REPLACING = REAL_LOG.replace(
    "VERBOSE: Replacing 73 out of 73 node(s) with delegate (TfLiteXNNPackDelegate) node,"
    " yielding 1 partitions for subgraph 0.\n",
    "INFO: Created 1 GPU delegate kernels.\nExplicitly applied GPU delegate, and the model"
    " graph will be completely executed by the delegate.\n",
)
PARTIAL_GPU = REAL_LOG.replace(
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
    "ERROR: Following operations are not supported by GPU delegate:\nMEAN: Operation is not"
    " supported.\n30 operations will run on the GPU, and the remaining 1 operations will run"
    " on the CPU.\n",
)


def test_delegation_read_from_every_version_of_the_log():
    from latbench.harness.runners.android_litert import _one_run_us, _require_delegation
    from latbench.harness.tools import ToolError

    _require_delegation(parse_benchmark_output(FULL_GPU_NO_REPLACING), "gpu")  # taken
    old = REAL_LOG.replace("Replacing 73 out of 73 node(s) with delegate (TfLiteXNNPackDelegate)",
                           "Replacing 73 node(s) with delegate (TfLiteGpuDelegateV2)")  # fmt: skip
    assert parse_benchmark_output(old)["delegated"] == [(73, None, "TfLiteGpuDelegateV2")]
    _require_delegation(parse_benchmark_output(old), "gpu")
    # XNNPACK taking the nodes is not the GPU taking them
    with pytest.raises(ToolError, match="gpu delegate took no node"):
        _require_delegation(parse_benchmark_output(REAL_LOG), "gpu")
    with pytest.raises(ToolError, match="part of it would run on the CPU: MEAN: Operation"):
        _require_delegation(parse_benchmark_output(PARTIAL_GPU), "gpu")
    part = REAL_LOG.replace(
        "Replacing 73 out of 73 node(s) with delegate (TfLiteXNNPackDelegate)",
        "Replacing 70 out of 73 node(s) with delegate (TfLiteGpuDelegateV2)",
    )
    with pytest.raises(ToolError, match="gpu delegate took 70 of the model's 73 nodes"):
        _require_delegation(parse_benchmark_output(part), "gpu")
    # a warm-up block of equal runs, and the op profiler's memory line after the run
    same = REAL_LOG.replace(
        "count=5 first=6602 curr=2211 min=2190 max=6602 avg=3076.4 std=1760 p5=2190"
        " median=2211 p95=6602", "count=5 curr=2211(all same) p5=2211 median=2211 p95=2211"
    ) + "INFO: Memory (bytes): count=0\n"  # fmt: skip
    run = parse_benchmark_output(same)
    assert not run["malformed"] and _one_run_us(run, same) == 2189
    old_summary = OLD_LOG.replace(
        "Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg):"
        " 3.51239e+06, Inference (avg): 2.95034e+06",
        "Average inference timings in us: Warmup: 3.51239e+06, Init: 17187, Inference: 2.95034e+06",
    )  # fmt: skip
    with pytest.raises(ToolError, match="TensorFlow 2.2 or older"):
        _one_run_us(parse_benchmark_output(old_summary), old_summary)


def test_old_adb_daemon_lines_on_stdout_are_not_devices(tmp_path):
    from latbench.harness.adb import list_devices

    fake = tmp_path / "adb"
    fake.write_text(
        "#!/bin/sh\necho '* daemon not running. starting it now on port 5037 *'\n"
        "echo '* daemon started successfully *'\necho 'List of devices attached '\n"
        "printf '0123456789ABCDEF\\tdevice\\nEMU\\tunauthorized\\n\\n'\n"
    )
    fake.chmod(0o755)
    assert list_devices(fake) == [("0123456789ABCDEF", "device"), ("EMU", "unauthorized")]


@pytest.mark.parametrize(
    ("stderr", "needle"),
    [("adb: device unauthorized.\\nThis adb server's $ADB_VENDOR_KEYS is not set\\nTry 'adb"
      " kill-server' if that seems wrong.\\nOtherwise check for a confirmation dialog on your"
      " device.", "SER1 is unauthorized: unlock it and accept the USB debugging prompt"),
     ("error: device offline", "SER1 is offline: replug it"),
     ("adb: device 'SER1' not found", "SER1 is no longer attached"),
     ("adb: insufficient permissions for device: user in plugdev group; are your udev rules"
      " wrong?", "no permission to use device SER1 over USB")],
)  # fmt: skip
def test_adb_failures_are_one_line_saying_what_to_do(tmp_path, stderr, needle):
    from latbench.harness.adb import Adb
    from latbench.harness.tools import ToolError

    fake = tmp_path / "adb"
    fake.write_text(f"#!/bin/sh\nprintf '%b\\n' \"{stderr}\" >&2\nexit 1\n")
    fake.chmod(0o755)
    adb = Adb({"adb": str(fake), "serial": "SER1"})
    for call in (
        lambda: adb.shell("true"),
        lambda: adb.push(fake, "/x"),
        lambda: adb.pull("/x", tmp_path / "y"),
    ):
        with pytest.raises(ToolError) as err:
            call()
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
