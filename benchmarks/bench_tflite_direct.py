"""The direct LiteRT builder against the TFLite converter: speed, equivalence, latency.

    taskset -c 0 python benchmarks/bench_tflite_direct.py --graphs 200 --equivalence 100 \\
        --int8 20 --out benchmarks/results/tflite_direct.json

On ``--graphs`` seeded random distinct pruned graphs (seed 2020), in one process on one
core (TF single-threaded):

- build time per fp32 model, direct vs converter (CPU time of the build call, the
  converter's including its Keras model; median over the graphs) and the ratio;
- equivalence on the first ``--equivalence``: the same operators (type, options, tensor
  shapes, as a multiset) and outputs within 1e-5 (absolute) on a seeded input;
- latency of every graph's two models, interleaved: ``--rounds`` rounds, each timing the
  direct then the converter model (alternating which goes first) for R / rounds runs
  after ``--warmup`` runs, with the harness's timing loop; all runs of a model filtered
  by the two-stage filter (g = 10); Spearman over the graphs and the median ratio;
- full int8 on the first ``--int8``: operators equal, share of output elements within
  one quantisation step of the converter's int8 model, direct int8 build time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from latbench.harness.build.tflite_direct import build_tflite_direct, describe_ops
from latbench.harness.timing import time_calls, two_stage_filter
from latbench.space import all_archs


def _graphs(n: int, seed: int) -> list:
    by_key = {}
    for arch in all_archs():
        if arch.valid:
            by_key.setdefault(arch.graph.key, arch.graph)
    keys = sorted(by_key)
    picks = np.random.default_rng(seed).choice(len(keys), n, replace=False)
    return [by_key[keys[i]] for i in picks]


def _interp(model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return it


def _output(model: bytes, x: np.ndarray) -> np.ndarray:
    it = _interp(model)
    d = it.get_input_details()[0]
    if d["dtype"] != np.float32:
        x = x.astype(d["dtype"])
    it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _converter(graph, quantize: bool = False) -> tuple[bytes, float]:
    import keras

    from latbench.harness.build.keras_net import build_keras
    from latbench.harness.build.tflite_converter import convert_tflite

    start = time.process_time()
    model = convert_tflite(build_keras(graph, 0), quantize=quantize, seed=0, io_dtype="uint8")
    took = time.process_time() - start
    keras.backend.clear_session()
    return model, took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graphs", type=int, default=200)
    p.add_argument("--equivalence", type=int, default=100)
    p.add_argument("--int8", type=int, default=20)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from scipy.stats import spearmanr

    graphs = _graphs(args.graphs, args.seed)
    build_tflite_direct(graphs[0], 0)  # imports and first-call costs out of the figures
    direct, conv, t_direct, t_conv = [], [], [], []
    for g in graphs:
        start = time.process_time()
        direct.append(build_tflite_direct(g, 0))
        t_direct.append(time.process_time() - start)
        model, took = _converter(g)
        conv.append(model)
        t_conv.append(took)
    rng = np.random.default_rng(7)
    same_ops, max_diff = 0, 0.0
    for d, c in zip(direct[: args.equivalence], conv[: args.equivalence], strict=True):
        same_ops += Counter(describe_ops(d)) == Counter(describe_ops(c))
        x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
        max_diff = max(max_diff, float(np.abs(_output(d, x) - _output(c, x)).max()))
    # latency, interleaved
    per = args.runs // args.rounds
    lat_d, lat_c = [], []
    for i, (d, c) in enumerate(zip(direct, conv, strict=True)):
        runs = {"d": [], "c": []}
        its = {"d": _interp(d), "c": _interp(c)}
        for r in range(args.rounds):
            order = ("d", "c") if (i + r) % 2 == 0 else ("c", "d")
            for k in order:
                runs[k].append(time_calls(its[k].invoke, per, args.warmup))
        lat_d.append(two_stage_filter(np.concatenate(runs["d"]) / 1e6, 10)[0])
        lat_c.append(two_stage_filter(np.concatenate(runs["c"]) / 1e6, 10)[0])
    lat_d, lat_c = np.asarray(lat_d), np.asarray(lat_c)
    ratio = lat_d / lat_c
    # int8
    within, int8_ops, t_d8, t_c8 = [], 0, [], []
    for g in graphs[: args.int8]:
        start = time.process_time()
        d8 = build_tflite_direct(g, 0, quantize=True, io_dtype="uint8")
        t_d8.append(time.process_time() - start)
        c8, took = _converter(g, quantize=True)
        t_c8.append(took)
        int8_ops += Counter(describe_ops(d8)) == Counter(describe_ops(c8))
        for _ in range(3):
            x = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.uint8)
            within.append(np.abs(_output(d8, x).astype(int) - _output(c8, x).astype(int)) <= 1)
    within_all = np.concatenate([w.ravel() for w in within]) if within else np.array([])
    res = {
        "graphs": args.graphs,
        "seed": args.seed,
        "host": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "build_ms": {
            "direct_median": 1e3 * float(np.median(t_direct)),
            "direct_p95": 1e3 * float(np.percentile(t_direct, 95)),
            "direct_max": 1e3 * float(np.max(t_direct)),
            "converter_median": 1e3 * float(np.median(t_conv)),
            "speedup_median": float(np.median(np.asarray(t_conv) / np.asarray(t_direct))),
        },
        "equivalence": {
            "graphs": min(args.equivalence, args.graphs),
            "same_operators": int(same_ops),
            "max_abs_output_diff": max_diff,
        },
        "latency": {
            "runs_per_model": per * args.rounds,
            "rounds": args.rounds,
            "spearman": float(spearmanr(lat_d, lat_c).statistic),
            "median_ratio_direct_over_converter": float(np.median(ratio)),
            "ratio_p5_p95": [float(np.percentile(ratio, 5)), float(np.percentile(ratio, 95))],
            "median_ms_direct": float(np.median(lat_d)),
            "median_ms_converter": float(np.median(lat_c)),
        },
        "int8": {
            "graphs": min(args.int8, args.graphs),
            "same_operators": int(int8_ops),
            "share_within_one_step": float(within_all.mean()) if within_all.size else None,
            "build_ms_direct_median": 1e3 * float(np.median(t_d8)) if t_d8 else None,
            "build_ms_converter_median": 1e3 * float(np.median(t_c8)) if t_c8 else None,
        },
    }
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
