"""Few-shot adaptation: prior file, selection, adapter, siblings, predicted files, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import refdata
from hostile import with_header
from scipy.stats import spearmanr

import latbench
from latbench.predicted import read_predicted, write_predicted
from latbench.predictors import PredictorError
from latbench.predictors.encoding import cost_arrays, valid_mask
from latbench.predictors.fewshot import (
    FewShotAdapter,
    default_prior_path,
    hardware_ids,
    load_prior,
    pretrain,
    select_archs,
    siblings,
    source_matrix,
    sources_for,
)
from latbench.predictors.fewshot.evaluate import evaluate_adapt, group_table
from latbench.predictors.fewshot.selection import graph_index
from latbench.space import N_ARCHS

SHARED = refdata.data_root()


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """12 devices from 3 hidden architecture factors plus a FLOPs term, 2 % noise."""
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(N_ARCHS, 3))
    lf = np.log(cost_arrays()[0])
    lf = (lf - lf.mean()) / lf.std()
    cols = {}
    for d in range(12):
        z = rng.normal(0, 1) + 0.4 * lf * rng.uniform(0.5, 1.5) + hidden @ rng.normal(0, 0.3, 3)
        z = z + rng.normal(0, 0.02, N_ARCHS)
        col = np.exp(z)
        col[~valid_mask()] = np.nan
        cols[f"dev{d}"] = col
    df = pd.DataFrame(cols)
    df.iloc[rng.choice(N_ARCHS, 3000, replace=False), 1] = np.nan  # a source with holes
    df.attrs["metadata"] = {}
    return df


@pytest.fixture(scope="module")
def prior(synthetic):
    return pretrain(synthetic.iloc[:, 1:], rank=4)


def test_adapter_recovers_a_held_out_device_from_ten(synthetic, prior):
    y = synthetic["dev0"].to_numpy()
    ids = select_archs(prior, 10, seed=0)
    fit = FewShotAdapter(prior).fit(ids, y[ids])
    ok = np.isfinite(y)
    pred = fit.predict()
    assert spearmanr(pred[ok], y[ok])[0] > 0.97
    assert np.mean(np.abs(pred[ok] / y[ok] - 1) <= 0.1) > 0.8
    frame = fit.predict_frame()
    assert len(frame) == N_ARCHS and frame["measured"].sum() == 10
    # invalid architectures have no latency at all; every valid one a band around it
    assert frame.loc[~frame.valid, "latency_pred_ms"].isna().all()
    assert frame.loc[0, ["latency_pred_ms", "latency_lo_ms", "latency_hi_ms"]].isna().all()
    v = frame[frame.valid]
    assert (v.latency_lo_ms < v.latency_pred_ms).all() and (
        v.latency_pred_ms < v.latency_hi_ms
    ).all()
    inside = (frame.latency_lo_ms[ok] <= y[ok]) & (y[ok] <= frame.latency_hi_ms[ok])
    assert inside.mean() > 0.7  # the 90 % band is not wildly over-confident


def test_local_prior_follows_a_source_the_target_resembles(synthetic, prior):
    # the target is source dev3 on a 1.7x slower clock, with its own 1 % noise
    rng = np.random.default_rng(5)
    y = synthetic["dev3"].to_numpy() * 1.7 * np.exp(rng.normal(0, 0.01, N_ARCHS))
    ok = np.isfinite(y)
    ids = select_archs(prior, 4, seed=0)  # too few to pin down the 4 hidden loadings alone
    err = {}
    for local in (False, True):
        pred = FewShotAdapter(prior, local=local).fit(ids, y[ids]).predict()
        err[local] = float(np.median(np.abs(np.log(pred[ok] / y[ok]))))
    assert err[True] < 0.7 * err[False]
    assert err[True] < 0.017  # the noise floor: dev3's 2 % and the target's 1 %


def test_local_prior_keeps_the_global_one_for_a_new_kind_of_device(synthetic, prior):
    # dev0 is no source: the evidence may pick a local prior, but it must not hurt
    y = synthetic["dev0"].to_numpy()
    ok = np.isfinite(y)
    errs = {False: [], True: []}
    for seed in range(4):
        ids = select_archs(prior, 10, seed=seed)
        for local in (False, True):
            pred = FewShotAdapter(prior, local=local).fit(ids, y[ids]).predict()
            errs[local].append(np.median(np.abs(np.log(pred[ok] / y[ok]))))
    assert np.mean(errs[True]) <= 1.1 * np.mean(errs[False])


def _additive_device(prior, seed: int, noise: float = 0.01) -> np.ndarray:
    """Latency as a sum of positive per-op costs (a simulated accelerator), 1 % noise."""
    rng = np.random.default_rng(seed)
    f = prior.additive_design
    y = f @ np.concatenate([[2.0], rng.uniform(0.05, 1.0, f.shape[1] - 1)])
    y = y * np.exp(rng.normal(0, noise, N_ARCHS))
    y[~prior.valid] = np.nan
    return y


def test_additive_model_is_chosen_for_an_additive_device(prior):
    # the sources are log-linear: only the leave-one-out comparison can find the sum
    y = _additive_device(prior, 0)
    ok = np.isfinite(y)
    ids = select_archs(prior, 20, seed=0)
    auto = FewShotAdapter(prior).fit(ids, y[ids])
    logl = FewShotAdapter(prior, model="log-linear").fit(ids, y[ids])
    assert auto.model == "additive" and auto.loo["additive"] < auto.loo["log-linear"]
    share = {m: np.mean(np.abs(f.predict()[ok] / y[ok] - 1) <= 0.1) for m, f in
             (("auto", auto), ("log", logl))}  # fmt: skip
    assert share["auto"] > 0.95 and share["auto"] > share["log"]
    mu, sd = auto.predict_log()
    inside = np.abs(np.log(y[ok]) - mu[ok]) <= 1.645 * sd[ok]
    assert inside.mean() > 0.7
    meta = auto.describe()
    assert meta["model"] == "additive" and meta["scale_ms"] > 0 and set(meta["loo_mse_log"]) == {
        "log-linear", "additive"}  # fmt: skip


def test_log_linear_device_keeps_the_log_linear_model(synthetic, prior):
    y = synthetic["dev0"].to_numpy()
    fits = [FewShotAdapter(prior).fit(ids, y[ids])
            for ids in (select_archs(prior, 20, seed=s) for s in range(3))]  # fmt: skip
    assert [f.model for f in fits].count("log-linear") >= 2
    few = FewShotAdapter(prior).fit(select_archs(prior, 9, seed=0), y[select_archs(prior, 9)])
    assert few.model == "log-linear" and few.loo is None  # fewer rows than additive weights


def test_robust_weights_resist_one_slow_outlier(synthetic, prior):
    # one measurement 3x too slow (a background job on a phone) must not tilt the fit
    y = synthetic["dev0"].to_numpy()
    ok = np.isfinite(y)
    err = {True: [], False: []}
    for seed in range(3):
        ids = select_archs(prior, 20, seed=seed)
        meas = y[ids].copy()
        meas[seed] *= 3.0
        for robust in (True, False):
            fit = FewShotAdapter(prior, robust=robust, model="log-linear").fit(ids, meas)
            err[robust].append(np.median(np.abs(np.log(fit.predict()[ok] / y[ok]))))
    assert np.mean(err[True]) < 0.8 * np.mean(err[False])


def test_adapter_model_option_is_checked(prior):
    import dataclasses

    from latbench.predictors.fewshot.adapter import MODELS
    from latbench.predictors.fewshot.commands import MODEL_CHOICES

    assert MODEL_CHOICES == MODELS
    with pytest.raises(PredictorError, match="model must be one of"):
        FewShotAdapter(prior, model="gcn")
    old = dataclasses.replace(prior, additive_mean=None, additive_cov=None, additive_noise_var=None)
    with pytest.raises(PredictorError, match="no additive model"):
        FewShotAdapter(old, model="additive")
    y = _additive_device(prior, 1)
    ids = select_archs(prior, 12, seed=0)
    assert FewShotAdapter(old).fit(ids, y[ids]).model == "log-linear"  # a version-2 prior
    forced = FewShotAdapter(prior, model="additive").fit(ids, y[ids])
    assert forced.model == "additive" and np.all(forced.predict() > 0)


def test_simple_models_are_the_baselines_in_the_adapters_terms(synthetic, prior):
    from latbench.predictors.fewshot.evaluate import _flops_fit

    y = synthetic["dev0"].to_numpy()
    ids = select_archs(prior, 8, seed=0)
    flops = FewShotAdapter(prior, model="flops").fit(ids, y[ids])
    have = np.flatnonzero(np.isfinite(y))
    np.testing.assert_allclose(flops.predict(have), _flops_fit(ids, y[ids], have), rtol=1e-6)
    # a target that is source dev3 on a 1.7x slower clock: best-source finds dev3
    twin = synthetic["dev3"].to_numpy() * 1.7
    best = FewShotAdapter(prior, model="best-source").fit(ids, twin[ids])
    ok = np.isfinite(twin)
    assert np.median(np.abs(np.log(best.predict()[ok] / twin[ok]))) < 0.03
    mu, sd = best.predict_log()
    assert np.all(sd[ok] > 0)
    both = FewShotAdapter(prior, fallback=True).fit(ids, twin[ids])
    assert set(both.loo) == {"log-linear", "flops", "best-source"}
    assert both.loo[both.model] == min(both.loo.values())


def test_prior_without_source_weights_still_adapts(prior, tmp_path):
    import dataclasses

    assert prior.source_weights is not None and prior.source_weights.shape[0] == len(prior.sources)
    back = load_prior(prior.save(tmp_path / "p.npz"))
    np.testing.assert_allclose(back.source_weights, prior.source_weights)
    np.testing.assert_allclose(back.additive_cov, prior.additive_cov)
    assert back.additive_noise_var == pytest.approx(prior.additive_noise_var)
    np.testing.assert_array_equal(back.additive_design, prior.additive_design)
    old = dataclasses.replace(
        prior, source_weights=None, additive_mean=None, additive_cov=None, additive_noise_var=None
    )  # a version-1 prior
    old_back = load_prior(old.save(tmp_path / "old.npz"))
    assert old_back.source_weights is None and old_back.additive_mean is None
    ids = select_archs(old_back, 6, seed=0)
    y = np.exp(old_back.design[ids] @ old_back.mean)
    fit = FewShotAdapter(old_back).fit(ids, y)
    assert np.isfinite(fit.predict()).all()


def test_selection_is_deterministic_distinct_and_seeded(prior):
    a, b = select_archs(prior, 20, seed=1), select_archs(prior, 20, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(set(graph_index()[a])) == 20 and valid_mask()[a].all()
    assert set(select_archs(prior, 20, seed=2)) != set(a)
    only = np.flatnonzero(valid_mask())[::30]
    assert set(select_archs(prior, 5, candidates=only)) <= set(only)
    with pytest.raises(PredictorError):
        select_archs(prior, 0)
    # more than the candidates' graphs: the message says how many one may ask for
    few = np.flatnonzero(valid_mask())[:60]
    graphs = len(set(graph_index()[few]))
    with pytest.raises(PredictorError, match=f"ask for at most {graphs}$"):
        select_archs(prior, graphs + 1, candidates=few)


def test_selection_criteria_do_what_they_optimise(prior):
    # one greedy step, checked by brute force over a small candidate set
    cand = np.flatnonzero(prior.valid)[::97]
    a, c, s2 = prior.design[cand], prior.cov, prior.noise_var

    def mean_var_after(i):
        p = c - np.outer(c @ a[i], c @ a[i]) / (s2 + a[i] @ c @ a[i])
        return np.einsum("ij,jk,ik->i", a, p, a).mean()

    after = np.array([mean_var_after(i) for i in range(len(cand))])
    var = np.einsum("ij,jk,ik->i", a, c, a)
    first = {k: select_archs(prior, 1, candidates=cand, pool=None, criterion=k)[0]
             for k in ("d", "integrated", "hybrid")}  # fmt: skip
    assert first["d"] == cand[np.argmax(var)] == first["hybrid"]  # hybrid starts with D
    assert first["integrated"] == cand[np.argmin(after)]
    assert first["integrated"] != first["d"]  # the two criteria differ here
    # "auto" is D-optimal, and says so for the predicted file's metadata
    from latbench.predictors.fewshot.selection import resolve_criterion

    np.testing.assert_array_equal(select_archs(prior, 5, criterion="auto"),
                                  select_archs(prior, 5, criterion="d"))  # fmt: skip
    assert resolve_criterion() == "d"
    assert resolve_criterion("integrated") == "integrated"
    with pytest.raises(PredictorError, match="criterion"):
        select_archs(prior, 3, criterion="a-optimal")


def test_designed_selection_beats_random_on_average(synthetic, prior):
    y = synthetic["dev0"].to_numpy()
    ok = np.isfinite(y)
    rng = np.random.default_rng(3)
    err = {"design": [], "random": []}
    for r in range(6):
        for name, ids in (
            ("design", select_archs(prior, 5, seed=r)),
            ("random", rng.choice(np.flatnonzero(ok), 5, replace=False)),
        ):
            pred = FewShotAdapter(prior).fit(ids, y[ids]).predict()
            err[name].append(np.mean(np.abs(np.log(pred[ok] / y[ok]))))
    assert np.mean(err["design"]) < np.mean(err["random"])


def test_adapter_rejects_bad_measurements(prior):
    invalid = int(np.flatnonzero(~valid_mask())[0])
    with pytest.raises(PredictorError, match="positive"):
        FewShotAdapter(prior).fit([1, 2, 3], [1.0, -1.0, 2.0])
    with pytest.raises(PredictorError, match="invalid"):
        FewShotAdapter(prior).fit([invalid], [1.0])
    with pytest.raises(PredictorError, match="latencies"):
        FewShotAdapter(prior).fit([1, 2], [1.0])


def test_prior_round_trip_and_tamper_detection(prior, tmp_path):
    path = prior.save(tmp_path / "p.npz")
    back = load_prior(path)
    assert back.sources == prior.sources and back.rank == prior.rank
    np.testing.assert_allclose(back.cov, prior.cov)
    ids = select_archs(back, 8, seed=0)
    np.testing.assert_array_equal(ids, select_archs(prior, 8, seed=0))
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["mean"] = arrays["mean"] + 1e-3
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PredictorError, match="checksum"):
        load_prior(tmp_path / "bad.npz")
    hostile = with_header(path, tmp_path / "hdr.npz", additive_noise_var="abc")
    with pytest.raises(PredictorError, match="not numbers"):
        load_prior(hostile)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PredictorError, match="not a LatBench"):
        load_prior(tmp_path / "junk.npz")
    with pytest.raises(PredictorError, match="no such prior"):
        load_prior(tmp_path / "absent.npz")


def test_pretrain_refuses_thin_sources(synthetic):
    with pytest.raises(PredictorError, match="at least 2"):
        pretrain(synthetic.iloc[:, :1])
    thin = synthetic.iloc[:, :3].copy()
    thin.iloc[50:, 2] = np.nan
    with pytest.raises(PredictorError, match="need >= 100"):
        pretrain(thin)


def test_shipped_prior_works_offline_and_cites_its_sources():
    path = default_prior_path()
    assert path.stat().st_size < 5e6
    p = load_prior()
    assert any(s.startswith("help-") for s in p.sources)
    assert "xeon2c-onnxruntime-fp32" in p.sources
    assert any("HELP" in c for c in p.meta["citations"])
    assert {v.split()[0] for v in p.meta["licenses"].values()} <= {"MIT", "CC-BY-4.0", "Apache-2.0"}
    assert "latbench-predict pretrain" in p.meta["command"]
    # adapt to a bundled dataset from 10 of its own measurements (it is in the prior)
    df = latbench.load("xeon2c-onnxruntime-fp32")
    y = np.full(N_ARCHS, np.nan)
    ok = (df.status == "ok").to_numpy()
    y[df.arch_id[ok]] = df.latency_ms[ok]
    ids = select_archs(p, 10, seed=0)
    pred = FewShotAdapter(p).fit(ids, y[ids]).predict()
    have = np.isfinite(y)
    assert spearmanr(pred[have], y[have])[0] > 0.95


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("help-titan-rtx-256", {"help-titan-rtx-1", "help-titan-rtx-32"}),
        ("help-pixel2", {"help-essential-ph-1"}),
        ("jetson-nano-fp16", {"jetson-nano-fp32"}),
        ("desktop-gpu-gtx-1080-ti-fp32", {"help-1080ti-1", "help-1080ti-32"}),
        ("help-gold-6226", set()),
    ],
)
def test_siblings_follow_design_rules(target, expected):
    keys = [
        "help-titan-rtx-1", "help-titan-rtx-32", "help-titan-rtx-256", "help-2080ti-256",
        "help-pixel2", "help-essential-ph-1", "help-pixel3", "jetson-nano-fp16",
        "jetson-nano-fp32", "desktop-gpu-gtx-1080-ti-fp32", "desktop-cpu-i7-7820x-fp32",
        "help-1080ti-1", "help-1080ti-32", "help-gold-6226", "help-gold-6240",
    ]  # fmt: skip
    assert set(siblings(target, keys)) == expected
    assert target not in sources_for(target, keys)


def test_host_mode_joins_the_brp_nas_desktop():
    keys = ["desktop-cpu-i7-7820x-fp32", "desktop-gpu-gtx-1080-ti-fp32"]
    assert siblings(keys[0], keys) == []
    assert siblings(keys[0], keys, mode="host") == [keys[1]]
    measured = {"harness_version": "0.1", "host": {"cpu_model": "x"}}
    assert hardware_ids("box1-tf-fp32", measured) & hardware_ids("box1-onnxruntime-fp32", measured)


def test_predicted_file_stays_apart_from_measurements(synthetic, prior, tmp_path):
    home = tmp_path / "home"
    y = synthetic["dev0"].to_numpy()
    ids = select_archs(prior, 10, seed=0)
    fit = FewShotAdapter(prior).fit(ids, y[ids])
    write_predicted(fit.predict_frame(), home / "mine.predicted.parquet", fit.describe())
    back = latbench.load_predicted("mine", data_home=home)
    assert len(back) == N_ARCHS and back.attrs["metadata"]["measured_arch_ids"] == list(ids)
    assert back.attrs["metadata"]["prior_sources"] == list(prior.sources)
    with pytest.raises(latbench.UnknownDatasetError):
        latbench.load("mine.predicted", data_home=home)
    assert "mine.predicted" not in set(latbench.devices(home)["key"])
    with pytest.raises(latbench.DatasetNotFoundError, match="--adapt"):
        latbench.load_predicted("other", data_home=home)
    raw = bytearray((home / "mine.predicted.parquet").read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    (home / "bad.predicted.parquet").write_bytes(bytes(raw))
    with pytest.raises(latbench.DatasetError):
        read_predicted(home / "bad.predicted.parquet")
    # filed under a measured dataset's name, it is refused as what it is
    (home / "misfiled.parquet").write_bytes((home / "mine.predicted.parquet").read_bytes())
    with pytest.raises(latbench.DatasetError, match="a few-shot prediction, not a measured"):
        latbench.load("misfiled", data_home=home)


def test_evaluate_adapt_rows_and_baselines(synthetic):
    res = evaluate_adapt(synthetic.iloc[:, :6], ["dev0", "dev1"], ns=(5, 10), repeats=2,
                         methods=("adapter", "flops", "best-source"))  # fmt: skip
    assert len(res) == 2 * 2 * 2 * 3
    assert set(res.columns) >= {"target", "method", "n", "spearman", "within_10pct", "coverage_90"}
    mean = res.groupby("method")["spearman"].mean()
    assert mean["adapter"] > mean["flops"]
    table = group_table(res)
    assert set(table["method"]) == {"adapter", "flops", "best-source"}
    with pytest.raises(PredictorError, match="unknown method"):
        evaluate_adapt(synthetic, ["dev0"], methods=("magic",))


def _with_classes(df: pd.DataFrame) -> pd.DataFrame:
    """The synthetic table with device classes: dev0-dev2 GPUs, dev3-dev5 DSPs, rest CPUs."""
    out = df.copy()
    cls = {f"dev{i}": ("desktop-gpu" if i < 3 else "mobile-dsp" if i < 6 else "desktop-cpu")
           for i in range(df.shape[1])}  # fmt: skip
    out.attrs["metadata"] = {k: {"device": {"class": c}} for k, c in cls.items()}
    return out


def test_device_classes_of_the_leave_one_class_out_protocol():
    from latbench.predictors.fewshot.siblings import CLASSES, device_class

    cases = {"embedded-tpu": "accelerator", "asic": "accelerator", "fpga": "accelerator",
             "mobile-dsp": "dsp", "embedded-cpu": "mobile-cpu", "desktop-gpu": "desktop-gpu"}  # fmt: skip
    for raw, want in cases.items():
        assert device_class("k", {"device": {"class": raw}}) == want in CLASSES
    assert device_class("k", {}) == device_class("k", {"device": "junk"}) == "other"


def test_evaluate_adapt_protocols_fix_their_sources(synthetic):
    data = _with_classes(synthetic.iloc[:, :9])
    kw = {"ns": (5,), "repeats": 1, "methods": ("adapter",)}
    res = evaluate_adapt(data, ["dev0", "dev4"], protocol="class", **kw)
    # dev0 (a GPU) loses the other two GPUs, dev4 (a DSP) the other two DSPs
    assert res.set_index("target")["n_sources"].to_dict() == {"dev0": 6, "dev4": 6}
    assert set(res["class"]) == {"desktop-gpu", "dsp"}
    sib = evaluate_adapt(data, ["dev0"], protocol="siblings", **kw)
    assert sib["n_sources"].tolist() == [8]
    # fixed sources: the same prior whatever else the table holds
    fixed = evaluate_adapt(data, ["dev0"], sources=["dev6", "dev7", "dev8"], **kw)
    more = _with_classes(synthetic.iloc[:, :12])
    again = evaluate_adapt(more, ["dev0"], sources=["dev6", "dev7", "dev8"], **kw)
    assert fixed["n_sources"].tolist() == [3]
    assert fixed["spearman"].tolist() == again["spearman"].tolist()
    with pytest.raises(PredictorError, match="not available: dev99"):
        evaluate_adapt(data, ["dev0"], sources=["dev1", "dev99"], **kw)


def test_shipped_protocol_adapts_the_given_prior_on_unseen_targets(synthetic):
    data = synthetic.iloc[:, :6]
    given = pretrain(data[["dev2", "dev3", "dev4", "dev5"]], rank=2)
    res = evaluate_adapt(data, ["dev0", "dev1", "dev3"], protocol="shipped", prior=given,
                         ns=(5,), repeats=2, methods=("adapter", "flops"))  # fmt: skip
    assert set(res["target"]) == {"dev0", "dev1"}  # dev3 trained the prior: not a target
    assert (res["n_sources"] == 4).all()
    # the baselines are scored on the adapter's own draw, the random adapter on its own
    assert set(res["draw"]) == {"designed"}
    rnd = evaluate_adapt(data, ["dev0"], protocol="shipped", prior=given, ns=(5,), repeats=1,
                         methods=("adapter-random", "flops"))  # fmt: skip
    assert set(rnd["draw"]) == {"random"}


def test_predicted_metadata_says_how_far_the_target_is_from_each_source(synthetic, prior):
    ids = select_archs(prior, 10, seed=0)
    twin = synthetic["dev3"].to_numpy() * 1.7
    meta = FewShotAdapter(prior).fit(ids, twin[ids]).describe()
    assert meta["nearest_source"] == "dev3" and not meta["unlike_sources"]
    assert list(meta["source_distance"])[0] == "dev3" and len(meta["source_distance"]) == 11
    alien = np.exp(np.random.default_rng(1).normal(0, 0.5, N_ARCHS))  # like nothing at all
    meta = FewShotAdapter(prior).fit(ids, alien[ids]).describe()
    assert meta["unlike_sources"]


def test_second_round_aims_at_model_disagreement_only_when_blind(synthetic, prior):
    from latbench.predictors.fewshot.sequential import select_more

    first = select_archs(prior, 6, seed=0)
    twin = synthetic["dev3"].to_numpy() * 1.7
    more, blind = select_more(FewShotAdapter(prior), first, twin[first], 4, seed=0)
    assert not blind and len(more) == 4
    assert not set(graph_index()[more]) & set(graph_index()[first])
    alien = np.exp(np.random.default_rng(1).normal(0, 0.5, N_ARCHS))
    other, blind = select_more(FewShotAdapter(prior), first, alien[first], 4, seed=0)
    assert blind and len(set(graph_index()[other])) == 4
    assert set(other) != set(more)  # the discriminating round picks elsewhere


def test_evaluate_adapt_cli_tests_the_prior_it_is_given(tmp_path, capsys):
    from latbench.predictors.cli import main

    prior_file = tmp_path / "p.npz"
    src = "xeon2c-onnxruntime-fp32,xeon2c-tflite-fp32"
    assert main(["pretrain", "--sources", src, "--rank", "2", "-o", str(prior_file)]) == 0
    out = tmp_path / "res.csv"
    args = ["evaluate-adapt", "--prior", str(prior_file), "--targets", "xeon2c-*", "--n", "5",
            "--repeats", "1", "--methods", "adapter,flops", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    res = pd.read_csv(out)
    assert set(res["target"]) == {"xeon2c-tf-fp32"}  # the prior's own sources are skipped
    assert set(res["protocol"]) == {"shipped"} and set(res["draw"]) == {"designed"}
    assert (res["n_sources"] == 2).all()
    capsys.readouterr()


def test_evaluate_adapt_cli_refuses_bad_sources_and_priors(tmp_path, capsys):
    from latbench.predictors.cli import main
    from latbench.predictors.fewshot.commands import PROTOCOL_CHOICES
    from latbench.predictors.fewshot.evaluate import PROTOCOLS

    assert PROTOCOL_CHOICES == PROTOCOLS
    for args in (["--sources", "xeon2c-tf-fp32,nope-key"],
                 ["--prior", str(tmp_path / "nope.npz")]):  # fmt: skip
        assert main(["evaluate-adapt", *args, "--n", "5", "--repeats", "1"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().count("\n") == 0, err


def test_pretrain_cli_on_bundled_data(tmp_path, capsys):
    from latbench.predictors.cli import main

    out = tmp_path / "p.npz"
    assert main(["pretrain", "--sources", "xeon2c-*", "--rank", "2", "-o", str(out)]) == 0
    got = set(load_prior(out).sources)
    assert got == {"xeon2c-onnxruntime-fp32", "xeon2c-tf-fp32", "xeon2c-tflite-fp32"}
    assert load_prior(out).view == "pruned" and "(pruned view)" in capsys.readouterr().out
    timed = tmp_path / "t.npz"
    assert main(["pretrain", "--sources", "xeon2c-*", "--rank", "2", "--view", "timed",
                 "-o", str(timed)]) == 0  # fmt: skip
    # no source timed unpruned cells here, so the two views agree
    np.testing.assert_array_equal(load_prior(timed).factors, load_prior(out).factors)
    assert load_prior(timed).view == "timed"
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--sources", "xeon2c-*", "--view", "sideways", "-o", str(timed)])
    assert e.value.code == 2 and "invalid choice: 'sideways'" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["pretrain", "--sources", "nothing-*", "-o", str(tmp_path / "q.npz")]) == 2
    err = capsys.readouterr().err
    assert "matches 0" in err and err.count("\n") <= 2 and not (tmp_path / "q.npz").exists()


@pytest.mark.slow
@refdata.needs("help")
def test_beats_help_on_its_meta_test_devices(tmp_path):
    home = tmp_path / "home"
    res = subprocess.run(
        [sys.executable, "-m", "latbench", "import", "help", str(SHARED / "help")],
        capture_output=True, text=True, env={**os.environ, "LATBENCH_HOME": str(home)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = [k for k in latbench.devices(home).query("available").key if k.startswith("help-")]
        matrix = source_matrix(keys, home)
    from latbench.predictors.fewshot.evaluate import HELP_META_TEST, HELP_PUBLISHED

    res = evaluate_adapt(matrix, HELP_META_TEST, ns=(10,), repeats=2, methods=("adapter",))
    per = res.groupby("target")["spearman"].mean()
    assert per.mean() > np.mean(list(HELP_PUBLISHED.values()))


def test_adapting_imports_no_deep_learning_framework(adapt_in_fresh_process):
    res = adapt_in_fresh_process()
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
