"""Importers: LatBench release pickles, HELP files, and fetching them over a URL."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import refdata
from http_folder import served

import latbench
from latbench.catalog import CATALOG
from latbench.importers import ImportFormatError, import_datasets, import_path, read_source
from latbench.importers.fetch import (
    HELP_SHA256,
    ChecksumError,
    FetchError,
    download,
    fetch_help,
    fetch_urls,
)
from latbench.importers.help import INDEX_FILE
from latbench.safepickle import CorruptPickleError, UnsafePickleError
from latbench.space import N_ARCHS, N_VALID, all_archs, arch_id, format_arch, parse_arch

HELP_DIR = refdata.ref_dir("help")
needs_help = refdata.needs("help")

CPU_FILE = "desktop-cpu-core-i7-7820x-fp32"
CPU_KEY = "desktop-cpu-i7-7820x-fp32"
MOBILE_FILE = "mobile-gpu-snapdragon-675-adren0-612-int8"
MOBILE_KEY = "snapdragon-675-gpu-int8"


@functools.cache
def _valid_vectors() -> tuple[tuple[int, ...], ...]:
    return tuple(a.vector for a in all_archs() if a.valid)


def _release(seed: int, n: int | None = None) -> dict[tuple[int, ...], np.float64]:
    """A synthetic release dict: ``n`` (default all) valid vectors -> seconds."""
    rng = np.random.default_rng(seed)
    vectors = _valid_vectors()
    if n is not None:
        vectors = [vectors[i] for i in sorted(rng.choice(len(vectors), n, replace=False))]
    seconds = rng.uniform(1e-3, 5e-2, len(vectors))
    return {v: np.float64(x) for v, x in zip(vectors, seconds, strict=True)}


def _write_pickle(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=3))
    return path


@pytest.fixture(scope="module")
def full_release() -> dict:
    return _release(seed=1)


@pytest.fixture
def release_dir(tmp_path, full_release) -> Path:
    d = tmp_path / "LatBench"
    d.mkdir()
    _write_pickle(d / f"{CPU_FILE}.pickle", full_release)
    return d


def _assert_matches_release(df: pd.DataFrame, src: dict, runs: int) -> None:
    assert len(df) == N_ARCHS
    assert df["arch_id"].tolist() == list(range(N_ARCHS))
    expected = np.full(N_ARCHS, np.nan)
    for vector, seconds in src.items():
        expected[arch_id(vector)] = seconds * 1000
    lat = df["latency_ms"].to_numpy(dtype=float)
    have = ~np.isnan(expected)
    assert np.array_equal(lat[have], expected[have])  # exact, per arch_id
    valid = df["valid"].to_numpy()
    assert (df.loc[~valid, "status"] == "invalid").all()
    assert df.loc[~valid, "latency_ms"].isna().all()
    assert (df.loc[have, "status"] == "ok").all()
    assert (df.loc[valid & ~have, "status"] == "missing").all()
    assert df.loc[valid & ~have, "latency_ms"].isna().all()
    ok = (df["status"] == "ok").to_numpy()
    assert (df.loc[ok, "runs"] == runs).all() and (df.loc[~ok, "runs"] == 0).all()
    assert (df.loc[ok, "timed_arch_id"] == df.loc[ok, "arch_id"]).all()
    assert df.loc[~ok, "timed_arch_id"].isna().all()


def test_eagle_import_equals_source(tmp_path, release_dir, full_release):
    home = tmp_path / "home"
    written = import_path("eagle", release_dir, data_home=home)
    assert written == [home / f"{CPU_KEY}.parquet"]
    df = latbench.load("desktop-cpu", data_home=home)
    assert len(full_release) == N_VALID
    _assert_matches_release(df, full_release, runs=1000)
    assert (df["status"] == "ok").sum() == N_VALID
    costs = latbench.costs(parse_arch(df.loc[12345, "arch_str"]))
    assert (df.loc[12345, "flops"], df.loc[12345, "params"]) == (costs.flops, costs.params)

    meta = df.attrs["metadata"]
    src = release_dir / f"{CPU_FILE}.pickle"
    assert meta["imported_from"]["file"] == src.name
    assert meta["imported_from"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["imported_from"]["importer"] == "eagle"
    entry = CATALOG[CPU_KEY]
    assert meta["device"] == {
        "key": CPU_KEY,
        "name": entry.name,
        "class": entry.device_class,
        "hardware": entry.hardware,
    }
    assert meta["runtime"] == {"name": "TensorFlow", "version": "1.15.0"}
    assert meta["protocol"]["runs"] == 100 * 10
    assert meta["protocol"]["groups"] == 100
    assert meta["citation"] == entry.citation and meta["license"] == entry.license
    assert meta["latbench_version"] == latbench.__version__


def test_eagle_partial_file_and_mobile_protocol(tmp_path):
    src = _release(seed=2, n=500)
    path = _write_pickle(tmp_path / f"{MOBILE_FILE}.pickle", src)
    (item,) = read_source("eagle", path)
    assert item.key == MOBILE_KEY
    _assert_matches_release(item.frame, src, runs=10)
    n_invalid = N_ARCHS - N_VALID
    assert item.counts() == {"ok": 500, "invalid": n_invalid, "failed": 0, "missing": N_VALID - 500}
    assert item.metadata["protocol"]["groups"] == 1


def test_eagle_unknown_file_is_refused_unless_given_a_key(tmp_path):
    path = _write_pickle(tmp_path / "Desktop-CPU_My_Laptop-fp32.pickle", _release(seed=3, n=20))
    with pytest.raises(ImportFormatError, match=r"not a file of the LatBench release.*--key"):
        read_source("eagle", path)
    (item,) = read_source("eagle", path, key="My Laptop")
    assert item.key == "my-laptop"  # the user's key, never the file's stem
    assert item.metadata["protocol"]["runs"] == 1000
    release = item.metadata["imported_from"]["release"]
    assert release["identified_by"] == "key" and release["matches_published"] is False
    assert "differs from every published file" in item.metadata["warnings"][0]


_BAD_RELEASES = {
    "invalid arch": ({(0, 0, 0, 0, 0, 0): np.float64(1e-3)}, r"invalid architecture"),
    "short key": ({(3, 3, 3, 3, 3): np.float64(1e-3)}, r"not a tuple of 6"),
    "op index 7": ({(3, 3, 7, 3, 3, 3): np.float64(1e-3)}, r"entry 2 = 7 is not an op index"),
    "list key": ({"3,3,3,3,3,3": np.float64(1e-3)}, r"not a tuple of 6"),
    "negative": ({(3, 3, 3, 3, 3, 3): np.float64(-1.0)}, r"not a positive finite"),
    "nan": ({(3, 3, 3, 3, 3, 3): np.float64("nan")}, r"not a positive finite"),
    "string value": ({(3, 3, 3, 3, 3, 3): "fast"}, r"not a number"),
    "not a dict": ([1.0, 2.0], r"a list, which this file's layout never holds"),
}


@pytest.mark.parametrize("case", sorted(_BAD_RELEASES))
def test_eagle_malformed_release_is_refused_and_nothing_written(tmp_path, release_dir, case):
    obj, match = _BAD_RELEASES[case]
    _write_pickle(release_dir / f"{MOBILE_FILE}.pickle", obj)
    home = tmp_path / "home"
    with pytest.raises((ImportFormatError, CorruptPickleError), match=match):
        import_path("eagle", release_dir, data_home=home)
    assert not home.exists() or not any(home.iterdir())


def test_malicious_pickle_refused_and_existing_output_kept(tmp_path, release_dir):
    home = tmp_path / "home"
    (target,) = import_path("eagle", release_dir, data_home=home)
    before = target.read_bytes()

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    _write_pickle(release_dir / f"{CPU_FILE}.pickle", Evil())
    _write_pickle(release_dir / f"{MOBILE_FILE}.pickle", _release(seed=4, n=10))
    with pytest.raises(UnsafePickleError, match=r"system"):
        import_path("eagle", release_dir, data_home=home, overwrite=True)
    assert not (tmp_path / "pwned").exists()
    assert target.read_bytes() == before
    assert sorted(p.name for p in home.iterdir() if p.suffix != ".lock") == [target.name]


def test_existing_dataset_needs_overwrite(tmp_path, release_dir):
    home = tmp_path / "home"
    (target,) = import_path("eagle", release_dir, data_home=home)
    before = target.read_bytes()
    other = _release(seed=5, n=100)
    _write_pickle(release_dir / f"{CPU_FILE}.pickle", other)
    with pytest.raises(FileExistsError, match="overwrite"):
        import_path("eagle", release_dir, data_home=home)
    assert target.read_bytes() == before
    import_path("eagle", release_dir, data_home=home, overwrite=True)
    _assert_matches_release(latbench.read_dataset(target), other, runs=1000)


def test_only_selects_datasets_and_names_absent_keys(tmp_path, release_dir):
    _write_pickle(release_dir / f"{MOBILE_FILE}.pickle", _release(seed=6, n=10))
    home = tmp_path / "home"
    reports = import_datasets("eagle", release_dir, data_home=home, keys=["m-gpu"])
    assert [r.key for r in reports] == [MOBILE_KEY]
    assert [p.name for p in home.iterdir() if p.suffix != ".lock"] == [f"{MOBILE_KEY}.parquet"]
    with pytest.raises(ImportFormatError, match="'jetson_nano'"):
        import_path("eagle", release_dir, data_home=home, keys=["jetson_nano"])


def test_two_files_for_one_dataset_are_refused(tmp_path, release_dir):
    _write_pickle(release_dir / "desktop-gpu-gtx-1080-ti-fp32.pickle", _release(7, 5))
    _write_pickle(release_dir / "desktop-gpu-gtx-1080ti-fp32.pickle", _release(8, 5))
    with pytest.raises(ImportFormatError, match="both dataset 'desktop-gpu-gtx-1080-ti-fp32'"):
        read_source("eagle", release_dir)


def test_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_source("eagle", tmp_path / "absent")
    with pytest.raises(ImportFormatError, match="no release files"):
        read_source("eagle", tmp_path)
    with pytest.raises(ValueError, match="unknown importer 'hwnas'"):
        read_source("hwnas", tmp_path)


# --- HELP ------------------------------------------------------------------------------


def _torch_zip(path: Path, obj) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr(f"{path.stem}/version", "3\n")
    return path


@pytest.fixture
def synthetic_help(tmp_path) -> tuple[Path, dict[str, int], list[float]]:
    """A HELP-like folder: a shuffled string -> index map and one latency file."""
    rng = np.random.default_rng(9)
    shuffled = rng.permutation(N_ARCHS)
    index = {a.str: int(shuffled[a.id]) for a in all_archs()}
    d = tmp_path / "help"
    d.mkdir()
    _torch_zip(d / INDEX_FILE, index)
    values = [float(x) for x in rng.uniform(1, 20, N_ARCHS)]
    _torch_zip(d / "titan_rtx_1.pt", values)
    return d, index, values


def _assert_matches_help(df: pd.DataFrame, index: dict[str, int], values: list) -> None:
    assert df["nb201_index"].notna().all()
    assert [index[s] for s in df["arch_str"]] == df["nb201_index"].tolist()
    expected = [float(values[i]) for i in df["nb201_index"]]
    assert df["latency_ms"].tolist() == expected  # exact, every row
    assert (df["status"] == np.where(df["valid"], "ok", "invalid")).all()
    assert (df["timed_arch_id"] == df["arch_id"]).all()


def test_help_synthetic_folder(tmp_path, synthetic_help):
    d, index, values = synthetic_help
    (item,) = read_source("help", d)
    assert item.key == "help-titan-rtx-1"
    _assert_matches_help(item.frame, index, values)
    assert item.metadata["imported_from"]["index_file"] == INDEX_FILE
    assert item.metadata["device"]["hardware"] == "NVIDIA Titan RTX"


def test_help_single_file_uses_sibling_index(synthetic_help):
    d, _, _ = synthetic_help
    (item,) = read_source("help", d / "titan_rtx_1.pt")
    assert item.key == "help-titan-rtx-1"


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1.0] * 100, "100 latencies, expected 15625"),
        ([1.0] * (N_ARCHS - 1) + ["3"], r"entry 15624 is '3'"),
        ([1.0] * (N_ARCHS - 1) + [float("inf")], "entry 15624 is inf"),
        ([0.0] + [1.0] * (N_ARCHS - 1), "entry 0 is 0.0"),
        ({"a": 1.0}, "expected a list"),
    ],
)
def test_help_bad_latency_file(tmp_path, synthetic_help, values, match):
    d, _, _ = synthetic_help
    _torch_zip(d / "titan_rtx_1.pt", values)
    with pytest.raises(ImportFormatError, match=match):
        import_path("help", d, data_home=tmp_path / "home")
    assert not (tmp_path / "home").exists()


def test_help_bad_index(synthetic_help):
    d, _, _ = synthetic_help
    index = {format_arch(a.vector): a.id for a in all_archs()}
    index[format_arch((3,) * 6)] = 0  # index 0 now given twice
    _torch_zip(d / INDEX_FILE, index)
    with pytest.raises(ImportFormatError, match="index 0 is given to two"):
        read_source("help", d)
    index = {format_arch(a.vector).replace("none", "zero"): a.id for a in all_archs()}
    _torch_zip(d / INDEX_FILE, index)
    with pytest.raises(ImportFormatError, match="unknown op 'zero'"):
        read_source("help", d)
    (d / INDEX_FILE).unlink()
    with pytest.raises(ImportFormatError, match="str_arch2idx.pt not found"):
        read_source("help", d)


@needs_help
def test_help_real_files_equal_source(tmp_path):
    with zipfile.ZipFile(HELP_DIR / INDEX_FILE) as zf:
        index = pickle.loads(zf.read("archive/data.pkl"))  # trusted reference data
    keys = ["help-titan-rtx-1", "pixel2", "help-eyeriss"]
    reports = import_datasets("help", HELP_DIR, data_home=tmp_path, keys=keys)
    assert sorted(r.key for r in reports) == ["help-eyeriss", "help-pixel2", "help-titan-rtx-1"]
    for r in reports:
        with zipfile.ZipFile(r.source) as zf:
            values = pickle.loads(zf.read("archive/data.pkl"))
        df = latbench.load(r.key, data_home=tmp_path)
        _assert_matches_help(df, index, values)
        assert r.counts == {"ok": N_VALID, "invalid": N_ARCHS - N_VALID, "failed": 0, "missing": 0}
        assert df.attrs["metadata"]["imported_from"]["sha256"] == HELP_SHA256[r.source.name]


@needs_help
def test_help_whole_folder_writes_every_catalog_entry(tmp_path):
    written = import_path("help", HELP_DIR, data_home=tmp_path)
    expected = {k for k, d in CATALOG.items() if d.importer == "help"}
    assert len(written) == 27
    assert {p.stem for p in written} == expected


@needs_help
def test_pinned_help_checksums_match_reference_files():
    assert set(HELP_SHA256) == {p.name for p in HELP_DIR.glob("*.pt")}
    for name, digest in HELP_SHA256.items():
        assert hashlib.sha256((HELP_DIR / name).read_bytes()).hexdigest() == digest


# --- fetch ---------------------------------------------------------------------------


@pytest.fixture
def http_dir(tmp_path):
    """A folder served over HTTP on the loopback interface; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    with served(root) as base:
        yield root, base


def test_fetch_eagle_over_http_equals_local_import(tmp_path, http_dir, release_dir):
    root, base = http_dir
    src = release_dir / f"{CPU_FILE}.pickle"
    shutil.copy(src, root / "dl")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    reports = fetch_urls(
        "eagle", {CPU_FILE: base + "dl"}, tmp_path / "a", sha256={CPU_FILE: digest}
    )
    import_path("eagle", release_dir, data_home=tmp_path / "b")
    assert [r.key for r in reports] == [CPU_KEY]
    fetched = latbench.load(CPU_KEY, data_home=tmp_path / "a")
    local = latbench.load(CPU_KEY, data_home=tmp_path / "b")
    pd.testing.assert_frame_equal(fetched, local)


def test_fetch_eagle_from_file_url(tmp_path, release_dir):
    url = (release_dir / f"{CPU_FILE}.pickle").as_uri()
    (report,) = fetch_urls("eagle", [url], tmp_path / "home")
    assert report.key == CPU_KEY and report.counts["ok"] == N_VALID


def test_fetch_checksum_mismatch_writes_nothing(tmp_path, release_dir):
    url = (release_dir / f"{CPU_FILE}.pickle").as_uri()
    with pytest.raises(ChecksumError, match="does not match"):
        fetch_urls("eagle", [url], tmp_path / "home", sha256={f"{CPU_FILE}.pickle": "0" * 64})
    assert not (tmp_path / "home").exists()
    dest = tmp_path / "kept.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        download(url, dest, "0" * 64)
    assert dest.read_bytes() == b"old"


def test_fetch_http_errors_are_clear(tmp_path, http_dir):
    _, base = http_dir
    with pytest.raises(FetchError, match="HTTP 404"):
        download(base + "absent.pickle", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(FetchError, match="larger than 10 bytes"):
        download((Path(__file__)).as_uri(), tmp_path / "y", max_bytes=10)
    with pytest.raises(ValueError, match="not a HELP dataset"):
        fetch_help(tmp_path, keys=["desktop-cpu"], base_url=base)


@needs_help
def test_fetch_help_from_mirror_checks_pinned_sums(tmp_path, http_dir):
    root, base = http_dir
    for name in ("pixel2.pt", INDEX_FILE):
        shutil.copy(HELP_DIR / name, root / name)
    (report,) = fetch_help(tmp_path / "home", keys=["help-pixel2"], base_url=base)
    assert report.key == "help-pixel2" and report.counts["ok"] == N_VALID
    local = read_source("help", HELP_DIR, ["help-pixel2"])[0].frame
    fetched = latbench.load("help-pixel2", data_home=tmp_path / "home")
    assert fetched["latency_ms"].tolist() == local["latency_ms"].tolist()

    tampered = bytearray((root / "pixel2.pt").read_bytes())
    tampered[-100] ^= 1
    (root / "pixel2.pt").write_bytes(bytes(tampered))
    with pytest.raises(ChecksumError, match="pixel2.pt"):
        fetch_help(tmp_path / "home2", keys=["help-pixel2"], base_url=base)
    assert not list((tmp_path / "home2").glob("*.parquet"))  # nothing imported
    assert not (tmp_path / "home2" / "downloads" / "help" / "pixel2.pt").exists()
    # the verified download is kept (pooch's cache): a second fetch needs no server
    (root / "pixel2.pt").unlink()
    (root / INDEX_FILE).unlink()
    (again,) = fetch_help(tmp_path / "home", keys=["help-pixel2"], base_url=base, overwrite=True)
    assert again.counts["ok"] == N_VALID
