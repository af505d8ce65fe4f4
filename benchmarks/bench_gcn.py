"""Benchmark GCN training speed (full Table S1 schedule) and, optionally, the protocol.

Measures, on this machine:

* matmul throughput of TensorFlow: a large square fp32 matmul (the machine's practical
  peak) and the training step's dominant shape, (batch x 9 nodes, 600) @ (600, 600);
* one GCN training run: 900 training and 100 validation models of ``--dataset``,
  full schedule (<= 250 epochs, early stopping patience 35): wall and CPU time,
  epochs, steady-state time per epoch and step, and the achieved GFLOP/s of the
  training step (matmul FLOPs counted analytically, forward and backward);
* with ``--repeats N``: Table S2-style numbers for ``--predictors`` via
  :func:`latbench.predictors.evaluate`.

Run:  python benchmarks/bench_gcn.py [--dataset KEY] [--data-home DIR] [--repeats 5]
      [--predictors gcn,flops,params,layerwise] [--jobs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def matmul_gflops(m: int, k: int, n: int, reps: int = 50, rounds: int = 5) -> float:
    """Best-of-``rounds`` TensorFlow fp32 matmul throughput for (m, k) @ (k, n)."""
    import tensorflow as tf

    a = tf.random.stateless_normal((m, k), seed=(1, 2))
    b = tf.random.stateless_normal((k, n), seed=(3, 4))

    @tf.function
    def run(a, b):
        acc = tf.zeros((m, n))
        for _ in tf.range(reps):
            acc += tf.matmul(a, b)
        return acc

    run(a, b).numpy()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        run(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n * reps / best / 1e9


def step_flops(layers: int, hidden: int, n_feat: int, batch: int, nodes: int = 9) -> int:
    """Matmul FLOPs (2 per MAC) of one training step: forward plus backward.

    Forward per graph: layer 1 ``(A X) W``, middle layers ``(A H) W`` on all nodes,
    the last layer on the global node's row only, then the FC. Backward: weight
    gradients for every matmul with a weight, input gradients where the input
    depends on weights (not for ``A``, ``X`` or layer 1's ``A X``).
    """
    b, n, h, f = batch, nodes, hidden, n_feat
    fwd = bwd = 0
    fwd += b * n * n * f + b * n * f * h  # layer 1: A X (constant), (A X) W
    bwd += b * n * f * h  # dW only
    for _ in range(layers - 2):
        fwd += b * n * n * h + b * n * h * h
        bwd += b * n * n * h + 2 * b * n * h * h  # dH through A; dH and dW through W
    fwd += b * n * h + b * h * h  # last layer: global row
    bwd += b * n * h + 2 * b * h * h
    fwd += b * h  # FC
    bwd += 2 * b * h
    return 2 * (fwd + bwd)


PRE_ISSUE_25 = {"loss": "mse", "plateau_threshold": 0.0, "schedule_delay": 0}
"""The GCN's training settings before issue 25 (``--before``), to time both alike."""


def train_once(key: str, data_home: str | None, seed: int, **config: object) -> dict:
    from latbench.predictors import GCNPredictor, metrics, repeat_seeds, split_rows, usable_rows

    rows = usable_rows(key, data_home)
    split_seed, model_seed = repeat_seeds(seed, 0)
    sp = split_rows(rows, 900, 100, split_seed)
    ids, y = rows["arch_id"].to_numpy(), rows["latency_ms"].to_numpy()
    gcn = GCNPredictor(seed=model_seed, encoding=rows.attrs["encoding"], **config)
    t = time.perf_counter()
    gcn.fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val], val_latency_ms=y[sp.val])
    fit_s = time.perf_counter() - t
    log = gcn.log
    steady = statistics.median(log.epoch_seconds[1:]) if log.epochs > 1 else log.seconds
    cfg = gcn.config
    n_feat = 8 if cfg.encoding == "cell" else 6
    flops = step_flops(cfg.layers, cfg.hidden, n_feat, cfg.batch_size)
    t = time.perf_counter()
    pred = gcn.predict()
    predict_s = time.perf_counter() - t
    m = metrics(y[sp.test], pred[ids[sp.test]])
    return {
        "dataset": key,
        "encoding": cfg.encoding,
        "fit_seconds": fit_s,
        "cpu_seconds": log.cpu_seconds,
        "epochs": log.epochs,
        "best_epoch": log.best_epoch,
        "first_epoch_seconds": log.epoch_seconds[0],
        "steady_epoch_seconds": steady,
        "steps_per_epoch": log.steps,
        "ms_per_step": 1e3 * steady / log.steps,
        "step_mflop": flops / 1e6,
        "achieved_gflops": flops * log.steps / steady / 1e9,
        "predict_all_seconds": predict_s,
        **{f"test_{k}": v for k, v in m.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="xeon2c-onnxruntime-fp32")
    p.add_argument("--data-home")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true", help="only the protocol (--repeats)")
    p.add_argument("--repeats", type=int, default=0, help="also run the protocol N times")
    p.add_argument("--predictors", default="gcn,flops,params")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", help="write all figures here")
    p.add_argument("--before", action="store_true", help="the pre-issue-25 loss and schedule")
    p.add_argument("--max-epochs", type=int, help="cap the run (per-step timing only)")
    args = p.parse_args(argv)

    import tensorflow as tf

    out: dict = {
        "host": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "loadavg_start": os.getloadavg(),
        }
    }
    out["matmul_gflops_2048"] = matmul_gflops(2048, 2048, 2048, reps=5)
    out["matmul_gflops_step_shape"] = matmul_gflops(90, 600, 600)
    print(f"TF matmul fp32: 2048^3 {out['matmul_gflops_2048']:.0f} GFLOP/s, "
          f"90x600x600 {out['matmul_gflops_step_shape']:.0f} GFLOP/s")  # fmt: skip
    if not args.skip_train:
        config = {**(PRE_ISSUE_25 if args.before else {})}
        if args.max_epochs:
            config["max_epochs"] = args.max_epochs
        r = train_once(args.dataset, args.data_home, args.seed, **config)
        r["share_of_step_shape_peak"] = r["achieved_gflops"] / out["matmul_gflops_step_shape"]
        out["train"] = r
        print(
            f"GCN {r['dataset']} ({r['encoding']}): {r['fit_seconds']:.1f} s wall, "
            f"{r['cpu_seconds']:.1f} s CPU, {r['epochs']} epochs (best {r['best_epoch']}), "
            f"first epoch {r['first_epoch_seconds']:.2f} s, then {r['steady_epoch_seconds']:.3f}"
            f" s/epoch = {r['ms_per_step']:.2f} ms/step; {r['step_mflop']:.0f} MFLOP/step -> "
            f"{r['achieved_gflops']:.1f} GFLOP/s ({100 * r['share_of_step_shape_peak']:.0f}% of "
            f"the step-shape matmul); test +-10% {100 * r['test_within_10pct']:.1f}%, "
            f"+-5% {100 * r['test_within_5pct']:.1f}%, +-1% {100 * r['test_within_1pct']:.1f}%"
        )
    if args.repeats:
        from latbench.predictors import evaluate, summarize
        from latbench.predictors.cli import format_summary

        t = time.perf_counter()
        res = evaluate(args.dataset, args.predictors.split(","), repeats=args.repeats,
                       seed=args.seed, jobs=args.jobs, data_home=args.data_home)  # fmt: skip
        out["protocol_seconds"] = time.perf_counter() - t
        out["protocol"] = summarize(res).to_dict(orient="records")
        print(format_summary(summarize(res)))
    out["host"]["loadavg_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=float)
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
