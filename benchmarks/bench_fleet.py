"""Fleet scheduling cost: one ONNX Runtime campaign on 1 and on 2 devices, and losing one.

A local Ray node (one CPU for builds) advertising ``cpu-onnxruntime`` devices whose
actors are pinned to one core each (device slot ``cpus=N``). The same N graphs (artifacts built beforehand, so builds do not compete) are
timed with the local executor, then on the fleet with 1 and with 2 workers. Reported:
wall time, the sum of timed inference, each device's busy share and its *scheduling
overhead*: the time a device sits idle between two timing calls (driver round trip,
Ray dispatch, artifact transfer), per graph and as a share of the timed inference.
Last, the campaign on two devices whose second sits on its own Ray node, killed
(``remove_node``, no grace) after a third of the graphs: its wall time against the
one-device run (the survivor alone; issue target: at most 10 % more).

    python benchmarks/bench_fleet.py -n 200 -R 50 --json benchmarks/results/fleet.json

On a shared machine the absolute figures move with the load; the ratios are the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

PROFILE = "cpu-onnxruntime"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200, help="architectures (default 200)")
    ap.add_argument("-R", "--runs", type=int, default=50)
    ap.add_argument("-g", "--group-size", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--no-local", action="store_true", help="skip the local-executor baseline")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray
    from ray.cluster_utils import Cluster

    from latbench.harness.artifacts import ArtifactCache, artifact_spec
    from latbench.harness.fleet.executor import FleetExecutor
    from latbench.harness.fleet.resources import device_resource
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.profiles import load_profile
    from latbench.harness.session import measure

    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    prof = load_profile(PROFILE).with_protocol(runs=args.runs, group_size=args.group_size)
    prof = prof.with_threads(1)  # one core per device
    plan = make_plan(select_archs(limit=args.n, seed=args.seed))
    cache = ArtifactCache(work / "cache")
    fmt, options = artifact_spec(prof)
    t0 = time.perf_counter()
    for _ in cache.build_many([w.graph for w in plan.work], fmt, args.seed, options=options):
        pass
    print(f"built {len(plan.work)} artifacts in {time.perf_counter() - t0:.1f} s")

    rows = []

    def record(label: str, summary, wall: float, fleet=None) -> None:
        row = {"config": label, "graphs": len(plan.work), "wall_s": round(wall, 2),
               "inference_s": round(summary.inference_s, 2),
               "wall_per_graph_ms": round(wall / len(plan.work) * 1e3, 1)}  # fmt: skip
        if fleet is not None:
            devs = {}
            for dev, st in fleet.progress.devices.items():
                idle = fleet.progress.overhead_per_graph_s(dev)
                inf = st.inference_s / st.graphs if st.graphs else 0.0
                devs[dev] = {
                    "graphs": st.graphs, "busy_share": round(st.busy_s / st.span_s, 3),
                    "idle_ms_per_graph": round(idle * 1e3, 2),
                    "inference_ms_per_graph": round(inf * 1e3, 1),
                    "overhead_share_of_inference": round(idle / inf, 4) if inf else None,
                }  # fmt: skip
            row["devices"] = devs
            row["setup_s"] = round(fleet.setup_s, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    # One node (a loaded host may not start more within Ray's fixed start-up timeouts):
    # its CPU builds; device "bench1" has core 0, devices "bench2" have cores 0 and 1.
    devices = {1: ["cpus=0"], 2: ["cpus=0", "cpus=1"], 3: ["cpus=0"]}
    res = {device_resource(f"bench{n}", f"h/{slot}"): 1 for n, slots in devices.items()
           for slot in slots}  # fmt: skip
    for attempt in (1, 2, 3):  # Ray gives a raylet 30 s to register
        try:
            cluster = Cluster(initialize_head=True,
                              head_node_args={"num_cpus": 1, "include_dashboard": False,
                                              "resources": res,
                                              "_system_config": {
                                                  "health_check_period_ms": 500,
                                                  "health_check_failure_threshold": 3}})  # fmt: skip
            break
        except Exception:
            if attempt == 3:
                raise
    if not args.no_local:
        t0 = time.perf_counter()
        s = measure(prof, plan, out_dir=work / "local", key="local", seed=args.seed,
                    cache=cache, progress=False)  # fmt: skip
        record("local executor, this process", s, time.perf_counter() - t0)

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        for n in (1, 2):
            fleet = FleetExecutor(cluster.address, cache_root=cache.root, progress=False)
            t0 = time.perf_counter()
            s = measure(dataclasses.replace(prof, name=f"bench{n}"), plan,
                        out_dir=work / f"fleet{n}", key="f", seed=args.seed, cache=cache,
                        progress=False, executor=fleet)  # fmt: skip
            wall = time.perf_counter() - t0
            record(f"fleet, {n} device actor(s) pinned to cores {list(range(n))}", s, wall, fleet)
        # bench3: core 0 on the head, core 1 on a second node that is killed mid-run
        doomed = cluster.add_node(num_cpus=0, resources={device_resource("bench3", "n/cpus=1"): 1})
        cluster.wait_for_nodes()
        fleet = FleetExecutor(cluster.address, cache_root=cache.root, progress=False)
        kill_after = max(1, len(plan.work) // 3)
        seen: list[str] = []

        def on_result(result) -> None:
            if result.device_id == "n/cpus=1":
                seen.append(result.graph_key)
                if len(seen) == kill_after // 2:  # about a third of the campaign is done
                    import threading

                    threading.Thread(
                        target=cluster.remove_node, args=(doomed,), kwargs={"allow_graceful": False}
                    ).start()

        t0 = time.perf_counter()
        s = measure(dataclasses.replace(prof, name="bench3"), plan, out_dir=work / "fleet3",
                    key="f", seed=args.seed, cache=cache, progress=False, executor=fleet,
                    on_result=on_result)  # fmt: skip
        wall = time.perf_counter() - t0
        record("fleet, 2 devices (cores 0, 1 on its own node), the second killed mid-run", s,
               wall, fleet)  # fmt: skip
        rows[-1]["requeued"] = sum(st.requeued for st in fleet.progress.devices.values())
        rows[-1]["ok"] = s.timed
    finally:
        ray.shutdown()
        cluster.shutdown()
    *local, one, two, lose = rows
    summary = {
        "speedup_2_vs_1_workers": round(one["wall_s"] / two["wall_s"], 3),
        **({"fleet1_vs_local_wall": round(one["wall_s"] / local[0]["wall_s"], 3)} if local else {}),
        "max_overhead_share": max(
            d["overhead_share_of_inference"] for r in (one, two) for d in r["devices"].values()
        ),
        "lose_one_of_two_vs_survivor_alone_wall": round(lose["wall_s"] / one["wall_s"], 3),
        "lose_one_of_two_survivor_busy_share": lose["devices"]["h/cpus=0"]["busy_share"],
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows, "summary": summary}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
