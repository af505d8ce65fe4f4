"""Benchmark publishing analysis results: what crash safety costs per run.

``latbench-analysis`` writes its files into a hidden staging folder and moves them into
``--out`` only once all are made (:mod:`latbench.analysis.staging`). Publishing syncs
every file, writes a journal durably, moves the files, syncs the folders and rewrites
the results manifest. This times, in one process and interleaved so that the machine's
load hits both alike:

* ``publish``: ``staged(out, results=...)`` around writing F files of S bytes, as a
  run does (the writing included), into a folder holding the previous run's F files;
* ``plain``: the same files written into a temporary folder and moved in with one
  ``os.replace`` each (no sync, no journal, no manifest): the cost floor.

The ratio ``publish / plain`` is what the safety costs; both include writing the files.

Run:  python benchmarks/bench_publish.py [--files 120] [--size 20000] [--repeat 7]
      [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _write(folder: Path, files: int, payload: bytes) -> None:
    for i in range(files):
        (folder / f"figure_{i:03d}.png").write_bytes(payload)


def _publish(out: Path, files: int, payload: bytes) -> float:
    from latbench.analysis.staging import staged

    t0 = time.perf_counter()
    with staged(out, results="bench") as stage:
        _write(stage, files, payload)
    return time.perf_counter() - t0


def _plain(out: Path, files: int, payload: bytes) -> float:
    t0 = time.perf_counter()
    stage = Path(tempfile.mkdtemp(prefix=".plain-", dir=out))
    _write(stage, files, payload)
    for p in sorted(stage.iterdir()):
        os.replace(p, out / p.name)
    stage.rmdir()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--size", type=int, default=20_000, help="bytes per file")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    payload = os.urandom(args.size)
    times: dict[str, list[float]] = {"publish": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {name: Path(tmp) / name for name in times}
        for out in outs.values():
            out.mkdir()
        _publish(outs["publish"], args.files, payload)  # a previous run's files
        _plain(outs["plain"], args.files, payload)
        for _ in range(args.repeat):
            times["publish"].append(_publish(outs["publish"], args.files, payload))
            times["plain"].append(_plain(outs["plain"], args.files, payload))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "files": args.files,
        "bytes_per_file": args.size,
        "repeat": args.repeat,
        "median_s": med,
        "max_s": {k: max(v) for k, v in times.items()},
        "ratio_publish_over_plain": med["publish"] / med["plain"],
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "python": sys.version.split()[0],
        },
    }
    for k in times:
        print(f"{k:8s} median {med[k] * 1e3:8.1f} ms  max {result['max_s'][k] * 1e3:8.1f} ms")
    print(f"publish / plain: {result['ratio_publish_over_plain']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
