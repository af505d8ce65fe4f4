"""The report leaves out datasets too small to correlate, and says so (issue 24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latbench.analysis import cli as analysis_cli
from latbench.analysis import pipeline
from latbench.analysis.data import NoDatasetsError
from latbench.dataset import skeleton_frame, write_dataset

BUNDLED = "xeon2c-onnxruntime-fp32"


def _measured(home, key: str, n: int) -> None:
    df = skeleton_frame()
    ids = df.index[df["valid"]][:n]
    df.loc[ids, "status"] = "ok"
    df.loc[ids, "latency_ms"] = np.linspace(1.0, 2.0, n)
    df.loc[ids, "runs"] = 10
    write_dataset(df, home / f"{key}.parquet", {"device": {"key": key}})


def test_tiny_dataset_is_left_out_and_named(tmp_path):
    home = tmp_path / "home"
    _measured(home, "tiny-cpu-fp32", 5)
    said: list[str] = []
    pipeline.run("correlation", devices=[BUNDLED, "tiny-cpu-fp32"], data_home=home,
                 out=tmp_path / "out", log=said.append)  # fmt: skip
    assert any("left out tiny-cpu-fp32: 5 measured architecture(s), fewer than 100" in m
               for m in said), said  # fmt: skip
    pairs = pd.read_csv(tmp_path / "out" / "correlation_pairs.csv")
    assert "tiny-cpu-fp32" not in set(pairs.astype(str).to_numpy().ravel())
    # at the threshold it is kept
    _measured(home, "tiny-cpu-fp32", 100)
    said.clear()
    pipeline.run("correlation", devices=[BUNDLED, "tiny-cpu-fp32"], data_home=home,
                 out=tmp_path / "out2", log=said.append)  # fmt: skip
    assert not any("left out" in m for m in said)


def test_nothing_left_is_one_clear_error(tmp_path, capsys):
    home = tmp_path / "home"
    _measured(home, "tiny-cpu-fp32", 5)
    with pytest.raises(NoDatasetsError, match="no dataset has 100 measured architectures"):
        pipeline.run("correlation", devices=["tiny-cpu-fp32"], data_home=home, out=tmp_path)
    rc = analysis_cli.main(["correlation", "--devices", "tiny-cpu-fp32", "--data-home",
                            str(home), "--out", str(tmp_path / "o"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--min-archs" in err


def test_min_archs_default_is_shown_and_passed_on():
    assert analysis_cli.MIN_ARCHS == pipeline.MIN_ARCHS
    assert "--min-archs" not in pipeline.command_line("all")
    assert "--min-archs 5" in pipeline.command_line("all", min_archs=5)


def test_all_leaves_out_a_fewshot_estimate_a_small_dataset_cannot_give(tmp_path):
    from latbench import load
    from latbench.analysis.data import load_datasets
    from latbench.analysis.nas import NasError, NasOptions, check_options
    from latbench.analysis.nas_sources import latency_sources

    home = tmp_path / "home"
    df = skeleton_frame()
    ids = df[df["valid"]].drop_duplicates("graph_key").index[:10]  # ten distinct graphs
    df.loc[ids, ["status", "latency_ms", "runs"]] = ["ok", 1.5, 10]
    df["latency_ms"] = df["latency_ms"].where(df["status"] != "ok", np.linspace(1, 2, len(df)))
    write_dataset(df, home / "tiny-cpu-fp32.parquet", {"device": {"key": "tiny-cpu-fp32"}})
    data = load_datasets(["tiny-cpu-fp32"], data_home=home)
    with pytest.raises(NasError, match="lower --fewshot-n"):  # `nas`: N was asked for
        check_options(data, NasOptions(predictors=("fewshot",)))
    check_options(data, NasOptions(predictors=("fewshot",), fewshot_strict=False))  # `all`
    frame = load("tiny-cpu-fp32", data_home=home)
    out, skipped, notes = latency_sources(frame, ["fewshot-20", "fewshot-10"], key="tiny-cpu-fp32")
    assert skipped == {"fewshot-20": "10 distinct measured graphs, fewer than N = 20"}
    assert "every graph this dataset measured (in-sample)" in notes["fewshot-10"]
    assert np.isfinite(out["fewshot-10"]).sum() > 10


def test_a_damaged_default_dataset_is_left_out_with_a_warning(tmp_path):
    from latbench.dataset import DatasetError

    home = tmp_path / "home"
    _measured(home, "mybox-cpu-fp32", 200)
    path = home / "mybox-cpu-fp32.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit in the rows
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="left out mybox-cpu-fp32: .*latbench check"):
        pipeline.run("correlation", data_home=home, out=tmp_path / "out")
    pairs = pd.read_csv(tmp_path / "out" / "correlation_pairs.csv")
    assert "mybox-cpu-fp32" not in set(pairs.astype(str).to_numpy().ravel())
    with pytest.raises(DatasetError):  # named: its error is the run's
        pipeline.run("correlation", devices=["mybox-cpu-fp32", BUNDLED], data_home=home,
                     out=tmp_path / "out2")  # fmt: skip
