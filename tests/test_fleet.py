"""Fleet runs on a real local multi-node Ray cluster (ray.cluster_utils.Cluster).

One module-scoped cluster: a head node with one CPU for builds and three device nodes
(no CPUs, one ``latbench/cpu-onnxruntime@nodeI/0`` resource each), the host CPU
standing in for three boards. Tiny protocols keep it to about a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="Ray is the fleet extra: pip install 'latbench[fleet]'")

from latbench.dataset import read_dataset  # noqa: E402
from latbench.harness.artifacts import ArtifactCache  # noqa: E402
from latbench.harness.fleet import FleetError  # noqa: E402
from latbench.harness.fleet.anchors import ANCHOR_ARCHS  # noqa: E402
from latbench.harness.fleet.device import SLOWDOWN_ENV  # noqa: E402
from latbench.harness.fleet.executor import FleetExecutor  # noqa: E402
from latbench.harness.fleet.resources import device_resource  # noqa: E402
from latbench.harness.plan import make_plan, select_archs  # noqa: E402
from latbench.harness.profiles import load_profile  # noqa: E402
from latbench.harness.session import measure  # noqa: E402

pytestmark = pytest.mark.slow

PROFILE = "cpu-onnxruntime"
DEVICES = ["node0/0", "node1/0", "node2/0"]


def _profile(runs: int = 20):
    return load_profile(PROFILE).with_protocol(runs=runs, group_size=10, warmup=2).with_threads(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    head = {
        "num_cpus": 1,
        "include_dashboard": False,
        # notice a killed node within ~2 s instead of the default ~30 s
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
    }
    try:
        c = Cluster(initialize_head=True, head_node_args=head)
    except Exception:  # Ray gives a raylet 30 s to register; a loaded CI host may need two tries
        c = Cluster(initialize_head=True, head_node_args=head)
    try:
        for dev in DEVICES:
            c.add_node(num_cpus=0, resources={device_resource(PROFILE, dev): 1})
        c.wait_for_nodes()
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("fleet-cache"))


def _fleet(cluster, cache, tmp_path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("anchors", ANCHOR_ARCHS[:2])  # the full set where the check is the point
    return FleetExecutor(
        cluster.address, cache_root=cache.root, state_path=tmp_path / "fleet.json", **kw
    )


def _part_keys(parts_dir: Path) -> list[str]:
    keys: list[str] = []
    for part in sorted(parts_dir.glob("part-*.parquet")):
        keys += pq.read_table(part, columns=["graph_key"]).column("graph_key").to_pylist()
    return keys


def test_fleet_run_equals_single_machine_run(cluster, cache, tmp_path):
    prof = _profile()
    plan = make_plan(select_archs(limit=6, seed=11))
    local = measure(prof, plan, out_dir=tmp_path / "local", key="k", cache=cache, progress=False)
    ex = _fleet(cluster, cache, tmp_path / "fleet" / "k.parts")  # state beside the parts
    fleet = measure(prof, plan, out_dir=tmp_path / "fleet", key="k", cache=cache, progress=False,
                    executor=ex)  # fmt: skip
    a, b = read_dataset(local.dataset), read_dataset(fleet.dataset)
    cols = ["arch_id", "arch_str", "graph_key", "valid", "status", "runs", "timed_arch_id"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (b["status"] == "ok").all() and (b["latency_ms"] > 0).all()
    assert "device_id" not in a.columns
    assert set(b["device_id"]) <= set(DEVICES) and b["device_id"].notna().all()
    meta = b.attrs["metadata"]["fleet"]
    assert set(meta["devices"]) == set(DEVICES)
    for dev in meta["devices"].values():  # fingerprint, runtime, anchors and ratio
        assert dev["host"]["cpu_model"] and dev["runtime"]["name"] == "onnxruntime"
        assert len(dev["anchors_ms"]) == len(meta["anchors"]) == 2
        assert dev["ratio_to_fleet_median"] > 0
    assert sum(d["graphs_timed"] for d in meta["devices"].values()) == len(plan.work)
    assert (b.loc[b["status"] == "ok", "fleet_run"] == 1).all() and meta["run"] == 1
    assert set(meta["runs"]["1"]["devices"]) == set(DEVICES)
    # the recorded device agrees with the parts the driver wrote
    assert sorted(_part_keys(tmp_path / "fleet" / "k.parts")) == sorted(w.key for w in plan.work)
    assert any("device" in line for line in ex.report_lines())
    # every actor removed its artifact folder when the campaign closed
    import tempfile

    pids = [dev["pid"] for dev in meta["devices"].values()]
    left = [p for pid in pids for p in Path(tempfile.gettempdir()).glob(f"latbench-fleet-{pid}-*")]
    assert pids and not left


def test_slow_device_is_reported_by_the_anchor_check(cluster, cache, tmp_path, monkeypatch):
    # 2x, well past the ±30 % one anchor timing swings by on a loaded 2-core host
    monkeypatch.setenv(SLOWDOWN_ENV, "node2/0=2.0")
    prof = _profile(runs=60)  # G = 6 groups: the quartile filter sees through the load
    plan = make_plan(select_archs(limit=2, seed=5))
    ex = _fleet(cluster, cache, tmp_path, max_device_spread=0.12, anchors=ANCHOR_ARCHS)
    with pytest.raises(FleetError, match=r"device node2/0 \(run 1\) runs the anchor graphs at"):
        measure(prof, plan, out_dir=tmp_path, key="slow", cache=cache, progress=False,
                executor=ex)  # fmt: skip
    ratios = {dev: r for (_, dev), r in ex.check.ratios.items()}
    assert max(ratios, key=ratios.get) == "node2/0" and ratios["node2/0"] > 1.15
    assert not list((tmp_path / "slow.parts").glob("part-*"))  # refused before the campaign


def test_graph_failing_on_two_devices_is_failed_with_both_reasons(cluster, tmp_path):
    from latbench.harness.artifacts import _record, artifact_spec

    cache = ArtifactCache(tmp_path / "cache")  # its own: one artifact in it is damaged
    prof = _profile()
    plan = make_plan(select_archs(limit=3, seed=9))
    bad = plan.work[0]
    fmt, options = artifact_spec(prof)
    path = cache.path_for(bad.graph, fmt, 0, options)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A model that builds, verifies and ships, but that every device refuses: its sidecar
    # records the garbage's own checksum, so the cache's verification keeps it.
    path.write_bytes(b"not an ONNX model")
    sidecar = {**cache.key(bad.graph, fmt, 0, options), "file": path.name,
               "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(sidecar))
    # ...and the builder's ledger vouches for it, as for a model this builder made.
    _record(path, sidecar["sha256"])
    ex = _fleet(cluster, cache, tmp_path)
    s = measure(prof, plan, out_dir=tmp_path, key="bad", cache=cache, progress=False,
                executor=ex)  # fmt: skip
    df = read_dataset(s.dataset).set_index("graph_key")
    err = df.loc[bad.key, "error"]
    assert df.loc[bad.key, "status"] == "failed" and err.startswith("failed on 2 devices: on ")
    assert err.count("timing failed: ") == 2
    assert len({d for d in DEVICES if f"on {d}: " in err}) == 2
    assert (df.drop(index=bad.key)["status"] == "ok").all() and s.failed == 1


def _worker(cluster, name: str, slowdown: str) -> subprocess.Popen:
    env = {**os.environ, SLOWDOWN_ENV: slowdown}
    cmd = [sys.executable, "-m", "latbench.harness.cli", "worker", "--device", PROFILE,
           "--address", cluster.address, "--name", name, "--skip-check"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil

    try:
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in procs:  # workers Ray moved to their own sessions
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)


def _joined(proc: subprocess.Popen, dev: str, timeout: float = 90.0) -> bool:
    res = device_resource(PROFILE, dev)
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if any(n["Alive"] and res in n["Resources"] for n in ray.nodes()):
            return True
        time.sleep(0.5)
    return False


def _start_worker(cluster, name: str) -> subprocess.Popen:
    # On a loaded host Ray's own start-up timeouts (30 s for the raylet, the metrics
    # agent) can kill a fresh node; that is Ray's start, not the fleet: try twice.
    for _ in range(2):
        proc = _worker(cluster, name, "")
        if _joined(proc, f"{name}/0"):
            return proc
        _kill_tree(proc)
    raise AssertionError(f"worker {name} did not join")


class _Stop(Exception):
    """Raised from on_result: the driver stops as if killed after a flush."""


def test_resumed_campaign_anchors_every_device_in_every_run(cluster, cache, tmp_path):
    """Run 1: node0 slowed 2x, stopped after 4 graphs. Run 2: no slowdown, a device that
    joins only now and is killed after its first graph. Every (run, device) is anchored."""
    import psutil

    from latbench.harness.fleet.anchors import row_ratios

    prof = _profile(runs=40)
    plan = make_plan(select_archs(limit=14, seed=3))
    out = tmp_path / "out"
    os.environ[SLOWDOWN_ENV] = "node0/0=2.0"  # read by the driver when it starts an actor
    got: list[str] = []

    def stop_after_4(result):
        got.append(result.graph_key)
        if len(got) == 4:
            raise _Stop

    try:
        ex1 = _fleet(cluster, cache, out / "r.parts", anchors=ANCHOR_ARCHS)
        with pytest.raises(_Stop):
            measure(prof, plan, out_dir=out, key="r", cache=cache, progress=False, executor=ex1,
                    on_result=stop_after_4, flush_every=1)  # fmt: skip
    finally:
        os.environ.pop(SLOWDOWN_ENV, None)
    assert ex1.run_id == 1 and len(set(_part_keys(out / "r.parts"))) == 4

    proc = _start_worker(cluster, "late")
    killed: list[str] = []

    def kill_late(result):
        if result.device_id == "late/0" and not killed:
            killed.append(result.graph_key)
            _kill_tree(proc)  # a crash: raylet and actor gone without a word

    try:  # 10 graphs left for 4 devices with 2 calls in flight each: late holds 2 at once
        ex2 = _fleet(cluster, cache, out / "r.parts", anchors=ANCHOR_ARCHS)
        s = measure(prof, plan, out_dir=out, key="r", cache=cache, progress=False, executor=ex2,
                    on_result=kill_late, flush_every=1)  # fmt: skip
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    assert ex2.run_id == 2 and killed, "the late device timed nothing before the run ended"
    df = read_dataset(s.dataset)
    assert (df["status"] == "ok").all() and len(df) == plan.n_archs
    keys = _part_keys(out / "r.parts")
    assert sorted(keys) == sorted(w.key for w in plan.work)  # none lost, none twice
    meta = df.attrs["metadata"]["fleet"]
    runs = meta["runs"]
    assert meta["noise_floor"] >= 0.05
    assert set(runs["1"]["devices"]) == set(DEVICES)
    assert set(runs["2"]["devices"]) == {*DEVICES, "late/0"}
    r1 = {d: v["ratio"] for d, v in runs["1"]["devices"].items()}
    r2 = {d: v["ratio"] for d, v in runs["2"]["devices"].items()}
    # node0 ran 2x slower in run 1 than the others of run 1, and like them in run 2. The
    # bounds are wide: three devices, the driver and other jobs share this host's cores,
    # so one anchor timing can be off by half (a lab's devices have their own hosts).
    slow1 = r1["node0/0"] / statistics.median(r1[d] for d in DEVICES[1:])
    slow2 = r2["node0/0"] / statistics.median(r2[d] for d in DEVICES[1:])
    assert 1.4 < slow1 < 4.0 and slow2 < slow1 / 1.3
    assert r2["late/0"] > 0 and "late/0" not in runs["1"]["devices"]  # anchored in run 2
    assert any("node0/0 (run 1)" in w for w in meta["warnings"])
    assert any(
        w.startswith("device node0/0: anchor ratio to its run's fleet moved")
        for w in meta["warnings"]
    )
    # each row carries its run; its ratio is that run's
    timed = df[df["device_id"].notna()].drop_duplicates("graph_key")
    assert set(timed["fleet_run"]) == {1, 2} and (timed["fleet_run"] == 1).sum() == 4
    ratios = row_ratios(timed)
    for (run, dev), r in zip(zip(timed["fleet_run"], timed["device_id"], strict=True), ratios,
                             strict=True):  # fmt: skip
        assert r == runs[str(run)]["devices"][dev]["ratio"]
    # graphs_timed per device counts the stored rows, across the interrupted run too
    per_dev = timed["device_id"].value_counts().to_dict()
    assert {
        d: v["graphs_timed"] for d, v in meta["devices"].items() if v["graphs_timed"]
    } == per_dev
    assert "lost" in meta["devices"]["late/0"] and meta["requeued"] >= 1
    assert "lost" in runs["2"]["devices"]["late/0"]
    assert any("late/0" in line and "lost" in line for line in ex2.report_lines())
    leaked = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "late" in " ".join(p.info["cmdline"] or [])
        and "--name" in " ".join(p.info["cmdline"] or [])
    ]
    assert not leaked


def test_a_second_worker_with_a_taken_device_id_is_refused(cluster, capsys):
    from latbench.harness.cli import main

    rc = main(["worker", "--device", PROFILE, "--address", cluster.address, "--name", "node1",
               "--skip-check"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "device id node1/0 (node " in err and "another --name" in err
    assert len(err.strip().splitlines()) == 1


def test_two_pass_fleet_campaign_equals_a_two_pass_local_one(cluster, cache, tmp_path):
    from latbench.harness.passes import measure_passes
    from latbench.raw import read_raw

    prof = _profile(runs=20)
    plan = make_plan(select_archs(limit=5, seed=21))
    local = measure_passes(prof, plan, passes=2, out_dir=tmp_path / "local", key="p",
                           cache=cache, progress=False)  # fmt: skip
    work = tmp_path / "fleet" / "p.passes"
    ex = _fleet(cluster, cache, work, parts_dirs=[work / f"p.pass{i}of2.parts" for i in (1, 2)])
    fleet = measure_passes(prof, plan, passes=2, out_dir=tmp_path / "fleet", key="p",
                           cache=cache, progress=False, executor=ex)  # fmt: skip
    a, b = read_dataset(local.dataset), read_dataset(fleet.dataset)
    cols = ["arch_id", "graph_key", "valid", "status", "runs", "timed_arch_id"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (b["status"] == "ok").all() and (b["runs"] == 20).all()
    raw = read_raw(tmp_path / "fleet" / "p.raw.h5")
    assert all(len(t) == 20 for t in raw["timings_ns"])  # 10 runs of each pass
    meta = b.attrs["metadata"]
    assert meta["protocol"]["passes"] == 2 and b["device_id"].notna().all()
    assert meta["fleet"]["passes_on_other_devices"] == 0  # every graph stayed on its device
    assert list(meta["fleet"]["runs"]) == ["1"]  # one run: the devices anchored once
    devs = []
    for i in (1, 2):
        parts = sorted((work / f"p.pass{i}of2.parts").glob("part-*.parquet"))
        tables = [pq.read_table(p, columns=["graph_key", "device_id"]).to_pydict() for p in parts]
        devs.append({k: d for t in tables for k, d in zip(t["graph_key"], t["device_id"],
                                                            strict=True)})  # fmt: skip
    assert devs[0] == devs[1] and sorted(devs[0]) == sorted(w.key for w in plan.work)


def test_auto_with_no_worker_of_the_profile_refuses_in_one_line(cluster, cache, tmp_path, caplog):
    caplog.set_level("INFO", logger="latbench.measure")
    prof = load_profile("cpu-tflite").with_protocol(runs=20, group_size=10, warmup=2)
    plan = make_plan(select_archs(limit=2, seed=1))
    ex = FleetExecutor("auto", cache_root=cache.root, state_path=tmp_path / "s.json",
                       progress=False, device_wait_s=2.0)  # fmt: skip
    with pytest.raises(FleetError) as err:
        measure(prof, plan, out_dir=tmp_path, key="auto", cache=cache, progress=False,
                executor=ex)  # fmt: skip
    msg = str(err.value)
    assert "no device of profile 'cpu-tflite'" in msg and "\n" not in msg
    logs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("fleet: Ray cluster at ") and "--fleet auto" in m for m in logs)
    assert any("waiting up to 2 s for a device of profile 'cpu-tflite'" in m for m in logs)


def test_kill_9_of_the_driver_then_rerun_resumes(cluster, cache, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "latbench.harness.cli", "--device", PROFILE, "--limit", "12",
           "--seed", "2", "--runs", "20", "--group-size", "10", "--warmup", "2", "--threads",
           "1", "--out", str(out), "--key", "drv", "--cache", str(cache.root), "--fleet",
           cluster.address, "--flush-every", "1", "--quiet"]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    parts = out / "drv.parts"
    end = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 2 and first.poll() is None:
        assert time.monotonic() < end, "the first driver stored nothing"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    stored = len(set(_part_keys(parts)))
    assert stored >= 2 and not (out / "drv.parquet").exists()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{stored} reused from earlier parts" in second.stdout
    df = read_dataset(out / "drv.parquet")
    plan = make_plan(select_archs(limit=12, seed=2))
    assert (df["status"] == "ok").all() and len(df) == plan.n_archs
    assert sorted(set(_part_keys(parts))) == sorted(w.key for w in plan.work)
    state = json.loads((parts / "fleet.json").read_text())
    assert set(state["devices"]) <= set(DEVICES) | {"doomed/0"}
    # a finished campaign rerun times nothing and starts no device; its metadata keeps
    # the devices that timed the stored parts
    ex = FleetExecutor(cluster.address, cache_root=cache.root, state_path=parts / "fleet.json",
                       progress=False)  # fmt: skip
    s = measure(_profile(), plan, out_dir=out, key="drv", seed=2, cache=cache, progress=False,
                executor=ex)  # fmt: skip
    assert s.timed == 0 and s.reused == len(plan.work) and not ex.devices
    meta = read_dataset(s.dataset).attrs["metadata"]
    assert set(meta["fleet"]["devices"]) == set(state["devices"])
    assert meta["runtime"]["name"] == "onnxruntime"


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _kill_matching(text: str) -> None:
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        if text in " ".join(p.info["cmdline"] or []):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def test_head_lost_mid_run_is_one_line_exit_2_and_a_rerun_resumes(cluster, cache, tmp_path, capsys):
    """A second cluster on this host (own temp dir and ports) whose head is also its device."""
    import shutil
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="lbh", dir="/tmp"))  # Ray's socket paths must be short
    gcs, client, agent, agent_grpc, renv, metrics = _free_ports(6)
    head = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", str(gcs),
            "--temp-dir", str(temp), "--num-cpus", "1", "--include-dashboard=false",
            "--disable-usage-stats", "--resources",
            json.dumps({device_resource(PROFILE, "solo/0"): 1}),
            "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(renv),
            "--metrics-export-port", str(metrics)]  # fmt: skip
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "latbench.harness.cli", "--device", PROFILE, "--limit", "8",
           "--seed", "4", "--runs", "20", "--group-size", "10", "--warmup", "2", "--threads",
           "1", "--out", str(out), "--key", "hl", "--cache", str(cache.root), "--flush-every",
           "1", "--quiet"]  # fmt: skip
    try:
        started = subprocess.run(head, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        env = {**os.environ, SLOWDOWN_ENV: "solo/0=3"}
        driver = subprocess.Popen([*cmd, "--fleet", f"127.0.0.1:{gcs}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        parts = out / "hl.parts"
        end = time.monotonic() + 150
        while len(list(parts.glob("part-*.parquet"))) < 2 and driver.poll() is None:
            if time.monotonic() > end:
                driver.kill()
                raise AssertionError(
                    f"the driver stored nothing: {driver.communicate()[1][-3000:]}"
                )
            time.sleep(0.2)
        _kill_matching(str(temp))  # the head: GCS, raylet, its workers, all at once
        _, err = driver.communicate(timeout=120)
    finally:
        _kill_matching(str(temp))
        shutil.rmtree(temp, ignore_errors=True)
    assert driver.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len([ln for ln in lines if ln.startswith("latbench-measure: error:")]) == 1
    assert "was lost mid-run" in lines[-1] and "rerun the same command to resume" in lines[-1]
    stored = set(_part_keys(parts))
    assert stored
    from latbench.harness.cli import main

    capsys.readouterr()
    rc = main([*cmd[3:], "--fleet", cluster.address])  # the rerun, on the other cluster
    second = capsys.readouterr()
    assert rc == 0, second.out + second.err
    assert f"{len(stored)} reused from earlier parts" in second.out
    keys = _part_keys(parts)
    plan = make_plan(select_archs(limit=8, seed=4))
    assert sorted(keys) == sorted(w.key for w in plan.work)  # none lost, none twice
    meta = read_dataset(out / "hl.parquet").attrs["metadata"]["fleet"]
    assert list(meta["runs"]) == ["1", "2"] and "solo/0" in meta["runs"]["1"]["devices"]
