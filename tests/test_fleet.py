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
    ex = _fleet(cluster, cache, tmp_path)
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
    # the recorded device agrees with the parts the driver wrote
    assert sorted(_part_keys(tmp_path / "fleet" / "k.parts")) == sorted(w.key for w in plan.work)
    assert any("device" in line for line in ex.report_lines())


def test_slow_device_is_reported_by_the_anchor_check(cluster, cache, tmp_path, monkeypatch):
    monkeypatch.setenv(SLOWDOWN_ENV, "node2/0=1.3")
    prof = _profile(runs=60)  # G = 6 groups: the quartile filter sees through the load
    plan = make_plan(select_archs(limit=2, seed=5))
    ex = _fleet(cluster, cache, tmp_path, max_device_spread=0.12, anchors=ANCHOR_ARCHS)
    with pytest.raises(FleetError, match="device node2/0 runs the anchor graphs at"):
        measure(prof, plan, out_dir=tmp_path, key="slow", cache=cache, progress=False,
                executor=ex)  # fmt: skip
    ratios = ex.check.ratios
    assert max(ratios, key=ratios.get) == "node2/0" and ratios["node2/0"] > 1.15
    assert not list((tmp_path / "slow.parts").glob("part-*"))  # refused before the campaign


def test_graph_failing_on_two_devices_is_failed_with_both_reasons(cluster, tmp_path):
    from latbench.harness.artifacts import artifact_spec

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


def test_killing_a_worker_node_mid_run_loses_and_duplicates_nothing(cluster, cache, tmp_path):
    import psutil

    os.environ[SLOWDOWN_ENV] = "doomed/0=2.0"  # read by the driver: the doomed node is slow
    proc = _start_worker(cluster, "doomed")
    try:
        prof = _profile()
        plan = make_plan(select_archs(limit=8, seed=3))
        killed: list[str] = []

        def on_result(result):
            if result.device_id == "doomed/0" and not killed:
                killed.append(result.graph_key)
                _kill_tree(proc)  # a crash: raylet and actor gone without a word

        ex = _fleet(cluster, cache, tmp_path)
        s = measure(prof, plan, out_dir=tmp_path, key="kill", cache=cache, progress=False,
                    executor=ex, on_result=on_result, flush_every=1)  # fmt: skip
    finally:
        os.environ.pop(SLOWDOWN_ENV, None)
        if proc.poll() is None:
            _kill_tree(proc)
    assert killed, "the doomed device timed nothing before the run ended"
    df = read_dataset(s.dataset)
    assert (df["status"] == "ok").all() and len(df) == plan.n_archs
    keys = _part_keys(tmp_path / "kill.parts")
    assert sorted(keys) == sorted(w.key for w in plan.work)  # none lost, none twice
    meta = df.attrs["metadata"]["fleet"]
    assert "lost" in meta["devices"]["doomed/0"] and meta["requeued"] >= 1
    assert (df["device_id"] == "doomed/0").sum() >= 1
    leaked = [
        p for p in psutil.process_iter(["cmdline"]) if "doomed" in " ".join(p.info["cmdline"] or [])
    ]
    assert not leaked


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
