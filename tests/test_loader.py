"""Finding and loading datasets: catalog keys, aliases, data home, devices(), load_wide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import platformdirs
import pytest

import latbench
from latbench import loader
from latbench.catalog import CATALOG, UnknownDatasetError, normalize_key, resolve
from latbench.dataset import skeleton_frame, write_dataset
from latbench.loader import DatasetNotFoundError, data_home, dataset_path, devices, load, load_wide


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return skeleton_frame()


def make_frame(base: pd.DataFrame, scale: float, failed: int | None = None) -> pd.DataFrame:
    """Every valid arch ok with latency = scale * (1 + arch_id / 1000); one failed."""
    df = base.copy()
    ok = df["valid"].to_numpy()
    df.loc[ok, "status"] = "ok"
    df.loc[ok, "latency_ms"] = scale * (1 + df.loc[ok, "arch_id"].to_numpy() / 1000)
    df.loc[ok, "runs"] = 10
    if failed is not None:
        df.loc[failed, ["status", "error", "latency_ms"]] = ["failed", "timeout", np.nan]
    return df


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("LATBENCH_HOME", str(h))
    empty_bundle = tmp_path / "bundled"
    empty_bundle.mkdir()
    monkeypatch.setattr(loader, "bundled_dir", lambda: empty_bundle)  # isolate from data/
    return h


def test_catalog_basics():
    assert len([d for d in CATALOG.values() if d.importer == "eagle"]) == 15
    assert resolve("jetson_nano") == "jetson-nano-fp32"
    assert resolve("embedded-gpu-jetson-nono-fp16.pickle") == "jetson-nano-fp16"
    assert resolve("desktop-gpu-gtx-1080ti-fp32") == "desktop-gpu-gtx-1080-ti-fp32"
    assert resolve("no-such-device") is None
    assert normalize_key("  Jetson_Nano.parquet ") == "jetson-nano"
    # aliases never collide with another dataset's key
    for d in CATALOG.values():
        for a in d.aliases:
            assert resolve(a) == d.key


def _assert_loaded(got: pd.DataFrame, df: pd.DataFrame) -> None:
    """``got`` is ``df`` as written, with the official NAS-Bench-201 index filled on load."""
    from latbench.space import nb201_indices

    assert np.array_equal(got["nb201_index"].to_numpy("int64"), nb201_indices()[got["arch_id"]])
    cols = [c for c in df.columns if c != "nb201_index"]
    pd.testing.assert_frame_equal(got[cols], df[cols])


def test_load_by_key_and_alias(home, base):
    df = make_frame(base, 2.0)
    write_dataset(df, home / "jetson-nano-fp32.parquet", {"device": {"name": "Jetson"}})
    for key in (
        "jetson-nano-fp32",
        "jetson_nano",
        "JETSON_NANO",
        "e-gpu",
        "embedded-gpu-jetson-nano-fp32",  # the release's own file name
        "jetson-nano-fp32.parquet",
    ):
        got = load(key)
        _assert_loaded(got, df)
        assert got.attrs["path"] == str(home / "jetson-nano-fp32.parquet")
        assert got.attrs["metadata"]["device"] == {"name": "Jetson"}
    assert latbench.load is load


def test_file_named_by_an_alias(home, base):
    df = make_frame(base, 3.0)
    write_dataset(df, home / "jetson_nano.parquet")
    _assert_loaded(load("jetson-nano-fp32"), df)
    _assert_loaded(load("jetson_nano"), df)
    row = devices().set_index("key").loc["jetson-nano-fp32"]
    assert bool(row["available"]) and row["path"] == str(home / "jetson_nano.parquet")


def test_measured_dataset(home, base):
    df = make_frame(base, 1.0)
    meta = {
        "device": {"name": "My box", "class": "desktop-cpu", "hardware": "Some CPU"},
        "runtime": {"name": "onnxruntime", "version": "1.17"},
        "precision": "fp32",
        "source": "measured here",
    }
    write_dataset(df, home / "mybox-onnxruntime-fp32.parquet", meta)
    _assert_loaded(load("mybox-onnxruntime-fp32"), df)
    _assert_loaded(load("MYBOX_onnxruntime_fp32"), df)  # normalized
    row = devices().set_index("key").loc["mybox-onnxruntime-fp32"]
    assert row["name"] == "My box" and row["class"] == "desktop-cpu"
    assert row["runtime"] == "onnxruntime 1.17" and row["precision"] == "fp32"
    assert bool(row["available"])


def test_unknown_key_lists_close_matches(home):
    with pytest.raises(UnknownDatasetError) as info:
        load("jetson_nanp")
    msg = str(info.value)
    assert "unknown dataset key 'jetson_nanp'" in msg
    assert "jetson-nano" in msg and "latbench devices" in msg
    assert "jetson-nano" in info.value.close_matches
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownDatasetError) as info:
        load("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_unknown_key_suggests_measured_datasets(home, base):
    write_dataset(make_frame(base, 1.0), home / "mybox-tflite-int8.parquet")
    with pytest.raises(UnknownDatasetError) as info:
        load("mybox-tflite-int9")
    assert "mybox-tflite-int8" in info.value.close_matches


def test_known_but_absent_names_the_import_command(home):
    with pytest.raises(DatasetNotFoundError) as info:
        load("edgetpu")
    msg = str(info.value)
    assert "'edgetpu-int8'" in msg and "not available locally" in msg
    assert "latbench import eagle" in msg
    assert str(home) in msg  # where it looked
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match="latbench import help"):
        load("help-pixel3")


def test_devices_lists_catalog_and_availability(home, base):
    write_dataset(make_frame(base, 1.0), home / "desktop-cpu-i7-7820x-fp32.parquet")
    (home / "desktop-cpu-i7-7820x-fp32.layers.parquet").write_bytes(b"ignored")
    (home / ".hidden.parquet").write_bytes(b"ignored")
    d = devices()
    assert list(d.columns) == [
        "key", "name", "class", "hardware", "runtime", "precision", "source", "aliases",
        "available", "bundled", "path",
    ]  # fmt: skip
    assert set(CATALOG) <= set(d["key"])
    assert len(d) == len(CATALOG)  # layers and hidden files are not datasets
    avail = d.loc[d["available"], "key"].tolist()
    assert avail == ["desktop-cpu-i7-7820x-fp32"]
    assert d.loc[~d["available"], "path"].isna().all()
    row = d.set_index("key").loc["jetson-nano-fp32"]
    assert "jetson-nano" in row["aliases"] and row["class"] == "embedded-gpu"
    assert latbench.devices is devices


def test_load_wide(home, base):
    a = make_frame(base, 1.0, failed=int(np.flatnonzero(base["valid"])[0]))
    b = make_frame(base, 2.0)
    write_dataset(a, home / "dev-a.parquet")
    write_dataset(b, home / "dev-b.parquet")
    wide = load_wide()
    assert list(wide.columns) == ["dev-a", "dev-b"]
    assert wide.index.name == "arch_id"
    assert wide.index.tolist() == list(range(15_625))
    assert wide.dtypes.tolist() == [np.float64, np.float64]
    invalid = ~base["valid"].to_numpy()
    assert wide.loc[invalid].isna().all().all()
    failed = int(np.flatnonzero(base["valid"])[0])
    assert np.isnan(wide.loc[failed, "dev-a"]) and wide.loc[failed, "dev-b"] > 0
    ok = base["valid"].to_numpy()
    both = ok.copy()
    both[failed] = False
    np.testing.assert_allclose(wide.loc[both, "dev-b"], 2 * wide.loc[both, "dev-a"])
    np.testing.assert_allclose(wide.loc[ok, "dev-b"], 2 * (1 + np.flatnonzero(ok) / 1000))
    assert wide.notna().sum().tolist() == [ok.sum() - 1, ok.sum()]
    # explicit keys (aliases welcome) and another value column
    w2 = load_wide(["dev-b"], value="flops")
    assert list(w2.columns) == ["dev-b"]
    np.testing.assert_array_equal(w2.loc[ok, "dev-b"], base.loc[ok, "flops"].astype(float))
    assert w2.loc[invalid, "dev-b"].isna().all()


def test_load_returns_a_copy(home, base):
    write_dataset(make_frame(base, 1.0), home / "dev-c.parquet", {"device": {"name": "C"}})
    first = load("dev-c")
    original = first.loc[100, "latency_ms"]
    first.loc[100, "latency_ms"] = -5.0
    first["status"] = "failed"
    first.attrs["metadata"]["device"]["name"] = "changed"
    first.attrs["metadata"]["new"] = 1
    again = load("dev-c")
    assert again.loc[100, "latency_ms"] == original
    assert (again["status"] != "failed").all()
    assert again.attrs["metadata"]["device"] == {"name": "C"}
    assert "new" not in again.attrs["metadata"]


def test_load_sees_a_rewritten_file(home, base):
    path = home / "dev-d.parquet"
    write_dataset(make_frame(base, 1.0), path, {"source": "v1"})
    assert load("dev-d").attrs["metadata"]["source"] == "v1"
    write_dataset(make_frame(base, 4.0), path, {"source": "version two"})
    again = load("dev-d")
    assert again.attrs["metadata"]["source"] == "version two"
    ok = base["valid"].to_numpy()
    assert again.loc[ok, "latency_ms"].min() >= 4.0


def test_data_home_precedence(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    monkeypatch.setenv("LATBENCH_HOME", str(env))
    assert data_home(arg) == arg  # argument first
    assert data_home(str(arg)) == arg
    assert data_home() == env  # then $LATBENCH_HOME
    monkeypatch.setenv("LATBENCH_HOME", "")  # empty counts as unset
    assert data_home() == Path(platformdirs.user_data_dir("latbench", appauthor=False))
    monkeypatch.delenv("LATBENCH_HOME")
    assert data_home() == Path(platformdirs.user_data_dir("latbench", appauthor=False))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_home("~/x") == tmp_path / "x"


def test_load_data_home_argument_beats_env(home, tmp_path, base):
    other = tmp_path / "other"
    write_dataset(make_frame(base, 1.0), home / "dev-e.parquet", {"source": "env"})
    write_dataset(make_frame(base, 1.0), other / "dev-e.parquet", {"source": "arg"})
    assert load("dev-e").attrs["metadata"]["source"] == "env"
    assert load("dev-e", data_home=other).attrs["metadata"]["source"] == "arg"
    assert dataset_path("dev-e", data_home=other) == other / "dev-e.parquet"


def test_bundled_dataset_wins_over_home(home, tmp_path, base):
    bundled = loader.bundled_dir()
    write_dataset(
        make_frame(base, 1.0), bundled / "jetson-nano-fp32.parquet", {"source": "bundled"}
    )
    write_dataset(make_frame(base, 1.0), home / "jetson-nano-fp32.parquet", {"source": "home"})
    assert load("jetson_nano").attrs["metadata"]["source"] == "bundled"
    assert devices().set_index("key").loc["jetson-nano-fp32", "path"] == str(
        bundled / "jetson-nano-fp32.parquet"
    )


def test_real_bundled_dir_is_the_package_data():
    d = Path(str(loader.bundled_dir()))
    assert d.name == "data" and (d / "__init__.py").exists()


def test_import_latbench_loads_no_heavy_dependency():
    import subprocess
    import sys

    code = (
        # latbench.analysis is the plotting extra and may load matplotlib; these may not
        "import sys, latbench, latbench.harness, latbench.predictors, latbench.cli;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'onnx', 'onnxruntime', 'matplotlib', 'h5py', 'ai_edge_litert'});"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
