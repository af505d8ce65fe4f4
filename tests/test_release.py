"""The published LatBench release as users hold it: registry, spellings, keys, Table S4."""

from __future__ import annotations

import functools
import hashlib
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import refdata

import latbench
from latbench.catalog import CATALOG, PAPER_COLUMNS, UnknownDatasetError, resolve, suggest
from latbench.importers import ImportFormatError, import_datasets, read_source
from latbench.importers.eagle import SkippedFileWarning
from latbench.importers.registry import (
    JETSON_LABEL_HISTORY,
    REGISTRY,
    by_name,
    by_sha256,
    compact_name,
    identify,
)
from latbench.space import all_archs

RELEASE_DIR = refdata.ref_dir("latbench-release")
needs_release = refdata.needs("latbench-release")

# The README's (typo'd) spelling of the 13 listed files, as docs/design.md §7 gives them.
README_NAMES = {
    "desktop-cpu-core-i7-7820x-fp32": "desktop-cpu-i7-7820x-fp32",
    "desktop-gpu-gtx-1080-ti-fp32": "desktop-gpu-gtx-1080-ti-fp32",
    "embedded-gpu-jetson-nono-fp16": "jetson-nano-fp16",
    "embedded-gpu-jetson-nono-fp32": "jetson-nano-fp32",
    "embeeded-tpu-edgetpu-int8": "edgetpu-int8",
    "mobile-cpu-snapdragon-450-contex-a53-int8": "snapdragon-450-cpu-int8",
    "mobile-cpu-snapdragon-675-kryo-460-int8": "snapdragon-675-cpu-int8",
    "mobile-cpu-snapdragon-855-kryo-485-int8": "snapdragon-855-cpu-int8",
    "mobile-dsp-snapdragon-675-hexagon-685-int8": "snapdragon-675-dsp-int8",
    "mobile-dsp-snapdragon-855-hexagon-690-int8": "snapdragon-855-dsp-int8",
    "mobile-gpu-snapdragon-450-adreno-506-int8": "snapdragon-450-gpu-int8",
    "mobile-gpu-snapdragon-675-adren0-612-int8": "snapdragon-675-gpu-int8",
    "mobile-gpu-snapdragon-855-adren0-640-int8": "snapdragon-855-gpu-int8",
}
# Today's Drive folder: the same 13 with the typos fixed.
DRIVE_NAMES = {f.name: f.key for f in REGISTRY.values() if not f.name.endswith("-large")}


@functools.cache
def _vectors() -> tuple[tuple[int, ...], ...]:
    return tuple(a.vector for a in all_archs() if a.valid)


def _fixture_pickle(path: Path, seed: int, n: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    vecs = _vectors()
    picked = sorted(rng.choice(len(vecs), n, replace=False))
    obj = {vecs[i]: np.float64(x) for i, x in zip(picked, rng.uniform(1e-3, 9e-3, n), strict=True)}
    path.write_bytes(pickle.dumps(obj, protocol=3))
    return path


# --- the registry -----------------------------------------------------------------------


def test_registry_covers_every_published_file_once():
    assert len(REGISTRY) == 15
    assert len({f.sha256 for f in REGISTRY.values()}) == 15
    assert len({f.key for f in REGISTRY.values()}) == 15
    for f in REGISTRY.values():
        assert f.key in CATALOG and CATALOG[f.key].importer == "eagle"
        assert by_sha256(f.sha256.upper()) is f
        for name in f.names():
            assert by_name(name) is f and by_name(name.upper() + ".PKL") is f
            assert resolve(name) == f.key  # every published spelling is also a catalog alias
    assert set(README_NAMES.values()) | set(DRIVE_NAMES.values()) == {
        f.key for f in REGISTRY.values() if not f.key.endswith("-large")
    }


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Embedded_GPU-Jetson Nano-FP32 (1).PKL", "jetson-nano-fp32"),
        ("embedded-tpu-edge-tpu-int8.pickle", "edgetpu-int8"),
        ("EMBEEDED_TPU_EDGETPU_INT8.pkl", "edgetpu-int8"),
        ("mobile-gpu-snapdragon-675-adreno-612-int8-copy.pickle", "snapdragon-675-gpu-int8"),
        ("desktop-gpu-gtx-1080ti-large.pickle", "desktop-gpu-gtx-1080-ti-large"),
    ],
)
def test_name_fallback_reads_every_spelling(name, key):
    assert by_name(name).key == key


def test_compact_name_ignores_case_separators_and_suffix():
    assert compact_name("A_b-C d.PICKLE") == compact_name("abcd.pkl") == "abcd"
    assert by_name("not-a-release-file.pickle") is None


# --- importing either spelling ----------------------------------------------------------


@pytest.mark.parametrize("names", [README_NAMES, DRIVE_NAMES], ids=["readme", "drive"])
def test_either_spelling_imports_all_13_under_catalog_keys(tmp_path, names):
    src = tmp_path / "release"
    src.mkdir()
    for i, name in enumerate(names):
        suffix = ".pkl" if i % 2 else ".pickle"
        _fixture_pickle(src / f"{name}{suffix}", seed=i)
    home = tmp_path / "home"
    reports = import_datasets("eagle", src, data_home=home)
    assert sorted(r.key for r in reports) == sorted(names.values())
    assert sorted(p.stem for p in home.glob("*.parquet")) == sorted(names.values())
    df = latbench.load("jetson_nano", data_home=home)
    assert df.attrs["metadata"]["key"] == "jetson-nano-fp32"
    for alias, key in [("edgetpu", "edgetpu-int8"), ("adreno-612", "snapdragon-675-gpu-int8")]:
        assert latbench.load(alias, data_home=home).attrs["metadata"]["key"] == key
    # name matched, content not the published one: said so in the metadata
    meta = latbench.load("E.TPU", data_home=home).attrs["metadata"]
    release = meta["imported_from"]["release"]
    assert release["identified_by"] == "name" and release["matches_published"] is False
    assert "differs from the published file" in meta["warnings"][0]
    assert "label_history" in df.attrs["metadata"]["imported_from"]["release"]


def test_unrecognised_pickle_in_folder_is_reported_and_skipped(tmp_path):
    src = tmp_path / "release"
    src.mkdir()
    _fixture_pickle(src / "desktop-cpu-core-i7-7820x-fp32.pickle", seed=1)
    _fixture_pickle(src / "embedded-tpu-edge-tpu-int8-but-mine.pickle", seed=2)
    with pytest.warns(SkippedFileWarning, match="edge-tpu-int8-but-mine.pickle is not a file"):
        items = read_source("eagle", src)
    assert [i.key for i in items] == ["desktop-cpu-i7-7820x-fp32"]
    (src / "desktop-cpu-core-i7-7820x-fp32.pickle").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(ImportFormatError, match="none of its 1 pickle"):
            read_source("eagle", src)


def test_same_content_twice_is_imported_once(tmp_path):
    src = tmp_path / "release"
    src.mkdir()
    a = _fixture_pickle(src / "embedded-gpu-jetson-nano-fp32.pickle", seed=3)
    shutil.copy(a, src / "embedded-gpu-jetson-nano-fp32.pkl")
    with pytest.warns(SkippedFileWarning, match="same content"):
        items = read_source("eagle", src)
    assert [i.key for i in items] == ["jetson-nano-fp32"]


def test_key_option_needs_a_single_file(tmp_path):
    src = tmp_path / "release"
    src.mkdir()
    _fixture_pickle(src / "a.pickle", seed=4)
    _fixture_pickle(src / "b.pickle", seed=5)
    with pytest.raises(ImportFormatError, match="--key names the dataset of one file"):
        read_source("eagle", src, key="mine")
    with pytest.raises(ValueError, match="--key is not supported by the help importer"):
        read_source("help", src, key="mine")


def test_cli_import_reports_skipped_and_refuses_unknown(tmp_path, capsys):
    from latbench.cli import main

    src = tmp_path / "release"
    src.mkdir()
    _fixture_pickle(src / "mobile-dsp-snapdragon-855-hexagon-690-int8.pickle", seed=6)
    _fixture_pickle(src / "holiday-photos.pkl", seed=7)
    assert main(["import", "eagle", str(src), "--data-home", str(tmp_path / "h")]) == 0
    out, err = capsys.readouterr()
    assert "wrote snapdragon-855-dsp-int8" in out
    assert "skipped holiday-photos.pkl is not a file of the LatBench release" in err
    assert not (tmp_path / "h" / "holiday-photos.parquet").exists()
    rc = main(["import", "eagle", str(src / "holiday-photos.pkl"), "--data-home", str(tmp_path)])
    assert rc == 2
    assert "pass --key KEY" in capsys.readouterr().err
    rc = main(["import", "eagle", str(src / "holiday-photos.pkl"), "--key", "holiday",
               "--data-home", str(tmp_path / "h")])  # fmt: skip
    assert rc == 0 and (tmp_path / "h" / "holiday.parquet").exists()


# --- keys people type --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("jetson_nano", "jetson-nano-fp32"),
        ("edgetpu", "edgetpu-int8"),
        ("adreno-612", "snapdragon-675-gpu-int8"),
        ("Adreno 612", "snapdragon-675-gpu-int8"),
        ("hexagon-690", "snapdragon-855-dsp-int8"),
        ("kryo-485", "snapdragon-855-cpu-int8"),
        ("cortex-a53", "snapdragon-450-cpu-int8"),
        ("1080ti", "desktop-gpu-gtx-1080-ti-fp32"),
        ("i7-7820x", "desktop-cpu-i7-7820x-fp32"),
        ("snapdragon-855-gpu", "snapdragon-855-gpu-int8"),
        ("D.CPU", "desktop-cpu-i7-7820x-fp32"),
        ("D. GPU", "desktop-gpu-gtx-1080-ti-fp32"),
        ("E.GPU", "jetson-nano-fp32"),
        ("E. TPU", "edgetpu-int8"),
        ("M.GPU", "snapdragon-675-gpu-int8"),
        ("m_dsp", "snapdragon-855-dsp-int8"),
    ],
)
def test_keys_people_type(typed, key):
    assert resolve(typed) == key


def test_paper_columns_name_release_keys():
    assert set(PAPER_COLUMNS) == {"D. CPU", "D. GPU", "E. GPU", "E. TPU", "M. GPU", "M. DSP"}
    assert all(CATALOG[k].importer == "eagle" for k in PAPER_COLUMNS.values())


def test_unknown_key_suggests_entries_sharing_a_token(tmp_path):
    got = suggest("adreno-999")
    assert {"snapdragon-450-gpu-int8", "snapdragon-675-gpu-int8", "snapdragon-855-gpu-int8"} <= set(
        got
    )
    assert not any(k.startswith("help-") for k in got)
    with pytest.raises(UnknownDatasetError, match="did you mean: .*snapdragon-855-dsp-int8"):
        latbench.load("hexagon-999", data_home=tmp_path)


def test_large_files_have_their_own_honest_entries():
    for key in ("desktop-gpu-gtx-1080-ti-large", "edgetpu-large"):
        entry = CATALOG[key]
        assert "not in the Eagle README" in entry.source and "Undocumented" in entry.source
    assert REGISTRY["embedded-tpu-edgetpu-large"].rows == 14802


# --- the real files ----------------------------------------------------------------------


@needs_release
def test_real_files_are_identified_by_content_under_any_name(tmp_path):
    files = sorted(RELEASE_DIR.glob("*.pickle"))
    assert len(files) == 7
    for f in files:
        ident = identify(f)
        assert ident.how == "sha256" and ident.entry.name == f.stem
    # renamed beyond recognition, the content still says what it is
    odd = tmp_path / "download (3).pkl"
    shutil.copy(RELEASE_DIR / "embedded-gpu-jetson-nano-fp32.pickle", odd)
    (item,) = read_source("eagle", odd)
    assert item.key == "jetson-nano-fp32" and "warnings" not in item.metadata
    release = item.metadata["imported_from"]["release"]
    assert release["identified_by"] == "sha256" and release["matches_published"] is True
    assert release["label_history"] == JETSON_LABEL_HISTORY
    # an older copy's name for the same bytes: still the 14.5 ms set behind E. GPU
    old = tmp_path / "embedded-gpu-jetson-nono-fp16.pickle"
    shutil.copy(RELEASE_DIR / "embedded-gpu-jetson-nano-fp32.pickle", old)
    assert read_source("eagle", old)[0].key == "jetson-nano-fp32"


@pytest.fixture(scope="module")
def release_home(tmp_path_factory):
    """The seven real release files imported once into a data home: (home, reports)."""
    refdata.require("latbench-release")
    home = tmp_path_factory.mktemp("release-home")
    return home, import_datasets("eagle", RELEASE_DIR, data_home=home)


@needs_release
def test_real_release_rows_and_medians_match_the_registry(release_home):
    home, reports = release_home
    assert len(reports) == 7
    for r in reports:
        entry = next(f for f in REGISTRY.values() if f.key == r.key)
        df = latbench.load(r.key, data_home=home)
        ok = df["status"] == "ok"
        assert int(ok.sum()) == entry.rows
        assert int((df["status"] == "missing").sum()) == 15284 - entry.rows
        median = float(df.loc[ok, "latency_ms"].median())
        assert median == pytest.approx(entry.median_ms, abs=0.006 * max(1.0, entry.median_ms))
        src = RELEASE_DIR / f"{entry.name}.pickle"
        assert (
            df.attrs["metadata"]["imported_from"]["sha256"]
            == hashlib.sha256(src.read_bytes()).hexdigest()
        )
    assert latbench.load("jetson_nano", data_home=home)["latency_ms"].median() == pytest.approx(
        14.46, abs=0.01
    )
    assert latbench.load("edgetpu", data_home=home).attrs["metadata"]["key"] == "edgetpu-int8"
    assert latbench.load("adreno-612", data_home=home)["status"].eq("missing").sum() == 23


@pytest.mark.slow
@needs_release
def test_table_s4_spearman_reproduces_the_paper_off_mobile(release_home):
    from latbench.analysis.correlation import correlation_pairs
    from latbench.analysis.data import load_datasets
    from latbench.analysis.report import _paper_s4, paper_s4_comparison

    home, _ = release_home
    keys = list(PAPER_COLUMNS.values())
    data = load_datasets(keys, data_home=home)
    pairs = correlation_pairs(data.latency())
    table = paper_s4_comparison(data.keys, pairs)
    assert len(table) == 15
    fixed = table[~table["mobile"]]
    assert len(fixed) == 6 and fixed["difference"].abs().max() <= 0.003
    # Pearson is not the paper's statistic: it misses by far more
    assert fixed["Pearson - paper"].abs().max() > 0.01
    mobile = table[table["mobile"]]
    assert mobile["difference"].abs().max() > 0.05  # the released mobile files differ
    text, _ = _paper_s4(data.keys, pairs)
    assert "do not reproduce the paper's mobile columns" in text
    assert "M. GPU / M. DSP | snapdragon-675-gpu-int8 | snapdragon-855-dsp-int8 | 15,261" in text


def test_s2_beside_paper_sets_our_repeats_beside_the_paper():
    import pandas as pd

    from latbench.analysis.paper import s2_beside_paper

    res = pd.DataFrame({
        "dataset": ["edgetpu-int8"] * 2 + ["desktop-cpu-i7-7820x-fp32"] * 2 + ["mine"] * 2,
        "predictor": ["gcn"] * 6, "n_train": [900] * 6,
        "within_1pct": [0.1, 0.2] * 3, "within_5pct": [0.5, 0.7] * 3,
        "within_10pct": [0.9, 0.95] * 3,
    })  # fmt: skip
    t = s2_beside_paper(res)
    assert t["device"].tolist() == ["D. CPU"] * 3 + ["E. TPU"] * 3  # paper order, ours only
    row = t[(t["device"] == "E. TPU") & (t["bound"] == "±10%")].iloc[0]
    assert row["ours mean"] == pytest.approx(92.5) and row["paper mean"] == 87.4
    assert row["ours - paper"] == pytest.approx(5.1) and row["repeats"] == 2
    assert s2_beside_paper(res.assign(n_train=100)).empty  # other training-set size


def test_paper_main_prints_table_s2_from_evaluate_csvs(tmp_path, capsys):
    import pandas as pd

    from latbench.analysis.paper import main

    csv = tmp_path / "D.CPU.csv"
    pd.DataFrame({
        "dataset": ["D.CPU"] * 2, "predictor": ["gcn"] * 2,  # as evaluate records it
        "n_train": [900] * 2, "within_1pct": [0.3, 0.34], "within_5pct": [0.8, 0.84],
        "within_10pct": [0.96, 0.97],
    }).to_csv(csv, index=False)  # fmt: skip
    assert main([str(csv)]) == 0
    out = capsys.readouterr().out
    assert (
        "| D. CPU | desktop-cpu-i7-7820x-fp32 | GCN (900 pts.) | ±10% | 2 | 96.5 ± 0.7 | 96.4 ± 0.7 | +0.1 |"
        in out
    )
    assert main([]) == 2
