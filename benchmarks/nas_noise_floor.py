"""The noise floor of a dataset: how well its own re-measurements predict it.

Isomorphic pruned graphs timed apart are the same computation measured again
(:mod:`latbench.nas.remeasure`). Per dataset this reports what that re-measurement
scores as a "predictor" -- Spearman's rho and the share within +-10 % of the
measurement (over the architectures that have one), and oracle NAS's largest and mean
missed accuracy over the threshold grid (own measurement where there is none, so a
lower bound) -- once against the file as published and once against the *denoised*
file (each architecture at the median of its computation's timings). With
``--fewshot-n``, the few-shot adapter's oracle-NAS miss over seeded draws is scored
against both truths as well, at each ``--accept`` probability::

    python benchmarks/nas_noise_floor.py --devices desktop-gpu-gtx-1080-ti-fp32,... \\
        --fewshot-n 20 --seeds 10 --accept 0.5,0.05 --prior no-release.npz \\
        --out docs/results/nas/noise_floor.csv

Needs the accuracy table (``latbench fetch nb201-accuracy``) and the datasets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import latbench
from latbench.analysis.nas_sources import latency_sources, remeasurements, timings
from latbench.analysis.tables import write_csv
from latbench.cli import spearman
from latbench.nas import denoised_latency, isomorphism_classes, oracle_nas, threshold_grid
from latbench.predictors import usable_rows
from latbench.predictors.metrics import within
from latbench.space import N_ARCHS


def _miss(acc: np.ndarray, truth: np.ndarray, est: np.ndarray) -> tuple[float, float]:
    m = oracle_nas(acc, truth, est, threshold_grid(truth)).missed_accuracy
    return float(np.nanmax(m)), float(np.nanmean(m))


def floor_rows(
    key: str, acc_full: np.ndarray, ns: list[int], seeds: int, accepts: list[float], prior
) -> list[dict]:
    frame = latbench.load(key)
    usable = usable_rows(frame)
    lat = np.full(N_ARCHS, np.nan)
    lat[usable["arch_id"].to_numpy()] = usable["latency_ms"].to_numpy(dtype=float)
    re, why = remeasurements(frame, lat)
    if why:
        print(f"{key}: {why}", file=sys.stderr)
        return []
    den = denoised_latency(lat, timings(frame), isomorphism_classes())
    twins = np.isfinite(re)
    keep = np.isfinite(lat) & np.isfinite(acc_full)
    base = {"device": key, "measured": int(np.isfinite(lat).sum()), "with_twin": int(twins.sum())}
    rows = []
    if twins.sum() >= 10:
        filled = np.where(twins, re, lat)
        raw = _miss(acc_full[keep], lat[keep], filled[keep])
        calm = _miss(acc_full[keep], den[keep], filled[keep])
        rows.append(base | {
            "estimate": "remeasured", "seed": np.nan, "accept": np.nan,
            "spearman": spearman(pd.Series(re[twins]), pd.Series(lat[twins])),
            "within_10pct": within(lat[twins], re[twins], 10),
            "median_rel_diff": float(np.median(np.abs(re[twins] / lat[twins] - 1))),
            "max_missed_raw": raw[0], "mean_missed_raw": raw[1],
            "max_missed_denoised": calm[0], "mean_missed_denoised": calm[1],
        })  # fmt: skip
    names = [f"fewshot-{n}" for n in ns]
    for seed in range(seeds if names else 0):
        for accept in accepts:
            est, _, _ = latency_sources(frame, names, seed=seed, key=key, prior=prior,
                                        fewshot_accept=accept)  # fmt: skip
            for name in names:
                e = est[name]
                k = keep & np.isfinite(e)
                raw = _miss(acc_full[k], lat[k], e[k])
                calm = _miss(acc_full[k], den[k], e[k])
                rows.append(base | {
                    "estimate": name, "seed": seed, "accept": accept,
                    "max_missed_raw": raw[0], "mean_missed_raw": raw[1],
                    "max_missed_denoised": calm[0], "mean_missed_denoised": calm[1],
                })  # fmt: skip
        print(f"{key} seed {seed} done", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", required=True, help="dataset keys, comma list")
    p.add_argument("--fewshot-n", default="", help="few-shot N to score too, comma list")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--accept", default="0.5", help="acceptance probabilities, comma list")
    p.add_argument("--prior", default=None, help="few-shot prior file (default: shipped)")
    p.add_argument("--accuracy", default="cifar100")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    ns = [int(n) for n in a.fewshot_n.split(",") if n]
    accepts = [float(q) for q in a.accept.split(",")]
    table = latbench.accuracy(a.accuracy)
    acc_full = table["accuracy"].where(table["valid"]).to_numpy(dtype=float)
    rows = [r for k in a.devices.split(",") for r in
            floor_rows(k, acc_full, ns, a.seeds, accepts, a.prior)]  # fmt: skip
    if not rows:
        print("no device gave a row (all timed unpruned cells?); nothing written", file=sys.stderr)
        return 1
    res = pd.DataFrame(rows)
    write_csv(res, a.out)
    floor = res[res["estimate"] == "remeasured"]
    cols = ["device", "with_twin", "spearman", "within_10pct", "median_rel_diff",
            "max_missed_raw", "max_missed_denoised"]  # fmt: skip
    print(floor.reindex(columns=cols).round(3).to_string(index=False))
    few = res[res["estimate"] != "remeasured"]
    if len(few):
        by = few.groupby(["device", "estimate", "accept"], sort=False)
        summary = by[["max_missed_raw", "max_missed_denoised"]].median()
        summary["raw_at_most_1"] = by["max_missed_raw"].agg(lambda v: int((v <= 1).sum()))
        summary["denoised_at_most_1"] = by["max_missed_denoised"].agg(lambda v: int((v <= 1).sum()))
        print(summary.round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
