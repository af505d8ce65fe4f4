"""``latbench-measure`` against hostile input: tool output, command line, hung tools, Ctrl-C.

External tools are replayed by the fakes of ``tests/edge_fakes.py``; a case here swaps one
fake for a variant that prints what a broken, foreign-locale or other-version tool would.
A figure such a tool prints must never become an ``ok`` row, and one bad figure must cost
one failed graph, not the dataset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import edge_fakes
import numpy as np
import pytest

from latbench.dataset import read_dataset
from latbench.harness import cli, tools
from latbench.harness.runners.android_litert import parse_benchmark_output
from latbench.harness.runners.snpe import parse_diagview_csv
from latbench.harness.runners.tensorrt import parse_export_times
from latbench.harness.timing import Protocol, time_runner
from latbench.harness.tools import ToolError, check_wall, reported_ns, run_tool

A1 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
A3 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
AP = "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
A5 = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"
FAST = ["--runs", "4", "--group-size", "2", "--warmup", "1", "--quiet", "--build-workers", "1"]
SUMMARY = "Inference timings in us: Init: 14300, First inference: 2600, Warmup (avg): 2600, "


# ------------------------------------------------------------------ figures a tool prints


@pytest.mark.parametrize(
    "latency",
    ["-0.5", "0", "NaN", "Infinity", "1e300", "true", '"0.5"', "null", "1" + "0" * 400],
)
def test_trtexec_latency_that_is_no_time_is_refused(latency):
    good = [{"latencyMs": 0.5}] * 3
    text = json.dumps(good)[:-1] + f', {{"latencyMs": {latency}}}]'
    with pytest.raises(ToolError, match="for run 3; a run time must be a number above 0"):
        parse_export_times(text, warmup=1, runs=3)
    assert parse_export_times(json.dumps(good), 1, 2).tolist() == [500_000, 500_000]


@pytest.mark.parametrize(
    ("value", "needle"),
    [("-3348", "reported -3348.0 us for run 2"), ("0", "reported 0.0 us"),
     ("1e30", r"reported 1e\+30 us"), ("nan", "'nan' is not a number"),
     ("inf", "'inf' is not a number"), ("3_348", "'3_348' is not a number"),
     ('"3,348"', "'3,348' is not a number")],
)  # fmt: skip
def test_diagview_value_that_is_no_time_is_refused(value, needle):
    rows = ["Log Id,Message Name,Message Type,Message Value,Message Unit",
            "2,Total Inference Time,ELAPSED_TIME,3348,USEC",
            f"3,Total Inference Time,ELAPSED_TIME,{value},USEC"]  # fmt: skip
    with pytest.raises(ToolError, match=needle):
        parse_diagview_csv("\n".join(rows))


@pytest.mark.parametrize(
    "curr",
    ["2,189", "2\u202f189", "2 189", "2.1.89"],  # other locales' separators, garbage
)
def test_benchmark_model_number_in_another_locale_is_malformed_not_a_prefix(curr):
    log = f"INFO: count=1 curr={curr} p5=2189\nINFO: {SUMMARY}Inference (avg): {curr}\n"
    assert parse_benchmark_output(log)["malformed"]  # before: '2,189' was read as 2 us, ok


def test_reported_times_are_checked_not_clamped():
    assert reported_ns([0.0004, 2.5], "us", "t").tolist() == [1, 2500]  # sub-ns rounds up
    for bad in ([-1.0], [0], [float("nan")], [True], ["3"], [10**400], [2e13]):
        with pytest.raises(ToolError, match="t reported .* for run 1"):
            reported_ns(bad, "ms", "t")
    check_wall(np.array([10**9]), 0.2, "t")  # 1 s of runs in 0.2 s: overlap, not a unit
    with pytest.raises(ToolError, match="microseconds labelled as milliseconds"):
        check_wall(np.array([10**9] * 3), 0.2, "t")


class _Remote:
    """A runner whose device reports ``ns`` for every run."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def time(self, protocol: Protocol) -> np.ndarray:
        return np.full(protocol.runs, self.ns, np.int64)


@pytest.mark.parametrize("ns", [1, 99, 10**13 + 1])
def test_time_runner_refuses_what_a_dataset_cannot_hold(ns):
    # before: 1 ns runs became an ok row that then stopped every write of the dataset
    with pytest.raises(RuntimeError, match="not a measurement"):
        time_runner(_Remote(ns), Protocol(runs=4, group_size=2, warmup=0))
    ok = time_runner(_Remote(200), Protocol(runs=4, group_size=2, warmup=0))
    assert ok.latency_ms == pytest.approx(2e-4)


# ------------------------------------------------------- the same, end to end with fakes


def _swap(tmp: Path, path: Path, body: str) -> Path:
    """A copy of the fakes' folder of ``path`` with ``path`` replaced by ``body``."""
    copy = tmp / "swapped" / path.parent.name
    copy.mkdir(parents=True, exist_ok=True)
    for f in path.parent.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
            (copy / f.name).chmod(0o755)
    (copy / path.name).write_text(edge_fakes.PRELUDE + body)
    return copy / path.name


def _measure(env: Path, device: str, *extra: str, archs: tuple[str, ...] = (A1,)) -> object:
    listing = env / "archs.txt"
    listing.write_text("\n".join(archs) + "\n")
    rc = cli.main(["--device", device, "--archs", str(listing), "--out", str(env / "out"),
                   "--key", "m", "--cache", str(env / "cache"), *FAST, *extra])  # fmt: skip
    assert rc == 0
    return read_dataset(env / "out" / "m.parquet")


@pytest.mark.parametrize(
    ("curr", "avg", "needle"),
    [("0", "0", "reported 0.0 us"),
     # 2.5 h reported, a tenth of a second taken: caught on however slow a host
     ("9000000000", "9000000000", "microseconds labelled as milliseconds"),
     ("2189", "2.189", "disagree"),  # the summary in another unit than the run
     ("2,189", "2,189", "another locale or version")],
)  # fmt: skip
def test_phone_figure_that_is_no_time_is_one_failed_graph(env, fakes, monkeypatch, curr, avg,
                                                          needle):  # fmt: skip
    body = f"print('INFO: count=1 curr={curr}')\nprint('INFO: {SUMMARY}Inference (avg): {avg}')\n"
    monkeypatch.setenv("LATBENCH_BENCHMARK_MODEL", str(_swap(env, fakes["benchmark_model"], body)))
    row = _measure(env, "android-litert-cpu").iloc[0]
    assert row["status"] == "failed" and needle in row["error"], row["error"]
    if curr != "0":
        return
    # before: a 1 ns "ok" row was stored, and no later run could write the dataset again;
    # now the honest tool on rerun times the failed graph again and the dataset is whole
    monkeypatch.setenv("LATBENCH_BENCHMARK_MODEL", str(fakes["benchmark_model"]))
    row = _measure(env, "android-litert-cpu").iloc[0]
    assert row["status"] == "ok" and 1 < row["latency_ms"] < 10


def test_trtexec_microseconds_labelled_ms_and_negative_are_failed_rows(env, fakes, monkeypatch,
                                                                       gpu_visible):  # fmt: skip
    # 40-144 s a run, far beyond what any slow host takes to run the fake
    ms_as_us = edge_fakes.TRTEXEC.replace('"latencyMs": lat,', '"latencyMs": lat * 1e5,')
    negative = edge_fakes.TRTEXEC.replace('"latencyMs": lat,', '"latencyMs": -lat,')
    for body, needle in ((ms_as_us, "its unit is not the one read"), (negative, "reported -")):
        trtexec = _swap(env, fakes["bin"] / "trtexec", body)
        monkeypatch.setenv("PATH", f"{trtexec.parent}{os.pathsep}{os.environ['PATH']}")
        df = _measure(
            env, "jetson-nano-fp16", "--fresh", "--runs", "40", "--group-size", "10", archs=(A1, A3)
        )  # over an hour of runs reported
        assert (df["status"] == "failed").all() and df["error"].str.contains(needle).all()


@pytest.mark.parametrize("name", ["snpe-cpu", "android-litert-cpu"])
@pytest.mark.parametrize(
    ("option", "needle"),
    [('device_dir = "/sdcard; reboot"', "device_dir must be a folder under /data/local/tmp"),
     ('device_dir = "/data/local/tmp/../../sdcard"', "device_dir must be a folder"),
     ("adb_timeout_s = -1", "adb_timeout_s must be seconds"),
     ("adb_timeout_s = nan", "adb_timeout_s must be seconds")],
)  # fmt: skip
def test_profile_option_reaching_the_phone_shell_is_checked(env, tmp_path, capsys, name, option,
                                                            needle):  # fmt: skip
    # before: the folder went unquoted into 'rm -rf D' on the phone; a bad timeout failed
    # every graph one by one
    from latbench.harness.profiles import load_profile

    text = Path(load_profile(name).source).read_text()
    own = tmp_path / "own.toml"
    own.write_text(text.replace("[options]", f"[options]\n{option}", 1))
    argv = ["--device", str(own), "--limit", "1", "--out", str(tmp_path / "o"), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "device" / "sdcard").exists()
    assert not [a for a in edge_fakes.calls(tmp_path / "calls.jsonl", "adb") if a != ["devices"]]


def test_tool_output_reaches_the_terminal_escaped(env, fakes, monkeypatch, gpu_visible, capsys,
                                                  caplog):  # fmt: skip
    anchor = 'engine = Path(flag("--loadEngine"))'
    forging = (
        anchor + "\n" + r'print("\x1b[2J[E] boom\nlatbench-measure: error: forged"); sys.exit(3)'
    )
    trtexec = _swap(env, fakes["bin"] / "trtexec", edge_fakes.TRTEXEC.replace(anchor, forging))
    monkeypatch.setenv("PATH", f"{trtexec.parent}{os.pathsep}{os.environ['PATH']}")
    row = _measure(env, "jetson-nano-fp16").iloc[0]
    assert row["status"] == "failed" and "\x1b[2J[E] boom" in row["error"]  # data kept whole
    out = capsys.readouterr().out
    # before: the ESC cleared the screen and the newline printed a forged error line
    assert "\x1b" not in out and "\nlatbench-measure: error: forged" not in out
    assert [line for line in out.splitlines() if "boom" in line][0].startswith("  failed: ")
    logged = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert logged and not any("\x1b" in m or "\n" in m for m in logged)


# ------------------------------------------------------------------- tools that misbehave


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see processes")
def test_hung_tool_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = f"sh -c 'while :; do :; done' & echo $! > {pid_file}; sleep 60"
    with pytest.raises(ToolError, match="did not finish within 1 s"):
        run_tool(["sh", "-c", script], timeout=1)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the hung tool's busy child outlived it (before: it spun a core forever)"


def test_tool_printing_without_end_is_stopped(monkeypatch):
    monkeypatch.setattr(tools, "MAX_OUTPUT_BYTES", 1 << 20)
    with pytest.raises(ToolError, match="printed more than 1 MiB; stopped"):
        run_tool(["sh", "-c", "yes garbage"], timeout=60)
    res = run_tool(["sh", "-c", "printf 'a\\r\\nb'; echo e >&2; exit 0"])
    assert (res.stdout, res.stderr, res.returncode) == ("a\nb", "e\n", 0)


# ---------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--key", ""], "--key must not be empty"),
     (["--out", ""], "argument --out/-o: expected a path, got an empty"),
     (["--cache", " "], "argument --cache: expected a path, got an empty"),
     (["build", "--device", "cpu-onnxruntime", "--out", ""], "argument --out/-o: expected a path, got an empty"),
     (["run", "--artifacts", "", "--device", "cpu-onnxruntime"], "argument --artifacts/-a"),
     (["merge", "a.parquet", "-o", ""], "argument --out/-o: expected a path, got an empty")],
)  # fmt: skip
def test_empty_key_or_path_is_refused_not_defaulted(tmp_path, monkeypatch, capsys, argv, message):
    # before: --key "" measured into the default key, --out "" into the current folder
    monkeypatch.chdir(tmp_path)
    try:
        rc = cli.main([*argv, "--limit", "1"] if argv[0].startswith("--") else argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_missing_runtime_leaves_no_settings_behind(tmp_path, monkeypatch, capsys):
    for var in ("SNPE_ROOT", "QAIRT_SDK_ROOT"):
        monkeypatch.delenv(var, raising=False)
    argv = ["--device", "snpe-cpu", "--limit", "1", "--out", str(tmp_path), "--key", "k",
            "--cache", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    assert cli.main([*argv, "--runs", "10"]) == 2
    assert not (tmp_path / "k.parts").exists()
    # before: this run was refused over the settings of the one that timed nothing
    assert cli.main([*argv, "--runs", "20"]) == 2
    err = capsys.readouterr().err
    assert "no SNPE/QAIRT SDK" in err and "different settings" not in err


# ---------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_then_rerun_equals_one_uninterrupted_run(env, fakes, tmp_path):
    # trtexec's fake times each engine the same way every time: identical figures expected
    anchor = 'engine = Path(flag("--loadEngine"))'
    slow = edge_fakes.TRTEXEC.replace(anchor, f"import time; time.sleep(0.4)\n{anchor}")
    trtexec = _swap(env, fakes["bin"] / "trtexec", slow)
    listing = tmp_path / "archs.txt"
    listing.write_text("\n".join([A1, A3, AP, A5]) + "\n")
    code = ("import sys, latbench.harness.runners.onnxrt as o; o.nvidia_gpu_visible = lambda: "
            "True; from latbench.harness.cli import main; sys.exit(main())")  # fmt: skip
    envv = {**os.environ, "PATH": f"{trtexec.parent}{os.pathsep}{os.environ['PATH']}"}

    def cmd(out: str) -> list[str]:
        return [sys.executable, "-c", code, "--device", "jetson-nano-fp16", "--archs",
                str(listing), "--out", str(tmp_path / out), "--key", "k", "--cache",
                str(tmp_path / "cache"), "--flush-every", "1", *FAST]  # fmt: skip

    ref = subprocess.run(cmd("ref"), env=envv, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    log = Path(os.environ["FAKE_LOG"])
    proc = subprocess.Popen(cmd("run"), env=envv, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "run" / "k.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(parts.glob("part-*.parquet")):
        assert proc.poll() is None, "run finished before it could be interrupted"
        time.sleep(0.02)
    log.write_text("")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert "Traceback" not in err
    stored = {r["graph_key"] for r in read_parts(parts)}
    n_graphs = read_dataset(tmp_path / "ref" / "k.parquet")["graph_key"].nunique()
    assert n_graphs == 4 and 1 <= len(stored) < n_graphs, "Ctrl-C did not land mid-way"

    log.write_text("")
    res = subprocess.run(cmd("run"), env=envv, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = {a[0] for a in edge_fakes.calls(log, "trtexec") if a[0].startswith("--loadEngine")}
    assert len(loaded) == n_graphs - len(stored)  # what was stored is not timed again
    got, want = (
        read_dataset(tmp_path / "run" / "k.parquet"),
        read_dataset(tmp_path / "ref" / "k.parquet"),
    )
    cols = [
        "arch_id",
        "graph_key",
        "timed_arch_id",
        "status",
        "latency_ms",
        "latency_std_ms",
        "runs",
    ]
    assert got[cols].reset_index(drop=True).equals(want[cols].reset_index(drop=True))


def read_parts(parts: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [
        row for p in sorted(parts.glob("part-*.parquet")) for row in pq.read_table(p).to_pylist()
    ]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminating_the_harness_stops_the_tool_it_runs(tmp_path, sig):
    # the tool leads its own process group, so `kill %1` or a closed terminal reaches
    # only the harness; the harness must take the tool down as it goes
    pid_file = tmp_path / "tool.pid"
    code = (
        "import sys\n"
        "from latbench.harness import cli, tools\n"
        "cli._unwind_on_termination()\n"
        f"tools.run_tool(['sh', '-c', 'echo $$ > {pid_file}; exec sleep 60'], timeout=120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and harness.poll() is None, harness.stderr.read()
        time.sleep(0.05)
    tool = int(pid_file.read_text())
    time.sleep(0.5)  # a signal inside Popen itself, before the tool is ours, is not tested
    harness.send_signal(sig)
    assert harness.wait(timeout=60) == 128 + sig
    deadline = time.monotonic() + 5
    while _alive(tool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(tool)
