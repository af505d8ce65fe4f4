"""Cold vs warm artifact-cache build time per format for N random architectures.

    python benchmarks/bench_build.py --n 10 --formats onnx tflite tflite-int8 keras

Cold: an empty cache, all targets built through ``ArtifactCache.build_many`` (process
pool, including worker start-up). Warm: the same call again, every target a hit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from latbench.harness.artifacts import FORMATS, ArtifactCache
from latbench.space import all_archs


def _graphs(n: int, seed: int) -> list:
    by_key = {}
    for arch in all_archs():
        if arch.valid:
            by_key.setdefault(arch.graph.key, arch.graph)
    keys = sorted(by_key)
    picks = np.random.default_rng(seed).choice(len(keys), n, replace=False)
    return [by_key[keys[i]] for i in picks]


def _timed(cache: ArtifactCache, graphs: list, fmt: str, workers: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    failures = sum(
        isinstance(res, BaseException) for _, res in cache.build_many(graphs, fmt, 0, workers)
    )
    return time.perf_counter() - start, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="number of distinct graphs (default 10)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--workers", type=int, help="build processes (default: half the cores)")
    parser.add_argument("--seed", type=int, default=0, help="architecture sample seed")
    parser.add_argument("--cache", type=Path, help="cache folder (default: a temporary one)")
    args = parser.parse_args()

    graphs = _graphs(args.n, args.seed)
    print(f"{args.n} graphs, workers={args.workers or 'default'}")
    print(f"{'format':<12} {'cold s':>8} {'s/model':>8} {'warm s':>8} {'failed':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats:
            cache = ArtifactCache((args.cache or Path(tmp)) / fmt)
            cold, failed = _timed(cache, graphs, fmt, args.workers)
            warm, _ = _timed(cache, graphs, fmt, args.workers)
            print(f"{fmt:<12} {cold:8.2f} {cold / args.n:8.2f} {warm:8.3f} {failed:7d}")


if __name__ == "__main__":
    main()
