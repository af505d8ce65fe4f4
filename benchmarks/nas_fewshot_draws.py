"""Oracle-NAS miss of the few-shot adapter over several seeded draws (docs/results/nas/).

``latbench-analysis nas`` reports one seeded draw of the N measured architectures; this
repeats the draw (seeds 0..S-1) to show how much the figure moves with it, for the
designed few-shot fit (``fewshot-N``), the NAS-aware one (``fewshot-nas-N``: measured
where measured, else predicted; ``--no-nas`` leaves it out) and the FLOPs fit (900
random models, same seeds). ``--accept 0.5,0.05`` repeats the few-shot estimates at
each acceptance probability (``latbench-analysis nas --fewshot-accept``); rows say how
many re-validations the search spent per threshold. Needs the accuracy table and the
datasets::

    python benchmarks/nas_fewshot_draws.py --devices desktop-gpu-gtx-1080-ti-fp32,... \\
        --ns 10,20,50 --seeds 10 --out docs/results/nas/fewshot_draws.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import latbench
from latbench.analysis.nas_sources import latency_sources
from latbench.analysis.tables import write_csv
from latbench.nas import oracle_nas, threshold_grid


def draws(
    key: str,
    ns: list[int],
    seeds: int,
    accuracy: str,
    prior: str | None,
    nas: bool = True,
    accepts: tuple[float, ...] = (0.5,),
) -> pd.DataFrame:
    frame = latbench.load(key)
    acc_full = latbench.accuracy(accuracy)["accuracy"].to_numpy()
    rows = []
    for seed in range(seeds):
        for accept in accepts:
            names = [f"fewshot-{n}" for n in ns]
            names += [f"fewshot-nas-{n}" for n in ns] if nas else []
            names += ["flops"] if accept == accepts[0] else []
            lat, _, notes = latency_sources(frame, names, seed=seed, key=key, prior=prior,
                                            accuracy=acc_full, fewshot_accept=accept)  # fmt: skip
            keep = np.all([np.isfinite(v) for v in lat.values()], axis=0) & np.isfinite(acc_full)
            measured = lat["measured"][keep]
            grid = threshold_grid(measured)
            for name in names:
                res = oracle_nas(acc_full[keep], measured, lat[name][keep], grid)
                rows.append({
                    "device": key, "predictor": name, "seed": seed,
                    "accept": accept if name.startswith("fewshot") else np.nan,
                    "prior": Path(prior).name if prior else "shipped",
                    "in_sample": "in-sample" in notes.get(name, ""),
                    "max_missed_accuracy": float(np.nanmax(res.missed_accuracy)),
                    "mean_missed_accuracy": float(np.nanmean(res.missed_accuracy)),
                    "thresholds_no_model": int(np.isnan(res.missed_accuracy).sum()),
                    "max_overclaimed_accuracy": float(np.nanmax(res.overclaimed_accuracy)),
                    "median_revalidations": float(np.median(res.revalidations)),
                    "max_revalidations": int(res.revalidations.max()),
                })  # fmt: skip
        print(f"{key} seed {seed} done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", required=True)
    p.add_argument("--ns", default="10,20,50")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--accuracy", default="cifar100")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prior", default=None, help="few-shot prior file (default: shipped)")
    p.add_argument("--no-nas", action="store_true", help="leave out the NAS-aware selection")
    p.add_argument("--accept", default="0.5",
                   help="few-shot acceptance probabilities, comma list (default 0.5: the median)")  # fmt: skip
    a = p.parse_args()
    ns = [int(n) for n in a.ns.split(",")]
    keys = a.devices.split(",")
    try:
        accepts = tuple(float(q) for q in a.accept.split(","))
    except ValueError:
        p.error(f"--accept takes numbers, got {a.accept!r}")
    if not all(0 < q < 1 for q in accepts):
        p.error(f"--accept values must be strictly between 0 and 1, got {a.accept}")
    res = pd.concat([draws(k, ns, a.seeds, a.accuracy, a.prior, not a.no_nas, accepts)
                     for k in keys])  # fmt: skip
    write_csv(res, a.out)
    by = res.assign(accept=res["accept"].fillna(-1)).groupby(
        ["device", "predictor", "accept"], sort=False
    )
    summary = by["max_missed_accuracy"].agg(
        median="median", min="min", max="max", at_most_1=lambda v: int((v <= 1.0).sum())
    )
    summary["revalidations_median"] = by["median_revalidations"].median()
    summary["revalidations_max"] = by["max_revalidations"].max()
    print(summary.round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
