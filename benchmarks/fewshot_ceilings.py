"""How well can each few-shot model family fit a device with *all* its latencies?

For every target, the adapter's two models are fitted to every valid architecture
the target has (not N of them), with the log-linear design pretrained on the
target's sources only (siblings excluded, as ``evaluate-adapt``): the share within
±10 % they reach is the ceiling the adapter approaches as N grows, and where the
additive model's ceiling is higher, the log-linear model's curvature is the limit.

* ``log-linear``: least squares of log-latency on the prior's design ``[1, U, x]``;
* ``additive``: relative least squares of latency on ``[1, op counts]``.

Run:  LATBENCH_HOME=... python benchmarks/fewshot_ceilings.py [--targets 'help-*,jetson*']
      [--json benchmarks/results/fewshot_ceilings.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np


def _share(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) <= 0.1 * y))


def ceilings(targets: str = "*") -> list[dict[str, object]]:
    """One row per target: its share within ±10 % under each model fitted to all rows."""
    from latbench.loader import devices
    from latbench.predictors.fewshot import pretrain, source_matrix, sources_for
    from latbench.predictors.fewshot.commands import match_keys

    d = devices()
    keys = d.loc[d["available"], "key"].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = source_matrix(keys)
    metas = matrix.attrs.get("metadata", {})
    lat = matrix.to_numpy(np.float64)
    rows = []
    for t in match_keys(targets, keys):
        srcs = sources_for(t, keys, metas, "chip")
        if len(srcs) < 2:
            continue
        prior = pretrain(matrix[srcs])
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
        })  # fmt: skip
        print(f"{t:30s} {rows[-1]['log_linear']:.3f} {rows[-1]['additive']:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="*", help="comma list of keys or globs")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    print(f"{'target':30s} log-linear additive  (share within ±10 %, all rows fitted)")
    rows = ceilings(args.targets)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
