"""The GCN predictor: training on real data against the FLOPs proxy, reproducibility,
persistence. Budgets are cut (fewer epochs, shorter patience) to keep the suite fast;
the full Table S1 schedule runs in benchmarks/bench_gcn.py (figures in docs/predictors.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import refdata

from latbench.predictors import (
    GCNConfig,
    GCNPredictor,
    PredictorError,
    evaluate,
    load_predictor,
    usable_rows,
)
from latbench.predictors.encoding import valid_mask
from latbench.predictors.gcn import _batches

pytest.importorskip("tensorflow")

HELP = refdata.ref_dir("help")
BUNDLED = "xeon2c-onnxruntime-fp32"
# Cut schedule (a full run takes ~100-150 epochs here): still far above FLOPs.
FAST = {"max_epochs": 30, "patience": 10, "plateau_patience": 5}


def _tiny(**kw) -> GCNPredictor:
    return GCNPredictor(hidden=32, max_epochs=3, **kw)


def test_batches_pad_with_zero_weight():
    idx, w = _batches(np.random.default_rng(0), 23, 10)
    assert idx.shape == w.shape == (3, 10)
    assert sorted(idx.ravel()[w.ravel() == 1].tolist()) == list(range(23))
    assert w.sum() == 23


def test_config_rejects_bad_values():
    with pytest.raises(PredictorError, match="dropout"):
        GCNConfig(dropout=1.0)
    with pytest.raises(PredictorError, match="encoding"):
        GCNConfig(encoding="onehot")
    with pytest.raises(PredictorError, match="unknown GCN option"):
        GCNPredictor(hidden_units=3)
    with pytest.raises(PredictorError, match="loss"):
        GCNConfig(loss="huber")
    with pytest.raises(PredictorError, match="target"):
        GCNConfig(target="log10")
    with pytest.raises(PredictorError, match="schedule_delay"):
        GCNConfig(schedule_delay=-1)
    assert GCNConfig() == GCNConfig(4, 600, 0.002, 8e-4, 5e-4, 10, 250, 35, 10, 0.5)
    # the defaults that reach the paper's Table S2 (docs/predictors.md, issue 25)
    d = GCNConfig()
    assert (d.loss, d.target, d.plateau_threshold, d.schedule_delay) == ("l1", "zlog", 0.01, 21)


def _small_fit(**kw) -> GCNPredictor:
    rows = usable_rows(BUNDLED)
    ids, y = rows.arch_id.to_numpy()[:100], rows.latency_ms.to_numpy()[:100]
    vids, vy = rows.arch_id.to_numpy()[100:130], rows.latency_ms.to_numpy()[100:130]
    return GCNPredictor(hidden=8, seed=1, **kw).fit(ids, y, val_archs=vids, val_latency_ms=vy)


def test_schedule_waits_for_the_delay_then_needs_a_relative_gain():
    # No epoch before the delay counts; after it, a 90 % relative gain is needed, so the
    # plateau cuts after patience + 1 epochs (PyTorch's rule) and early stopping after
    # `patience` epochs of no improvement at all.
    p = _small_fit(max_epochs=7, schedule_delay=2, plateau_patience=1,
                   plateau_threshold=0.9, patience=50)  # fmt: skip
    lr = p.log.learning_rate
    assert p.log.epochs == 7 and lr[:5] == [8e-4] * 5 and lr[5] == pytest.approx(4e-4)
    q = _small_fit(max_epochs=40, schedule_delay=30, patience=1)
    assert q.log.epochs >= 31  # stopping cannot happen within the delay


def test_raw_target_round_trips(tmp_path):
    a = _small_fit(max_epochs=2, target="raw", loss="mse")
    assert a._target == (0.0, 1.0)
    b = load_predictor(a.save(tmp_path / "raw.npz"))
    assert b.config.target == "raw"
    np.testing.assert_allclose(b.predict([5, 6]), a.predict([5, 6]), rtol=1e-6)


def test_tiny_gcn_is_reproducible_and_round_trips(tmp_path):
    rows = usable_rows(BUNDLED)
    ids, y = rows.arch_id.to_numpy()[:200:2], rows.latency_ms.to_numpy()[:200:2]
    vids, vy = rows.arch_id.to_numpy()[1:100:2], rows.latency_ms.to_numpy()[1:100:2]
    a = _tiny(seed=3).fit(ids, y, val_archs=vids, val_latency_ms=vy)
    b = _tiny(seed=3).fit(ids, y, val_archs=vids, val_latency_ms=vy)
    c = _tiny(seed=4, jit_compile=False).fit(ids, y, val_archs=vids, val_latency_ms=vy)
    pa = a.predict()
    assert pa.shape == (15_625,)
    assert np.array_equal(np.isnan(pa), ~valid_mask())  # NaN exactly for invalid archs
    np.testing.assert_allclose(b.predict(), pa, rtol=1e-5)
    assert not np.allclose(c.predict(), pa, rtol=1e-3, equal_nan=True)
    assert a.log.epochs == 3 and 1 <= a.log.best_epoch <= 3
    assert len(a.log.val_loss) == 3 and a.log.best_val_loss == min(a.log.val_loss)
    loaded = load_predictor(a.save(tmp_path / "gcn.npz"))
    assert isinstance(loaded, GCNPredictor) and loaded.config == a.config
    one = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    np.testing.assert_allclose(loaded.predict([one, 5]), a.predict([one, 5]), rtol=1e-6)


def test_flat_kernel_product_keeps_the_batched_products_numbers(monkeypatch):
    # The training step multiplies each kernel as one 2-D product (benchmarks/bench_gcn.py:
    # ~30 % cheaper per step); the batched product it replaced must give the same run to
    # float rounding, trained in this test beside it from the same seed and batches.
    from latbench.predictors import gcn

    rows = usable_rows(BUNDLED)
    ids, y = rows.arch_id.to_numpy()[:300], rows.latency_ms.to_numpy()[:300]
    vids, vy = rows.arch_id.to_numpy()[300:350], rows.latency_ms.to_numpy()[300:350]

    def fit(seed: int, flat: bool) -> GCNPredictor:
        monkeypatch.setattr(gcn, "_FLAT_KERNEL", flat)
        p = GCNPredictor(hidden=48, max_epochs=4, seed=seed)
        return p.fit(ids, y, val_archs=vids, val_latency_ms=vy)

    old, new, other = fit(5, False), fit(5, True), fit(6, True)
    np.testing.assert_allclose(new.log.train_loss, old.log.train_loss, rtol=1e-4)
    np.testing.assert_allclose(new.log.val_loss, old.log.val_loss, rtol=1e-4)
    test = rows.arch_id.to_numpy()[350:]
    po, pn, px = old.predict(test), new.predict(test), other.predict(test)
    np.testing.assert_allclose(pn, po, rtol=1e-4)
    assert np.max(np.abs(px / po - 1)) > 1e-2  # another seed is far outside that tolerance


def test_gcn_needs_both_validation_parts():
    ids = np.flatnonzero(valid_mask())[:3]
    with pytest.raises(PredictorError, match="both"):
        _tiny().fit(ids[:2], [1.0, 2.0], val_archs=ids[2:])


def test_gcn_beats_flops_on_bundled_dataset():
    res = evaluate(BUNDLED, ["gcn", "flops"], train=900, val=100, seed=0, options=FAST)
    res2 = evaluate(BUNDLED, ["flops"], train=900, val=100, seed=0)
    gcn = res[res.predictor == "gcn"].iloc[0]
    flops = res[res.predictor == "flops"].iloc[0]
    assert flops.within_10pct == res2.within_10pct.iloc[0]  # same split for every predictor
    # FLOPs: ~63% within +-10%. This cut schedule: ~81% (the full one: ~87%, see
    # docs/predictors.md); an untrained or miswired GCN lands far below FLOPs.
    assert gcn.within_10pct > flops.within_10pct + 0.12
    assert gcn.within_10pct > 0.75
    assert gcn.spearman > 0.98
    assert gcn.epochs <= FAST["max_epochs"] and gcn.n_test == 15_284 - 1000


@pytest.fixture(scope="module")
def help_home(tmp_path_factory):
    refdata.require("help", "gold_6226.pt")
    from latbench.importers import import_path

    home = tmp_path_factory.mktemp("help-home")
    import_path("help", HELP, data_home=home, keys=["help-gold-6226"])
    return home


def test_gcn_beats_flops_on_help_gold_6226(help_home):
    res = evaluate("help-gold-6226", ["gcn", "flops"], seed=1, data_home=help_home, options=FAST)
    gcn = res[res.predictor == "gcn"].iloc[0]
    flops = res[res.predictor == "flops"].iloc[0]
    # HELP timed unpruned cells: the protocol picks the `cell` encoding. FLOPs: ~41%.
    assert gcn.within_10pct > flops.within_10pct + 0.3
    assert gcn.within_10pct > 0.8
    assert gcn.kendall > flops.kendall + 0.1


def test_table_s2_bar_is_paper_mean_minus_one_sd():
    import pandas as pd

    from latbench.analysis.paper import s2_beside_paper, s2_markdown

    res = pd.DataFrame({
        "dataset": ["desktop-cpu-i7-7820x-fp32"] * 2, "predictor": ["gcn"] * 2,
        "n_train": [900] * 2, "within_1pct": [0.32, 0.33], "within_5pct": [0.9, 0.9],
        "within_10pct": [0.95, 0.95],
    })  # fmt: skip
    t = s2_beside_paper(res).set_index("bound")
    assert t.loc["±1%", "bar"] == pytest.approx(36.0 - 3.5)
    assert t.loc["±1%", "meets bar"]  # 32.5 against 32.5
    assert not t.loc["±10%", "meets bar"]  # 95.0 against 96.4 - 0.7
    assert "no (95.7)" in s2_markdown(res)
