"""A finished campaign leaves no ``<key>.parts/`` folder, and still resumes (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from latbench.dataset import read_dataset
from latbench.harness.cli import main
from latbench.raw import read_raw

pytest.importorskip("onnxruntime")


def _measure(tmp_path, capsys, *extra):
    args = ["--device", "cpu-onnxruntime", "--runs", "10", "--group-size", "10", "--warmup",
            "1", "--threads", "1", "--out", str(tmp_path / "out"), "--key", "k", "--cache",
            str(tmp_path / "cache"), "--quiet", *extra]  # fmt: skip
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_finished_run_removes_its_parts_and_reruns_resume(tmp_path, capsys):
    out = tmp_path / "out"
    rc, text, err = _measure(tmp_path, capsys, "--limit", "3")
    assert rc == 0, err
    assert not (out / "k.parts").exists()
    first = read_dataset(out / "k.parquet")
    raw1 = read_raw(out / "k.raw.h5")
    n = (first["status"] == "ok").sum()
    assert n == 3
    # the same command again: nothing is timed, nothing changes, nothing is left behind
    rc, text, err = _measure(tmp_path, capsys, "--limit", "3")
    assert rc == 0, err
    assert " 0 graphs timed now" in text and "reused from earlier parts" in text
    again = read_dataset(out / "k.parquet")
    np.testing.assert_array_equal(again["latency_ms"], first["latency_ms"])
    assert not (out / "k.parts").exists()
    # a larger sample times only the new graphs and keeps the earlier raw timings
    rc, text, err = _measure(tmp_path, capsys, "--limit", "5")
    assert rc == 0, err
    assert " 2 graphs timed now, 3 reused" in text
    raw2 = read_raw(out / "k.raw.h5")
    old = dict(zip(raw1["graph_key"], raw1["timings_ns"], strict=True))
    new = dict(zip(raw2["graph_key"], raw2["timings_ns"], strict=True))
    assert len(new) == 5 and all(np.array_equal(old[k], new[k]) for k in old)
    # other settings never mix with the stored figures: one line, exit 2
    rc, text, err = _measure(tmp_path, capsys, "--limit", "5", "--runs", "20")
    assert rc == 2 and err.count("\n") == 1
    assert "measured with different settings" in err and "--fresh" in err
