"""Repeatability of a measured dataset: re-time graphs later, and time duplicates.

1. Re-time N random distinct graphs of DATASET in a fresh run with the dataset's own
   profile, protocol, threads and seed, and report the relative difference to the
   published figure (median, p90).
2. For M random graphs shared by several architectures, time up to 3 member
   architectures separately (a fresh runtime session each) and report the median
   coefficient of variation among them (the published LatBench desktop-CPU file shows
   about 0.5 % for such duplicates).
3. From the dataset alone: graphs that are isomorphic (same network up to node
   order, hence the same computation) but were timed as separate graphs, split by
   how far apart they were timed in the campaign's order. Without drift, pairs timed
   far apart differ no more than pairs timed close together.

The re-time run uses the dataset's own passes (``protocol.passes``), so it is the
same measurement as the campaign's, only shorter. ``-n 0 -m 0`` computes 3 only.

    python benchmarks/repeatability.py xeon2c-onnxruntime-fp32 -n 200 -m 50
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dataset", help="dataset key measured by latbench-measure")
    ap.add_argument("-n", type=int, default=200, help="graphs to re-time (default 200)")
    ap.add_argument("-m", type=int, default=50, help="shared graphs for the duplicate test")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, help="artifact cache (default: the data home's)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import latbench
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.passes import measure_passes
    from latbench.harness.plan import make_plan
    from latbench.harness.profiles import load_profile
    from latbench.harness.runners import make_runner
    from latbench.harness.timing import Protocol, time_runner
    from latbench.space import Arch

    df = latbench.load(args.dataset)
    meta = df.attrs["metadata"]
    p = meta["protocol"]
    profile = load_profile(meta["device"]["profile"]).with_protocol(
        runs=p["runs"], group_size=p["group_size"], warmup=p["warmup"]
    )
    if meta["runtime"].get("threads") is not None:
        profile = profile.with_threads(int(meta["runtime"]["threads"]))
    seed = int(meta.get("seed", 0))
    cache = ArtifactCache(args.cache) if args.cache else ArtifactCache()
    rng = np.random.default_rng(args.seed)
    ok = df[df["status"] == "ok"]

    passes = int(p.get("passes", 1))
    figures: dict[str, object] = {"dataset": args.dataset, "passes": passes}

    # 1. re-time distinct graphs in a separate run
    timed = ok.drop_duplicates("graph_key")
    if args.n > 0:
        pick = timed.iloc[rng.choice(len(timed), size=min(args.n, len(timed)), replace=False)]
        plan = make_plan([Arch.from_id(int(i)) for i in pick["timed_arch_id"]])
        with tempfile.TemporaryDirectory() as tmp:
            s = measure_passes(profile, plan, passes=passes, out_dir=Path(tmp), key="retime",
                               seed=seed, cache=cache, progress=False)  # fmt: skip
            again = latbench.read_dataset(s.dataset).set_index("graph_key")["latency_ms"]
        before = pick.set_index("graph_key")["latency_ms"]
        ratio = again.loc[before.index] / before
        rel = (ratio - 1).abs()
        scaled = (ratio / ratio.median() - 1).abs()
        figures |= {
            "retimed_graphs": int(len(rel)),
            "retime_rel_diff_median": float(rel.median()),
            "retime_rel_diff_p90": float(rel.quantile(0.9)),
            "retime_ratio_median": float(ratio.median()),
            "retime_rel_diff_after_scale_median": float(scaled.median()),
            "retime_rel_diff_after_scale_p90": float(scaled.quantile(0.9)),
            "retime_spearman": float(before.corr(again.loc[before.index], method="spearman")),
            "retime_wall_s": round(s.wall_s, 1),
        }

    # 2. architectures sharing a pruned graph, timed separately
    sizes = ok.groupby("graph_key")["arch_id"].count()
    shared = sizes[sizes >= 2].index.to_numpy()
    groups = rng.choice(shared, size=min(args.m, len(shared)), replace=False)
    groups = groups if args.m > 0 else []
    runner = make_runner(profile)
    cvs = []
    try:
        for key in groups:
            members = ok.loc[ok["graph_key"] == key, "arch_id"].to_numpy()[:3]
            lats = []
            for aid in members:
                art = cache.build(Arch.from_id(int(aid)).graph, profile.artifact_format, seed)
                runner.prepare(art, seed)
                lats.append(
                    time_runner(
                        runner, Protocol(**{k: p[k] for k in ("runs", "group_size", "warmup")})
                    ).latency_ms
                )
            cvs.append(float(np.std(lats) / np.mean(lats)))
    finally:
        runner.close()

    figures |= {
        "duplicate_groups": int(len(cvs)),
        "duplicate_cv_median": float(np.median(cvs)) if cvs else None,
        "duplicate_cv_p90": float(np.quantile(cvs, 0.9)) if cvs else None,
    }
    figures |= isomorphic_pairs(ok)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def isomorphic_pairs(ok, near: int = 30, far: int | None = None) -> dict[str, object]:
    """How much isomorphic graphs timed separately differ: the dataset's noise floor.

    ``ok`` holds the dataset's ``status == "ok"`` rows. Graphs are timed in order of
    ``timed_arch_id`` (``harness.plan``), so a graph's rank there is its position in
    the campaign; pairs are split by how far apart they were timed (``far`` defaults
    to 1,000 positions, or a third of the timed graphs if fewer). Per isomorphism
    class with several timed graphs: the relative range (max - min) / min, and the
    "oracle" that predicts each architecture by its class's median, which bounds what
    any predictor can score against these measurements.
    """
    from latbench.space import Arch

    t = ok.drop_duplicates("graph_key").sort_values("timed_arch_id").reset_index(drop=True)
    t["iso"] = [Arch.from_id(int(i)).graph.iso_key for i in t["timed_arch_id"]]
    lat = t["latency_ms"].to_numpy()
    far = far if far is not None else min(1000, len(t) // 3)
    dist, rel = [], []
    for members in t.groupby("iso").indices.values():
        for a, i in enumerate(members):
            for j in members[a + 1 :]:
                dist.append(j - i)
                rel.append(abs(lat[i] - lat[j]) / ((lat[i] + lat[j]) / 2))
    dist_a, rel_a = np.asarray(dist), np.asarray(rel)
    close, apart = rel_a[dist_a <= near], rel_a[dist_a > far]
    g = t.groupby("iso")["latency_ms"]
    multi = g.count()[g.count() >= 2].index
    spread = ((g.max() - g.min()) / g.min()).loc[multi]
    archs = ok.merge(t[["graph_key", "iso"]], on="graph_key")
    archs = archs[archs["iso"].isin(multi)]
    err = (archs["iso"].map(g.median()) / archs["latency_ms"] - 1).abs()

    def med(x):
        return float(np.median(x)) if len(x) else None

    return {
        "isomorphic_pairs": int(len(rel_a)),
        f"isomorphic_within_{near}_n": int(len(close)),
        f"isomorphic_within_{near}_rel_diff_median": med(close),
        f"isomorphic_over_{far}_apart_n": int(len(apart)),
        f"isomorphic_over_{far}_apart_rel_diff_median": med(apart),
        "isomorphic_classes": int(len(multi)),
        "isomorphic_class_range_median": med(spread),
        "isomorphic_oracle_archs": int(len(err)),
        "isomorphic_oracle_within_1pct": float((err <= 0.01).mean()) if len(err) else None,
        "isomorphic_oracle_within_5pct": float((err <= 0.05).mean()) if len(err) else None,
        "isomorphic_oracle_within_10pct": float((err <= 0.10).mean()) if len(err) else None,
    }


if __name__ == "__main__":
    main()
