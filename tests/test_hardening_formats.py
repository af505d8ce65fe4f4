"""Issue 28, hostile formats and absurd inputs: every case is a CLI in a fresh process.

Each case generates its input here, runs one ``latbench`` / ``latbench-measure`` /
``latbench-predict`` process with its own data home under a 1 GiB address-space limit
(set in the child) and a 30 s timeout, and asserts one line on stderr, exit status 2,
no traceback, no signal, and nothing written to the data home.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import petabyte_npz, run_capped

from latbench.space import N_ARCHS, all_archs

pytestmark = pytest.mark.slow  # subprocesses: a crash must not take the test run down

TIMEOUT_S = 30
KEY6 = b"(K\x03K\x03K\x03K\x03K\x03K\x03t"  # (3, 3, 3, 3, 3, 3), a valid architecture


def _cli(tool: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    module = {
        "latbench": "latbench",
        "measure": "latbench.harness.cli",
        "predict": "latbench.predictors.cli",
    }[tool]
    env = dict(os.environ, LATBENCH_HOME=str(home), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
    return run_capped([sys.executable, "-m", module, *args], timeout=TIMEOUT_S, env=env)


def _written(home: Path) -> list[str]:
    if not home.exists():
        return []
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and ".lock" not in p.name
    )


def _refused(p: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a clean refusal (one line, exit 2, no traceback); returns the line."""
    err = p.stderr.strip()
    assert p.returncode == 2, (p.returncode, err[-500:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-800:]
    assert len(err) < 1000 and "\x1b" not in err, err[:300]
    for needle in needles:
        assert needle in err, err
    return err


def _zip_pt(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
    return path


# --- release pickles (latbench import eagle) --------------------------------------------


def _dag_key(levels: int) -> bytes:
    """A dict key T_n = (T_{n-1}, T_{n-1}) built from memo references: 2^n leaves."""
    out = b"K\x01K\x01\x86q\x000"
    for i in range(1, levels):
        out += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i]) + b"0"
    return out + b"h" + bytes([levels - 1])


EAGLE_CASES = {
    "dag key (60 levels, 2^60 leaves)": (
        b"\x80\x03}(" + _dag_key(60) + b"G" + struct.pack(">d", 0.001) + b"u.",
        "nested deeper than",
    ),
    "key nested 10^6 deep": (
        b"\x80\x03}(K\x01" + b"\x85" * 1_000_000 + b"K\x01u.",
        "refused",
    ),
    "memo index 2^27": (b"\x80\x03}r\x00\x00\x00\x08.", "memo index 134217728"),
    "list where the layout has a dict": (b"\x80\x03](K\x01e.", "never holds"),
    "set flood": (b"\x80\x04}(" + KEY6 + b"(" + b"\x8f" * 100_000 + b"tu.", "never holds"),
    "a 20 MB pickle": (b"\x80\x03}(" + b"N" * (20 << 20) + b"u.", "refused"),
    "dict of 10^6 entries": (
        b"\x80\x03}(" + b"".join(b"J" + struct.pack("<i", i) + b"N" for i in range(10**6)) + b"u.",
        "refused",
    ),
}


@pytest.mark.parametrize("case", sorted(EAGLE_CASES))
def test_hostile_release_pickle(tmp_path, case):
    data, needle = EAGLE_CASES[case]
    f = tmp_path / "mine.pickle"
    f.write_bytes(data)
    home = tmp_path / "home"
    p = _cli("latbench", "import", "eagle", str(f), "--key", "mine", "--data-home", str(home),
             home=home)  # fmt: skip
    _refused(p, needle, str(f))
    assert _written(home) == []


# --- HELP torch zips (latbench import help) ---------------------------------------------


def _help_index() -> bytes:
    return pickle.dumps({a.str: a.id for a in all_archs()}, protocol=2)


def _help_folder(d: Path, index: bytes, latencies: bytes | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _zip_pt(d / "str_arch2idx.pt", index)
    lat = latencies or pickle.dumps([1.0 + i % 7 for i in range(N_ARCHS)], protocol=2)
    _zip_pt(d / "pixel3.pt", lat)
    return d


HELP_CASES = {
    "index key nested 10^6 deep": (
        lambda: (b"\x80\x02}(K\x01" + b"\x85" * 1_000_000 + b"K\x01u.", None),
        "refused",
    ),
    "EMPTY_SET flood": (
        lambda: (_help_index(), b"\x80\x02](" + b"\x8f" * (8 << 20) + b"e."),
        "refused",
    ),  # fmt: skip
    "EMPTY_DICT member of 16 MiB": (
        lambda: (_help_index(), b"\x80\x02](" + b"}" * (16 << 20) + b"e."),
        "refused",
    ),
    "memo index 2^27": (lambda: (_help_index(), b"\x80\x02]r\x00\x00\x00\x08."), "memo index"),
}


@pytest.mark.parametrize("case", sorted(HELP_CASES))
def test_hostile_help_zip(tmp_path, case):
    make, needle = HELP_CASES[case]
    index, latencies = make()
    d = _help_folder(tmp_path / "help", index, latencies)
    home = tmp_path / "home"
    p = _cli("latbench", "import", "help", str(d), "--data-home", str(home), home=home)
    _refused(p, needle)
    assert _written(home) == []


def test_case_insensitively_equal_help_files_are_refused(tmp_path):
    d = _help_folder(tmp_path / "help", _help_index())
    (d / "Pixel3.pt").write_bytes((d / "pixel3.pt").read_bytes())
    home = tmp_path / "home"
    p = _cli("latbench", "import", "help", str(d), "--data-home", str(home), home=home)
    _refused(p, "pixel3.pt", "Pixel3.pt")
    assert _written(home) == []


def test_import_waits_for_no_one_while_measure_holds_the_key(tmp_path):
    from filelock import FileLock

    d = _help_folder(tmp_path / "help", _help_index())
    home = tmp_path / "home"
    home.mkdir()
    with FileLock(home / ".help-pixel3.lock", timeout=0):  # as latbench-measure holds it
        p = _cli("latbench", "import", "help", str(d), "--data-home", str(home), home=home)
    _refused(p, "help-pixel3", "another process")
    assert _written(home) == []


# --- HW-NAS-Bench (latbench import hwnasbench) -----------------------------------------


def _hwnas(tweak) -> bytes:
    archs = [a.str for a in all_archs()]
    cifar10 = {"config": [{"arch_str": s} for s in archs]}
    for device in ("edgegpu", "raspi4", "edgetpu", "pixel3", "eyeriss", "fpga"):
        cifar10[f"{device}_latency"] = [2.0] * N_ARCHS
    for device in ("edgegpu", "eyeriss", "fpga"):
        cifar10[f"{device}_energy"] = [3.0] * N_ARCHS
    tweak(cifar10)
    return pickle.dumps({"nasbench201": {"cifar10": cifar10}}, protocol=4)


def _nested(depth: int) -> object:
    x: object = 1.0
    for _ in range(depth):
        x = (x,)
    return x


def _wide_dag() -> object:
    """Three levels of shared lists: 10 KB pickled, 10^8 items when walked."""
    leaf = [1.0] * 1000
    mid = [leaf] * 1000
    return [mid] * 100


HWNAS_CASES = {
    "nested tuple as a latency": (
        lambda c: c["pixel3_latency"].__setitem__(3, _nested(500)),
        "nested deeper than",
    ),  # fmt: skip
    "shared-reference DAG as a latency": (
        lambda c: c["pixel3_latency"].__setitem__(3, _wide_dag()),
        "reachable",
    ),
    "latency 1e12 on the fourth device": (
        lambda c: c["pixel3_latency"].__setitem__(5, 1e12),
        "pixel3_latency: entry 5",
    ),
    "energy 1e300": (lambda c: c["fpga_energy"].__setitem__(0, 1e300), "fpga_energy: entry 0"),
    "missing metric among 10^5 escape-laden keys": (
        lambda c: (c.pop("fpga_latency"), c.update({f"\x1b]2;k{i}\x07": 0 for i in range(10**5)})),
        "no 'fpga_latency' entry",
    ),
}


@pytest.mark.parametrize("case", sorted(HWNAS_CASES))
def test_hostile_hwnasbench(tmp_path, case):
    tweak, needle = HWNAS_CASES[case]
    f = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    f.write_bytes(_hwnas(tweak))
    home = tmp_path / "home"
    p = _cli("latbench", "import", "hwnasbench", str(f), "--data-home", str(home), home=home)
    _refused(p, needle)
    assert _written(home) == []


# --- raw timings (latbench check / rewrite) ---------------------------------------------


def _raw(path: Path) -> Path:
    from latbench.raw import write_raw

    rows = [np.arange(10, 20, dtype=np.int64) * 1000 for _ in range(3)]
    return write_raw(path, ["g0", "g1", "g2"], [1, 2, 3], rows, {"runs": 10, "group_size": 5})


def _rebuild(path: Path, make) -> Path:
    import h5py

    good = _raw(path.with_name("good.raw.h5"))
    with h5py.File(good, "r") as src, h5py.File(path, "w") as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        f["graph_key"] = src["graph_key"][...]
        make(f, src)
    return path


def _external_storage(f, src) -> None:
    secret = f.filename + ".secret"
    Path(secret).write_bytes(np.arange(30, dtype="<i8").tobytes())
    f.create_dataset("arch_id", data=src["arch_id"][...])
    f.create_dataset("timings_ns", shape=(3, 10), dtype="<i8", external=[(secret, 0, 240)])


def _external_link(f, src) -> None:
    other = f.filename + ".other.h5"
    import h5py

    with h5py.File(other, "w") as o:
        o["timings_ns"] = src["timings_ns"][...]
    f.create_dataset("arch_id", data=src["arch_id"][...])
    f["timings_ns"] = h5py.ExternalLink(other, "timings_ns")


def _soft_link(f, src) -> None:
    import h5py

    f.create_dataset("arch_id", data=src["arch_id"][...])
    f.create_dataset("elsewhere", data=src["timings_ns"][...])
    f["timings_ns"] = h5py.SoftLink("/elsewhere")


def _virtual(f, src) -> None:
    import h5py

    other = f.filename + ".v.h5"
    with h5py.File(other, "w") as o:
        o["t"] = src["timings_ns"][...]
    layout = h5py.VirtualLayout(shape=(3, 10), dtype="<i8")
    layout[...] = h5py.VirtualSource(other, "t", shape=(3, 10))
    f.create_dataset("arch_id", data=src["arch_id"][...])
    f.create_virtual_dataset("timings_ns", layout)


def _zeros(f, src) -> None:
    # declared 2^20 x 4096 (32 GiB of int64) in a few KB: nothing is ever written
    f.create_dataset("arch_id", shape=(1 << 20,), dtype="<i4", chunks=(1 << 16,))
    del f["graph_key"]
    import h5py

    f.create_dataset("graph_key", shape=(1 << 20,), dtype=h5py.string_dtype(), chunks=(4096,))
    f.create_dataset("timings_ns", shape=(1 << 20, 4096), dtype="<i8", chunks=(64, 4096),
                     compression="gzip")  # fmt: skip


RAW_CASES = {
    "external storage": (_external_storage, "outside the file"),
    "external link": (_external_link, "ExternalLink"),
    "soft link": (_soft_link, "SoftLink"),
    "virtual dataset": (_virtual, "outside the file"),
    "declared 32 GiB of zeros": (_zeros, "more than a raw timings file"),
}


@pytest.mark.parametrize("command", ["check", "rewrite"])
@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_raw_file_reads_only_itself(tmp_path, case, command):
    pytest.importorskip("h5py")
    make, needle = RAW_CASES[case]
    path = _rebuild(tmp_path / "dev.raw.h5", make)
    before = path.read_bytes()
    home = tmp_path / "home"
    p = _cli("latbench", command, str(path), home=home)
    _refused(p, needle)
    assert path.read_bytes() == before


# --- latbench-measure options and files -------------------------------------------------

OPTION_CASES = {
    "runs 10^12": (["--runs", "1000000000000"], "--runs must be in"),
    "seed -1": (["--seed", "-1"], "--seed: must be at least 0"),
    "threads 10^6": (["--threads", "1000000"], "--threads must be in"),
    "build workers 0": (["--build-workers", "0"], "--build-workers must be in"),
    "shard 1/0": (["--shard", "1/0"], "--shard count n must be in"),
    "shard 1/10^20": (["--shard", "1/100000000000000000000"], "--shard"),
    "shard 3/2": (["--shard", "3/2"], "need 1 <= i <= n"),
    "passes 0": (["--passes", "0"], "--passes must be in"),
    "limit 10^9": (["--limit", "1000000000"], "--limit must be in"),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_absurd_measure_options(tmp_path, case):
    args, needle = OPTION_CASES[case]
    home = tmp_path / "home"
    p = _cli("measure", *args, "--out", str(home), "--key", "k", home=home)
    _refused(p, needle)
    assert _written(home) == []


def _manifest(d: Path, **changes) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    m = {
        "format": "latbench-artifacts/1",
        "build_format": "onnx",
        "profile": "cpu-onnxruntime",
        "seed": 0,
        "selection": {"arch_ids": [100, 200], "shard": [1, 1]},
        "entries": [],
    }
    m.update(changes)
    text = json.dumps(m).replace('"SEED"', "1e999")
    (d / "latbench-artifacts.json").write_text(text)
    return d


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"selection": {"arch_ids": [100], "shard": [1, 0]}}, "'selection.shard' count n"),
        ({"seed": "SEED"}, "'seed' must be a whole number"),
        ({"selection": {"arch_ids": [10**30]}}, "outside 0..15624"),
    ],
    ids=["shard [1,0]", "seed 1e999", "arch id 1e30"],
)
def test_manifest_header_out_of_range(tmp_path, changes, needle):
    d = _manifest(tmp_path / "art", **changes)
    home = tmp_path / "home"
    p = _cli("measure", "run", "--device", "cpu-onnxruntime", "--artifacts", str(d),
             "--out", str(home), home=home)  # fmt: skip
    _refused(p, needle, "latbench-artifacts.json")
    assert _written(home) == []


@pytest.mark.parametrize("content", ["[]", "null", "", '{"profile": "cpu-onn'])
def test_damaged_run_json_names_the_file(tmp_path, content):
    pytest.importorskip("onnxruntime")
    home = tmp_path / "home"
    parts = home / "k.parts"
    parts.mkdir(parents=True)
    (parts / "run.json").write_text(content)
    p = _cli("measure", "--device", "cpu-onnxruntime", "--limit", "2", "--out", str(home),
             "--key", "k", "-q", home=home)  # fmt: skip
    _refused(p, str(parts / "run.json"), "--fresh")
    assert (parts / "run.json").read_text() == content


# --- predictor and prior files -------------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


PREDICTOR_CASES = {
    "list header": (lambda p: _npz(p, __header__=np.array("[1, 2]")), "JSON list"),
    "deep header": (
        lambda p: _npz(p, __header__=np.array("[" * 100_000 + "]" * 100_000)),
        "header",
    ),  # fmt: skip
    "missing config": (
        lambda p: _npz(
            p,
            __header__=np.array(
                json.dumps({"format": "latbench-predictor", "version": 1, "kind": "proxy"})
            ),
        ),
        "do not fit",
    ),  # fmt: skip
    "truncated": (
        lambda p: p.write_bytes(
            _npz(p, __header__=np.array("{}"), w=np.zeros(1000)).read_bytes()[:3000]
        ),
        "truncated or corrupt",
    ),
    "declares a petabyte": (lambda p: p.write_bytes(petabyte_npz()), "declares"),
}


@pytest.mark.parametrize("case", sorted(PREDICTOR_CASES))
def test_damaged_predictor_file(tmp_path, case):
    make, needle = PREDICTOR_CASES[case]
    path = tmp_path / "pred.npz"
    make(path)
    home = tmp_path / "home"
    p = _cli("predict", "predict", str(path), "0", home=home)
    _refused(p, needle, str(path))


def test_prior_header_is_validated(tmp_path):
    from latbench.predictors.fewshot.prior import default_prior_path

    with np.load(default_prior_path(), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    meta["sources"] = 5
    path = _npz(tmp_path / "prior.npz", meta=np.array(json.dumps(meta)), **arrays)
    home = tmp_path / "home"
    p = _cli("measure", "--adapt", "10", "--prior", str(path), "--out", str(home), "--key", "k",
             home=home)  # fmt: skip
    _refused(p, str(path), "sources")
    assert _written(home) == []


def test_cache_on_a_full_disk_ends_the_run_with_exit_2(tmp_path):
    pytest.importorskip("onnxruntime")
    home = tmp_path / "home"
    env = dict(os.environ, LATBENCH_HOME=str(home), OMP_NUM_THREADS="1")
    p = run_capped(
        [sys.executable, "-m", "latbench.harness.cli", "--device", "cpu-onnxruntime", "--limit",
         "2", "--cache", str(tmp_path / "cache"), "--out", str(home), "--key", "k", "-q"],
        timeout=TIMEOUT_S, env=env, file_size=200_000,  # every file past 200 KB: a full disk
    )  # fmt: skip
    _refused(p, "errno 27", "rerun the same command")
    assert not (home / "k.parquet").exists()  # no dataset of 2/2 "artifact build failed"


def test_swapped_cache_entries_with_rewritten_sidecars_are_rebuilt(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from latbench.harness.artifacts import ArtifactCache, ledger_dir
    from latbench.space import Arch

    monkeypatch.setenv("LATBENCH_HOME", str(tmp_path / "home"))
    cache = ArtifactCache(tmp_path / "shared-cache")
    a, b = (Arch.parse(i).graph for i in (6572, 12736))
    pa, pb = cache.build(a, "onnx", 0), cache.build(b, "onnx", 0)
    good_a, good_b = pa.read_bytes(), pb.read_bytes()
    assert good_a != good_b and cache.get(a, "onnx", 0) == pa
    assert not ledger_dir().is_relative_to(cache.root)
    # the attack: swap the two files and rewrite each sidecar's size and SHA-256
    pa.write_bytes(good_b)
    pb.write_bytes(good_a)
    for path in (pa, pb):
        side = path.with_suffix(path.suffix + ".json")
        meta = json.loads(side.read_text())
        meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        meta["bytes"] = path.stat().st_size
        side.write_text(json.dumps(meta))
    assert cache.get(a, "onnx", 0) is None and cache.get(b, "onnx", 0) is None
    assert cache.build(a, "onnx", 0).read_bytes() == good_a
    # another data home's builder (a shared cache's other user) trusts none of it
    monkeypatch.setenv("LATBENCH_HOME", str(tmp_path / "other-home"))
    assert cache.get(a, "onnx", 0) is None


def test_build_rebuilds_swapped_cache_entries_instead_of_recording_them(tmp_path):
    pytest.importorskip("onnx")
    home, art = tmp_path / "home", tmp_path / "art"
    args = ("build", "--device", "cpu-onnxruntime", "--limit", "2", "--out", str(art), "-q")
    first = _cli("measure", *args, home=home)
    assert first.returncode == 0, first.stderr[-500:]
    manifest = art / "latbench-artifacts.json"
    before = {e["key"]: e["sha256"] for e in json.loads(manifest.read_text())["entries"]}
    a, b = sorted((art / "files").glob("graph-*.onnx"))
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    for path in (a, b):  # the sidecars rewritten to match the swapped files
        side = path.with_suffix(".onnx.json")
        meta = json.loads(side.read_text())
        meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        side.write_text(json.dumps(meta))
    second = _cli("measure", *args, home=home)
    assert second.returncode == 0, second.stderr[-500:]
    after = {e["key"]: e["sha256"] for e in json.loads(manifest.read_text())["entries"]}
    assert after == before  # rebuilt: the manifest records the true artifacts
    assert a.read_bytes() == da and b.read_bytes() == db
