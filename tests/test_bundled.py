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


def test_raw_timings_refilter_to_the_published_figures(df):
    pytest.importorskip("h5py")
    from latbench.harness.raw import refilter

    re = refilter(bundled_dir() / f"{KEY}.raw.h5").set_index("graph_key")
    ok = df[df["status"] == "ok"].drop_duplicates("graph_key").set_index("graph_key")
    assert len(re) == len(ok)
    np.testing.assert_allclose(re.loc[ok.index, "latency_ms"], ok["latency_ms"], rtol=1e-12)
    np.testing.assert_array_equal(re.loc[ok.index, "timed_arch_id"], ok["timed_arch_id"])
