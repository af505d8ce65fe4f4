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
