"""Benchmark few-shot adaptation with the shipped prior: the target is <= 1 s on 2 cores.

Times, in a fresh process with the prior on disk:

* ``load_prior``: reading and verifying the shipped ``.npz`` (first call, cold);
* ``select``: choosing N architectures (greedy D-optimal, pool 4000);
* ``adapt``: fit on N measured latencies + predicting all 15,625 with the band
  (:meth:`AdaptedDevice.predict_frame`) + the predicted file's metadata (with the
  distance to every source); select + adapt is what the issue bounds by 1 s;
* ``pretrain`` (with ``--pretrain``): rebuilding the shipped prior from the HELP,
  LatBench release and bundled datasets in the data home (the issue bounds it by 30 min),
  with the architecture encoder when the shipped prior has one (or ``--encoder``).

``load_prior`` includes the encoder's numpy embedding of all 15,625 when the prior has
an encoder. ``--prior FILE`` times another prior. ``--encoder-inputs`` first times,
cold in this process, the encoder's inputs of all 15,625 (what an encoder prior's load
builds once per process) against the per-graph path they replaced (``graph.prune`` and
``gcn_encoding`` of each architecture: the pruned half, the slow one), checks that
both give the same arrays (and the same valid mask and graph numbers, timed first), and times the numpy embedding of all 15,625 with random
weights of ``train_encoder``'s default sizes (the rest of an encoder prior's load).

Run:  python benchmarks/bench_adapt.py [--n 10] [--repeat 20] [--pretrain] [--encoder]
      [--prior FILE] [--encoder-inputs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

TARGET_S = 1.0


def time_encoder_inputs() -> dict[str, float]:
    """Seconds to build the encoder's inputs, cold: today's and the per-graph path's."""
    from latbench.predictors.encoding import (
        _graphs,
        _pruned_inputs_from_graphs,
        gcn_inputs,
        pruned_graph_index,
        valid_mask,
    )
    from latbench.predictors.fewshot.encoder import embed, encoder_inputs

    t0 = time.perf_counter()
    valid_mask(), pruned_graph_index()  # what selection and every predictor need first
    numbering = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder_inputs()
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = _pruned_inputs_from_graphs()
    per_graph = time.perf_counter() - t0
    if not all(np.array_equal(a, b) for a, b in zip(gcn_inputs("pruned"), slow, strict=True)):
        raise SystemExit(
            "bench_adapt: error: the fast pruned inputs differ from the per-graph ones"
        )
    numbers: dict[str, int] = {}
    slow_index = [numbers.setdefault(g.key, len(numbers)) if g.valid else -1 for g in _graphs()]
    if slow_index != pruned_graph_index().tolist():
        raise SystemExit(
            "bench_adapt: error: the fast graph numbers differ from the per-graph ones"
        )
    # the rest of an encoder prior's load: embedding all 15,625 (train_encoder's sizes)
    rng = np.random.default_rng(0)
    weights = {"enc_out": rng.normal(size=(2 * 32 + 1, 16))}
    for stack, width in (("p", 6), ("c", 8)):
        for i in range(3):
            weights[f"enc_{stack}{i}"] = rng.normal(size=((width if i == 0 else 32) + 1, 32))
    t0 = time.perf_counter()
    embed(weights)
    return {
        "valid_and_graph_index_s": numbering,
        "encoder_inputs_s": fast,
        "pruned_inputs_per_graph_s": per_graph,
        "embed_s": time.perf_counter() - t0,
    }


def run(
    n: int = 10,
    repeat: int = 20,
    do_pretrain: bool = False,
    encoder: bool | None = None,
    prior_path: Path | None = None,
    inputs: bool = False,
) -> dict[str, object]:
    """Time the steps; returns the figures (seconds)."""
    t0 = time.perf_counter()
    from latbench.predictors.fewshot import FewShotAdapter, load_prior, select_archs

    import_s = time.perf_counter() - t0
    cold = time_encoder_inputs() if inputs else {}  # before anything builds the graphs
    t0 = time.perf_counter()
    prior = load_prior(prior_path)
    _ = prior.design
    for name in prior.sets:
        _ = prior.design_for(name)
    load_s = time.perf_counter() - t0
    # a synthetic target: a source's own pattern, rescaled (values do not change the cost)
    y = np.exp(prior.design @ prior.mean) * 1.7
    select_s, adapt_s = [], []
    for r in range(repeat):
        t0 = time.perf_counter()
        ids = select_archs(prior, n, seed=r)
        select_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fit = FewShotAdapter(prior).fit(ids, y[ids])
        frame, _meta = fit.predict_frame(), fit.describe()
        adapt_s.append(time.perf_counter() - t0)
        assert len(frame) == 15_625
    out: dict[str, object] = {
        "n": n,
        "repeat": repeat,
        "import_s": import_s,
        "load_prior_s": load_s,
        "select_median_s": statistics.median(select_s),
        "adapt_median_s": statistics.median(adapt_s),
        "adapt_max_s": max(adapt_s),
        "select_adapt_s": statistics.median(select_s) + statistics.median(adapt_s),
        "end_to_end_s": load_s + statistics.median(select_s) + statistics.median(adapt_s),
        **cold,
        "encoder_sets": sorted(prior.sets),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }
    if do_pretrain:
        from latbench.loader import devices
        from latbench.predictors.fewshot import pretrain, source_matrix
        from latbench.predictors.fewshot.commands import SHIPPED_SOURCES, match_keys

        d = devices()
        keys = match_keys(SHIPPED_SOURCES, d.loc[d["available"], "key"].tolist())
        with_encoder = bool(prior.sets) if encoder is None else encoder
        t0 = time.perf_counter()
        matrix = source_matrix(keys)
        pretrain(matrix, encoder={} if with_encoder else None)
        out["pretrain_encoder"] = with_encoder
        out["pretrain_s"] = time.perf_counter() - t0
        out["pretrain_sources"] = len(keys)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="measured architectures (10)")
    ap.add_argument("--repeat", type=int, default=20, help="repetitions (20)")
    ap.add_argument("--pretrain", action="store_true", help="also time pretraining")
    ap.add_argument("--encoder", action="store_true", help="pretrain with the encoder")
    ap.add_argument("--prior", type=Path, help="time this prior (default: the shipped one)")
    ap.add_argument("--encoder-inputs", action="store_true", help="time the encoder's inputs")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    res = run(
        args.n, args.repeat, args.pretrain, args.encoder or None, args.prior, args.encoder_inputs
    )
    print(f"few-shot adaptation, N = {res['n']}  ({res['machine']}, Python {res['python']})")
    for k in ("import_s", "valid_and_graph_index_s", "encoder_inputs_s", "pruned_inputs_per_graph_s", "embed_s",
              "load_prior_s", "select_median_s", "adapt_median_s", "adapt_max_s",
              "select_adapt_s", "end_to_end_s", "pretrain_s"):  # fmt: skip
        if k in res:
            print(f"  {k:<25} {res[k]:8.3f} s")
    ok = res["select_adapt_s"] <= TARGET_S
    print(f"  target: select + adapt <= {TARGET_S:g} s: {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
