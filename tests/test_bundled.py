"""The datasets shipped in data/ load offline and are internally consistent."""

from __future__ import annotations

import numpy as np
import pytest

import latbench
from latbench.dataset import arch_table
from latbench.loader import bundled_dir

KEY = "xeon2c-onnxruntime-fp32"


@pytest.fixture(scope="module")
def df():
    return latbench.load(KEY)


def test_bundled_dataset_is_found_without_a_data_home(df):
    assert df.attrs["path"].startswith(str(bundled_dir()))
    row = latbench.devices().set_index("key").loc[KEY]
    assert bool(row["available"]) and row["class"] == "desktop-cpu"


def test_bundled_dataset_covers_the_space(df):
    table = arch_table()
    assert len(df) == 15_625
    np.testing.assert_array_equal(df["arch_id"].to_numpy(), table["arch_id"].to_numpy())
    assert (df["status"] == np.where(table["valid"], "ok", "invalid")).all()
    np.testing.assert_array_equal(df["flops"].to_numpy(), table["flops"].to_numpy())
    np.testing.assert_array_equal(df["params"].to_numpy(), table["params"].to_numpy())
    ok = df[df["status"] == "ok"]
    assert (ok["latency_ms"] > 0).all() and (ok["runs"] == 100).all()


def test_one_figure_per_pruned_graph(df):
    ok = df[df["status"] == "ok"]
    groups = ok.groupby("graph_key")
    assert groups.ngroups == 8_686
    assert (groups["latency_ms"].nunique() == 1).all()
    assert (groups["timed_arch_id"].first() == groups["arch_id"].min()).all()


SAMPLES = ("xeon2c-tflite-fp32", "xeon2c-tf-fp32")


@pytest.mark.parametrize("key", (KEY, *SAMPLES))
def test_raw_timings_refilter_to_the_published_figures(key):
    pytest.importorskip("h5py")
    from latbench.raw import read_raw, refilter

    df = latbench.load(key)
    raw = bundled_dir() / f"{key}.raw.h5"
    re = refilter(raw).set_index("graph_key")
    ok = df[df["status"] == "ok"].drop_duplicates("graph_key").set_index("graph_key")
    assert len(re) == len(ok)
    np.testing.assert_allclose(re.loc[ok.index, "latency_ms"], ok["latency_ms"], rtol=1e-12)
    np.testing.assert_array_equal(re.loc[ok.index, "timed_arch_id"], ok["timed_arch_id"])
    assert read_raw(raw)["timings_ns"].shape == (len(ok), 100)


@pytest.mark.parametrize("key", (KEY, *SAMPLES))
def test_bundled_campaigns_interleave_passes_against_drift(key):
    # docs/datasets.md: the VM drifts ~15 % over tens of minutes; every bundled figure
    # joins runs from serpentine passes spread over its whole campaign.
    protocol = latbench.load(key).attrs["metadata"]["protocol"]
    assert protocol["passes"] >= 2 and protocol["pass_order"] == "serpentine"
    assert protocol["runs"] % (protocol["passes"] * protocol["group_size"]) == 0


def test_litert_dataset_covers_the_full_space():
    df = latbench.load("xeon2c-tflite-fp32")  # re-measured over all architectures (issue 15)
    assert len(df) == 15_625 and (df["status"] == "ok").sum() == 15_284
    ok = df[df["status"] == "ok"]
    assert ok.groupby("graph_key").ngroups == 8_686 and (ok["latency_ms"] > 0).all()
    assert df.attrs["metadata"]["protocol"]["passes"] == 5


@pytest.mark.parametrize("key", (KEY, *SAMPLES))
def test_bundled_keys_name_the_host_that_measured_them(key):
    # "xeon2c-*": a 2-vCPU Xeon, one runtime thread; a campaign on another host gets its own key
    meta = latbench.load(key).attrs["metadata"]
    assert "Xeon" in meta["host"]["cpu_model"] and meta["host"]["cores_logical"] == 2
    assert meta["runtime"]["threads"] == 1 and meta["device"]["key"] == key


@pytest.mark.parametrize("key", ("xeon2c-tf-fp32",))
def test_sample_datasets_share_one_seeded_sample(key):
    from latbench.harness.plan import select_archs

    df = latbench.load(key)
    expected = [a.id for a in select_archs(limit=1500, seed=0)]
    assert df["arch_id"].tolist() == expected
    assert (df["status"] == "ok").all() and (df["latency_ms"] > 0).all()
    groups = df.groupby("graph_key")
    assert (groups["latency_ms"].nunique() == 1).all()
    assert df.attrs["metadata"]["protocol"]["runs"] == 100


@pytest.mark.parametrize("key", (KEY, *SAMPLES))
def test_every_bundled_dataset_has_a_complete_layers_table(key):
    import pandas as pd

    from latbench.network import distinct_layers

    layers = pd.read_parquet(bundled_dir() / f"{key}.layers.parquet")
    assert sorted(layers["signature"]) == sorted(x.signature for x in distinct_layers())
    assert (layers["status"] == "ok").all() and (layers["latency_ms"] > 0).all()


def test_bundled_keys_are_in_the_catalog():
    from latbench.catalog import CATALOG
    from latbench.manifest import bundled_datasets

    assert {KEY, *SAMPLES} <= set(bundled_datasets())
    assert CATALOG[KEY].bundled
    row = latbench.devices().set_index("key").loc[KEY]
    assert bool(row["bundled"]) and row["runtime"].startswith("onnxruntime")


def test_manifest_matches_the_shipped_files():
    from latbench.manifest import read_manifest, sha256_file

    files = read_manifest()["files"]
    assert f"{KEY}.parquet" in files
    for name, entry in files.items():
        path = bundled_dir() / name
        assert path.stat().st_size == entry["bytes"]
        assert sha256_file(path) == entry["sha256"]


def test_corrupted_bundled_file_is_reported_not_loaded(tmp_path):
    import shutil

    from latbench.manifest import ChecksumError, write_manifest

    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copy(bundled_dir() / f"{KEY}.parquet", folder / "mini.parquet")
    write_manifest(folder)
    assert len(latbench.load("mini", data_home=folder)) == 15_625  # intact: loads
    raw = bytearray((folder / "mini.parquet").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte, same size
    (folder / "mini.parquet").write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="SHA-256"):
        latbench.load("mini", data_home=folder)
    (folder / "mini.parquet").write_bytes(bytes(raw[:1000]))
    with pytest.raises(ChecksumError, match="truncated"):
        latbench.load("mini", data_home=folder)
