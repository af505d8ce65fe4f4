"""How well can each few-shot model family fit a device with *all* its latencies?

For every target, the adapter's two models are fitted to every valid architecture
the target has (not N of them), with the log-linear design pretrained on the
target's sources only (siblings excluded, as ``evaluate-adapt``): the share within
±10 % they reach is the ceiling the adapter approaches as N grows, and where the
additive model's ceiling is higher, the log-linear model's curvature is the limit.

* ``log-linear``: least squares of log-latency on the prior's design ``[1, U, x]``;
* ``additive``: relative least squares of latency on ``[1, op counts]``.

Each target's sources are seen in the view its own timing matches (pruned graphs:
``pruned``; HELP's unpruned cells: as timed), as in ``evaluate-adapt``. With
``--prior FILE`` that prior's design is used as is instead, for every target not among
its sources (the ``shipped`` protocol's ceiling). Rows give the share within ±10 % and
Spearman's rho.

Run:  LATBENCH_HOME=... python benchmarks/fewshot_ceilings.py [--targets 'help-*,jetson*']
      [--prior no-release.npz] [--json benchmarks/results/fewshot_ceilings.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import pandas as pd

from latbench.cli import spearman


def _share(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) <= 0.1 * y))


def ceilings(targets: str = "*", prior_path: str | None = None) -> list[dict[str, object]]:
    """One row per target: its share within ±10 % and Spearman under each model fitted
    to all rows."""
    from latbench.loader import devices
    from latbench.predictors.fewshot import (
        load_prior,
        pretrain,
        source_matrix,
        source_view,
        sources_for,
    )
    from latbench.predictors.fewshot.commands import match_keys
    from latbench.predictors.fewshot.prior import view_for

    d = devices()
    keys = d.loc[d["available"], "key"].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = source_matrix(keys)
    metas = matrix.attrs.get("metadata", {})
    lat = matrix.to_numpy(np.float64)
    rows = []
    given = load_prior(prior_path) if prior_path else None
    seen = {"timed": matrix, "pruned": source_view(matrix, "pruned")}
    for t in match_keys(targets, keys):
        if given is not None:
            if t in given.sources:
                continue
            srcs, prior = list(given.sources), given
        else:
            srcs = sources_for(t, keys, metas, "chip")
            if len(srcs) < 2:
                continue
            prior = pretrain(seen[view_for(metas.get(t))][srcs])
        y = lat[:, keys.index(t)]
        have = np.isfinite(y)
        a = prior.design[have]
        w = np.linalg.lstsq(a, np.log(y[have]), rcond=None)[0]
        f = prior.additive_design[have]
        b = np.linalg.lstsq(f / y[have, None], np.ones(int(have.sum())), rcond=None)[0]
        rows.append({
            "target": t, "archs": int(have.sum()), "sources": len(srcs),
            "log_linear": _share(np.exp(a @ w), y[have]),
            "additive": _share(f @ b, y[have]),
            "log_linear_spearman": spearman(pd.Series(a @ w), pd.Series(y[have])),
            "additive_spearman": spearman(pd.Series(f @ b), pd.Series(y[have])),
        })  # fmt: skip
        r = rows[-1]
        print(f"{t:30s} {r['log_linear']:.3f} {r['additive']:.3f}   "
              f"{r['log_linear_spearman']:.3f} {r['additive_spearman']:.3f}", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="*", help="comma list of keys or globs")
    ap.add_argument("--prior", help="use this prior's design for every target not in it")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    print(f"{'target':30s} log-linear additive (share within ±10 %)   log-linear additive "
          "(Spearman), all rows fitted")  # fmt: skip
    rows = ceilings(args.targets, args.prior)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
