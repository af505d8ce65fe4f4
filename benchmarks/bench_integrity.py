"""What the integrity checks cost on a cold read of a full 15,625-row dataset.

Times, in one process and interleaved (so machine load hits every variant alike),
the pieces a cold ``latbench.load`` runs: the Parquet read without and with page
checksum verification, the digest check, the ``arch_str`` check and the full row
checks (files without digests), and the whole ``read_dataset``. With ``--baseline
FILE`` (``dataset.py`` of an older LatBench, e.g. ``git show 66101a2:latbench/dataset.py``)
its ``read_dataset`` is timed on the same file for a before/after figure.

Run:  python benchmarks/bench_integrity.py [--repeat 200] [--baseline OLD_DATASET_PY] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location("baseline_dataset", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(repeat: int, baseline: Path | None) -> dict:
    import pyarrow.parquet as pq
    from bench_load import make_dataset

    from latbench import integrity
    from latbench.dataset import COLUMNS, _arch_str_problems, read_dataset, row_problems

    with tempfile.TemporaryDirectory() as tmp:
        path = make_dataset(tmp)
        table = pq.read_table(path)
        sel = table.select(list(COLUMNS))
        ids = sel.column("arch_id").to_numpy()
        variants = {
            "parquet read, no checksums": lambda: pq.ParquetFile(path).read(),
            "parquet read, page checksums verified": lambda: integrity.open_verified(path).read(),
            "digest check (table + metadata)": lambda: integrity.verify_table(path, table),
            "arch_str check": lambda: _arch_str_problems(sel, ids),
            "full row checks (files without digests)": lambda: row_problems(sel),
            "read_dataset (now)": lambda: read_dataset(path),
        }
        if baseline is not None:
            old = _load_module(baseline)
            variants["read_dataset (baseline)"] = lambda: old.read_dataset(path)
        for fn in variants.values():  # warm caches (space facts, imports)
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(repeat):
            for name, fn in variants.items():
                t0 = time.perf_counter_ns()
                fn()
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
    out = {k: {"median_ms": statistics.median(v), "min_ms": min(v)} for k, v in times.items()}
    return {"repeat": repeat, "rows": 15_625, "figures": out, "python": platform.python_version(),
            "machine": platform.platform()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--baseline", type=Path, help="dataset.py of an older LatBench")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    res = run(args.repeat, args.baseline)
    for name, f in res["figures"].items():
        print(f"{name:<42} median {f['median_ms']:7.2f} ms   min {f['min_ms']:7.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
