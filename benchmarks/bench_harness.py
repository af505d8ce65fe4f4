"""Harness overhead and artifact build cost.

For each profile: a seeded sample of N architectures, R timed runs per model, run
twice: once with an empty artifact cache (cold) and once with it filled (warm), each
time with fresh result parts. Reports wall time, the sum of timed inference
(the raw timings), their ratio (harness overhead) and the artifact build time.

    python benchmarks/bench_harness.py --profiles cpu-onnxruntime cpu-tflite -n 50 -R 100
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


def run(profile_name: str, n: int, runs: int, group: int, seed: int, workdir: Path) -> list[dict]:
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.profiles import load_profile
    from latbench.harness.session import measure

    profile = load_profile(profile_name).with_protocol(runs=runs, group_size=group)
    plan = make_plan(select_archs(limit=n, seed=seed))
    cache = ArtifactCache(workdir / f"cache-{profile_name}")
    rows = []
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        s = measure(
            profile, plan, out_dir=workdir / f"out-{label}", key=profile_name, seed=seed,
            cache=cache, fresh=True, progress=False,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        rows.append(
            {
                "profile": profile_name,
                "cache": label,
                "graphs": s.timed,
                "failed": s.failed,
                "wall_s": wall,
                "build_s": s.build_s,
                "inference_s": s.inference_s,
                "overhead": wall / s.inference_s if s.inference_s else float("nan"),
                "overhead_excl_build": (wall - s.build_s) / s.inference_s
                if s.inference_s
                else float("nan"),
                "median_ms": s.median_ms,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profiles", nargs="+", default=["cpu-onnxruntime", "cpu-tflite"])
    ap.add_argument("-n", type=int, default=50, help="architectures (default 50)")
    ap.add_argument("-R", "--runs", type=int, default=100)
    ap.add_argument("-g", "--group-size", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.profiles:
            rows += run(name, args.n, args.runs, args.group_size, args.seed, Path(tmp))
    cols = ["profile", "cache", "graphs", "failed", "wall_s", "build_s", "inference_s",
            "overhead", "overhead_excl_build", "median_ms"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
