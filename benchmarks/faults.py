"""Fault campaign: seeded single-bit flips and truncations of every bundled dataset and a raw file.

Targets are copies of the three bundled ``xeon2c-*.parquet`` datasets (15,625 rows
each) and ``xeon2c-tf-fp32.raw.h5``, outside the bundled folder so that only the
files' own checks count (inside it the manifest's SHA-256 catches every flip first).
Each dataset gets uniform flips, flips inside its Parquet footer (the key-value
metadata and the base64 Arrow schema blob that holds a second copy of it), and
truncations; the ``metadata-blob`` case replays the flip a review found silent (bit 4
of byte 375,190 of ``xeon2c-tflite-fp32.parquet``, inside that blob). Each fault is
applied to a fresh copy, which is then read the way ``latbench.load`` and
``read_raw`` read it, in a worker process (a crash is a signal exit, recorded, and the
worker restarted). Outcomes: ``detected`` (a clear error), ``benign`` (loads and is
identical to the original, metadata included: e.g. a flip in unused statistics or
in the unchecked schema blob, which readers ignore), ``silent`` (loads with changed
data: the failure this campaign looks for) and ``crash``.

The same uniform flips are also applied to a *legacy* copy of one dataset (no page
checksums, no digests, as files were written before), to show what the row checks
alone catch.

Two further fault kinds (issue 27): *forgeries*, seeded edits of one value to an
implausible one (a negative, NaN or huge latency, an unknown status, a duplicate or
out-of-range id, a wrong ``valid``, an ``ok`` row without latency, a ``timed_arch_id``
of another network...) written back with the digests recomputed, as anyone can, so
only the value checks can catch them; and *disk full*, a ``latbench export``,
``rewrite`` or ``import`` run in a child whose file-size limit (``RLIMIT_FSIZE``, the
kernel's EFBIG, as a full disk's ENOSPC) is a seeded number of bytes: it must exit 2
with one line naming the file, leave the previous file byte-identical and no temporary
file behind.

Run:  python benchmarks/faults.py [--flips 400] [--footer-flips 50] [--raw-flips 150]
      [--forgeries 200] [--disk-full 30] [--new-only] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from hostile_common import run_capped

SEED = 2024
RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
DATA = Path(__file__).resolve().parents[1] / "data"
DATASETS = tuple(DATA / f"xeon2c-{rt}-fp32.parquet" for rt in ("onnxruntime", "tf", "tflite"))
DATASET = DATASETS[0]  # the legacy (checksum-less) copy is made of this one
RAW = DATA / "xeon2c-tf-fp32.raw.h5"
CASES = (
    # issue 24: lands in the footer's Arrow schema blob; df.attrs["metadata"] used to
    # return that copy ("delegate_atplied"), not the digest-verified key-value one
    {"name": "metadata-blob", "file": "xeon2c-tflite-fp32.parquet", "byte": 375190, "bit": 4},
)


# ------------------------------------------------------------------ worker side


def _fingerprint(kind: str, path: Path) -> str:
    """A digest of what a reader returns, to tell benign from silent changes."""
    import hashlib

    import numpy as np

    if kind == "raw":
        from latbench.raw import read_raw

        raw = read_raw(path)
        h = hashlib.sha256()
        for k in ("graph_key", "arch_id", "timings_ns"):
            h.update(
                repr(np.asarray(raw[k]).tolist()).encode() if k == "graph_key" else raw[k].tobytes()
            )
        h.update(json.dumps(raw["attrs"], sort_keys=True, default=str).encode())
        return h.hexdigest()
    import pandas as pd

    from latbench.dataset import read_dataset

    df = read_dataset(path)
    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    h.update(repr(list(df.columns)).encode() + repr(list(df.dtypes)).encode())
    h.update(json.dumps(df.attrs["metadata"], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _apply(src: Path, dst: Path, fault: dict) -> None:
    data = bytearray(src.read_bytes())
    if fault["type"] in ("flip", "footer-flip"):
        data[fault["byte"]] ^= 1 << fault["bit"]
    else:
        del data[fault["length"] :]
    dst.write_bytes(bytes(data))


def worker(jobs_path: Path, out_path: Path) -> None:
    """Evaluate the jobs not yet in ``out_path``; one JSON line per job."""
    jobs = json.loads(jobs_path.read_text())
    done = len(out_path.read_text().splitlines()) if out_path.exists() else 0
    originals: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix="latbench-fault-"))
    with open(out_path, "a") as out:
        for job in jobs[done:]:
            src = Path(job["file"])
            if job["file"] not in originals:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    originals[job["file"]] = _fingerprint(job["kind"], src)
            dst = work / src.name
            _apply(src, dst, job["fault"])
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    got = _fingerprint(job["kind"], dst)
                outcome = "benign" if got == originals[job["file"]] else "silent"
                message = ""
            except (ValueError, OSError) as exc:  # what the commands turn into one line
                outcome, message = "detected", f"{type(exc).__name__}: {str(exc)[:160]}"
            except Exception as exc:  # noqa: BLE001 - anything else would be a traceback
                outcome, message = "unexpected", f"{type(exc).__name__}: {str(exc)[:160]}"
            out.write(json.dumps({**job, "outcome": outcome, "message": message,
                                  "ms": round((time.perf_counter() - t0) * 1e3, 2)}) + "\n")  # fmt: skip
            out.flush()
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ parent side


def _legacy_copy(dst: Path) -> Path:
    """The dataset as files were written before checksums: same table, plain writer."""
    import pyarrow.parquet as pq

    from latbench.integrity import INTEGRITY_KEY

    table = pq.read_table(DATASET)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != INTEGRITY_KEY}
    pq.write_table(table.replace_schema_metadata(meta), dst, compression="zstd")
    return dst


def _jobs(
    label: str, kind: str, path: Path, flips: int, cuts: int, rng: random.Random
) -> list[dict]:
    size = path.stat().st_size
    jobs = [{"target": label, "kind": kind, "file": str(path),
             "fault": {"type": "flip", "byte": rng.randrange(size), "bit": rng.randrange(8)}}
            for _ in range(flips)]  # fmt: skip
    jobs += [{"target": label, "kind": kind, "file": str(path),
              "fault": {"type": "truncate", "length": rng.randrange(size)}}
             for _ in range(cuts)]  # fmt: skip
    return jobs


def _footer_jobs(label: str, path: Path, flips: int, rng: random.Random) -> list[dict]:
    """Flips inside the Parquet footer (thrift metadata, key-values, Arrow schema blob)."""
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer
    return [{"target": label, "kind": "dataset", "file": str(path),
             "fault": {"type": "footer-flip", "byte": rng.randrange(start, len(data) - 8),
                       "bit": rng.randrange(8)}}
            for _ in range(flips)]  # fmt: skip


def _case_jobs(copies: dict[str, Path]) -> list[dict]:
    jobs = []
    for case in CASES:
        path = copies[case["file"]]
        jobs.append({"target": f"dataset {path.stem}", "kind": "dataset", "file": str(path),
                     "fault": {"type": "flip", "byte": case["byte"], "bit": case["bit"]},
                     "case": case["name"]})  # fmt: skip
    return jobs


def _evaluate(jobs: list[dict], work: Path) -> list[dict]:
    jobs_path, out_path = work / "jobs.json", work / "results.jsonl"
    jobs_path.write_text(json.dumps(jobs))
    results: list[dict] = []
    while len(results) < len(jobs):
        p = subprocess.run([sys.executable, __file__, "--worker", str(jobs_path), str(out_path)],
                           capture_output=True, text=True)  # fmt: skip
        results = (
            [json.loads(x) for x in out_path.read_text().splitlines()] if out_path.exists() else []
        )
        if len(results) < len(jobs) and p.returncode != 0:
            crashed = {**jobs[len(results)], "outcome": "crash",
                       "message": f"worker exit {p.returncode}: {p.stderr.strip()[-160:]}", "ms": None}  # fmt: skip
            with open(out_path, "a") as out:
                out.write(json.dumps(crashed) + "\n")
            results.append(crashed)
    return results


_CAUSES = (
    ("page checksum (CRC-32)", ("crc", "checksum verification")),
    ("table/metadata SHA-256", ("sha-256",)),
    ("Fletcher-32 / HDF5 header checksum", ("fletcher", "checksum", "signature")),
    ("row checks", ("arch_str", "arch_id", "status", "latency", "valid of", "column ")),
)


def _cause(message: str) -> str:
    low = message.lower()
    for name, needles in _CAUSES:
        if any(n in low for n in needles):
            return name
    return "unreadable structure (Parquet/HDF5/zstd)"


def _causes(results: list[dict]) -> dict:
    out: dict = {}
    for r in results:
        if r["outcome"] == "detected":
            by = out.setdefault(r["target"], {})
            c = _cause(r["message"])
            by[c] = by.get(c, 0) + 1
    return out


def _summary(results: list[dict]) -> dict:
    out: dict = {}
    for r in results:
        key = f"{r['target']} {r.get('case') or r['fault']['type']}"
        s = out.setdefault(
            key, {"n": 0, "detected": 0, "benign": 0, "silent": 0, "crash": 0, "unexpected": 0}
        )
        s["n"] += 1
        s[r["outcome"]] += 1
    return out


def run(flips: int = 400, raw_flips: int = 150, cuts: int = 25, footer_flips: int = 50) -> dict:
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="latbench-faults-") as tmp:
        work = Path(tmp)
        copies = {p.name: Path(shutil.copy(p, work / p.name)) for p in DATASETS}
        raw = shutil.copy(RAW, work / RAW.name)
        (work / "legacy").mkdir()
        legacy = _legacy_copy(work / "legacy" / DATASET.name)
        jobs: list[dict] = []
        for path in copies.values():
            label = f"dataset {path.stem}"
            jobs += _jobs(label, "dataset", path, flips, cuts, rng)
            jobs += _footer_jobs(label, path, footer_flips, rng)
        jobs += _case_jobs(copies)
        jobs += (_jobs("raw", "raw", Path(raw), raw_flips, cuts, rng)
                 + _jobs("legacy-dataset", "dataset", legacy, flips, 0, random.Random(SEED)))  # fmt: skip
        t0 = time.perf_counter()
        results = _evaluate(jobs, work)
        wall = time.perf_counter() - t0
    examples = [r for r in results if r["outcome"] in ("silent", "crash", "unexpected")][:20]
    return {
        "seed": SEED,
        "files": {"datasets": [p.name for p in DATASETS], "raw": RAW.name},
        "cases": [r for r in results if r.get("case")],
        "summary": _summary(results),
        "examples_silent_crash_unexpected": examples,
        "detected_by": _causes(results),
        "wall_s": round(wall, 1),
        "python": platform.python_version(),
        "machine": platform.platform(),
    }


# ------------------------------------------------------------------ forgeries


def _forge_edit(table, rng: random.Random):
    """One implausible value in one row, chosen by ``rng``; returns (label, table)."""
    import numpy as np
    import pyarrow as pa

    from latbench.pruned_ids import pruned_ids

    status = table.column("status").to_numpy(zero_copy_only=False)
    ok_rows = np.flatnonzero(status == "ok")
    i = int(rng.choice(ok_rows))
    aid = table.column("arch_id")[i].as_py()
    g = pruned_ids()
    edits = [
        ("latency_ms", rng.choice([-5.0, 0.0, float("nan"), float("inf"), 1e300, 5e-324])),
        ("latency_std_ms", rng.choice([-0.5, float("nan"), float("inf")])),
        ("status", rng.choice(["OK", "ok\x1b[2J", "", "measured"])),
        (
            "arch_id",
            rng.choice([-1, 15625, 99999, 2**30, int(rng.choice(table["arch_id"]).as_py())]),
        ),
        ("valid", False),
        ("latency_ms", None),
        ("flops", rng.choice([-1, -(2**40)])),
        ("params", -1),
        ("runs", -1),
        ("timed_arch_id", rng.choice([-1, 15625, 2**30])),
        ("timed_arch_id", int(rng.choice(np.flatnonzero((g != g[aid]) & (g >= 0))))),
    ]
    name, value = edits[rng.randrange(len(edits))]
    if name == "arch_id" and value == aid:
        value = -1
    col = table.column(name).to_pylist()
    col[i] = value
    j = table.schema.get_field_index(name)
    table = table.set_column(j, table.schema.field(j), pa.array(col, table[name].type))
    return f"{name}={value!r}", table


def forgeries(n: int, rng: random.Random, work: Path) -> list[dict]:
    """``n`` forged copies of the dataset (digests recomputed), each read like ``load``."""
    from latbench.dataset import DIGEST_EXCLUDES, read_dataset
    from latbench.integrity import read_verified, write_verified

    base = read_verified(DATASET)
    out = []
    for k in range(n):
        label, table = _forge_edit(base, rng)
        path = work / f"forged{k}.parquet"
        write_verified(table, path, exclude=DIGEST_EXCLUDES, compression="zstd")
        try:
            read_dataset(path)
            outcome, message = "silent", ""
        except (ValueError, OSError) as exc:
            outcome, message = "detected", str(exc)[-160:]
        except Exception as exc:  # noqa: BLE001 - anything else would be a traceback
            outcome, message = "unexpected", f"{type(exc).__name__}: {str(exc)[:160]}"
        path.unlink()
        out.append({"edit": label, "outcome": outcome, "message": message})
    return out


# ------------------------------------------------------------------ disk full


def disk_full(n: int, rng: random.Random, work: Path) -> list[dict]:
    """``n`` writes cut short by a seeded file-size limit: export, rewrite and import."""
    import numpy as np

    home = work / "home"
    home.mkdir()
    shutil.copy(DATASET, home / "src.parquet")
    size = DATASET.stat().st_size
    pkl = work / "photos.pkl"
    from latbench.space import all_archs

    vectors = [a.vector for a in all_archs() if a.valid][:2000]
    import pickle

    pkl.write_bytes(pickle.dumps({v: np.float64(0.01) for v in vectors}, protocol=3))
    out = []
    env = {**os.environ, "LATBENCH_HOME": str(home)}
    for k in range(n):
        kind = ("export", "rewrite", "import")[k % 3]
        target = {"export": work / "copy.parquet", "rewrite": work / "victim.parquet",
                  "import": home / "photos.parquet"}[kind]  # fmt: skip
        if kind == "rewrite":
            shutil.copy(DATASET, target)
        elif kind == "export":
            target.write_bytes(b"the previous export")
        else:
            target.unlink(missing_ok=True)
        before = target.read_bytes() if target.exists() else None
        cmd = {"export": ["export", "src", "-o", str(target), "--overwrite"],
               "rewrite": ["rewrite", str(target)],
               "import": ["import", "eagle", str(pkl), "--key", "photos"]}[kind]  # fmt: skip
        limit = rng.randrange(1, size)
        p = run_capped(
            [sys.executable, "-m", "latbench", *cmd],
            timeout=300,
            env=env,
            memory=None,
            file_size=limit,
        )  # EFBIG past `limit` bytes: a full disk
        err = p.stderr.strip()
        after = target.read_bytes() if target.exists() else None
        leftovers = [x.name for x in target.parent.iterdir() if x.name.endswith(".tmp")]
        held = (
            p.returncode == 2
            and len(err.splitlines()) == 1
            and "Traceback" not in err
            and target.name in err
            and after == before
            and not leftovers
        )
        if p.returncode == 0:  # the limit was above what this write needed
            held = None
        out.append({"kind": kind, "limit": limit, "rc": p.returncode, "held": held,
                    "unchanged": after == before, "leftovers": leftovers,
                    "message": err.splitlines()[-1][:200] if err else ""})  # fmt: skip
    return out


def run_new(forged: int, full: int) -> dict:
    """The issue-27 faults alone: forgeries and disk-full writes."""
    rng = random.Random(SEED + 27)
    with tempfile.TemporaryDirectory(prefix="latbench-faults27-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        f = forgeries(forged, rng, work)
        d = disk_full(full, rng, work)
        wall = time.perf_counter() - t0
    count = {o: sum(r["outcome"] == o for r in f) for o in ("detected", "silent", "unexpected")}
    tried = [r for r in d if r["held"] is not None]
    return {
        "forgeries": {"n": len(f), **count, "cases": f},
        "disk_full": {
            "n": len(d),
            "cut_short": len(tried),
            "held": sum(bool(r["held"]) for r in tried),
            "completed_under_limit": len(d) - len(tried),
            "cases": d,
        },
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(Path(argv[1]), Path(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=400, help="bit flips in the dataset (400)")
    ap.add_argument("--footer-flips", type=int, default=50,
                    help="bit flips inside each dataset's Parquet footer (50)")  # fmt: skip
    ap.add_argument("--raw-flips", type=int, default=150, help="bit flips in the raw file (150)")
    ap.add_argument("--cuts", type=int, default=25, help="truncations of each file (25)")
    ap.add_argument("--forgeries", type=int, default=200, help="forged values (200)")
    ap.add_argument("--disk-full", type=int, default=30, help="writes cut short (30)")
    ap.add_argument("--new-only", action="store_true",
                    help="only forgeries and disk-full (results in faults27.json)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None, help=f"results file ({RESULTS.name})")
    args = ap.parse_args(argv)
    new = run_new(args.forgeries, args.disk_full)
    fg, dk = new["forgeries"], new["disk_full"]
    print(f"forgeries (digests recomputed) n={fg['n']}: detected {fg['detected']}, "
          f"silent {fg['silent']}, unexpected error {fg['unexpected']}")  # fmt: skip
    print(f"disk full n={dk['n']}: cut short {dk['cut_short']}, held {dk['held']} (exit 2, one "
          f"line naming the file, previous file unchanged, no temporary file); "
          f"{dk['completed_under_limit']} completed under the limit")  # fmt: skip
    if args.new_only:
        path = args.json or RESULTS.with_name("faults27.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(new, indent=1))
        return 0 if fg["silent"] + fg["unexpected"] == 0 and dk["held"] == dk["cut_short"] else 1
    args.json = args.json or RESULTS
    res = run(args.flips, args.raw_flips, args.cuts, args.footer_flips)
    res["issue27"] = new
    for key, s in res["summary"].items():
        print(f"{key:<50} n={s['n']:<4} detected {s['detected']:<4} benign {s['benign']:<4} "
              f"silent {s['silent']:<4} crash {s['crash']} unexpected error {s['unexpected']}")  # fmt: skip
    for target, by in res["detected_by"].items():
        print(f"  {target} detected by: " + ", ".join(f"{k} {v}" for k, v in by.items()))
    print(f"wall time {res['wall_s']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1))
    bad = sum(
        s["silent"] + s["crash"] for k, s in res["summary"].items() if not k.startswith("legacy")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
