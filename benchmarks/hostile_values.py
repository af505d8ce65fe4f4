"""Hostile-values campaign: forged files whose checksums match, bombs, keys, escapes, non-files.

The second half of ``benchmarks/hostile_inputs.py`` (issue 27: a checksum is not a
credential). Every case writes its files with the digests *recomputed*, as anyone can,
then runs one fresh ``latbench`` (or ``latbench-measure``) process with its own data
home, under a 1 GB address-space limit and a timeout. A refusal case passes when the
command exits 2 with one line on stderr (giving the case's reason where one is named:
"declares 10000000 rows", not "corrupt or truncated?"), no traceback, no signal, no hang, and nothing
changed outside the data home (a victim folder beside it is compared before and
after); a listing case (``devices`` with a bad file in the home) passes when the listing
completes (exit 0) and reports the bad file on its own warning line; an escape case
when no control character reaches the terminal.

Categories: poisoned dataset values (each checked by ``check`` and ``info``), poisoned
raw timings, poisoned priors, memory bombs, hostile keys, terminal escapes, files that
are not files, raw/dataset disagreement, a data home that is a file. Seeded.

Run:  python benchmarks/hostile_values.py [--json benchmarks/results/hostile_values.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hostile_common import MEMORY_LIMIT, bombed_prior, forge_dataset, ok_frame, run_capped

RESULTS = Path(__file__).resolve().parent / "results" / "hostile_values.json"
SEED = 27
ESC = "\x1b]0;title\x07\x1b[2J owned\nlatbench: error: fake"
META = {"device": {"name": "Bench device", "class": "desktop-cpu"}, "source": "bench"}

# name, category, expect ("refuse" | "list" | "clean"), needle, build(home, victim) -> argv
Builder = Callable[[Path, Path], list[str]]
CASES: list[tuple[str, str, str, str | None, Builder]] = []


def case(
    name: str, category: str, expect: str = "refuse", needle: str | None = None
) -> Callable[[Builder], Builder]:
    """Register a case; ``needle``: text the refusal must contain (the right reason)."""

    def deco(fn: Builder) -> Builder:
        CASES.append((name, category, expect, needle, fn))
        return fn

    return deco


# ------------------------------------------------------------------ generators


def _frame(n: int = 400):
    return ok_frame(n, seed=SEED)


def _forge(path: Path, mutate=None, meta=None, raw_meta: bytes | None = None) -> Path:
    return forge_dataset(path, _frame(), META if meta is None else meta, mutate, raw_meta)


def _set(name: str, index: int | None, value):
    def mutate(table: pa.Table) -> pa.Table:
        i = pc.index(table.column("status"), "ok").as_py() if index is None else index
        col = table.column(name).to_pylist()
        col[i] = value
        j = table.schema.get_field_index(name)
        return table.set_column(j, table.schema.field(j), pa.array(col, table[name].type))

    return mutate


def _other_graph(table: pa.Table) -> pa.Table:
    from latbench.pruned_ids import pruned_ids

    i = pc.index(table.column("status"), "ok").as_py()
    g = pruned_ids()
    aid = table.column("arch_id")[i].as_py()
    return _set("timed_arch_id", i, int(np.flatnonzero((g != g[aid]) & (g >= 0))[0]))(table)


POISON = {
    "latency -5": _set("latency_ms", None, -5.0),
    "latency NaN": _set("latency_ms", None, float("nan")),
    "latency inf": _set("latency_ms", None, float("inf")),
    "latency 1e300": _set("latency_ms", None, 1e300),
    "status holding ESC": _set("status", None, "ok\x1b[2J"),
    "duplicate arch_id": lambda t: _set("arch_id", 1, t.column("arch_id")[0].as_py())(t),
    "wrong valid flag": _set("valid", None, False),
    "ok row without latency": _set("latency_ms", None, None),
    "negative flops": _set("flops", None, -1),
    "negative spread": _set("latency_std_ms", None, -0.5),
    "timed_arch_id 2^30": _set("timed_arch_id", None, 2**30),
    "timed as another network": _other_graph,
    "zero rows": lambda t: t.slice(0, 0),
    "arch_id 99999": _set("arch_id", 3, 99999),
    "arch_id -1": _set("arch_id", 0, -1),
}

for _label, _mut in POISON.items():
    for _cmd in ("check", "info"):

        def _build(home: Path, victim: Path, mut=_mut, cmd=_cmd) -> list[str]:
            path = _forge(home / "poisoned.parquet", mut)
            return [cmd, str(path) if cmd == "check" else "poisoned"]

        case(f"dataset {_label} ({_cmd})", "poisoned dataset values", needle="poisoned.parquet")(
            _build
        )


def _raw(path: Path, ids, rows, keys=None) -> Path:
    from latbench.raw import write_raw

    keys = keys or [f"g{i}" for i in range(len(ids))]
    return write_raw(path, keys, ids, [np.asarray(r, np.int64) for r in rows], {"runs": 3})


for _label, _args in {
    "arch_id 99999": ([1, 99999], [[5, 6, 7]] * 2, None),
    "timing 2^62": ([1], [[5, 2**62, 7]], None),
    "negative timing": ([1], [[5, -7, 7]], None),
    "zero timing": ([1], [[0, 6, 7]], None),
    "padding inside a row": ([1], [[5, -1, 7]], None),
    "ESC in graph_key": ([1], [[5, 6, 7]], ["a\x1b[2J"]),
}.items():

    def _build(home: Path, victim: Path, a=_args) -> list[str]:
        return ["check", str(_raw(home / "k.raw.h5", *a))]

    case(f"raw {_label}", "poisoned raw timings", needle="k.raw.h5")(_build)


def _measure_with_prior(home: Path, prior: Path) -> list[str]:
    return ["-m", "latbench.harness.cli", "--device", "cpu-onnxruntime", "--adapt", "10",
            "--prior", str(prior), "--out", str(home / "out"), "--key", "k", "--runs", "2",
            "--group-size", "1", "--warmup", "0", "--quiet"]  # fmt: skip


def _prior(home: Path, **changes) -> Path:
    from latbench.predictors.fewshot.prior import load_prior

    return replace(load_prior(), **changes).save(home / "p.npz")  # digest recomputed


def _prior_cases() -> dict[str, Callable[[Path], Path]]:
    def nan_mean(h: Path) -> Path:
        from latbench.predictors.fewshot.prior import load_prior

        m = load_prior().mean.copy()
        m[0] = np.nan
        return _prior(h, mean=m)

    def neg_cov(h: Path) -> Path:
        from latbench.predictors.fewshot.prior import load_prior

        return _prior(h, cov=-load_prior().cov)

    def cut(size: int) -> Callable[[Path], Path]:
        def build(h: Path) -> Path:
            from latbench.predictors.fewshot.prior import default_prior_path

            (h / "p.npz").write_bytes(default_prior_path().read_bytes()[:size])
            return h / "p.npz"

        return build

    return {
        "NaN mean": nan_mean,
        "negative covariance": neg_cov,
        "negative noise": lambda h: _prior(h, noise_var=-1.0),
        "empty file": cut(0),
        "truncated file": cut(300_000),
        "zip-bombed factors (64 MB of zeros)": lambda h: _bombed_prior(h, (15625, 1100), True),
        "factors header claiming 2.5 GB": lambda h: _bombed_prior(h, (15625, 40_000), False),
    }


def _bombed_prior(home: Path, shape: tuple[int, int], real: bool) -> Path:
    from latbench.predictors.fewshot.prior import default_prior_path

    return bombed_prior(default_prior_path(), home / "p.npz", shape, real)


for _label, _make in _prior_cases().items():

    def _build(home: Path, victim: Path, make=_make) -> list[str]:
        return _measure_with_prior(home, make(home))

    case(f"prior {_label}", "poisoned priors", needle="p.npz")(_build)


@case("10 M copies of one row (info)", "memory bombs", needle="declares 10000000 rows")
def _(home: Path, victim: Path) -> list[str]:
    _bomb_rows(home / "bomb.parquet")
    return ["info", "bomb"]


@case("10 M copies of one row (check)", "memory bombs", needle="declares 10000000 rows")
def _(home: Path, victim: Path) -> list[str]:
    return ["check", str(_bomb_rows(home / "bomb.parquet"))]


def _bomb_rows(path: Path, rows: int = 10_000_000, chunk: int = 1_000_000) -> Path:
    from latbench.dataset import to_table

    one = to_table(_frame(1), META)
    block = pa.Table.from_arrays(
        [pc.take(c, np.zeros(chunk, np.int32)) for c in one.slice(0, 1).columns],
        schema=one.schema,
    )
    with pq.ParquetWriter(path, one.schema, compression="zstd") as w:
        for _ in range(rows // chunk):
            w.write_table(block)
    return path


_HUGE = json.dumps({"schema_version": 1, "device": {"name": "x" * 200_000}}).encode()
_DEEP = b'{"schema_version": 1, "a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"


@case("200 KB device name (info)", "memory bombs", needle="at most 65536")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "huge.parquet", raw_meta=_HUGE)
    return ["info", "huge"]


@case("metadata nested 20,000 deep (info)", "memory bombs", needle="deeper than")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "deep.parquet", raw_meta=_DEEP)
    return ["info", "deep"]


@case("huge and deep metadata in the listing (devices)", "memory bombs", "list")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "huge.parquet", raw_meta=_HUGE)
    _forge(home / "deep.parquet", raw_meta=_DEEP)
    _forge(home / "fine.parquet")
    return ["devices"]


def _release_pickle(path: Path, n: int = 40) -> Path:
    from latbench.space import all_archs

    vectors = [a.vector for a in all_archs() if a.valid][:n]
    path.write_bytes(pickle.dumps({v: np.float64(0.01) for v in vectors}, protocol=3))
    return path


for _label, _key in {
    "../victim/report": "{victim}/../victim/report",
    "absolute path": "{victim}/report",
    "newline": "a\nb",
    "x.layers": "x.layers",
    "x.predicted": "x.predicted",
    ".hidden": ".hidden",
    "bundled key": "xeon2c-tf-fp32",
    "bundled key respelled": "XEON2C_TF_FP32",
    "120 KB key": "k" * 120_000,
}.items():

    def _build(home: Path, victim: Path, key=_key) -> list[str]:
        src = _release_pickle(home.parent / "photos.pkl")
        key = key.replace("{victim}", str(victim)) if "{victim}" in key else key
        return ["import", "eagle", str(src), "--key", key, "--overwrite"]

    case(f"import --key {_label}", "hostile keys", needle="--key")(_build)


for _cmd in ("info", "devices", "check"):

    def _build(home: Path, victim: Path, cmd=_cmd) -> list[str]:
        path = _forge(home / "esc.parquet", meta={"device": {"name": ESC, "class": "x\x1b[31m"}})
        return {"info": ["info", "esc"], "devices": ["devices"], "check": ["check", str(path)]}[cmd]

    case(f"ESC sequences in the device name ({_cmd})", "terminal escapes", "clean")(_build)


@case("FIFO named f.parquet in the data home (devices)", "not regular files", "list")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "fine.parquet")
    os.mkfifo(home / "f.parquet")
    return ["devices"]


@case("check of a FIFO", "not regular files", needle="FIFO")
def _(home: Path, victim: Path) -> list[str]:
    os.mkfifo(home / "f.parquet")
    return ["check", str(home / "f.parquet")]


@case("export -o FIFO --overwrite", "not regular files")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "fine.parquet")
    os.mkfifo(victim / "node")
    return ["export", "fine", "-o", str(victim / "node"), "--format", "csv", "--overwrite"]


_SOCKETS: list[socket.socket] = []


@case("export -o socket --overwrite", "not regular files")
def _(home: Path, victim: Path) -> list[str]:
    _forge(home / "fine.parquet")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(victim / "sock"))
    _SOCKETS.append(s)
    return ["export", "fine", "-o", str(victim / "sock"), "--format", "csv", "--overwrite"]


@case("raw file with 3 ids its dataset lacks (check)", "raw/dataset disagreement")
def _(home: Path, victim: Path) -> list[str]:
    from latbench.dataset import write_dataset
    from latbench.graph import prune
    from latbench.space import from_id

    df = _frame()
    ok = df[df["status"] == "ok"]
    ds = write_dataset(df, home / "k.parquet", META)
    extra = [1, 2, 3]  # the frame holds multiples of 25 only
    ids = ok["arch_id"].tolist() + extra
    keys = ok["graph_key"].tolist() + [prune(from_id(i)).key for i in extra]
    _raw(home / "k.raw.h5", ids, [[100, 200, 300]] * len(ids), keys)
    return ["check", str(ds)]


@case("data home is a file (import)", "data home", needle="not a folder")
def _(home: Path, victim: Path) -> list[str]:
    src = _release_pickle(home / "photos.pkl")
    (home / "file-home").write_text("not a folder")
    return ["import", "eagle", str(src), "--key", "photos", "--data-home", str(home / "file-home")]


# ------------------------------------------------------------------ runner


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(folder))] = oct(p.lstat().st_mode)
    return out


def _run(argv: list[str], home: Path, timeout: float, child_path: str | None = None) -> dict:
    env = {**os.environ, "LATBENCH_HOME": str(home), "PYTHONHASHSEED": "0"}
    if child_path:  # e.g. an older checkout, to count what it let through
        env["PYTHONPATH"] = child_path
    cmd = [sys.executable, *argv] if argv[0] == "-m" else [sys.executable, "-m", "latbench", *argv]

    t0 = time.perf_counter()
    try:
        # cwd: the data home, so that `-m` never picks a checkout's package by accident
        p = run_capped(cmd, timeout=timeout, env=env, cwd=home)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", "timeout"
    return {"rc": rc, "stdout": out, "stderr": err, "seconds": round(time.perf_counter() - t0, 2)}


def run(timeout: float = 60.0, only: str | None = None, child_path: str | None = None) -> dict:
    """Run every case; returns per-case outcomes and the totals."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="latbench-values-") as tmp:
        root = Path(tmp)
        for n, (name, category, expect, needle, build) in enumerate(CASES):
            if only and only not in name:
                continue
            home, victim = root / f"case{n}" / "home", root / f"case{n}" / "victim"
            home.mkdir(parents=True)
            victim.mkdir()
            (victim / "report.parquet").write_bytes(b"precious")
            argv = build(home, victim)
            before = _snapshot(victim)
            res = _run(argv, home, timeout, child_path)
            rc, err, both = res["rc"], res["stderr"].strip(), res["stdout"] + res["stderr"]
            lines = err.splitlines()
            warned = [ln for ln in lines if ln.startswith("latbench: warning:")]
            if expect == "refuse":
                held = rc == 2 and len(lines) == 1 and (needle or "") in err
            elif expect == "list":
                held = rc == 0 and len(warned) >= 1 and all(len(w) < 2000 for w in warned)
            else:  # clean
                held = rc == 0
            held = held and not any(c in both for c in "\x1b\x07\r") and "Traceback" not in err
            outside = _snapshot(victim) != before
            outcomes.append({
                "name": name, "category": category, "expect": expect, "rc": rc,
                "seconds": res["seconds"], "held": held and not outside,
                "crashed": rc is not None and (rc < 0 or rc >= 128),
                "hung": rc is None, "traceback": "Traceback" in err,
                "accepted": expect == "refuse" and rc == 0, "written_outside": outside,
                "message": (lines[-1] if lines else "")[:300],
            })  # fmt: skip
            for s in _SOCKETS:
                s.close()
            _SOCKETS.clear()
    totals = {
        "cases": len(outcomes),
        "held": sum(o["held"] for o in outcomes),
        "accepted": sum(o["accepted"] for o in outcomes),
        "crashes": sum(o["crashed"] for o in outcomes),
        "hangs": sum(o["hung"] for o in outcomes),
        "tracebacks": sum(o["traceback"] for o in outcomes),
        "written_outside": sum(o["written_outside"] for o in outcomes),
        "by_category": {},
    }
    for o in outcomes:
        c = totals["by_category"].setdefault(o["category"], {"cases": 0, "held": 0})
        c["cases"] += 1
        c["held"] += o["held"]
    return {"seed": SEED, "memory_limit_bytes": MEMORY_LIMIT, "totals": totals,
            "cases": outcomes, "python": platform.python_version(),
            "machine": platform.platform()}  # fmt: skip


def report(res: dict) -> None:
    """Print one line per case and the totals."""
    t = res["totals"]
    for o in res["cases"]:
        print(f"{'ok  ' if o['held'] else 'FAIL'} rc={o['rc']!s:>4} {o['seconds']:6.2f}s  "
              f"{o['name']}: {o['message'][:110]!r}")  # fmt: skip
    cats = ", ".join(f"{k} {v['held']}/{v['cases']}" for k, v in t["by_category"].items())
    print(f"\n{t['cases']} hostile values/files ({cats})")
    print(f"held {t['held']}/{t['cases']}; accepted {t['accepted']}, crashes {t['crashes']}, "
          f"hangs {t['hangs']}, tracebacks {t['tracebacks']}, "
          f"writes outside the data home {t['written_outside']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS.name})")
    ap.add_argument("--only", help="run only cases whose name contains this text")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--child-pythonpath", metavar="DIR",
                    help="PYTHONPATH of the commands under test (a 'before' checkout)")  # fmt: skip
    args = ap.parse_args(argv)
    res = run(args.timeout, args.only, args.child_pythonpath)
    res["child_pythonpath"] = args.child_pythonpath
    report(res)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1))
    return 0 if res["totals"]["held"] == res["totals"]["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
