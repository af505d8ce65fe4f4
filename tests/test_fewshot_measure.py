"""``latbench-measure --adapt``: measure the designed architectures, predict all 15,625."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr

import latbench

ARGS = ["--runs", "10", "--group-size", "10", "--warmup", "2", "--quiet"]


def _measure(tmp_path, *args):
    env = {**os.environ, "LATBENCH_HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "latbench.harness.cli", "--device", "cpu-onnxruntime",
         "--cache", str(tmp_path / "cache"), *ARGS, *args],
        capture_output=True, text=True, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_adapt_end_to_end_matches_bundled_measurements(tmp_path):
    res = _measure(tmp_path, "--adapt", "10", "--key", "k13")
    assert res.returncode == 0, res.stderr
    assert "load_predicted('k13')" in res.stdout
    home = tmp_path / "home"
    measured = latbench.load("k13", data_home=home)
    assert (measured.status == "ok").sum() == 10  # only the N measured rows
    pred = latbench.load_predicted("k13", data_home=home)
    meta = pred.attrs["metadata"]
    assert sorted(meta["measured_arch_ids"]) == sorted(measured.arch_id.tolist())
    assert meta["adapter_version"] and meta["prior_sources"] and meta["measured_dataset"]
    assert meta["prior_view"] == "pruned"  # the shipped prior sees HELP as pruned networks
    assert int(pred["measured"].sum()) == 10 and len(pred) == 15625
    invalid = ~pred["valid"]
    assert invalid.sum() == 341 and pred.loc[invalid, "latency_pred_ms"].isna().all()
    assert pred.loc[~invalid, "latency_pred_ms"].notna().all()
    assert meta["selection"]["criterion"] == "d" and meta["nearest_source"] in meta["prior_sources"]
    # against the bundled ONNX Runtime measurements of this host class, on a subset
    bundled = latbench.load("xeon2c-onnxruntime-fp32")
    ok = bundled[bundled.status == "ok"].sample(2000, random_state=0)
    got = pred.set_index("arch_id").loc[ok.arch_id, "latency_pred_ms"].to_numpy()
    assert spearmanr(got, ok.latency_ms)[0] >= 0.9
    # rerunning resumes: nothing is timed again, the same prediction is written
    again = _measure(tmp_path, "--adapt", "10", "--key", "k13")
    assert again.returncode == 0, again.stderr
    assert "0 graphs timed now" in again.stdout
    np.testing.assert_allclose(
        latbench.load_predicted("k13", data_home=home)["latency_pred_ms"], pred["latency_pred_ms"]
    )


def test_adapt_refuses_bad_arguments_in_one_line(tmp_path, capsys, monkeypatch):
    from latbench.harness.cli import main

    monkeypatch.setenv("LATBENCH_HOME", str(tmp_path / "home"))
    for args in (["--adapt", "2"], ["--adapt", "10", "--prior", str(tmp_path / "nope.npz")],
                 ["--prior", str(tmp_path / "nope.npz")],
                 ["--adapt", "10", "--shard", "1/2"]):  # fmt: skip
        assert main([*args, "--key", "bad", "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "home" / "bad.parquet").exists()


def test_adapt_plan_names_the_criterion_it_used():
    from latbench.harness.adapt import plan_adapt
    from latbench.predictors.fewshot import select_archs

    plan = plan_adapt(5, seed=3)
    sel = plan.describe()
    assert sel["criterion"] == "d" and "D-optimal" in sel["method"]
    np.testing.assert_array_equal(plan.arch_ids, select_archs(plan.prior, 5, seed=3, criterion="d"))


@pytest.mark.slow
def test_adapt_end_to_end_with_an_encoder_prior(tmp_path):
    from latbench.predictors.fewshot import load_prior, pretrain, source_matrix

    keys = ["xeon2c-onnxruntime-fp32", "xeon2c-tf-fp32", "xeon2c-tflite-fp32"]
    # small but trained: under a loaded CI machine the ten measurements are noisy and
    # leave-one-out may pick the encoder, which then has to be a real one (~6 s)
    small = {"hidden": 8, "dim": 4, "layers": 2, "epochs": 30, "batch": 512}
    path = pretrain(source_matrix(keys), rank=2, encoder=small).save(tmp_path / "enc.npz")
    assert load_prior(path).sets  # the file carries the encoder's feature sets
    res = _measure(tmp_path, "--adapt", "10", "--key", "kenc", "--prior", str(path))
    assert res.returncode == 0, res.stderr
    pred = latbench.load_predicted("kenc", data_home=tmp_path / "home")
    meta = pred.attrs["metadata"]
    assert "encoder" in meta["loo_mse_log"]  # the encoder model was weighed by leave-one-out
    invalid = ~pred["valid"]
    assert invalid.sum() == 341 and pred.loc[invalid, "latency_pred_ms"].isna().all()
    bundled = latbench.load("xeon2c-onnxruntime-fp32")
    ok = bundled[bundled.status == "ok"].sample(2000, random_state=0)
    got = pred.set_index("arch_id").loc[ok.arch_id, "latency_pred_ms"].to_numpy()
    assert spearmanr(got, ok.latency_ms)[0] >= 0.9
