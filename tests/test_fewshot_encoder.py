"""The few-shot prior's learned architecture encoder: numpy inference, file, adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latbench.predictors import PredictorError
from latbench.predictors.encoding import cost_arrays, valid_mask
from latbench.predictors.fewshot import FewShotAdapter, load_prior, pretrain, select_archs
from latbench.predictors.fewshot.encoder import embed, is_encoder_array, train_encoder
from latbench.predictors.fewshot.prior import _digest
from latbench.space import N_ARCHS

TINY = {"hidden": 8, "dim": 4, "layers": 2, "epochs": 2, "batch": 4096}


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """8 devices: log-latency from log-FLOPs and a per-device cost of each cell op."""
    rng = np.random.default_rng(1)
    from latbench.space import from_id

    ops = np.array([from_id(i) for i in range(N_ARCHS)])
    counts = np.stack([(ops == k).sum(1) for k in range(1, 5)], axis=1)
    lf = np.log(cost_arrays()[0])
    cols = {}
    for d in range(8):
        z = rng.normal(0, 1) + 0.3 * lf + counts @ rng.uniform(0, 0.2, 4)
        col = np.exp(z + rng.normal(0, 0.02, N_ARCHS))
        col[~valid_mask()] = np.nan
        cols[f"dev{d}"] = col
    df = pd.DataFrame(cols)
    df.attrs["metadata"] = {}
    return df


@pytest.fixture(scope="module")
def prior(synthetic):
    return pretrain(synthetic.iloc[:, 1:], rank=3, encoder=TINY)


def test_numpy_inference_equals_tensorflow(synthetic):
    fit = train_encoder(np.log(synthetic.to_numpy()), seed=3, **TINY)
    ours = embed(fit.weights)
    assert ours.shape == (N_ARCHS, TINY["dim"])
    np.testing.assert_allclose(ours, fit.tf_embedding, atol=2e-5)
    assert np.ptp(ours[valid_mask()], axis=0).min() > 0  # the embedding varies
    ids = np.array([5, 17, 900])
    np.testing.assert_allclose(embed(fit.weights, ids), ours[ids], atol=1e-6)


def test_encoder_prior_round_trips_and_adapts(prior, synthetic, tmp_path):
    assert set(prior.sets) == {"enc", "encfull"}
    back = load_prior(prior.save(tmp_path / "p.npz"))
    assert set(back.sets) == {"enc", "encfull"}
    np.testing.assert_allclose(back.embedding, prior.embedding, atol=1e-6)
    np.testing.assert_allclose(back.sets["enc"].cov, prior.sets["enc"].cov)
    assert back.meta["encoder"]["dim"] == TINY["dim"]
    y = synthetic["dev0"].to_numpy()
    ids = select_archs(back, 10, seed=0)
    fixed = FewShotAdapter(back, model="encoder").fit(ids, y[ids])
    assert fixed.model == "encoder"
    auto = FewShotAdapter(back, encoder_models=("encoder", "encoder-full")).fit(ids, y[ids])
    assert set(auto.loo) >= {"log-linear", "encoder", "encoder-full"}
    frame = auto.predict_frame()
    v = frame["valid"].to_numpy()
    assert frame.loc[v, "latency_pred_ms"].notna().all()
    assert frame.loc[~v, "latency_pred_ms"].isna().all()
    off = FewShotAdapter(back, encoder_models=()).fit(ids, y[ids])
    assert "encoder" not in (off.loo or {})


def test_encoder_models_need_an_encoder(synthetic):
    plain = pretrain(synthetic.iloc[:, 1:], rank=3)
    assert plain.sets == {}
    with pytest.raises(PredictorError, match="no encoder"):
        FewShotAdapter(plain, model="encoder")
    with pytest.raises(PredictorError, match="no encoder"):
        FewShotAdapter(plain, encoder_models=("encoder-full",))
    assert FewShotAdapter(plain).encoder_models == ()  # the default asks only for what exists


def _rewrite(path, out, edit, *, rehash: bool = True):
    """Copy a prior with ``edit(arrays, meta)`` applied, its checksum recomputed (forged)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    edit(arrays, meta)
    if rehash:
        meta["sha256"] = _digest(arrays)
    np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a, m: a.update(enc_out=a["enc_out"][:-1]), "does not fit"),
        (lambda a, m: a.update(enc_p0=a["enc_p0"][:, :3]), "do not chain"),
        (lambda a, m: a.pop("enc_c1"), "encoder layers missing"),
        (lambda a, m: a.update(enc_cov=-a["enc_cov"]), "not positive definite"),
        (lambda a, m: a.update(encfull_mean=a["encfull_mean"][:-1]), "do not fit together"),
        (lambda a, m: m.pop("enc_noise_var"), "incomplete"),
        (lambda a, m: m.update(encfull_noise_var=-1.0), "positive finite"),
        (lambda a, m: a.update(enc_zz=np.zeros(3)), "no prior has"),
        (lambda a, m: [a.pop(k) for k in list(a) if is_encoder_array(k)], "come together"),
        (lambda a, m: a.update(enc_p0=np.full_like(a["enc_p0"], np.nan)), "NaN"),
    ],
)
def test_hostile_encoder_prior_is_refused_in_one_line(prior, tmp_path, edit, message):
    path = prior.save(tmp_path / "p.npz")
    bad = _rewrite(path, tmp_path / "bad.npz", edit)
    with pytest.raises(PredictorError, match=message) as exc:
        load_prior(bad)
    assert "\n" not in str(exc.value)


def test_overflowing_encoder_is_refused_not_nan(prior, tmp_path):
    path = prior.save(tmp_path / "p.npz")

    def blow_up(a, m):
        for k in ("enc_p0", "enc_p1", "enc_c0", "enc_c1"):
            a[k] = np.full_like(a[k], 1e30)
        a["enc_out"][::2] = -1e30  # inf - inf: NaN without the check

    bad = load_prior(_rewrite(path, tmp_path / "big.npz", blow_up))
    with pytest.raises(PredictorError, match="non-finite"):
        FewShotAdapter(bad, model="encoder").fit(np.flatnonzero(bad.valid)[:3], [1.0, 2.0, 3.0])


def test_altered_encoder_weights_fail_the_checksum(prior, tmp_path):
    path = prior.save(tmp_path / "p.npz")

    def nudge(a, m):
        a["enc_out"] = a["enc_out"] + np.float32(1e-3)

    bad = _rewrite(path, tmp_path / "bad.npz", nudge, rehash=False)
    with pytest.raises(PredictorError, match="checksum"):
        load_prior(bad)


def test_adapting_with_an_encoder_imports_no_deep_learning_framework(
    prior, tmp_path, adapt_in_fresh_process
):
    path = prior.save(tmp_path / "p.npz")
    res = adapt_in_fresh_process(repr(str(path)), ", model='encoder'")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
