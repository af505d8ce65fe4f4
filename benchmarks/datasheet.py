"""Figures for a dataset's datasheet in docs/datasets.md, computed from the files.

    python benchmarks/datasheet.py xeon2c-onnxruntime-fp32 xeon2c-tflite-fp32 xeon2c-tf-fp32

Per dataset: coverage, latency range and median, the median relative spread of the
kept group means, Spearman against FLOPs, protocol (incl. passes), file sizes and the
raw-timing shape; for a campaign in passes, each pass's median run time relative to
the graph's median over all passes (the machine's speed per pass). With several keys, also Spearman between each pair over their
common ``ok`` architectures.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def figures(key: str, data_home: Path | None = None) -> dict[str, Any]:
    """The datasheet figures of one dataset."""
    import latbench
    from latbench.loader import dataset_path

    df = latbench.load(key, data_home=data_home)
    meta = df.attrs["metadata"]
    ok = df[df["status"] == "ok"]
    path = Path(dataset_path(key, data_home=data_home))
    out: dict[str, Any] = {
        "key": key,
        "rows": len(df),
        "status": df["status"].value_counts().to_dict(),
        "graphs_timed": int(ok["graph_key"].nunique()),
        "latency_min_ms": round(float(ok["latency_ms"].min()), 3),
        "latency_median_ms": round(float(ok["latency_ms"].median()), 3),
        "latency_max_ms": round(float(ok["latency_ms"].max()), 3),
        "rel_spread_median": round(float((ok["latency_std_ms"] / ok["latency_ms"]).median()), 4),
        "spearman_vs_flops": round(float(ok["latency_ms"].corr(ok["flops"], "spearman")), 3),
        "protocol": meta.get("protocol"),
        "runtime": {k: meta["runtime"].get(k) for k in ("name", "version", "threads")},
        "created": meta.get("created"),
        "command": meta.get("command"),
        "files": {},
    }
    for suffix in (".parquet", ".raw.h5", ".layers.parquet"):
        f = path.with_name(key + suffix)
        if f.exists():
            out["files"][suffix] = f"{f.stat().st_size / 1e6:.2f} MB"
    raw = path.with_name(key + ".raw.h5")
    if raw.exists():
        from latbench.raw import read_raw

        r = read_raw(raw)
        t = np.asarray(r["timings_ns"], dtype=float)
        out["raw_shape"] = list(t.shape)
        passes = int((meta.get("protocol") or {}).get("passes", 1))
        if passes > 1:
            # raw rows join the passes in order: pass p holds columns [p*R/P, (p+1)*R/P)
            med = np.median(t, axis=1, keepdims=True)
            out["pass_speed_median"] = [
                round(float(np.median(np.median(c, axis=1, keepdims=True) / med)), 3)
                for c in np.split(t, passes, axis=1)
            ]
    layers = path.with_name(key + ".layers.parquet")
    if layers.exists():
        out["layers"] = len(pd.read_parquet(layers))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("keys", nargs="+")
    ap.add_argument("--data-home", type=Path)
    args = ap.parse_args()
    import latbench

    result = {"datasets": [figures(k, args.data_home) for k in args.keys], "pairs": {}}
    for a, b in itertools.combinations(args.keys, 2):
        x, y = (latbench.load(k, data_home=args.data_home) for k in (a, b))
        both = x[x["status"].eq("ok")].merge(
            y[y["status"].eq("ok")], on="arch_id", suffixes=("_a", "_b")
        )
        rho = both["latency_ms_a"].corr(both["latency_ms_b"], "spearman")
        result["pairs"][f"{a} vs {b}"] = {"common_ok": len(both), "spearman": round(rho, 3)}
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
