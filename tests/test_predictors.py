"""Predictors without training a GCN: inputs, metrics, splits, proxies, layer-wise, protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latbench.catalog import UnknownDatasetError
from latbench.dataset import skeleton_frame, write_dataset
from latbench.graph import prune
from latbench.network import network_layers
from latbench.predictors import (
    LayerwisePredictor,
    PredictorError,
    ProxyPredictor,
    arch_ids,
    evaluate,
    load_predictor,
    make_predictor,
    metrics,
    split_rows,
    summarize,
    usable_rows,
)
from latbench.predictors.cli import main as predict_main
from latbench.predictors.encoding import cost_arrays, gcn_inputs, valid_mask
from latbench.space import N_ARCHS, Arch, all_archs, arch_id, from_id, parse_arch

CHAIN = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|"
SKIP = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
INVALID = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"


# -- architecture inputs ----------------------------------------------------------------------


def test_arch_ids_accepts_every_form():
    aid = arch_id(parse_arch(CHAIN))
    assert arch_ids(CHAIN).tolist() == [aid]
    assert arch_ids(aid).tolist() == [aid]
    assert arch_ids(parse_arch(CHAIN)).tolist() == [aid]
    assert arch_ids(Arch.from_id(aid)).tolist() == [aid]
    assert arch_ids([CHAIN, 3, (0, 0, 0, 0, 0, 1)]).tolist() == [aid, 3, 1]
    assert arch_ids(np.array([5, 7])).tolist() == [5, 7]
    assert arch_ids(None).tolist() == list(range(N_ARCHS))


@pytest.mark.parametrize("bad", [np.array([N_ARCHS]), "|nor_conv~0|", [-1]])
def test_arch_ids_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        arch_ids(bad)


def test_pruned_gcn_inputs_aggregate_predecessors_and_global_sums_all():
    adj, feat = gcn_inputs("pruned")
    for arch in (CHAIN, SKIP):
        i = arch_id(parse_arch(arch))
        g = prune(parse_arch(arch))
        a, f = g.gcn_encoding()
        np.testing.assert_array_equal(adj[i], a.T)
        np.testing.assert_array_equal(feat[i], f)
        # Row v (slot + 1) has a 1 in column u for each predecessor u of v.
        for u, v in g.edges:
            assert adj[i, v + 1, u + 1] == 1 and adj[i, u + 1, v + 1] == 0
        assert adj[i, 0].tolist() == [1.0] * 9  # the global node reads every node
    assert not adj.flags.writeable


def test_fast_pruned_gcn_inputs_equal_the_per_graph_ones_for_every_architecture():
    from latbench.predictors.encoding import _pruned_inputs_from_graphs, _vectors

    assert _vectors().tolist() == [list(from_id(i)) for i in range(N_ARCHS)]
    adj, feat = gcn_inputs("pruned")
    slow_adj, slow_feat = _pruned_inputs_from_graphs()  # graph.prune, one by one
    np.testing.assert_array_equal(adj, slow_adj)
    np.testing.assert_array_equal(feat, slow_feat)
    assert adj.dtype == feat.dtype == np.float32


def test_fast_valid_mask_and_graph_numbers_equal_the_per_graph_ones():
    from latbench.graph import prune
    from latbench.predictors.encoding import pruned_graph_index, valid_mask
    from latbench.predictors.fewshot.selection import distinct_graph_archs

    graphs = [prune(from_id(i)) for i in range(N_ARCHS)]
    assert valid_mask().tolist() == [g.valid for g in graphs]
    numbers: dict[str, int] = {}
    slow = [numbers.setdefault(g.key, len(numbers)) if g.valid else -1 for g in graphs]
    assert pruned_graph_index().tolist() == slow  # numbered by first appearance
    first: dict[str, int] = {}
    for i, g in enumerate(graphs):
        if g.valid:
            first.setdefault(g.key, i)
    assert distinct_graph_archs().tolist() == sorted(first.values())


def test_cell_inputs_keep_every_op():
    adj, feat = gcn_inputs("cell")
    i = arch_id(parse_arch(SKIP))
    # column = op index + 0 for the six op slots (rows 2..7): none, skip, conv1, conv3, pool
    assert feat[i, 2:8].argmax(axis=1).tolist() == list(parse_arch(SKIP))
    assert feat.shape == (N_ARCHS, 9, 8)
    # Unpruned DAG: op on edge 1->2 (slot 3, row 4) reads op on 0->1 (row 2).
    assert adj[i, 4, 2] == 1 and adj[i, 2, 4] == 0
    np.testing.assert_array_equal(adj[0], adj[i])  # the cell DAG is the same for all
    with pytest.raises(ValueError, match="unknown GCN encoding"):
        gcn_inputs("bogus")


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_hand_example():
    true = np.array([10.0, 10.0, 10.0, 10.0, 20.0])
    pred = np.array([10.05, 10.4, 11.0, 12.0, 20.0])  # errors 0.5%, 4%, 10%, 20%, 0%
    m = metrics(true, pred)
    assert m["within_1pct"] == pytest.approx(2 / 5)
    assert m["within_5pct"] == pytest.approx(3 / 5)
    assert m["within_10pct"] == pytest.approx(4 / 5)
    assert m["rmse_ms"] == pytest.approx(np.sqrt((0.05**2 + 0.4**2 + 1 + 4) / 5))
    mono = metrics(np.arange(1.0, 11), np.arange(1.0, 11) ** 2)
    assert mono["spearman"] == pytest.approx(1) and mono["kendall"] == pytest.approx(1)
    rev = metrics(np.arange(1.0, 11), -np.arange(1.0, 11))
    assert rev["spearman"] == pytest.approx(-1) and rev["kendall"] == pytest.approx(-1)


def test_metrics_reject_nan_and_mismatch():
    with pytest.raises(PredictorError, match="finite"):
        metrics([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(PredictorError, match="2 measured but 1"):
        metrics([1.0, 2.0], [1.0])


# -- data and splits --------------------------------------------------------------------------


def _synthetic(n_archs: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A dataset frame whose latency is an exact function of FLOPs and graph."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(N_ARCHS, n_archs, replace=False))
    df = skeleton_frame(ids.tolist())
    ok = df["valid"].to_numpy()
    flops, _ = cost_arrays()
    lat = 0.1 + 1e-8 * flops[ids] * (1 + 0.3 * np.sin(ids))  # not linear in FLOPs
    df["latency_ms"] = np.where(ok, lat, np.nan)
    df["status"] = np.where(ok, "ok", "invalid")
    df["runs"] = pd.array(np.where(ok, 10, 0), dtype="int32")
    df.loc[df.index[ok][:5], "status"] = "failed"  # failed rows must not be used
    df.loc[df.index[ok][:5], "latency_ms"] = np.nan
    return df


def test_usable_rows_keeps_valid_ok_only():
    df = _synthetic()
    rows = usable_rows(df)
    expected = df[(df.status == "ok") & df.valid]
    assert rows["arch_id"].tolist() == expected["arch_id"].astype(int).tolist()
    assert valid_mask()[rows["arch_id"]].all()
    assert rows.attrs["encoding"] == "pruned"


def test_split_is_seeded_disjoint_and_complete():
    rows = usable_rows(_synthetic())
    a = split_rows(rows, 900, 100, seed=7)
    b = split_rows(rows, 900, 100, seed=7)
    c = split_rows(rows, 900, 100, seed=8)
    for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.train, c.train)
    assert (len(a.train), len(a.val)) == (900, 100)
    parts = np.concatenate([a.train, a.val, a.test])
    assert sorted(parts.tolist()) == list(range(len(rows)))


def test_split_by_graph_has_no_shared_network():
    rows = usable_rows(_synthetic())
    sp = split_rows(rows, 300, 50, seed=1, unit="graphs")
    keys = rows["graph_key"].to_numpy()
    assert not set(keys[sp.train]) & set(keys[sp.test])
    assert len(set(keys[sp.test])) == len(sp.test)  # one row per graph
    assert len(sp.train) + len(sp.val) + len(sp.test) == rows["graph_key"].nunique()


def test_split_too_large_is_a_clear_error():
    rows = usable_rows(_synthetic(500))
    with pytest.raises(PredictorError, match=r"leaves no test data: .* has \d+ usable models"):
        split_rows(rows, 900, 100, seed=0)


# -- proxies ----------------------------------------------------------------------------------


def test_proxy_recovers_exact_line_and_nan_for_invalid(tmp_path):
    flops, params = cost_arrays()
    ids = np.flatnonzero(valid_mask())[::37]
    pred = ProxyPredictor("flops").fit(ids, 0.25 + 3e-9 * flops[ids])
    assert pred.slope == pytest.approx(3e-9) and pred.intercept == pytest.approx(0.25)
    out = pred.predict()
    assert np.isnan(out[~valid_mask()]).all() and np.isfinite(out[valid_mask()]).all()
    again = load_predictor(pred.save(tmp_path / "flops.npz"))
    np.testing.assert_array_equal(again.predict(ids), pred.predict(ids))
    par = make_predictor("params").fit(ids, 1 + 2e-6 * params[ids])
    assert par.predict(ids) == pytest.approx(1 + 2e-6 * params[ids])


def test_flops_and_params_are_affine_in_this_space():
    # Each cell op costs the same MACs in every stage (h^2 c^2 is constant), so FLOPs and
    # params differ by a fixed affine map: the two proxies make the same predictions.
    flops, params = cost_arrays()
    v = valid_mask()
    slope, icpt = np.polyfit(params[v], flops[v], 1)
    np.testing.assert_allclose(slope * params[v] + icpt, flops[v], rtol=1e-9)


def test_proxy_rejects_bad_training_data():
    with pytest.raises(PredictorError, match="unknown proxy"):
        ProxyPredictor("latency")
    with pytest.raises(PredictorError, match="invalid"):
        ProxyPredictor().fit([arch_id(parse_arch(INVALID))], [1.0])
    with pytest.raises(PredictorError, match="> 0"):
        ProxyPredictor().fit([CHAIN], [-1.0])
    with pytest.raises(PredictorError, match="not fitted"):
        ProxyPredictor().predict(CHAIN)


# -- layer-wise -------------------------------------------------------------------------------


def _layers_table() -> pd.DataFrame:
    """Hand-made per-layer latencies: easy to sum by hand for CHAIN and SKIP."""
    lat = {"stem": 1.0, "reduction1": 1000.0, "reduction2": 2000.0, "head": 5.0}
    for k in (1, 2, 3):
        lat |= {f"s{k}/conv3x3": 10.0 * k, f"s{k}/conv1x1": 100.0 * k, f"s{k}/avgpool3x3": 0.5}
        lat |= {f"s{k}/add{n}": 7.0 * k for n in range(2, 6)}
    return pd.DataFrame({"signature": list(lat), "latency_ms": list(lat.values()), "status": "ok"})


def test_layerwise_sums_by_hand():
    pred = LayerwisePredictor(_layers_table())
    # CHAIN cell: conv3x3 -> conv1x1; per stage k: 5 x (10k + 100k)
    chain = 1 + 5 * 110 + 1000 + 5 * 220 + 2000 + 5 * 330 + 5
    # SKIP cell: conv3x3 -> conv3x3, plus a skip to the output: add2; 5 x (20k + 7k)
    skip = 1 + 5 * 27 + 1000 + 5 * 54 + 2000 + 5 * 81 + 5
    np.testing.assert_allclose(pred.layer_sum([CHAIN, SKIP]), [chain, skip])
    assert np.isnan(pred.layer_sum(INVALID)[0])


def test_layerwise_sum_matches_network_layers():
    table = _layers_table()
    lookup = dict(zip(table.signature, table.latency_ms, strict=True))
    pred = LayerwisePredictor(table)
    rng = np.random.default_rng(3)
    ids = rng.choice(np.flatnonzero(valid_mask()), 40, replace=False)
    expected = [sum(lookup[lay.signature] for lay in network_layers(from_id(int(i)))) for i in ids]
    np.testing.assert_allclose(pred.layer_sum(ids), expected)


def test_layerwise_scale_is_least_squares(tmp_path):
    pred = LayerwisePredictor(_layers_table())
    ids = np.flatnonzero(valid_mask())[::50]
    s = pred.layer_sum(ids)
    pred.fit(ids, 0.004 * s)
    assert pred.scale == pytest.approx(0.004)
    y = 0.004 * s * (1 + 0.2 * np.sin(ids))
    pred.fit(ids, y)
    # least squares through the origin: the residual is orthogonal to the layer sums
    assert np.dot(s, y - pred.scale * s) == pytest.approx(0, abs=1e-6 * np.dot(s, y))
    np.testing.assert_allclose(pred.predict(ids), pred.scale * s)
    again = load_predictor(pred.save(tmp_path / "lw.npz"))
    np.testing.assert_array_equal(again.predict(ids), pred.predict(ids))


def test_layerwise_missing_or_failed_layer_is_named():
    table = _layers_table()
    table.loc[table.signature == "s2/conv1x1", "status"] = "failed"
    pred = LayerwisePredictor(table.copy())
    np.testing.assert_allclose(pred.layer_sum(SKIP), [3816.0])  # SKIP has no conv1x1
    with pytest.raises(PredictorError, match="s2/conv1x1"):
        pred.layer_sum(CHAIN)
    with pytest.raises(PredictorError, match="lacks column"):
        LayerwisePredictor(table.drop(columns="latency_ms"))


# -- protocol and command line ----------------------------------------------------------------


@pytest.fixture()
def synth_home(tmp_path):
    write_dataset(_synthetic(), tmp_path / "synth-cpu-fp32.parquet", {"source": "test"})
    return tmp_path


def test_evaluate_is_reproducible_and_tidy(synth_home):
    kw = dict(train=200, val=50, repeats=3, seed=5, data_home=synth_home)
    a = evaluate("synth-cpu-fp32", ["flops", "params"], **kw)
    b = evaluate("synth-cpu-fp32", ["flops", "params"], **kw)
    pd.testing.assert_frame_equal(a, b.assign(train_seconds=a.train_seconds))
    assert len(a) == 6 and set(a.predictor) == {"flops", "params"}
    for col in ("within_1pct", "within_5pct", "within_10pct"):
        assert a[col].between(0, 1).all()
    assert (a.within_1pct <= a.within_5pct).all() and (a.within_5pct <= a.within_10pct).all()
    assert a.n_test.iloc[0] == len(usable_rows("synth-cpu-fp32", synth_home)) - 250
    c = evaluate("synth-cpu-fp32", "flops", **{**kw, "seed": 6})
    assert not np.allclose(c.rmse_ms, a[a.predictor == "flops"].rmse_ms)
    s = summarize(a)
    assert s.loc[s.predictor == "flops", "repeats"].item() == 3
    flops_rows = a[a.predictor == "flops"]
    assert s.loc[s.predictor == "flops", "within_10pct_mean"].item() == pytest.approx(
        flops_rows.within_10pct.mean()
    )


def test_evaluate_bad_inputs(synth_home):
    with pytest.raises(UnknownDatasetError):
        evaluate("no-such-device-xyz", "flops", data_home=synth_home)
    with pytest.raises(PredictorError, match="leaves no test data"):
        evaluate("synth-cpu-fp32", "flops", train=5000, val=100, data_home=synth_home)
    with pytest.raises(PredictorError, match="no per-layer table"):
        evaluate("synth-cpu-fp32", "layerwise", data_home=synth_home)
    with pytest.raises(PredictorError, match="unknown predictor"):
        evaluate("synth-cpu-fp32", "lstm", data_home=synth_home)


def test_evaluate_layerwise_with_table_next_to_dataset(synth_home):
    _layers_table().to_parquet(synth_home / "synth-cpu-fp32.layers.parquet")
    res = evaluate("synth-cpu-fp32", "layerwise", train=300, val=0, repeats=2, data_home=synth_home)
    assert len(res) == 2 and res.spearman.notna().all()


def test_cli_evaluate_writes_csv(synth_home, tmp_path, capsys):
    out = tmp_path / "res.csv"
    rc = predict_main(
        ["evaluate", "--dataset", "synth-cpu-fp32", "--data-home", str(synth_home), "-p",
         "flops,params", "--train", "300", "--val", "50", "--repeats", "2", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    csv = pd.read_csv(out)
    for col in ("predictor", "repeat", "within_1pct", "within_5pct", "within_10pct",
                "spearman", "kendall", "rmse_ms", "train_seconds"):  # fmt: skip
        assert col in csv.columns
    assert len(csv) == 4 and csv.within_10pct.between(0, 1).all()
    assert "flops" in capsys.readouterr().out


def test_cli_errors_are_clear(synth_home, capsys):
    rc = predict_main(["evaluate", "--dataset", "nope-nope", "--data-home", str(synth_home)])
    assert rc == 2 and "unknown dataset" in capsys.readouterr().err.lower()
    rc = predict_main(
        ["evaluate", "-d", "synth-cpu-fp32", "--data-home", str(synth_home), "-p", "layerwise"]
    )
    assert rc == 2 and "no per-layer table" in capsys.readouterr().err


def test_cli_train_and_predict(synth_home, tmp_path, capsys):
    model = tmp_path / "flops.npz"
    assert predict_main(["train", "-d", "synth-cpu-fp32", "--data-home", str(synth_home),
                         "-p", "flops", "-o", str(model)]) == 0  # fmt: skip
    out = tmp_path / "all.csv"
    assert predict_main(["predict", str(model), "--all", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert len(df) == N_ARCHS
    assert df.predicted_ms.isna().to_numpy().tolist() == (~valid_mask()).tolist()
    capsys.readouterr()
    # --all without -o: a summary, not 15,626 lines (issue 24)
    assert predict_main(["predict", str(model), "--all"]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 15
    assert f"{N_ARCHS} architectures: {valid_mask().sum()} predicted" in text
    assert f"latbench-predict predict {model} --all -o FILE.csv" in text
    assert predict_main(["predict", str(model), CHAIN, "7"]) == 0
    text = capsys.readouterr().out
    assert CHAIN in text and len(text.strip().splitlines()) == 3


def test_load_predictor_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(PredictorError, match="not a LatBench predictor"):
        load_predictor(bad)
    with pytest.raises(PredictorError, match="no such file"):
        load_predictor(tmp_path / "missing.npz")


def test_all_archs_order_matches_ids():
    # predict(None) relies on arch_id order being all_archs() order
    assert [a.id for a in list(all_archs())[:50]] == list(range(50))


@pytest.mark.parametrize("command", ["evaluate", "train", "evaluate-adapt"])
def test_an_unwritable_output_fails_before_any_work(
    synth_home, tmp_path, capsys, monkeypatch, command
):
    import latbench.predictors as predictors

    def never(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(predictors, "evaluate", never)
    monkeypatch.setattr(predictors, "usable_rows", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    out = blocker / "res.csv"  # its folder is a regular file: nothing can be written there
    args = {
        "evaluate": ["evaluate", "-d", "synth-cpu-fp32", "-p", "flops", "-o", str(out)],
        "train": ["train", "-d", "synth-cpu-fp32", "-p", "flops", "-o", str(out)],
        "evaluate-adapt": ["evaluate-adapt", "--n", "5", "-o", str(out)],
    }[command]
    rc = predict_main([*args, "--data-home", str(synth_home)])
    err = capsys.readouterr().err
    assert rc == 2 and str(out) in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "kept"


def test_a_list_of_six_ids_is_six_architectures_and_a_tuple_is_one_vector():
    from latbench.predictors.base import arch_ids

    assert arch_ids([150, 151, 152, 153, 154, 155]).tolist() == [150, 151, 152, 153, 154, 155]
    with pytest.warns(UserWarning, match="read as six arch_ids; for one 6-op vector pass a tuple"):
        assert arch_ids([3, 3, 4, 1, 3, 1]).tolist() == [3, 3, 4, 1, 3, 1]  # ids, not a vector
    assert arch_ids((3, 3, 4, 1, 3, 1)).tolist() == [Arch.from_vector((3, 3, 4, 1, 3, 1)).id]
    assert arch_ids([(3, 3, 4, 1, 3, 1)]).tolist() == arch_ids((3, 3, 4, 1, 3, 1)).tolist()
    ids = [int(a) for a in np.flatnonzero(valid_mask())[1000:1006]]
    assert ProxyPredictor().fit(ids, np.linspace(1, 2, 6)).predict(ids).shape == (6,)


def test_a_summary_of_one_repeat_shows_no_spread():
    from latbench.predictors.cli import format_summary

    row = {"dataset": "d", "predictor": "flops", "spearman_mean": 0.9, "kendall_mean": 0.8,
           "rmse_ms_mean": 1.0, "train_seconds_mean": 0.1}  # fmt: skip
    for b in (1, 5, 10):
        row |= {f"within_{b}pct_mean": 0.5, f"within_{b}pct_std": 0.0}
    one = format_summary(pd.DataFrame([{**row, "repeats": 1}])).splitlines()[1]
    two = format_summary(pd.DataFrame([{**row, "repeats": 2}])).splitlines()[1]
    assert "+-" not in one and "50.0+- 0.0" in two
