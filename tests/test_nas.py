"""latbench.nas: Pareto fronts, oracle NAS (S1.3) and Aging Evolution, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import refdata

import latbench
from latbench.nas import (
    aging_evolution,
    front_recovery,
    iqr_curves,
    mutate,
    oracle_nas,
    pareto_front,
    threshold_grid,
)
from latbench.space import N_ARCHS, from_id

ACC_CSV = refdata.ref_dir("nb201-accuracy") / "nats_bench.csv"
needs_csv = refdata.needs("nb201-accuracy", "nats_bench.csv")


def _instance(seed: int, n: int, levels: int = 6):
    # few distinct values, so ties in accuracy, latency and with thresholds are common
    rng = np.random.default_rng(seed)
    acc = rng.integers(0, levels, n).astype(float)
    lat = rng.integers(1, levels + 1, n).astype(float)
    pred = np.where(rng.random(n) < 0.5, lat, rng.integers(1, levels + 1, n)).astype(float)
    return acc, lat, pred


def _brute_front(lat, acc):
    n = len(lat)
    return np.array(
        [
            not any(
                lat[j] <= lat[i] and acc[j] >= acc[i] and (lat[j] < lat[i] or acc[j] > acc[i])
                for j in range(n)
            )
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("seed", range(40))
def test_pareto_front_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    acc, lat, _ = _instance(seed, n, levels=int(rng.integers(2, 8)))
    assert np.array_equal(pareto_front(lat, acc), _brute_front(lat, acc))


def test_front_recovery_counts_the_common_models():
    lat = np.array([1.0, 2.0, 3.0, 4.0])
    acc = np.array([10.0, 20.0, 15.0, 30.0])  # measured front: 0, 1, 3
    pred = np.array([1.0, 5.0, 3.0, 4.0])  # predicted front: 0, 2, 3
    r = front_recovery(lat, pred, acc)
    assert r == {"measured_front": 3, "predicted_front": 3, "common": 2,
                 "recall": 2 / 3, "precision": 2 / 3}  # fmt: skip
    assert front_recovery(lat, lat, acc)["recall"] == 1.0
    with pytest.raises(ValueError, match="finite"):
        pareto_front([1.0, np.nan], [1.0, 2.0])


def _brute_oracle(acc, lat, pred, t):
    """S1.3 from the set definitions, with the argmax tie-break of the lowest index."""
    S = range(len(acc))
    Pf = [s for s in S if pred[s] <= t and lat[s] > t]
    Nf = [s for s in S if pred[s] > t and lat[s] <= t]
    Pt = [s for s in S if pred[s] <= t and lat[s] <= t]
    P = [s for s in S if lat[s] <= t]

    def argmax(xs):
        return min(xs, key=lambda s: (-acc[s], s)) if xs else None

    s_f, s_p, s_star = argmax(Pf + Pt), argmax(Pt), argmax(P)

    def a(s):
        return np.nan if s is None else acc[s]

    miss_err = pred[s_star] - lat[s_star] if s_star is not None and s_star != s_p else 0.0
    over_err = pred[s_f] - lat[s_f] if s_f is not None and s_f != s_p else 0.0
    ahead = [s for s in Pf if s_p is None or (-acc[s], s) < (-acc[s_p], s_p)]
    return {
        "false_positives": len(Pf),
        "false_negatives": len(Nf),
        "ground_truth_best": -1 if s_star is None else s_star,
        "assumed_best": -1 if s_f is None else s_f,
        "effective_best": -1 if s_p is None else s_p,
        "missed_accuracy": a(s_star) - a(s_p),
        "overclaimed_accuracy": a(s_f) - a(s_p),
        "missed_latency_error_ms": miss_err,
        "overclaimed_latency_error_ms": over_err,
        "revalidations": len(ahead),
    }


@pytest.mark.parametrize("seed", range(60))
def test_oracle_nas_equals_brute_force_on_every_s13_quantity(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(1, 25))
    acc, lat, pred = _instance(seed, n)
    if seed % 3 == 0:  # continuous values too
        acc, lat, pred = rng.random(n) * 100, rng.random(n) * 5, rng.random(n) * 5
    thresholds = np.r_[np.arange(0.0, 8.0, 0.5), lat[:3]]  # on and between the values
    got = oracle_nas(acc, lat, pred, thresholds).as_dict()
    for k, t in enumerate(thresholds):
        want = _brute_oracle(acc, lat, pred, t)
        for name, value in want.items():
            np.testing.assert_equal(got[name][k], value, err_msg=f"{name} at t={t}")


def test_oracle_nas_refuses_mismatched_or_nan_inputs():
    with pytest.raises(ValueError, match="one accuracy"):
        oracle_nas([1.0], [1.0, 2.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="predicted holds NaN"):
        oracle_nas([1.0], [1.0], [np.nan], [1.0])


def test_threshold_grid_is_the_percentiles():
    lat = np.arange(1, 102, dtype=float)  # percentile p is 1 + p
    grid = threshold_grid(lat)
    assert len(grid) == 97 and grid[0] == 3.0 and grid[-1] == 99.0


def test_mutate_changes_exactly_one_edge_uniformly():
    rng = np.random.default_rng(0)
    seen = set()
    for aid in rng.integers(0, N_ARCHS, 300):
        child = mutate(int(aid), rng)
        diff = [
            i
            for i, (a, b) in enumerate(zip(from_id(int(aid)), from_id(child), strict=True))
            if a != b
        ]
        assert len(diff) == 1
        seen.add((diff[0], from_id(child)[diff[0]]))
    assert {e for e, _ in seen} == set(range(6)) and {o for _, o in seen} == set(range(5))


def _toy_space(seed=0):
    rng = np.random.default_rng(seed)
    acc = rng.random(N_ARCHS) * 100
    lat = rng.random(N_ARCHS) * 10
    return acc, lat


def test_aging_evolution_with_the_truth_finds_what_it_claims():
    acc, lat = _toy_space()
    res = aging_evolution(acc, lat, lat, 5.0, steps=300, population=20, sample=5, seeds=4)
    assert res.effective.shape == (4, 300)
    np.testing.assert_array_equal(res.effective, res.assumed)
    assert np.all(np.diff(res.effective, axis=1) >= 0)
    assert np.nanmax(res.effective) <= acc[lat <= 5.0].max()
    # seeded: the same seeds give the same curves, other seeds others
    again = aging_evolution(acc, lat, lat, 5.0, steps=300, population=20, sample=5, seeds=4)
    np.testing.assert_array_equal(again.effective, res.effective)
    other = aging_evolution(acc, lat, lat, 5.0, steps=300, population=20, sample=5, seeds=[7])
    assert not np.array_equal(other.effective[0], res.effective[0])


def test_aging_evolution_with_a_wrong_latency_over_claims():
    acc, lat = _toy_space(1)
    # a predictor that thinks the accurate half is fast
    pred = np.where(acc > 50, 1.0, lat)
    res = aging_evolution(acc, pred, lat, 5.0, steps=400, population=20, sample=5, seeds=3)
    assert np.all(res.assumed >= np.nan_to_num(res.effective, nan=-1))
    assert np.any(res.assumed[:, -1] > res.effective[:, -1])
    assert res.rejected.sum() > 0


def test_aging_evolution_beats_random_search():
    acc, lat = _toy_space(2)
    res = aging_evolution(acc, lat, lat, 5.0, steps=500, population=32, sample=8, seeds=8)
    q25, med, q75 = iqr_curves(res.effective)
    assert q25[-1] <= med[-1] <= q75[-1]
    # random search over 500 feasible models reaches the (1 - 1/500) quantile on average;
    # the evolution, exploiting accuracy, should be above the median of the feasible
    assert med[-1] > np.median(acc[lat <= 5.0])
    assert med[-1] >= med[63]


def test_aging_evolution_refuses_an_impossible_limit():
    acc, lat = _toy_space()
    with pytest.raises(ValueError, match="no architecture"):
        aging_evolution(acc, lat, lat, 0.0, steps=100, population=10, sample=3, seeds=1)
    with pytest.raises(ValueError, match="one value per arch_id"):
        aging_evolution(acc[:10], lat, lat, 1.0)


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    from latbench.importers.nb201_accuracy import import_accuracy

    home = tmp_path_factory.mktemp("nas-home")
    import_accuracy(ACC_CSV, home)
    return home


@needs_csv
def test_oracle_nas_on_real_data_with_the_truth_misses_nothing(real_home):
    df = latbench.load("xeon2c-onnxruntime-fp32", data_home=real_home, accuracy="cifar100")
    ok = df[(df.status == "ok") & df.valid]
    acc, lat = ok["accuracy_cifar100"].to_numpy(), ok["latency_ms"].to_numpy()
    res = oracle_nas(acc, lat, lat, threshold_grid(lat))
    for name in ("false_positives", "false_negatives", "missed_accuracy", "overclaimed_accuracy",
                 "missed_latency_error_ms", "overclaimed_latency_error_ms"):  # fmt: skip
        assert np.all(getattr(res, name) == 0), name
    assert np.array_equal(res.ground_truth_best, res.effective_best)
    # a FLOPs-proportional estimate does miss some
    flops = ok["flops"].to_numpy(dtype=float)
    pred = flops * (lat.sum() / flops.sum())
    worse = oracle_nas(acc, lat, pred, threshold_grid(lat))
    assert worse.false_positives.sum() > 0 and np.nanmax(worse.missed_accuracy) > 0
    front = front_recovery(lat, lat, acc)
    assert front["recall"] == 1.0 and front["measured_front"] >= 5
