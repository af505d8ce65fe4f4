"""The few-shot adapter's blend with the simple baselines (pseudo-Bayesian model averaging)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from latbench.predictors.encoding import cost_arrays, valid_mask
from latbench.predictors.fewshot import FewShotAdapter, pretrain, select_archs
from latbench.predictors.fewshot.adapter import _blend_weights
from latbench.space import N_ARCHS


@pytest.fixture(scope="module")
def world() -> tuple:
    """8 sources sharing a strong hidden-factor term; a target that is FLOPs alone."""
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(N_ARCHS, 3))
    lf = np.log(cost_arrays()[0])
    lf = (lf - lf.mean()) / lf.std()
    cols = {}
    for d in range(8):
        z = rng.normal(0, 1) + 0.3 * lf + hidden @ (0.4 + rng.normal(0, 0.05, 3))
        col = np.exp(z + rng.normal(0, 0.02, N_ARCHS))
        col[~valid_mask()] = np.nan
        cols[f"dev{d}"] = col
    flops_only = np.exp(0.3 + 0.8 * lf)
    flops_only[~valid_mask()] = np.nan
    return pretrain(pd.DataFrame(cols), rank=3), flops_only, cols["dev0"] * 1.5


def _rho(fit, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(spearmanr(fit.predict()[ok], y[ok])[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_device_flops_ranks_is_matched_at_five(world, seed):
    prior, y, _ = world
    ids = select_archs(prior, 5, seed=seed)
    flops = _rho(FewShotAdapter(prior, model="flops").fit(ids, y[ids]), y)
    alone = _rho(FewShotAdapter(prior).fit(ids, y[ids]), y)  # the default: no blend
    fit = FewShotAdapter(prior, blend=True).fit(ids, y[ids])
    assert alone < flops - 0.2  # the prior's hidden factors mislead the model alone
    assert fit.model == "blend" and fit.blend_weights["flops"] > 0.9
    assert _rho(fit, y) >= flops - 0.005
    meta = fit.describe()
    assert meta["model"] == "blend"
    assert sum(meta["blend_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    frame = fit.predict_frame()
    v = frame[frame.valid]
    assert (v.latency_lo_ms < v.latency_pred_ms).all()
    assert (v.latency_pred_ms < v.latency_hi_ms).all()


def test_a_device_the_prior_knows_keeps_the_prior(world):
    prior, _, twin = world
    ok = np.isfinite(twin)
    for seed in (0, 1):
        ids = select_archs(prior, 5, seed=seed)
        fit = FewShotAdapter(prior, blend=True).fit(ids, twin[ids])
        assert fit.blend_weights.get("flops", 0.0) < 0.1
        assert _rho(fit, twin) > 0.99
        assert np.all(np.isfinite(fit.predict()[ok]))


def test_blend_weights_favour_the_adapter_until_evidence_is_decisive():
    rng = np.random.default_rng(0)
    e = rng.normal(0, 0.1, 10)
    even = _blend_weights(np.stack([e, e, e]))
    assert even[0] > 0.7 and even[1] == pytest.approx(even[2])
    decisive = _blend_weights(np.stack([e, 0.2 * e, e]))
    assert decisive[1] > 0.99
    assert _blend_weights(np.stack([0.2 * e, e, e]))[0] > 0.999


def test_blend_off_or_fallback_is_the_hard_choice(world):
    prior, y, _ = world
    ids = select_archs(prior, 5, seed=0)
    off = FewShotAdapter(prior).fit(ids, y[ids])
    assert off.blend == () and off.model == "log-linear"
    assert off.describe()["blend_weights"] == {"log-linear": 1.0}
    hard = FewShotAdapter(prior, blend=True, fallback=True).fit(ids, y[ids])
    assert hard.model == "flops" and hard.blend == ()


def test_evaluate_adapt_cli_blend_flag(tmp_path, capsys):
    from latbench.predictors.cli import main

    prior_file = tmp_path / "p.npz"
    src = "xeon2c-onnxruntime-fp32,xeon2c-tflite-fp32"
    assert main(["pretrain", "--sources", src, "--rank", "2", "-o", str(prior_file)]) == 0
    models = {}
    for flag in ([], ["--blend"]):
        out = tmp_path / f"res{len(flag)}.csv"
        args = ["evaluate-adapt", "--prior", str(prior_file), "--targets", "xeon2c-tf-fp32",
                "--n", "5", "--repeats", "2", "--methods", "adapter", "-o", str(out), *flag]  # fmt: skip
        assert main(args) == 0
        models[bool(flag)] = set(pd.read_csv(out)["model"])
    assert "blend" not in models[False] and "blend" in models[True]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "flops", "--blend"], "--blend averages what --model auto chooses"),
        (["--n", "5,"], "argument --n: expected a comma list of counts"),
        (["--gcn-n", "0"], "argument --gcn-n: counts must be at least 1"),
        (["--repeats", "0"], "argument --repeats: must be at least 1"),
        (["--encoder", "--prior", "x.npz"], "--prior uses one as is"),
    ],
)
def test_evaluate_adapt_cli_bad_options_are_one_line(args, needle, capsys):
    from latbench.predictors.cli import main

    try:
        rc = main(["evaluate-adapt", "--targets", "xeon2c-tf-fp32", *args])
    except SystemExit as exc:  # argparse's usage error
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
