"""latbench-analysis nas: oracle NAS, Pareto recovery and evolution wired to real datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_accuracy import write_synthetic_accuracy

import latbench
from latbench.analysis.cli import main as analysis_main
from latbench.analysis.nas import ORACLE_COLUMNS, cross_device

BUNDLED = "xeon2c-onnxruntime-fp32"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data home with a synthetic accuracy table: accuracy grows with log-FLOPs, plus noise."""
    home = tmp_path_factory.mktemp("nas-home")
    write_synthetic_accuracy(home, noise_sd=2.0)
    return home


@pytest.fixture(scope="module")
def run_out(home, tmp_path_factory):
    out = tmp_path_factory.mktemp("nas-out")
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out", str(out),
                        "--predictors", "flops,fewshot", "--fewshot-n", "10", "--ae-steps", "100",
                        "--ae-seeds", "2", "--quiet"])  # fmt: skip
    assert rc == 0
    return out


def test_nas_writes_the_csvs_and_figures(run_out, capsys):
    oracle = pd.read_csv(run_out / "oracle_nas.csv")
    assert tuple(oracle.columns[: len(ORACLE_COLUMNS)]) == ORACLE_COLUMNS
    assert set(oracle["predictor"]) == {"flops", "fewshot-10"}  # measured: zero by construction
    assert set(oracle["device"]) == {BUNDLED}
    for name in ("fig2", "fig3", "figS3"):
        assert (run_out / f"nas_{name}_{BUNDLED}.png").stat().st_size > 10_000
    pareto = pd.read_csv(run_out / "pareto.csv").set_index("predictor")
    assert pareto.loc["measured", "recall"] == 1.0
    assert 0 <= pareto.loc["flops", "recall"] <= 1
    ev = pd.read_csv(run_out / "evolution.csv")
    assert ev.groupby("predictor")["step"].max().eq(100).all()


def test_nas_oracle_rows_agree_with_the_data(run_out, home):
    df = latbench.load(BUNDLED, data_home=home, accuracy="cifar100")
    ok = df[(df.status == "ok") & df.valid]
    oracle = pd.read_csv(run_out / "oracle_nas.csv")
    g = oracle[oracle["predictor"] == "flops"]
    assert g["threshold_ms"].is_monotonic_increasing and g["threshold_ms"].is_unique
    for row in g.iloc[::10].itertuples():
        t = row.threshold_ms + 1e-6  # the CSV rounds to 6 decimals
        under = ok[ok["latency_ms"] <= t]
        assert row.ground_truth_accuracy == pytest.approx(
            under["accuracy_cifar100"].max(), abs=1e-6
        )
        if np.isfinite(row.effective_accuracy):
            eff = ok.set_index("arch_id").loc[row.effective_best]
            assert eff["latency_ms"] <= t  # re-validated on measured latency
            want = row.ground_truth_accuracy - row.effective_accuracy
            assert row.missed_accuracy == pytest.approx(want, abs=2e-6)


def test_a_lower_fewshot_acceptance_misses_no_more_and_says_so(run_out, home, tmp_path):
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out",
                        str(tmp_path), "--predictors", "fewshot", "--fewshot-n", "10",
                        "--ae-steps", "64", "--ae-seeds", "1", "--fewshot-accept", "0.1",
                        "--quiet"])  # fmt: skip
    assert rc == 0
    cols = ["threshold_ms", "missed_accuracy", "false_positives", "revalidations"]
    median, low = (pd.read_csv(d / "oracle_nas.csv").query("predictor == 'fewshot-10'")[cols]
                   .reset_index(drop=True) for d in (run_out, tmp_path))  # fmt: skip
    assert np.allclose(median["threshold_ms"], low["threshold_ms"])
    assert (low["missed_accuracy"].fillna(0) <= median["missed_accuracy"].fillna(0) + 1e-9).all()
    assert low["false_positives"].sum() > median["false_positives"].sum()
    summary = pd.read_csv(tmp_path / "nas_summary.csv").set_index("predictor")
    caveat = summary.loc["fewshot-10", "caveat"]  # the shipped prior holds this very dataset
    assert "P(latency <= threshold) >= 0.1" in caveat and "in-sample" in caveat
    assert summary.loc["fewshot-10", "max_revalidations"] == low["revalidations"].max()
    report = (tmp_path / "nas.md").read_text()
    assert "probability of at least 0.1" in report and "few-shot N=10 *" in report


def test_nas_markdown_names_provenance(home, tmp_path, capsys):
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out",
                        str(tmp_path), "--predictors", "flops", "--ae-steps", "64",
                        "--ae-seeds", "1", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "NATS-Bench" in out and "seed 888" in out and "| FLOPs fit |" in out


def test_nas_without_accuracy_says_how_to_get_it(tmp_path, capsys):
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "latbench fetch nb201-accuracy" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--predictors", "flops,oracle"], "unknown predictor(s) oracle"),
        (["--accuracy", "mnist"], "unknown accuracy dataset 'mnist'"),
        (["--prior", "/nonexistent/prior.npz"], "no such prior file"),
    ],
)
def test_nas_bad_options_are_one_line(home, tmp_path, capsys, args, message):
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out",
                        str(tmp_path), *args])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_too_few_evolution_steps_is_a_usage_error(home, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out",
                       str(tmp_path), "--ae-steps", "32"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert "--ae-steps: must be at least 64, the population" in err
    assert not list(tmp_path.iterdir())


def _brute_cross(lat_a, lat_b, acc, grid):
    n = len(acc)
    front = [i for i in range(n) if not any(
        lat_a[j] <= lat_a[i] and acc[j] >= acc[i] and (lat_a[j] < lat_a[i] or acc[j] > acc[i])
        for j in range(n))]  # fmt: skip
    losses = []
    for t in grid:
        best = max((acc[i] for i in range(n) if lat_b[i] <= t), default=None)
        best_f = max((acc[i] for i in front if lat_b[i] <= t), default=None)
        if best_f is not None:
            losses.append(best - best_f)
    return np.mean(losses), np.max(losses)


@pytest.mark.parametrize("seed", range(5))
def test_cross_device_equals_brute_force(seed):
    from latbench.nas import threshold_grid

    rng = np.random.default_rng(seed)
    n = 40
    acc = pd.Series(rng.integers(0, 20, n).astype(float), index=np.arange(n) * 3)
    a = pd.Series(rng.random(n), index=acc.index)
    b = pd.Series(np.where(rng.random(n) < 0.5, a, rng.random(n)), index=acc.index)
    table = cross_device({"A": a, "B": b}, acc).set_index(["searched_on", "deployed_on"])
    mean, mx = _brute_cross(a.to_numpy(), b.to_numpy(), acc.to_numpy(), threshold_grid(b))
    assert table.loc[("A", "B"), "mean_lost_accuracy"] == pytest.approx(mean)
    assert table.loc[("A", "B"), "max_lost_accuracy"] == pytest.approx(mx)
    same = cross_device({"A": a, "A2": a.copy()}, acc)
    assert (same["max_lost_accuracy"] == 0).all()


def test_fewshot_nas_source_is_measured_where_measured(home):
    from latbench.analysis.nas_sources import label, latency_sources, source_names

    assert source_names(["fewshot", "fewshot-nas"], [10, 20]) == [
        "fewshot-10", "fewshot-20", "fewshot-nas-10", "fewshot-nas-20"]  # fmt: skip
    assert label("fewshot-nas-20") == "few-shot NAS N=20 (meas.+pred.)"
    frame = latbench.load(BUNDLED)
    acc = latbench.accuracy("cifar100", data_home=home)["accuracy"].to_numpy()
    lat, skipped, _ = latency_sources(frame, ["fewshot-10", "fewshot-nas-10"], accuracy=acc)
    measured, est = lat["measured"], lat["fewshot-nas-10"]
    same = np.isfinite(est) & (est == measured)
    assert same.sum() == 10  # the ten it measured; a prediction never lands on one exactly
    assert not skipped
    _, skipped, _ = latency_sources(frame, ["fewshot-nas-10"])
    assert "accuracy" in skipped["fewshot-nas-10"]


def test_the_remeasured_floor_uses_other_timings_of_the_same_computation(home, tmp_path):
    """The bundled set times one graph per pruned graph; isomorphic graphs timed apart
    re-measure each other, and the report says the floor is no predictor."""
    from latbench.analysis.nas_sources import latency_sources
    from latbench.nas import isomorphism_classes

    frame = latbench.load(BUNDLED, data_home=home)
    lat, skipped, _ = latency_sources(frame, ["remeasured"])
    assert not skipped
    measured, floor = lat["measured"], lat["remeasured"]
    ok = np.isfinite(measured)
    assert np.array_equal(np.isfinite(floor), ok)
    cls = isomorphism_classes()
    timed = frame.set_index("arch_id")["timed_arch_id"]
    differs = ok & (floor != measured)
    assert differs.sum() > 1000
    for a in np.flatnonzero(differs)[::500]:
        others = np.flatnonzero(ok & (cls == cls[a]))
        apart = {int(timed[o]): measured[o] for o in others if timed[o] != timed[a]}
        assert floor[a] == pytest.approx(np.mean(list(apart.values())))
    # one timing per computation: nothing re-measures anything
    first = frame[frame["status"] == "ok"].assign(c=lambda d: cls[d["arch_id"].to_numpy()])
    lone = frame[frame["arch_id"].isin(first.drop_duplicates("c")["arch_id"])]
    _, skipped, _ = latency_sources(lone, ["remeasured"])
    assert "no computation was timed more than once" in skipped["remeasured"]
    # no timed_arch_id recorded: timings cannot be told apart, and the reason says so
    untold = frame.assign(timed_arch_id=pd.array([pd.NA] * len(frame), dtype="Int32"))
    _, skipped, _ = latency_sources(untold, ["remeasured"])
    assert "timed_arch_id is empty" in skipped["remeasured"]
    # HELP and HW-NAS-Bench timed unpruned cells: isomorphic pruned graphs differ in work
    cells = frame.copy()
    cells.attrs["metadata"] = {**frame.attrs["metadata"], "imported_from": {"importer": "help"}}
    _, skipped, _ = latency_sources(cells, ["remeasured"])
    assert "unpruned cells" in skipped["remeasured"]
    rc = analysis_main(["nas", "--devices", BUNDLED, "--data-home", str(home), "--out",
                        str(tmp_path), "--predictors", "remeasured", "--ae-steps", "64",
                        "--ae-seeds", "1", "--quiet"])  # fmt: skip
    assert rc == 0
    summary = pd.read_csv(tmp_path / "nas_summary.csv").set_index("predictor")
    assert summary.loc["remeasured", "max_missed_accuracy"] >= 0
    assert "noise floor" in (tmp_path / "nas.md").read_text()
