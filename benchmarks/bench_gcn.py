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

* with ``--compare-step N``: the training step before and after the kernel-product
  change, N epochs each, interleaved, and their ratio (robust to a busy machine);
* with ``--compare-full R``: R rounds of two full runs, before issue 25 (its loss and
  schedule, the batched kernel product) and now, in alternating order.

Run:  python benchmarks/bench_gcn.py [--dataset KEY] [--data-home DIR] [--repeats 5]
      [--predictors gcn,flops,params,layerwise] [--jobs 1] [--json out.json]
      [--threads 1] [--compare-step 20] [--compare-full 1]
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


def compare_steps(key: str, data_home: str | None, epochs: int, threads: int | None) -> dict:
    """Time the pre-change step (batched kernel product) against the current one, interleaved.

    Both compiled epochs train on the same 900 models and batches from the same initial
    weights; each round times one epoch of each, in alternating order, so load on a
    shared machine hits both alike. Reports the median per-round ratio new / old.
    """
    from latbench.predictors import gcn, repeat_seeds, split_rows, usable_rows
    from latbench.predictors.encoding import gcn_inputs

    tf, keras = gcn._tf(threads)
    rows = usable_rows(key, data_home)
    sp = split_rows(rows, 900, 100, repeat_seeds(0, 0)[0])
    ids, y = rows["arch_id"].to_numpy()[sp.train], rows["latency_ms"].to_numpy()[sp.train]
    cfg = gcn.GCNConfig(encoding=rows.attrs["encoding"])
    adj_all, feat_all = gcn_inputs(cfg.encoding)
    logy = np.log(y)
    z = tf.constant(((logy - logy.mean()) / logy.std()).astype(np.float32))
    adj, feat = tf.constant(adj_all[ids]), tf.constant(feat_all[ids])
    idx, w = (tf.constant(a) for a in gcn._batches(np.random.default_rng(0), len(ids), 10))
    runners = {}
    for name, flat in (("old", False), ("new", True)):
        gcn._FLAT_KERNEL = flat
        runners[name] = gcn._Runner(tf, keras, cfg)
        runners[name].reset(tf, keras, cfg, 0)
        runners[name].run_epoch(idx, w, tf.constant(0, tf.int64), adj, feat, z)  # compile
    gcn._FLAT_KERNEL = True
    wall: dict[str, list[float]] = {"old": [], "new": []}
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    for e in range(epochs):
        for name in ("old", "new") if e % 2 == 0 else ("new", "old"):
            t, c = time.perf_counter(), time.process_time()
            float(runners[name].run_epoch(idx, w, tf.constant(e, tf.int64), adj, feat, z))
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    steps = int(idx.shape[0])
    ratio = np.array(wall["new"]) / np.array(wall["old"])
    cpu_ratio = np.array(cpu["new"]) / np.array(cpu["old"])
    return {
        "epochs_each": epochs,
        "steps_per_epoch": steps,
        **{f"{n}_ms_per_step": 1e3 * statistics.median(wall[n]) / steps for n in wall},
        **{f"{n}_cpu_ms_per_step": 1e3 * statistics.median(cpu[n]) / steps for n in cpu},
        "ratio_new_old": float(np.median(ratio)),
        "ratio_new_old_quartiles": [float(q) for q in np.percentile(ratio, [25, 75])],
        "cpu_ratio_new_old": float(np.median(cpu_ratio)),
    }


def compare_full(key: str, data_home: str | None, rounds: int, seed: int = 0) -> list[dict]:
    """Full runs: before issue 25 (its settings, batched product) and now, alternating.

    Round ``r`` trains on the split and initial weights of protocol seed ``seed + r``:
    early stopping depends on the split, so one split says little about the average.
    """
    from latbench.predictors import gcn

    out = []
    for r in range(rounds):
        for name in ("before", "now") if r % 2 == 0 else ("now", "before"):
            gcn._FLAT_KERNEL = name == "now"
            kw = PRE_ISSUE_25 if name == "before" else {}
            res = train_once(key, data_home, seed + r, **kw)
            out.append({"run": name, "seed": seed + r, **res})
            print(f"full run {name}: {res['fit_seconds']:.1f} s wall, {res['cpu_seconds']:.1f} s "
                  f"CPU, {res['epochs']} epochs, {res['ms_per_step']:.2f} ms/step")  # fmt: skip
    gcn._FLAT_KERNEL = True
    return out


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
    p.add_argument("--compare-step", type=int, metavar="EPOCHS",
                   help="time the pre-change step against the current one, EPOCHS each, "
                        "interleaved")  # fmt: skip
    p.add_argument(
        "--compare-full",
        type=int,
        metavar="ROUNDS",
        help="full runs before issue 25 (settings and step) and now, alternating",
    )
    p.add_argument("--threads", type=int, help="TensorFlow threads (default: all)")
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
    if args.threads:
        from latbench.predictors.gcn import _tf

        _tf(args.threads)
    out["matmul_gflops_2048"] = matmul_gflops(2048, 2048, 2048, reps=5)
    out["matmul_gflops_step_shape"] = matmul_gflops(90, 600, 600)
    print(f"TF matmul fp32: 2048^3 {out['matmul_gflops_2048']:.0f} GFLOP/s, "
          f"90x600x600 {out['matmul_gflops_step_shape']:.0f} GFLOP/s")  # fmt: skip
    if args.compare_step:
        c = compare_steps(args.dataset, args.data_home, args.compare_step, args.threads)
        out["compare_step"] = c
        print(f"step before (batched kernel product) {c['old_ms_per_step']:.2f} ms, now "
              f"{c['new_ms_per_step']:.2f} ms (wall, median of {c['epochs_each']} epochs); "
              f"ratio now/before {c['ratio_new_old']:.3f} (IQR "
              f"{c['ratio_new_old_quartiles'][0]:.3f}-{c['ratio_new_old_quartiles'][1]:.3f}), "
              f"CPU ratio {c['cpu_ratio_new_old']:.3f}")  # fmt: skip
    if args.compare_full:
        out["compare_full"] = compare_full(
            args.dataset, args.data_home, args.compare_full, args.seed
        )
    if not args.skip_train and not (args.compare_step or args.compare_full):
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
