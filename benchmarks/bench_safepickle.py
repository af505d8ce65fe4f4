"""Benchmark the restricted unpickler on the LatBench release pickles.

Times, interleaved in one process on the same bytes (read once, so disk is out):
``pickle.loads`` (the C unpickler, the floor), :func:`latbench.safepickle.load_pickle`
with the release allow-list and limits (as ``latbench import eagle`` calls it) and,
with ``--baseline FILE`` (``safepickle.py`` of an older LatBench, e.g.
``git show e853868:latbench/safepickle.py > /tmp/old_safepickle.py``), that file's
``load_pickle`` for a before/after figure. Each round loads every file once with each
variant; per-variant figures are the sum over files, min and median over rounds.

Run:  python benchmarks/bench_safepickle.py FOLDER [--rounds 5] [--baseline FILE] [--json OUT]
(FOLDER holds the release ``*.pickle``/``*.pkl`` files, ``latbench fetch latbench``).
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_safepickle", path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise SystemExit(f"bench_safepickle: error: cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while it executes
    spec.loader.exec_module(mod)
    return mod


def run(folder: Path, rounds: int, baseline: Path | None) -> dict[str, Any]:
    """Time every variant on every release file; returns the figures (seconds)."""
    from latbench import safepickle
    from latbench.importers.eagle import LIMITS

    if not folder.is_dir():
        raise SystemExit(f"bench_safepickle: error: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".pickle", ".pkl"))
    if not files:
        raise SystemExit(f"bench_safepickle: error: no .pickle files in {folder}")
    blobs = [p.read_bytes() for p in files]
    variants: dict[str, Callable[[bytes], Any]] = {
        "pickle.loads": pickle.loads,
        "safepickle": lambda b: safepickle.load_pickle(b, safepickle.NUMPY_SCALARS, LIMITS),
    }
    if baseline is not None:
        old = _load_module(baseline)
        old_limits = old.Limits(**{k: getattr(LIMITS, k) for k in LIMITS.__dataclass_fields__})
        variants["safepickle (baseline)"] = lambda b: old.load_pickle(
            b, old.NUMPY_SCALARS, old_limits
        )
    ref = [pickle.loads(b) for b in blobs]
    for name, fn in variants.items():  # same result, and warm every cache once
        if any(fn(b) != r for b, r in zip(blobs, ref, strict=True)):
            raise SystemExit(f"bench_safepickle: error: {name} disagrees with pickle.loads")
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for b in blobs:
                fn(b)
            times[name].append(time.perf_counter() - t0)
    figures = {
        k: {"min_s": min(v), "median_s": statistics.median(v), "rounds": v}
        for k, v in times.items()
    }
    floor = figures["pickle.loads"]["min_s"]
    for f in figures.values():
        f["x_pickle_min"] = f["min_s"] / floor
    return {
        "files": [p.name for p in files],
        "bytes": sum(map(len, blobs)),
        "python": sys.version.split()[0],
        "machine": platform.processor() or platform.machine(),
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    from latbench.argparsing import OneLineParser

    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder of LatBench release pickles")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="safepickle.py of an older LatBench")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    res = run(args.folder, args.rounds, args.baseline)
    print(f"{len(res['files'])} files, {res['bytes']} bytes, {args.rounds} rounds")
    for name, f in res["figures"].items():
        print(
            f"{name:<24} min {f['min_s']:6.3f} s  median {f['median_s']:6.3f} s"
            f"  x{f['x_pickle_min']:.1f} pickle.loads (min)"
        )
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
