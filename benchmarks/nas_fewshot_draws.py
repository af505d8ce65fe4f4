"""Oracle-NAS miss of the few-shot adapter over several seeded draws (docs/results/nas/).

``latbench-analysis nas`` reports one seeded draw of the N measured architectures; this
repeats the draw (seeds 0..S-1) to show how much the figure moves with it, for the
designed few-shot fit (``fewshot-N``), the NAS-aware one (``fewshot-nas-N``: measured
where measured, else predicted; ``--no-nas`` leaves it out) and the FLOPs fit (900
random models, same seeds). Needs the accuracy table and the datasets::

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
    key: str, ns: list[int], seeds: int, accuracy: str, prior: str | None, nas: bool = True
) -> pd.DataFrame:
    frame = latbench.load(key)
    acc_full = latbench.accuracy(accuracy)["accuracy"].to_numpy()
    rows = []
    for seed in range(seeds):
        names = [f"fewshot-{n}" for n in ns]
        names += [f"fewshot-nas-{n}" for n in ns] if nas else []
        names += ["flops"]
        lat, _, notes = latency_sources(frame, names, seed=seed, key=key, prior=prior,
                                        accuracy=acc_full)  # fmt: skip
        keep = np.all([np.isfinite(v) for v in lat.values()], axis=0) & np.isfinite(acc_full)
        measured = lat["measured"][keep]
        grid = threshold_grid(measured)
        for name in names:
            res = oracle_nas(acc_full[keep], measured, lat[name][keep], grid)
            rows.append({
                "device": key, "predictor": name, "seed": seed,
                "prior": Path(prior).name if prior else "shipped",
                "in_sample": name in notes,
                "max_missed_accuracy": float(np.nanmax(res.missed_accuracy)),
                "mean_missed_accuracy": float(np.nanmean(res.missed_accuracy)),
                "thresholds_no_model": int(np.isnan(res.missed_accuracy).sum()),
                "max_overclaimed_accuracy": float(np.nanmax(res.overclaimed_accuracy)),
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
    a = p.parse_args()
    ns = [int(n) for n in a.ns.split(",")]
    keys = a.devices.split(",")
    res = pd.concat([draws(k, ns, a.seeds, a.accuracy, a.prior, not a.no_nas) for k in keys])
    write_csv(res, a.out)
    summary = res.groupby(["device", "predictor"], sort=False)["max_missed_accuracy"].agg(
        median="median", min="min", max="max", at_most_1=lambda v: int((v <= 1.0).sum())
    )
    print(summary.round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
