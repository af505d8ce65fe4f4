"""latbench.analysis: correlation (Table S4), proxies (S12), pairs (S13), report, CLI."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import refdata
from scipy import stats

import latbench
from latbench.analysis import paper
from latbench.analysis.correlation import (
    correlation_figure,
    correlation_matrix,
    correlation_pairs,
    pair_correlation,
)
from latbench.analysis.data import Datasets, from_frames, load_datasets
from latbench.analysis.pairs import pairs_figure, select_devices
from latbench.analysis.proxies import panel_text, proxies_figure, proxy_correlations
from latbench.analysis.report import write_correlation, write_pairs, write_proxies
from latbench.analysis.style import save_png
from latbench.analysis.tables import markdown_table

BUNDLED = "xeon2c-onnxruntime-fp32"


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return latbench.load(BUNDLED)


def _derived(base: pd.DataFrame, key: str, fn, keep_every: int = 1, seed: int = 0) -> pd.DataFrame:
    """A synthetic dataset: ``fn(base latency)`` on every ``keep_every``-th ok row."""
    df = base.copy()
    rng = np.random.default_rng(seed)
    lat = fn(df["latency_ms"].to_numpy(dtype=np.float64), rng)
    drop = np.arange(len(df)) % keep_every != 0
    df["latency_ms"] = np.where(drop, np.nan, lat)
    df["status"] = np.where(drop & (df["status"] == "ok"), "missing", df["status"])
    df.attrs = {"metadata": {"device": {"name": key, "class": "synthetic"}, "source": "test"}}
    return df


# --- correlation -----------------------------------------------------------------------


def test_hand_made_pair_has_known_coefficients():
    # x = 1..5, y = 2,4,5,4,5: r = 6/sqrt(60); ranks of y 1,2.5,4.5,2.5,4.5 give
    # rho = 7/sqrt(90); 7 concordant, 1 discordant, 2 tied-in-y pairs give tau-b = 6/sqrt(80).
    # The NaN and the inf entries must be dropped pairwise, not break the result.
    x = [1, 2, 3, 4, 5, np.nan, 7]
    y = [2, 4, 5, 4, 5, 9, np.inf]
    c = pair_correlation(x, y)
    assert c["n"] == 5
    assert c["pearson"] == pytest.approx(6 / math.sqrt(60), abs=1e-12)
    assert c["spearman"] == pytest.approx(7 / math.sqrt(90), abs=1e-12)
    assert c["kendall"] == pytest.approx(6 / math.sqrt(80), abs=1e-12)


def test_pair_correlation_degenerate_cases():
    assert math.isnan(pair_correlation([1, 2], [3, 4])["pearson"])  # n < 3
    assert math.isnan(pair_correlation([1, 2, 3], [5, 5, 5])["spearman"])  # constant
    with pytest.raises(ValueError, match="shape"):
        pair_correlation([1, 2, 3], [1, 2])


def test_matrix_self_correlation_is_one_and_transforms_behave():
    rng = np.random.default_rng(1)
    a = rng.lognormal(size=400)
    a[::7] = np.nan
    table = pd.DataFrame({"a": a, "lin": 2 * a + 1, "neg": -a, "exp": np.exp(a)})
    table.loc[::5, "exp"] = np.nan
    pairs = correlation_pairs(table)
    assert len(pairs) == 4 * 5 // 2
    for method in ("pearson", "spearman", "kendall"):
        m = correlation_matrix(pairs, method)
        np.testing.assert_allclose(np.diag(m.to_numpy()), 1.0, atol=1e-12)
        np.testing.assert_array_equal(m.to_numpy(), m.to_numpy().T)
        assert m.loc["a", "lin"] == pytest.approx(1.0, abs=1e-12)
        assert m.loc["a", "neg"] == pytest.approx(-1.0, abs=1e-12)
    # a monotone but non-linear transform keeps the ranking, not the linearity
    assert correlation_matrix(pairs, "spearman").loc["a", "exp"] == pytest.approx(1.0)
    assert correlation_matrix(pairs, "kendall").loc["a", "exp"] == pytest.approx(1.0)
    assert correlation_matrix(pairs, "pearson").loc["a", "exp"] < 0.99
    n = correlation_matrix(pairs, "n")
    both = np.isfinite(a) & np.isfinite(table["exp"].to_numpy())
    assert n.loc["a", "exp"] == both.sum()
    with pytest.raises(ValueError, match="unknown method"):
        correlation_matrix(pairs, "cosine")


def test_bundled_dataset_against_itself_and_a_noisy_copy(bundled):
    noisy = _derived(bundled, "noisy", lambda v, r: v * r.lognormal(0, 0.2, v.size), keep_every=3)
    data = from_frames({BUNDLED: bundled, "noisy": noisy})
    lat = data.latency()
    pairs = correlation_pairs(lat)
    self_row = pairs[(pairs.a == BUNDLED) & (pairs.b == BUNDLED)].iloc[0]
    assert self_row["n"] == (bundled["status"] == "ok").sum()
    for method in ("pearson", "spearman", "kendall"):
        assert self_row[method] == pytest.approx(1.0, abs=1e-12)
    cross = pairs[(pairs.a == BUNDLED) & (pairs.b == "noisy")].iloc[0]
    both = lat.dropna()
    assert cross["n"] == len(both)
    assert cross["pearson"] == pytest.approx(stats.pearsonr(both[BUNDLED], both["noisy"])[0])
    assert cross["kendall"] == pytest.approx(stats.kendalltau(both[BUNDLED], both["noisy"])[0])
    assert 0.5 < cross["pearson"] < 0.999


def test_heatmap_prints_every_value():
    m = pd.DataFrame([[1.0, 0.25], [0.25, 1.0]], index=["a", "b"], columns=["a", "b"])
    fig = correlation_figure(m)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0.250", "0.250", "1.000", "1.000"]
    assert fig.axes[0].get_title()


# --- proxies ---------------------------------------------------------------------------


def test_proxy_coefficients_equal_scipy_and_are_printed_in_the_panel(bundled):
    data = from_frames({BUNDLED: bundled})
    coeffs = proxy_correlations(data).set_index(["key", "proxy"])
    ok = bundled[bundled["status"] == "ok"]
    for proxy in ("flops", "params"):
        x, y = ok[proxy].to_numpy(float), ok["latency_ms"].to_numpy(float)
        row = coeffs.loc[(BUNDLED, proxy)]
        assert row["n"] == len(ok)
        assert row["pearson"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
        assert row["spearman"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
        assert row["kendall"] == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
    fig = proxies_figure(data)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert panel_text(coeffs.loc[(BUNDLED, "flops")]) in texts
    r = stats.pearsonr(ok["flops"].to_numpy(float), ok["latency_ms"].to_numpy(float))[0]
    assert any(f"Pearson r = {r:.3f}" in t for t in texts)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert {ax.get_xlabel() for ax in visible} == {"FLOPs [M MACs]", "parameters [M]"}
    assert all(ax.get_ylabel() == "latency [ms]" for ax in visible)


# --- pairs -----------------------------------------------------------------------------


def test_select_devices_round_robin_over_classes():
    keys = ["g1", "g2", "g3", "c1", "c2", "m1"]
    classes = {"g1": "gpu", "g2": "gpu", "g3": "gpu", "c1": "cpu", "c2": "cpu", "m1": "mobile"}
    assert select_devices(keys, classes, 4) == ["g1", "g2", "c1", "m1"]
    assert select_devices(keys, classes, 3) == ["g1", "c1", "m1"]
    assert select_devices(keys, classes, 10) == keys
    with pytest.raises(ValueError):
        select_devices(keys, classes, 0)


def _assert_tick_labels_apart(fig) -> None:
    """No two tick labels of one axis overlap once drawn (log axes used to stack them)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            ticks = axis.get_major_ticks() + axis.get_minor_ticks()  # minor ones get labels too
            boxes = [t.get_window_extent(renderer) for tick in ticks
                     if lo <= tick.get_loc() <= hi and (t := tick.label1).get_visible()
                     and t.get_text()]  # fmt: skip
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert not a.overlaps(b), (ax.get_title(), a, b)


def test_pairs_figure_panels_and_log_axes():
    rng = np.random.default_rng(2)
    a = rng.uniform(1, 2, 300)
    table = pd.DataFrame({"narrow": a, "wide": a**8, "other": rng.uniform(1, 2, 300)})
    fig = pairs_figure(table)
    axes = np.array(fig.axes).reshape(3, 3)
    assert not axes[0, 1].get_visible() and axes[1, 0].get_visible()
    # one rule for every panel: latency on log axes, whatever each dataset's range
    for ax in (axes[1, 0], axes[2, 0], axes[2, 1]):
        assert ax.get_xscale() == ax.get_yscale() == "log"
    assert all(axes[i, i].get_xscale() == "log" for i in range(3))
    _assert_tick_labels_apart(fig)
    assert axes[2, 0].get_xlabel() == "narrow [ms]"
    corner = axes[1, 0].texts[0].get_text()
    assert corner.endswith("ρ = 1.000")  # a**8 is monotone in a
    with pytest.raises(KeyError, match="nope"):
        pairs_figure(table, ["narrow", "nope"])


# --- report and determinism -------------------------------------------------------------


def _two_devices(bundled) -> Datasets:
    scaled = _derived(bundled, "scaled", lambda v, r: 3 * v + r.normal(0, 0.1, v.size), 2)
    return from_frames({BUNDLED: bundled, "scaled": scaled})


def test_outputs_are_byte_identical_across_runs(bundled, tmp_path):
    data = _two_devices(bundled)
    for run in ("one", "two"):
        write_correlation(data, tmp_path / run)
        write_proxies(data, tmp_path / run)
        write_pairs(data, tmp_path / run)
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir())
    assert {"pairs.png", "proxies.png", "correlation_pearson.png"} <= set(one)
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    png = (tmp_path / "one" / "pairs.png").read_bytes()
    assert b"Software" not in png and b"matplotlib version" not in png


def test_correlation_files_hold_the_numbers(bundled, tmp_path):
    data = _two_devices(bundled)
    section = write_correlation(data, tmp_path)
    m = pd.read_csv(tmp_path / "correlation_pearson.csv", index_col=0)
    lat = data.latency().dropna()
    expected = stats.pearsonr(lat[BUNDLED], lat["scaled"])[0]
    assert m.loc[BUNDLED, "scaled"] == pytest.approx(expected, abs=1e-6)
    assert m.loc["scaled", "scaled"] == pytest.approx(1.0, abs=1e-6)
    assert f"{expected:.3f}" in (tmp_path / "correlation_pearson.md").read_text()
    assert "![pearson heatmap](correlation_pearson.png)" in section.body
    # no paper dataset here: the paper's table is shown for reference only
    assert "nothing to set beside" in section.body and "0.997" in section.body


def test_paper_numbers_are_set_beside_ours_for_paper_datasets(bundled, tmp_path):
    cpu, gpu = paper.PAPER_DEVICES["D. CPU"], paper.PAPER_DEVICES["E. GPU"]
    data = from_frames({cpu: bundled, gpu: _derived(bundled, gpu, lambda v, r: v**2)})
    section = write_correlation(data, tmp_path)
    table = section.body.split("### Beside the paper")[1]
    row = next(line for line in table.splitlines() if line.startswith("| D. CPU / E. GPU |"))
    pairs = correlation_pairs(data.latency())
    ours = float(correlation_matrix(pairs, "spearman").loc[cpu, gpu])  # Table S4 is Spearman
    assert f"| {cpu} | {gpu} | 15,284 | {ours:.3f} | 0.700 | {ours - 0.700:.3f} |" in row


def test_paper_tables_are_transcribed_consistently():
    s4 = paper.TABLE_S4.to_numpy()
    np.testing.assert_array_equal(s4, s4.T)
    np.testing.assert_array_equal(np.diag(s4), 1.0)
    assert paper.paper_correlation(["edgetpu-int8", "x"]).shape == (1, 1)
    s2 = paper.paper_predictor_table([paper.PAPER_DEVICES["D. CPU"]])
    gcn10 = s2[(s2.predictor == "GCN (900 pts.)") & (s2.bound_pct == 10)].iloc[0]
    assert (gcn10["mean"], gcn10["std"]) == (96.4, 0.7)
    # layer-wise figures exist for the three desktop/embedded GPUs/CPU only
    assert set(paper.TABLE_S2.loc[paper.TABLE_S2.predictor.str.startswith("Layer"), "device"]) == {
        "D. CPU", "D. GPU", "E. GPU"}  # fmt: skip


def test_markdown_table_formats_cells():
    df = pd.DataFrame({"k": ["a|b"], "x": [0.12345], "n": [15284], "z": [float("nan")]})
    md = markdown_table(df)
    assert md.splitlines()[2] == "| a\\|b | 0.123 | 15,284 | – |"


def test_load_datasets_reports_unknown_keys_with_the_loader_error(tmp_path):
    with pytest.raises(latbench.UnknownDatasetError, match="did you mean"):
        load_datasets(["xeon2c-onnxruntime-fp3"], data_home=tmp_path)
    with pytest.raises(latbench.DatasetNotFoundError, match="latbench import"):
        load_datasets(["jetson_nano"], data_home=tmp_path)
    data = load_datasets(None, data_home=tmp_path)
    assert BUNDLED in data.keys and data.origins[BUNDLED] == "bundled"
    # a measured dataset in the data home counts by default, not with bundled_only
    home = tmp_path / "home"
    home.mkdir()
    latbench.write_dataset(latbench.load(BUNDLED).head(50), home / "mine.parquet")
    assert "mine" in load_datasets(None, data_home=home).keys
    assert "mine" not in load_datasets(None, data_home=home, bundled_only=True).keys


def test_save_png_is_readable(tmp_path, bundled):
    path = save_png(proxies_figure(from_frames({BUNDLED: bundled})), tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(rb"IHDR", path.read_bytes()[:40])


# --- predictors, CLI and the full report --------------------------------------------------

HELP_DIR = refdata.ref_dir("help")


def test_predictor_table_and_figure_agree_with_the_protocol(bundled, tmp_path):
    from latbench.analysis import predictors as P
    from latbench.predictors import within

    data = from_frames({BUNDLED: bundled})
    run_ = P.run_predictors(data, ["flops", "layerwise"], repeats=2, n_train=200, n_val=20)
    res = run_.results
    # the bundled dataset ships a per-layer table, so the layer-wise predictor runs too
    assert set(res["predictor"]) == {"flops", "layerwise"} and not run_.skipped
    res = res[res["predictor"] == "flops"]
    assert sorted(res["repeat"]) == [0, 1]
    table = P.predictor_table(res)
    shares = res["within_10pct"] * 100
    assert table.loc["±10%", (BUNDLED, "FLOPs")] == f"{shares.mean():.1f} ± {shares.std():.1f}"
    one = P.predictor_table(res[res["repeat"] == 0])  # one repeat: no "± 0.0"
    first = res.loc[res["repeat"] == 0, "within_10pct"].iloc[0] * 100
    assert one.loc["±10%", (BUNDLED, "FLOPs")] == f"{first:.1f}"
    # the panel's repeat 0 is the protocol's repeat 0: same split, same fitted model
    pred = P.repeat0_predictions(bundled, "flops", n_train=200, n_val=20)
    ok = (bundled["status"] == "ok").sum()
    assert len(pred) == ok - 220
    r0 = res[res["repeat"] == 0].iloc[0]
    assert within(pred["measured"], pred["predicted"], 10) == pytest.approx(r0["within_10pct"])
    small = bundled[bundled["status"] == "ok"].head(300)
    few = P.run_predictors(from_frames({"small": small}), ["flops"], n_train=290, n_val=10)
    assert few.results.empty and "300 usable" in few.skipped[("small", "flops")]
    fig = P.figure1(BUNDLED, {"flops": pred})
    title = fig.axes[0].get_title()
    assert title == f"FLOPs: {r0['within_10pct'] * 100:.1f}% within ±10%"
    assert fig.axes[0].get_xlabel() == "measured latency [ms]"


def _run_cli(*argv: str) -> int:
    from latbench.analysis.cli import main

    return main(list(argv))


def test_cli_all_on_the_bundled_data_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "results"
    args = ("all", "--data-home", str(tmp_path / "home"), "--out", str(out))
    rc = _run_cli(*args, "--predictors", "flops,params", "--repeats", "2", "--train", "100")
    assert rc == 0
    readme = (out / "README.md").read_text()
    embedded = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme))
    assert embedded == {p.name for p in out.glob("*.png")}  # every figure, no dangling link
    assert {"correlation_pearson.png", "proxies.png", "pairs.png"} <= embedded
    assert f"predictors_{BUNDLED}.png" in embedded
    for title in ("Table S4", "Figure S12", "Figure S13", "Table S2", "## Datasets", "bundled"):
        assert title in readme
    assert "--repeats 2" in readme and "| predictor repeats | 2 |" in readme
    assert "latbench fetch nb201-accuracy" in readme  # the NAS result says how to get it
    results = pd.read_csv(out / "predictors.csv")
    n_bundled = len(latbench.devices().query("bundled"))
    assert len(results) == n_bundled * 2 * 2 and set(results["repeat"]) == {0, 1}
    assert set(results["n_train"]) == {100}
    m = pd.read_csv(out / "correlation_pearson.csv", index_col=0)
    assert m.loc[BUNDLED, BUNDLED] == pytest.approx(1.0, abs=1e-6)


def test_cli_all_reports_few_shot_results(tmp_path, capsys):
    rows = [
        {"target": t, "group": g, "protocol": "siblings", "mode": "chip", "method": m, "n": n,
         "repeat": r, "spearman": rho - (0.1 if m == "flops" else 0) + 0.002 * n,
         "within_10pct": 0.5, "coverage_90": 0.9, "n_sources": 9, "seconds": 0.1}
        for t, g, rho in (("help-pixel2", "help-meta-test", 0.8), ("edgetpu-int8", "latbench-release", 0.9))
        for m in ("adapter", "flops") for n in (5, 10) for r in range(2)
    ]  # fmt: skip
    csv = tmp_path / "adapt.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "results"
    common = ("all", "--data-home", str(tmp_path / "home"), "--out", str(out),
              "--devices", BUNDLED, "--predictors", "flops", "--repeats", "2", "--train", "100")  # fmt: skip
    assert _run_cli(*common, "--fewshot", str(csv)) == 0
    readme = (out / "README.md").read_text()
    assert "## Few-shot adaptation" in readme and "(fewshot.png)" in readme
    assert (out / "fewshot.png").stat().st_size > 0
    table = (out / "fewshot.md").read_text()
    assert "help-pixel2" in table and "0.82" in table  # adapter at N = 10: 0.8 + 0.02
    assert f"--fewshot {csv}" in readme  # the command that regenerates it
    capsys.readouterr()
    # a missing or foreign file is refused before any work, in one line
    assert _run_cli(*common, "--fewshot", str(tmp_path / "absent.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such few-shot results file" in err
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "other.csv", index=False)
    assert _run_cli(*common, "--fewshot", str(tmp_path / "other.csv")) == 2
    assert "not an evaluate-adapt results file" in capsys.readouterr().err


def test_cli_device_selection_and_errors(tmp_path, capsys):
    out = tmp_path / "r"
    assert _run_cli("correlation", "--devices", "xeon2c-onnxruntime-fp3", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "unknown dataset key 'xeon2c-onnxruntime-fp3'" in err and BUNDLED in err
    assert _run_cli("pairs", "--devices", "edgetpu", "--data-home", str(tmp_path)) == 2
    assert "latbench import eagle" in capsys.readouterr().err
    assert _run_cli("proxies", "--devices", BUNDLED, "--out", str(out)) == 0
    assert (out / "proxies.png").exists() and not (out / "README.md").exists()
    assert "| xeon2c-onnxruntime-fp32 | flops |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _run_cli("all", "--repeats", "0")


@refdata.needs("help")
def test_cli_all_on_imported_help_datasets(tmp_path):
    from latbench.importers import import_datasets

    home = tmp_path / "home"
    keys = ["help-1080ti-1", "help-pixel3", "help-fpga", "help-raspi4"]
    import_datasets("help", HELP_DIR, data_home=home, keys=keys)
    out = tmp_path / "help"
    rc = _run_cli("all", "--data-home", str(home), "--devices", ",".join(keys), "--out", str(out),
                  "--predictors", "flops", "--repeats", "1", "--max-pairs", "3")  # fmt: skip
    assert rc == 0
    wide = latbench.load_wide(keys, data_home=home)
    both = wide[["help-1080ti-1", "help-pixel3"]].dropna()
    expected = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1])[0]
    m = pd.read_csv(out / "correlation_spearman.csv", index_col=0)
    assert m.loc["help-1080ti-1", "help-pixel3"] == pytest.approx(expected, abs=1e-6)
    assert list(m.columns) == keys
    readme = (out / "README.md").read_text()
    assert "Shown: 3 of 4 datasets" in readme and "HELP" in readme
    assert len(pd.read_csv(out / "predictors.csv")) == len(keys)


def test_result_files_are_replaced_whole_or_not_at_all(tmp_path):
    from latbench.analysis.tables import write_csv, write_text

    class Interrupted(pd.DataFrame):
        def to_csv(self, path, **kw):  # half a table, then Ctrl-C
            Path(path).write_text("a\n1\n")
            raise KeyboardInterrupt

    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    write_csv(pd.DataFrame({"a": [1.5, 2.5]}), csv)
    write_text(md, "# before\n")
    before = csv.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        write_csv(Interrupted({"a": [9]}), csv)
    assert csv.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "t.csv",
        "t.md",
    ]
    assert write_text(md, "# after\n").read_text() == "# after\n"
