"""Issue 27: a checksum is not a credential.

Every attack is generated here: files rebuilt with a *recomputed* digest (so the
checksums pass) holding poisoned values, memory bombs, hostile keys, escape sequences,
files that are not files, a full disk and a raw file its dataset contradicts. Each must
end in one line naming the file and the problem, exit status 2, no traceback, nothing
written outside the data home; the bombs run in a child limited to 1 GB of address space.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hostile import MEMORY_LIMIT, bombed_prior, forge_dataset, ok_frame, run_capped

from latbench.cli import main
from latbench.dataset import (
    DIGEST_EXCLUDES,
    METADATA_KEY,
    DatasetError,
    read_dataset,
    to_table,
    write_dataset,
)
from latbench.integrity import check_file, write_verified
from latbench.space import N_ARCHS, all_archs

ESC_NAME = "\x1b]0;title\x07\x1b[2J owned\nlatbench: error: fake"


def _frame(n: int = 400):
    return ok_frame(n)


META = {"device": {"name": "Test device", "class": "desktop-cpu"}, "source": "test"}


def _forge(path: Path, mutate=None, meta: dict | None = None) -> Path:
    """A dataset whose values are edited after validation and whose digest is recomputed,
    as anyone can: ``mutate(table) -> table``."""
    return forge_dataset(path, _frame(), META if meta is None else meta, mutate)


def _set(name: str, index: int, value, type_=None):
    def mutate(table: pa.Table) -> pa.Table:
        col = table.column(name).to_pylist()
        col[index] = value
        i = table.schema.get_field_index(name)
        return table.set_column(i, table.schema.field(i), pa.array(col, type_ or table[name].type))

    return mutate


def _first_ok(table: pa.Table) -> int:
    return pc.index(table.column("status"), "ok").as_py()


def _on_ok(name: str, value, type_=None):
    def mutate(table: pa.Table) -> pa.Table:
        return _set(name, _first_ok(table), value, type_)(table)

    return mutate


def _dup_id(table: pa.Table) -> pa.Table:
    return _set("arch_id", 1, table.column("arch_id")[0].as_py())(table)


def _other_graph(table: pa.Table) -> pa.Table:
    from latbench.pruned_ids import pruned_ids

    i = _first_ok(table)
    aid = table.column("arch_id")[i].as_py()
    g = pruned_ids()
    other = int(np.flatnonzero((g != g[aid]) & (g >= 0))[0])
    return _set("timed_arch_id", i, other)(table)


def _no_rows(table: pa.Table) -> pa.Table:
    return table.slice(0, 0)


POISON = {
    "latency -5": (_on_ok("latency_ms", -5.0), "latency"),
    "latency NaN": (_on_ok("latency_ms", float("nan")), "latency"),
    "latency inf": (_on_ok("latency_ms", float("inf")), "latency"),
    "latency 1e300": (_on_ok("latency_ms", 1e300), "latency"),
    "status with ESC": (_on_ok("status", "ok\x1b[2J"), "unknown status"),
    "duplicate arch_id": (_dup_id, "more than once"),
    "wrong valid flag": (_on_ok("valid", False), "valid of arch_id"),
    "ok row without latency": (_on_ok("latency_ms", None), "no latency"),
    "negative flops": (_on_ok("flops", -1), "'flops'"),
    "negative spread": (_on_ok("latency_std_ms", -0.5), "'latency_std_ms'"),
    "timed_arch_id 2^30": (_on_ok("timed_arch_id", 2**30), "timed_arch_id"),
    "timed as another network": (_other_graph, "different pruned network"),
    "zero rows": (_no_rows, "no rows"),
    "arch_id 99999": (_set("arch_id", 3, 99999), "outside 0..15624"),
    "arch_id -1": (_set("arch_id", 0, -1), "outside 0..15624"),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_poisoned_values_with_recomputed_digest_are_refused(case, tmp_path, capsys):
    mutate, problem = POISON[case]
    path = _forge(tmp_path / "poisoned.parquet", mutate)
    with pytest.raises(DatasetError, match=problem) as info:
        read_dataset(path)  # before: the digest matched, so no row check ran
    assert str(path) in str(info.value)
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "\x1b" not in err and problem.split()[0].strip("'") in err


def _cli(*args: str, home: Path | None = None, limit: int | None = MEMORY_LIMIT, timeout=120):
    env = {**os.environ, "LATBENCH_HOME": str(home) if home else "/nonexistent-latbench-home"}
    return run_capped([sys.executable, "-m", "latbench", *args], timeout=timeout, env=env,
                      memory=limit)  # fmt: skip


def _one_line_error(p: subprocess.CompletedProcess, *words: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latbench: error: "), lines[:5]
    for w in words:
        assert w in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", ["latency -5", "status with ESC", "duplicate arch_id"])
def test_load_refuses_poisoned_datasets_in_a_fresh_process(case, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    _forge(home / "poisoned.parquet", POISON[case][0])
    line = _one_line_error(_cli("info", "poisoned", home=home), "poisoned.parquet")
    assert "\x1b" not in line
    p = _cli("arch", "25", "--latencies", home=home)
    # before: pandas' "truth value ... ambiguous"; now the file is marked and named, and
    # the other datasets still answer
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and "poisoned.parquet" in p.stderr and "\x1b" not in p.stderr
    assert "unreadable" in p.stdout and "xeon2c-onnxruntime-fp32" in p.stdout


def _bomb_rows(path: Path, rows: int = 10_000_000, chunk: int = 1_000_000) -> Path:
    """A few hundred KB of Parquet declaring ``rows`` copies of one row."""
    one = to_table(_frame(1), META)
    row = one.slice(0, 1)
    block = pa.Table.from_arrays(
        [pc.take(c, np.zeros(chunk, np.int32)) for c in row.columns],
        schema=one.schema,
    )
    with pq.ParquetWriter(path, one.schema, compression="zstd") as w:
        for _ in range(rows // chunk):
            w.write_table(block)
    return path


def test_ten_million_row_bomb_is_refused_before_decoding(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    path = _bomb_rows(home / "bomb.parquet")
    assert path.stat().st_size < 5_000_000
    line = _one_line_error(_cli("info", "bomb", home=home), "10000000 rows", "bomb.parquet")
    assert "corrupt" not in line  # before: "corrupt or truncated?" after 3 GB
    _one_line_error(_cli("check", str(path), home=home), "10000000 rows")


def _with_metadata(path: Path, raw: bytes) -> Path:
    table = to_table(_frame(), META)
    table = table.replace_schema_metadata({METADATA_KEY: raw})
    write_verified(table, path, exclude=DIGEST_EXCLUDES, compression="zstd")
    return path


def test_huge_and_deep_metadata_are_refused_and_the_listing_survives(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    name = "x" * 200_000
    _with_metadata(
        home / "huge-name.parquet",
        json.dumps({"schema_version": 1, "device": {"name": name}}).encode(),
    )
    _with_metadata(
        home / "deep.parquet",
        b'{"schema_version": 1, "a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    )
    _forge(home / "fine.parquet")
    p = _cli("devices", home=home)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and len(p.stdout) < 100_000
    warned = [ln for ln in p.stderr.splitlines() if "latbench: warning:" in ln]
    assert len(warned) == 2 and all(len(ln) < 1200 for ln in warned)
    assert "at most 65536" in p.stderr and "deeper than 32" in p.stderr
    assert "fine" in p.stdout and "Test device" in p.stdout
    _one_line_error(_cli("info", "deep", home=home), "deeper than 32")
    _one_line_error(_cli("check", str(home / "huge-name.parquet"), home=home), "at most 65536")


def test_escape_sequences_from_files_never_reach_the_terminal(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    meta = {"device": {"name": ESC_NAME, "class": "x\x1b[31m"}, "source": "s\rforged"}
    _forge(home / "esc.parquet", meta=meta)
    for args in (("info", "esc"), ("devices",), ("check", str(home / "esc.parquet"))):
        p = _cli(*args, home=home)
        assert p.returncode == 0, p.stderr
        both = p.stdout + p.stderr
        assert "\x1b" not in both and "\x07" not in both and "\r" not in both
        assert not any(ln.startswith("latbench: error: fake") for ln in both.splitlines())
    assert "\\x1b]0;title" in _cli("info", "esc", home=home).stdout


def _release_pickle(path: Path, n: int = 40) -> Path:
    vectors = [a.vector for a in all_archs() if a.valid][:n]
    path.write_bytes(pickle.dumps({v: np.float64(0.01) for v in vectors}, protocol=3))
    return path


HOSTILE_KEYS = {
    "traversal": "../victimdir/report",
    "absolute": "/tmp/latbench-victim-report",
    "newline": "a\nb",
    "layers suffix": "x.layers",
    "predicted suffix": "x.predicted",
    "hidden": ".hidden",
    "bundled key": "xeon2c-tf-fp32",
    "bundled key other spelling": "XEON2C_TF_FP32",
    "120 KB": "k" * 120_000,
}


@pytest.mark.parametrize("case", sorted(HOSTILE_KEYS))
def test_import_key_follows_the_one_key_policy(case, tmp_path, capsys):
    home, victim = tmp_path / "home", tmp_path / "victimdir"
    home.mkdir()
    victim.mkdir()
    (victim / "report.parquet").write_bytes(b"precious")
    src = _release_pickle(tmp_path / "photos.pkl")
    rc = main(["import", "eagle", str(src), "--key", HOSTILE_KEYS[case], "--overwrite",
               "--data-home", str(home)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and len(err) < 400
    assert (victim / "report.parquet").read_bytes() == b"precious"
    assert not Path("/tmp/latbench-victim-report.parquet").exists()
    assert list(home.iterdir()) == []


def test_a_plain_import_key_still_works(tmp_path, capsys):
    src = _release_pickle(tmp_path / "photos.pkl")
    assert main(["import", "eagle", str(src), "--key", "photos", "--data-home", str(tmp_path)]) == 0
    assert (tmp_path / "photos.parquet").is_file()


def test_fifo_in_the_data_home_is_skipped_with_a_warning(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    _forge(home / "fine.parquet")
    os.mkfifo(home / "f.parquet")
    p = _cli("devices", home=home, timeout=60)  # before: blocked forever on the FIFO
    assert p.returncode == 0 and "fine" in p.stdout
    assert "f.parquet: not a regular file" in p.stderr
    _one_line_error(_cli("check", str(home / "f.parquet"), timeout=60), "FIFO")


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_writers_never_replace_special_files(kind, tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    _forge(home / "fine.parquet")
    target = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    try:
        rc = main(["export", "fine", "-o", str(target), "--overwrite", "--data-home", str(home)])
        err = capsys.readouterr().err
        assert rc == 2 and "not a regular file" in err and len(err.splitlines()) == 1
        mode = target.lstat().st_mode
        assert (os.path.stat.S_ISFIFO if kind == "fifo" else os.path.stat.S_ISSOCK)(mode)
        with pytest.raises(DatasetError, match="not a regular file"):
            write_dataset(_frame(), target, META)
    finally:
        if kind == "socket":
            sock.close()


def test_disk_full_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    _forge(home / "fine.parquet")
    out = tmp_path / "copy.parquet"
    out.write_bytes(b"old")

    def full(*_a, **_k):
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    rc = main(["export", "fine", "-o", str(out), "--overwrite", "--data-home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert str(out) in err and "disk full" in err
    assert (
        out.read_bytes() == b"old"
        and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    )


def test_disk_full_with_errno_names_the_file(tmp_path, monkeypatch):
    from latbench.dataset import atomic_path

    target = tmp_path / "d.txt"
    with (
        pytest.raises(OSError, match="d.txt: not written: No space left") as info,
        atomic_path(target) as tmp,
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.errno == errno.ENOSPC and not target.exists()


def test_a_data_home_that_is_a_file_says_so(tmp_path, capsys):
    home = tmp_path / "home"
    home.write_text("not a folder")
    src = _release_pickle(tmp_path / "photos.pkl")
    rc = main(["import", "eagle", str(src), "--key", "photos", "--data-home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a folder" in err and "Errno 17" not in err


def test_a_long_unknown_key_is_shortened(tmp_path):
    p = _cli("info", "k" * 120_000, home=tmp_path)
    line = _one_line_error(p, "unknown dataset key")
    assert len(line) < 1200


# --- raw timings ------------------------------------------------------------------

needs_h5py = pytest.mark.skipif(
    importlib.util.find_spec("h5py") is None, reason="h5py (the harness extra) is not installed"
)


def _raw(path: Path, ids, rows, keys=None) -> Path:
    from latbench.raw import write_raw

    keys = keys or [f"g{i}" for i in range(len(ids))]
    return write_raw(path, keys, ids, [np.asarray(r, np.int64) for r in rows], {"runs": 3})


RAW_POISON = {
    "arch_id 99999": (lambda p: _raw(p, [1, 99999], [[5, 6, 7]] * 2), "outside 0..15624"),
    "timing 2^62": (lambda p: _raw(p, [1], [[5, 2**62, 7]]), "outside 1.."),
    "negative timing": (lambda p: _raw(p, [1], [[5, -7, 7]]), "outside 1.."),
    "padding inside a row": (lambda p: _raw(p, [1], [[5, -1, 7]]), "padding"),
    "zero timing": (lambda p: _raw(p, [1], [[0, 3, 7]]), "outside 1.."),
    "ESC in graph_key": (lambda p: _raw(p, [1], [[5, 6, 7]], ["a\x1b[2J"]), "graph_key"),
}


@needs_h5py
@pytest.mark.parametrize("case", sorted(RAW_POISON))
def test_poisoned_raw_files_are_refused(case, tmp_path):
    make, problem = RAW_POISON[case]
    path = make(tmp_path / "k.raw.h5")  # write_raw recomputes the digest: it matches
    p = _cli("check", str(path))
    line = _one_line_error(p, "k.raw.h5", problem)
    assert "\x1b" not in line


@needs_h5py
def test_check_reports_a_raw_file_its_dataset_contradicts(tmp_path):
    df = _frame()
    ok = df[df["status"] == "ok"]
    ds = write_dataset(df, tmp_path / "k.parquet", META)
    ids = ok["arch_id"].tolist()
    keys = ok["graph_key"].tolist()
    rows = [[100, 200, 300]] * len(ids)
    _raw(tmp_path / "k.raw.h5", ids, rows, keys)
    assert "ok" in check_file(ds) and "ok" in check_file(tmp_path / "k.raw.h5")
    extra = [i for i in range(N_ARCHS) if i not in set(df["timed_arch_id"].dropna())][:3]
    from latbench.graph import prune
    from latbench.space import from_id

    _raw(tmp_path / "k.raw.h5", ids + extra, rows + [[1, 2, 3]] * 3,
         keys + [prune(from_id(i)).key for i in extra])  # fmt: skip
    for f in (ds, tmp_path / "k.raw.h5"):
        _one_line_error(_cli("check", str(f)), "3 raw arch_id(s)", "disagree")


# --- priors -------------------------------------------------------------------------


def _prior_with(tmp_path: Path, **changes):
    from dataclasses import replace

    from latbench.predictors.fewshot.prior import load_prior

    prior = replace(load_prior(), **changes)
    return prior.save(tmp_path / "p.npz")  # save recomputes the SHA-256, as anyone can


def _prior_cases():
    from latbench.predictors.fewshot.prior import load_prior

    base = load_prior()
    mean = base.mean.copy()
    mean[0] = np.nan
    cov = -base.cov
    return {
        "NaN mean": ({"mean": mean}, "NaN"),
        "negative covariance": ({"cov": cov}, "positive definite"),
        "negative noise": ({"noise_var": -1.0}, "noise"),
        "zero noise": ({"noise_var": 0.0}, "noise"),
    }


@pytest.mark.parametrize(
    "case", ["NaN mean", "negative covariance", "negative noise", "zero noise"]
)
def test_poisoned_priors_are_refused(case, tmp_path):
    from latbench.predictors.base import PredictorError
    from latbench.predictors.fewshot.prior import load_prior

    changes, problem = _prior_cases()[case]
    path = _prior_with(tmp_path, **changes)
    with pytest.raises(PredictorError, match=problem) as info:
        load_prior(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("size", [0, 100, 300_000])
def test_empty_or_truncated_prior_is_one_error(size, tmp_path):
    from latbench.predictors.base import PredictorError
    from latbench.predictors.fewshot.prior import default_prior_path, load_prior

    path = tmp_path / "p.npz"
    path.write_bytes(default_prior_path().read_bytes()[:size])
    with pytest.raises(PredictorError, match="p.npz"):
        load_prior(path)  # before: EOFError / BadZipFile tracebacks


@pytest.mark.parametrize(
    ("shape", "real", "problem"),
    [((N_ARCHS, 1100), True, "bytes"), ((N_ARCHS, 40_000), False, "declares shape")],
)
def test_bombed_prior_member_is_refused_before_inflating(shape, real, problem, tmp_path):
    from latbench.predictors.fewshot.prior import default_prior_path

    path = bombed_prior(default_prior_path(), tmp_path / "bomb.npz", shape, real)
    assert path.stat().st_size < 2_000_000
    code = (
        "import sys\nfrom latbench.predictors.fewshot.prior import load_prior\n"
        "from latbench.predictors.base import PredictorError\n"
        f"try:\n    load_prior({str(path)!r})\nexcept PredictorError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    p = run_capped([sys.executable, "-c", code], timeout=120)  # address space: MEMORY_LIMIT
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "factors.npy" in p.stdout and problem in p.stdout


@needs_h5py
@pytest.mark.slow  # real runs of latbench-measure
def test_a_kill_between_raw_and_dataset_is_reported_and_resume_repairs_it(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("onnxruntime", reason="the cpu-onnxruntime profile needs onnxruntime")
    from latbench.harness import cli as measure
    from latbench.harness import store

    out = tmp_path / "out"

    def args(n: int) -> list[str]:
        return ["--device", "cpu-onnxruntime", "--limit", str(n), "--seed", "4", "--out",
                str(out), "--key", "k", "--cache", str(tmp_path / "cache"), "--runs", "2",
                "--group-size", "1", "--warmup", "0", "--quiet"]  # fmt: skip

    assert measure.main(args(2)) == 0
    assert main(["check", str(out / "k.parquet"), str(out / "k.raw.h5")]) == 0

    def killed(*_a, **_k):  # the raw file is written; the process dies before the dataset
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_dataset", killed)
    with contextlib.suppress(KeyboardInterrupt):
        measure.main(args(5))
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["check", str(out / "k.parquet")]) == 2  # before: both passed
    err = capsys.readouterr().err
    assert "disagree" in err and "raw arch_id(s)" in err and len(err.strip().splitlines()) == 1
    assert measure.main(args(5)) == 0  # resume: every graph reused, both files rewritten
    capsys.readouterr()
    assert main(["check", str(out / "k.parquet"), str(out / "k.raw.h5")]) == 0


def test_pruned_ids_partition_the_space_exactly_as_prune_keys():
    from latbench.graph import prune
    from latbench.pruned_ids import pruned_ids
    from latbench.space import from_id

    ids = pruned_ids()
    keys = [prune(from_id(i)).key for i in range(N_ARCHS)]
    by_key: dict[str, set[int]] = {}
    by_id: dict[int, set[str]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, set()).add(int(ids[i]))
        by_id.setdefault(int(ids[i]), set()).add(k)
    assert all(len(v) == 1 for v in by_key.values())  # one key -> one number
    assert all(len(v) == 1 for v in by_id.values())  # one number -> one key
    assert len(by_key) == 8687 and by_id[-1] == {"invalid"}


def test_safe_escapes_controls_and_shortens():
    from latbench.terminal import safe, safe_line

    assert safe(ESC_NAME) == "\\x1b]0;title\\x07\\x1b[2J owned\\nlatbench: error: fake"
    assert safe("a\u202eb\x9bc\x7f") == "a\\u202eb\\x9bc\\x7f"
    assert len(safe("x" * 10_000)) == 200 and safe("x" * 10_000).endswith("...")
    assert safe_line("one\ntwo\x1b[2J") == "one two\\x1b[2J"
    assert safe("ünï ok") == "ünï ok"


def test_key_policy_accepts_plain_keys_and_names_the_option():
    from latbench.keys import InvalidKeyError, validate_file_name, validate_key

    assert validate_key("my-laptop_1.cpu+x", shadow_check=True) == "my-laptop_1.cpu+x"
    assert validate_key("xeon2c-tf-fp32") == "xeon2c-tf-fp32"  # measured into --out: allowed
    with pytest.raises(InvalidKeyError, match="bundled"):
        validate_key("xeon2c-tf-fp32", shadow_check=True)
    with pytest.raises(InvalidKeyError, match="^--name"):
        validate_file_name("../x.pickle", "--name")
    assert validate_file_name("x.pickle") == "x.pickle"


def test_warnings_from_files_print_as_one_escaped_line(capsys):
    import warnings

    from latbench.terminal import one_line_warnings

    shown = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with one_line_warnings("latbench-predict"):
            warnings.warn(
                "skipping k.parquet:\nlatbench-predict: error: forged\x1b[2J", stacklevel=1
            )
        assert warnings.showwarning is shown  # restored on leaving
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("latbench-predict: warning: skipping")
    assert "\x1b" not in err and "\\x1b" in err
