"""Fleet pieces that need no cluster: anchors, resource names, the worker command, CLI errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from latbench.harness.cli import main
from latbench.harness.fleet import FleetError, require_ray
from latbench.harness.fleet.anchors import ANCHOR_ARCHS, NOISE_FLOOR, anchor_work, check_spread
from latbench.harness.fleet.device import slowdown_for
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
        (["--fleet", "auto", "--passes", "2"], "--fleet with --passes is not supported"),
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
    assert rc == 2 and "cannot join the Ray cluster at '127.0.0.1:9'" in err


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
