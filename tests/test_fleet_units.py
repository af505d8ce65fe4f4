"""Fleet pieces that need no cluster: anchors, resource names, the worker command, CLI errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from latbench.harness.cli import main
from latbench.harness.fleet import FleetError, require_ray
from latbench.harness.fleet.anchors import ANCHOR_ARCHS, NOISE_FLOOR, anchor_work, check_spread
from latbench.harness.fleet.device import _sweep_stale, slowdown_for
from latbench.harness.fleet.resources import (
    device_options,
    device_resource,
    devices_in,
    make_device_id,
)
from latbench.harness.fleet.worker import parse_cpus, ray_start_command
from latbench.harness.plan import make_plan, select_archs
from latbench.harness.store import GraphResult, RunStore


def test_anchors_are_four_distinct_valid_graphs():
    work = anchor_work()
    assert len(work) == len(ANCHOR_ARCHS) == 4 and len({w.key for w in work}) == 4


def test_check_spread_ratio_to_the_fleet_median():
    base = {"a": 1.0, "b": 4.0, "c": 10.0}
    anchors = {
        "d1": base,
        "d2": {k: v * 1.02 for k, v in base.items()},
        "slow": {k: v * 1.3 for k, v in base.items()},
    }
    check = check_spread(anchors)
    assert check.ratios["d1"] == pytest.approx(1 / 1.02)
    assert check.ratios["d2"] == pytest.approx(1.0)
    assert check.ratios["slow"] == pytest.approx(1.3 / 1.02)
    assert set(check.outliers) == {"slow"} and check.noise_floor == NOISE_FLOOR
    assert "slow runs the anchor graphs at 1.275" in check.messages()[0]
    # a tighter limit also catches d1; a noisy protocol raises the floor
    assert set(check_spread(anchors, limit=0.01).outliers) == {"d1", "slow"}
    noisy = check_spread(anchors, {"d1": 0.2, "d2": 0.2, "slow": 0.2})
    assert noisy.noise_floor == pytest.approx(0.4) and not noisy.outliers


def test_check_spread_uses_only_anchors_every_device_timed():
    check = check_spread({"x": {"a": 1.0, "b": 2.0}, "y": {"a": 2.0}, "dead": {}})
    assert set(check.ratios) == {"x", "y"}
    assert check.ratios["y"] / check.ratios["x"] == pytest.approx(2.0)
    assert check_spread({"solo": {"a": 3.0}}).spread == 0.0


def test_resource_names_and_device_options():
    dev = make_device_id("labhost", "serial=R58M123")
    assert device_resource("snpe-dsp", dev) == "latbench/snpe-dsp@labhost/serial=R58M123"
    assert device_options(dev) == {"serial": "R58M123"} and device_options("h/0") == {}
    with pytest.raises(ValueError, match="host name"):
        make_device_id("my host")
    nodes = [
        {"Alive": True, "NodeID": "n1", "NodeManagerAddress": "10.0.0.2",
         "Resources": {"CPU": 4.0, "latbench/p@h1/0": 1.0, "latbench/q@h1/1": 1.0}},
        {"Alive": False, "NodeID": "n2", "Resources": {"latbench/p@h2/0": 1.0}},
    ]  # fmt: skip
    assert devices_in(nodes, "p") == {"h1/0": {"node_id": "n1", "node_ip": "10.0.0.2"}}


def test_slowdown_hook_parsing():
    assert slowdown_for("a/0", "a/0=1.3,b/0=2") == 1.3
    assert slowdown_for("c/0", "a/0=1.3") == 1.0
    with pytest.raises(ValueError, match="factor must be >= 1"):
        slowdown_for("a/0", "a/0=0.5")


def test_worker_command_and_core_lists():
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(ValueError, match="--pin"):
        parse_cpus("a-b")
    cmd = ray_start_command("10.0.0.1:6379", {"latbench/p@h/0": 1.0}, 0, python="py")
    assert cmd[:4] == ["py", "-m", "ray.scripts.scripts", "start"]
    assert cmd[cmd.index("--resources") + 1] == '{"latbench/p@h/0": 1.0}'
    assert "--block" in cmd and cmd[cmd.index("--num-cpus") + 1] == "0"


def test_worker_dry_run_prints_the_exact_command(capsys):
    pytest.importorskip("ray")
    rc = main(["worker", "--device", "snpe-dsp", "--address", "10.0.0.1:6379", "--name", "lab",
               "--serial", "A1", "--serial", "B2", "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "latbench/snpe-dsp@lab/serial=A1" in out and "latbench/snpe-dsp@lab/serial=B2" in out
    # phones over adb leave the host's CPUs to the fleet's builds; a CPU device does not
    assert "--num-cpus 0" not in out
    main(["worker", "--device", "cpu-onnxruntime", "--address", "h:1", "--dry-run", "--pin", "0"])
    out = capsys.readouterr().out
    assert "--num-cpus 0" in out and out.strip().splitlines()[-1].startswith("taskset -c 0 ray")


def test_missing_ray_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(FleetError, match=r'pip install "latbench\[fleet\]"'):
        require_ray()
    rc = main(["--device", "cpu-onnxruntime", "--limit", "2", "--fleet", "auto",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 2 and 'pip install "latbench[fleet]"' in capsys.readouterr().err
    rc = main(["worker", "--device", "cpu-onnxruntime", "--address", "h:1"])
    assert rc == 2 and not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-device-spread", "0.1"], "--max-device-spread needs --fleet"),
        (["--fleet", "auto", "--max-device-spread", "0"], "--max-device-spread must be > 0"),
    ],
)
def test_fleet_argument_errors(args, message, capsys, tmp_path):
    pytest.importorskip("ray")
    rc = main(["--device", "cpu-onnxruntime", "--limit", "2", "--out", str(tmp_path), *args])
    assert rc == 2 and message in capsys.readouterr().err


def test_no_cluster_is_a_clear_error(capsys, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    rc = main(["--device", "cpu-onnxruntime", "--limit", "2", "--out", str(tmp_path),
               "--fleet", "127.0.0.1:9", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "the Ray head at '127.0.0.1:9' does not answer" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.parts"))  # nothing written before the connection


def test_store_keeps_the_device_that_timed_each_graph(tmp_path):
    plan = make_plan(select_archs(limit=3, seed=1))
    store = RunStore(tmp_path, "k", {"p": 1})
    store.open()
    for i, w in enumerate(plan.work):
        raw = np.full(10, 1_000_000 + i, np.int64)
        store.add(GraphResult(w.key, w.timed_arch_id, "ok", 1.0 + i, 0.0, 10, raw_ns=raw,
                              device_id=f"h/{i}"))  # fmt: skip
    store.flush()
    again = RunStore(tmp_path, "k", {"p": 1}).open()
    assert {k: r.device_id for k, r in again.items()} == {
        w.key: f"h/{i}" for i, w in enumerate(plan.work)
    }
    df = RunStore(tmp_path, "k", {"p": 1})
    df.open()
    frame = df.frame(plan)
    assert frame["device_id"].notna().sum() == len(plan.work)


def test_two_devices_flag_only_the_slower_one():
    base = {"a": 1.0, "b": 4.0, "c": 10.0}
    check = check_spread({"fast": base, "slow": {k: v * 1.4 for k, v in base.items()}})
    assert set(check.outliers) == {"slow"} and check.ratios["fast"] == pytest.approx(1.0)
    assert check.ratios["slow"] == pytest.approx(1.4)
    assert check.reference_ms == base


def test_sessions_of_several_runs_and_moved_ratios():
    from latbench.harness.fleet.anchors import moved_ratios

    base = {"a": 2.0, "b": 8.0}
    sessions = {
        (1, "w0"): {k: v * 1.5 for k, v in base.items()},  # slowed in run 1 only
        (1, "w1"): base,
        (2, "w0"): base,
        (2, "w1"): {k: v * 1.01 for k, v in base.items()},
    }
    check = check_spread(sessions)
    assert set(check.outliers) == {(1, "w0")}
    assert "device w0 (run 1) runs the anchor graphs at 1.500" in check.messages()[0]
    moved = moved_ratios(check.ratios, check.noise_floor)
    assert len(moved) == 1 and moved[0].startswith(
        "device w0: anchor ratio to its run's fleet moved from 1.500"
    )
    # a whole run 20 % slower (a busier shared host) is no device moving
    shifted = {
        k: {a: v * (1.2 if k[0] == 2 else 1.0) for a, v in t.items()} for k, t in sessions.items()
    }
    check = check_spread(shifted)
    assert [m.split(":")[0] for m in moved_ratios(check.ratios, check.noise_floor)] == ["device w0"]


def test_noise_floor_from_the_anchors_own_runs_when_g_is_1():
    from latbench.harness.fleet.anchors import relative_spread

    rng = np.random.default_rng(0)
    noisy = 1e6 * (1 + 0.2 * rng.standard_normal(50))
    # G = 1 (g = R): the spread comes from 5 slices of the runs, not the 0 of one group
    assert relative_spread(noisy, group_size=50) == relative_spread(noisy, group_size=10) > 0
    assert relative_spread(np.full(50, 1e6), group_size=50) == 0.0
    drifting = 1e6 * np.linspace(1.0, 1.8, 50)  # a phone warming up over one timing
    base = {"a": 1.0, "b": 4.0}
    anchors = {"x": base, "y": {k: v * 1.15 for k, v in base.items()}}
    spreads = {"x": relative_spread(drifting, 50), "y": relative_spread(drifting, 50)}
    assert check_spread(anchors).outliers == {"y": pytest.approx(1.15)}
    assert check_spread(anchors, spreads).noise_floor > 0.15
    assert not check_spread(anchors, spreads).outliers


def test_row_ratios_map_each_row_to_its_run():
    import pandas as pd

    from latbench.harness.fleet.anchors import row_ratios

    df = pd.DataFrame({"device_id": ["a/0", "a/0", None], "fleet_run": [1, 2, None]})
    df.attrs["metadata"] = {"fleet": {"runs": {"1": {"devices": {"a/0": {"ratio": 1.5}}},
                                               "2": {"devices": {"a/0": {"ratio": 1.0}}}}}}  # fmt: skip
    r = row_ratios(df)
    assert r.iloc[0] == 1.5 and r.iloc[1] == 1.0 and np.isnan(r.iloc[2])


def test_duplicate_device_ids_are_found():
    from latbench.harness.fleet.resources import duplicate_devices

    nodes = [
        {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"latbench/p@h/0": 1.0}},
        {"Alive": True, "NodeManagerAddress": "10.0.0.3", "Resources": {"latbench/p@h/0": 1.0}},
        {"Alive": True, "NodeManagerAddress": "10.0.0.4", "Resources": {"latbench/p@g/0": 1.0}},
    ]
    assert duplicate_devices(nodes, "p") == {"h/0": ["10.0.0.2", "10.0.0.3"]}


def test_a_port_that_is_not_ray_is_refused():
    import socket
    import threading

    from latbench.harness.fleet.head import head_nodes

    srv = socket.create_server(("127.0.0.1", 0))
    conns = []
    threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
    pytest.importorskip("ray")
    try:
        with pytest.raises(FleetError, match="answers but is not a Ray head"):
            head_nodes(f"127.0.0.1:{srv.getsockname()[1]}", timeout_s=1.0)
    finally:
        srv.close()


def test_worker_with_a_dead_head_fails_in_one_line(capsys):
    pytest.importorskip("ray")
    rc = main(["worker", "--device", "cpu-onnxruntime", "--address", "127.0.0.1:9",
               "--skip-check"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "the Ray head at '127.0.0.1:9' does not answer" in err
    assert len(err.strip().splitlines()) == 1


def test_worker_passes_ray_start_options_through(capsys):
    pytest.importorskip("ray")
    rc = main(["worker", "--device", "cpu-onnxruntime", "--address", "h:1", "--dry-run",
               "--temp-dir", "/tmp/lab2", "--node-manager-port", "7001",
               "--object-store-memory", "100000000", "--", "--node-name", "x"])  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 0
    for part in ("--temp-dir /tmp/lab2", "--node-manager-port 7001",
                 "--object-store-memory 100000000", "--node-name x"):  # fmt: skip
        assert part in line


def test_worker_checks_the_device_hosts_role():
    from latbench.harness.fleet.worker import _role_stages
    from latbench.harness.profiles import load_profile

    assert _role_stages(load_profile("edgetpu")) == ("run",)  # the head compiles
    assert _role_stages(load_profile("cpu-onnxruntime")) == ("run",)
    trt = [p for p in ("jetson-nano-fp16",) if p]
    assert _role_stages(load_profile(trt[0])) == ("build", "run")  # engines: on the board


def test_lost_device_summary_and_progress_switch(monkeypatch, caplog):
    from latbench.harness.fleet.progress import FleetProgress
    from latbench.harness.session import _Progress

    prog = FleetProgress(False)
    prog.started("a/0")
    prog.done("a/0", True, 0.1, 0.05)
    prog.device("a/0").lost = "ActorDiedError: node died"
    assert "lost (ActorDiedError: node died)" in prog.lines()[0]
    monkeypatch.setenv("LATBENCH_PROGRESS", "0")
    caplog.set_level("INFO", logger="latbench.measure")
    bar = _Progress(2, "timing x", True)
    bar.update()
    bar.update()
    assert not [r for r in caplog.records if "timing x" in r.getMessage()]
    assert not FleetProgress(True).enabled


def test_parts_written_before_fleet_run_existed_are_still_read(tmp_path):
    import pyarrow as pa

    from latbench.harness.store import PART_SCHEMA
    from latbench.integrity import write_verified

    plan = make_plan(select_archs(limit=1, seed=1))
    w = plan.work[0]
    store = RunStore(tmp_path, "k", {"p": 1})
    store.open()
    old = pa.schema([f for f in PART_SCHEMA if f.name != "fleet_run"])
    row = {"graph_key": w.key, "timed_arch_id": w.timed_arch_id, "status": "ok", "error": None,
           "latency_ms": 1.0, "latency_std_ms": 0.0, "runs": 2, "raw_ns": [1, 2],
           "device_id": "h/0"}  # fmt: skip
    write_verified(pa.Table.from_pylist([row], schema=old), store.parts_dir / "part-0.parquet")
    got = RunStore(tmp_path, "k", {"p": 1}).open()
    assert got[w.key].device_id == "h/0" and got[w.key].fleet_run is None


def test_ray_start_is_retried_after_a_port_race(tmp_path, capsys, monkeypatch):
    from latbench.harness.fleet import worker

    monkeypatch.setattr(worker.random, "uniform", lambda a, b: 0.0)
    tries = tmp_path / "tries"
    script = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(tries)!r}); n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "print('bind: Address already in use' if n < 2 else 'Ray runtime started.')\n"
        "sys.exit(1 if n < 2 else 0)\n"
    )
    assert worker._start([sys.executable, "-c", script]) == 0
    assert tries.read_text() == "3" and "retrying" in capsys.readouterr().err
    tries.unlink()
    assert worker._start([sys.executable, "-c", script], tries=2) == 2  # gives up, one line
    assert "failed 2 times on a port already in use" in capsys.readouterr().err
    # any other failure is not retried
    assert worker._start([sys.executable, "-c", "import sys; sys.exit(3)"]) == 2


def test_sigterm_to_the_worker_stops_ray_start_and_its_children(tmp_path):
    import os
    import signal
    import threading
    import time

    pytest.importorskip("ray")
    import psutil

    from latbench.harness.fleet import worker

    pids = tmp_path / "pids"
    fake_ray_start = (  # a 'ray start --block' that started a 'raylet'
        "import subprocess, sys, time, os, pathlib\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{c.pid}}')\n"
        "time.sleep(120)\n"
    )

    def term_when_started():
        while not pids.exists() or len(pids.read_text().split()) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill <worker pid>` does

    threading.Thread(target=term_when_started, daemon=True).start()
    assert worker._start([sys.executable, "-c", fake_ray_start]) == 0

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    for pid in map(int, pids.read_text().split()):
        for _ in range(200):  # terminated: gone, or a zombie nobody reaped yet
            if gone(pid):
                break
            time.sleep(0.05)
        assert gone(pid)
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was put back


class _FakeRay:
    """What FleetExecutor._discover and _lose call on Ray: nodes, cancel, kill."""

    def __init__(self):
        self.node_list: list[dict] = []
        self.killed: list[object] = []

    def nodes(self):
        return self.node_list

    def cancel(self, ref, force=False):
        pass

    def kill(self, actor, no_restart=True):
        self.killed.append(actor)


class _FakeActorClass:
    def options(self, **kw):
        return self

    def remote(self, *args):
        return object()


def test_a_device_that_rejoins_mid_run_is_anchored_again_under_a_new_run(tmp_path):
    from latbench.harness.fleet.executor import FleetExecutor
    from latbench.harness.profiles import load_profile

    ex = FleetExecutor("auto", state_path=tmp_path / "s.json", progress=False)
    ex._ray, ex._actor = _FakeRay(), _FakeActorClass()
    ex._state["runs"]["1"] = {"started": "t", "devices": {}}
    prof = load_profile("cpu-onnxruntime")

    def node(node_id):
        return {"Alive": True, "NodeID": node_id, "NodeManagerAddress": "10.0.0.2",
                "Resources": {device_resource(prof.name, "h/0"): 1.0}}  # fmt: skip

    ex._ray.node_list = [node("n1")]
    ex._discover(prof)
    first = ex.devices["h/0"]
    assert first.run == 1 and first.alive
    first.anchors_ms = {"a": 1.0}
    ex._lose(first, "ActorDiedError: boom")
    ex._discover(prof)  # the same node still advertises it: a dead actor stays dead
    assert ex.devices["h/0"] is first and not first.alive
    ex._ray.node_list = [node("n2")]  # the worker restarted: a new node, the same id
    ex._discover(prof)
    again = ex.devices["h/0"]
    assert again is not first and again.alive and again.run == 2 and not again.anchored
    assert ex._state["runs"]["2"]["within"] == 1
    assert ex._state["runs"]["1"]["devices"]["h/0"]["lost"] == "ActorDiedError: boom"
    assert ex._run_of([("h/0", "err")]) == 2
    assert ex.progress.device("h/0").lost is None


def test_stale_artifact_folders_of_dead_actors_are_swept(tmp_path):
    import os
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    dead = tmp_path / f"latbench-fleet-{gone.pid}-abc"
    mine = tmp_path / f"latbench-fleet-{os.getpid()}-abc"
    other = tmp_path / "latbench-fleet-notapid-abc"
    for d in (dead, mine, other):
        d.mkdir()
        (d / "model-0.onnx").write_bytes(b"x")
    _sweep_stale(tmp_path)
    assert not dead.exists() and mine.exists() and other.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"runs": {"abc": {"devices": {}}}}', "not a run number"),
        ('{"runs": {"-1": {}}}', "not a run number"),
        ('{"runs": {"1": []}}', "not an object"),
        ('{"runs": {"1": {"devices": {"d": {"anchors_ms": {"a": -3}}}}}}', "not positive times"),
        ('{"runs": {"1": {"devices": {"d": {"anchors_ms": {"a": 1}, "anchor_spread": "x"}}}}}',
         "anchor spread"),
        ('{"runs": [1, 2]}', "must be objects"),
        ("[]", "not a JSON object"),
        ("{not json", "not JSON"),
    ],
)  # fmt: skip
def test_a_damaged_fleet_state_is_refused_in_one_line_and_kept(tmp_path, content, why):
    from latbench.harness.fleet.executor import FleetExecutor

    state = tmp_path / "fleet.json"
    state.write_text(content)
    with pytest.raises(FleetError, match=why) as err:
        FleetExecutor("127.0.0.1:1", state_path=state, progress=False)
    assert "\n" not in str(err.value) and "--fresh" in str(err.value)
    assert state.read_text() == content


def test_a_sound_fleet_state_gives_the_next_run_number(tmp_path):
    from latbench.harness.fleet.executor import FleetExecutor

    state = tmp_path / "fleet.json"
    run = {"started": "t", "devices": {"d": {"anchors_ms": {"a": 1.5}, "anchor_spread": 0.01}}}
    state.write_text(json.dumps({"runs": {"1": run, "7": run}, "devices": {"d": {}}}))
    assert FleetExecutor("127.0.0.1:1", state_path=state, progress=False).run_id == 8
