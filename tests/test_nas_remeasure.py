"""The noise floor: each computation's re-measurement by isomorphic graphs timed apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latbench.nas import (
    denoised_latency,
    isomorphism_classes,
    oracle_nas,
    remeasured_latency,
    threshold_grid,
)
from latbench.space import N_ARCHS
from tests import refdata


def _instance(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    cls = rng.integers(-1, 8, n)  # -1: invalid
    timing = rng.integers(0, n // 2, n)  # shared timings: copies of one measurement
    base = rng.uniform(1, 5, n // 2)
    lat = base[timing] * 1.0
    lat[rng.random(n) < 0.1] = np.nan
    timing[rng.random(n) < 0.05] = -1
    # a shared timing must carry one class, as a shared pruned graph does
    cls = cls[np.unique(timing, return_inverse=True)[1]]
    return lat, timing, cls


def _brute(lat, timing, cls):
    units = {}
    for i in range(len(lat)):
        if np.isfinite(lat[i]) and cls[i] >= 0 and timing[i] >= 0:
            units.setdefault(int(timing[i]), (int(cls[i]), float(lat[i])))
    re, de = np.full(len(lat), np.nan), np.full(len(lat), np.nan)
    for i in range(len(lat)):
        if not (np.isfinite(lat[i]) and cls[i] >= 0 and timing[i] >= 0):
            continue
        same = [v for u, (c, v) in units.items() if c == cls[i]]
        others = [v for u, (c, v) in units.items() if c == cls[i] and u != timing[i]]
        re[i] = np.mean(others) if others else np.nan
        de[i] = np.median(same)
    return re, de


@pytest.mark.parametrize("seed", range(30))
def test_remeasured_and_denoised_equal_brute_force(seed):
    lat, timing, cls = _instance(seed)
    re, de = _brute(lat, timing, cls)
    np.testing.assert_allclose(remeasured_latency(lat, timing, cls), re, equal_nan=True)
    np.testing.assert_allclose(denoised_latency(lat, timing, cls), de, equal_nan=True)


def test_a_copy_of_one_timing_is_not_a_remeasurement():
    # three architectures share one timing (one pruned graph), a fourth is timed apart
    lat = np.array([2.0, 2.0, 2.0, 3.0])
    timing = np.array([7, 7, 7, 9])
    cls = np.zeros(4, dtype=int)
    np.testing.assert_allclose(remeasured_latency(lat, timing, cls), [3.0, 3.0, 3.0, 2.0])
    np.testing.assert_allclose(denoised_latency(lat, timing, cls), [2.5] * 4)
    alone = remeasured_latency(lat[:3], timing[:3], cls[:3])
    assert np.isnan(alone).all()


def test_nothing_usable_gives_nan_not_an_error():
    lat = np.array([np.nan, 2.0, 3.0])
    cls = np.array([0, -1, 0])  # one without latency, one invalid, one alone
    for f in (remeasured_latency, denoised_latency):
        got = f(lat, np.array([0, 1, 2]), cls)
        assert got.shape == (3,) and np.isnan(got[:2]).all()
        assert np.isnan(f(np.array([]), np.array([]), np.array([]))).size == 0
    assert denoised_latency(lat, np.array([0, 1, 2]), cls)[2] == 3.0


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="3 latencies, 2 timings"):
        remeasured_latency(np.ones(3), np.ones(2), np.ones(3))


def test_isomorphism_classes_refine_nothing_and_join_isomorphs():
    from latbench.predictors.encoding import pruned_graph_index
    from latbench.space import Arch

    cls = isomorphism_classes()
    assert cls.shape == (N_ARCHS,) and not cls.flags.writeable
    graph = pruned_graph_index()
    assert np.array_equal(cls < 0, graph < 0)
    # the same pruned graph is always the same class; the converse joins isomorphs
    frame = pd.DataFrame({"g": graph, "c": cls})[graph >= 0]
    assert frame.groupby("g")["c"].nunique().max() == 1
    assert frame["c"].nunique() < frame["g"].nunique()
    rng = np.random.default_rng(0)
    for a, b in rng.choice(np.flatnonzero(cls >= 0), (200, 2)):
        same = Arch.from_id(int(a)).graph.iso_key == Arch.from_id(int(b)).graph.iso_key
        assert same == (cls[a] == cls[b])


@pytest.mark.parametrize("seed", range(10))
def test_filling_the_gaps_with_the_truth_bounds_the_miss_from_below(seed):
    """Where a model has no re-measurement, its own latency can only lower the misses:
    the published floor is a lower bound whatever another fill would give."""
    rng = np.random.default_rng(seed)
    n = 300
    lat = rng.lognormal(0, 0.4, n)
    acc = rng.normal(60, 5, n)
    est = lat * rng.lognormal(0, 0.05, n)
    gaps = rng.random(n) < 0.3
    grid = threshold_grid(lat)
    floor = oracle_nas(acc, lat, np.where(gaps, lat, est), grid).missed_accuracy
    other = oracle_nas(acc, lat, np.where(gaps, lat * rng.lognormal(0, 0.3, n), est), grid)
    assert np.all(np.nan_to_num(floor) <= np.nan_to_num(other.missed_accuracy) + 1e-12)


def test_the_release_hexagon_dsp_noise_floor_is_above_one_point(tmp_path):
    """The release's Hexagon 690 file: its isomorphic twins agree to a few percent, and
    yet oracle NAS with them as the estimate misses more than one CIFAR-100 point at some
    threshold, because the front holds lucky timings of a computation whose twins are
    slower (docs/analysis.md, "The noise floor")."""
    import latbench
    from latbench.accuracy_table import read_nats_csv, write_accuracy_table
    from latbench.importers import import_path
    from latbench.predictors import usable_rows

    release = refdata.require("latbench-release")
    csv = refdata.require("nb201-accuracy", "nats_bench.csv") / "nats_bench.csv"
    key = "snapdragon-855-dsp-int8"
    import_path("eagle", release, data_home=tmp_path, keys=[key])
    write_accuracy_table(read_nats_csv(csv), {"file": csv.name}, tmp_path)
    frame = latbench.load(key, data_home=tmp_path)
    rows = usable_rows(frame)
    lat = np.full(N_ARCHS, np.nan)
    lat[rows["arch_id"].to_numpy()] = rows["latency_ms"].to_numpy()
    timing = frame["timed_arch_id"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
    est = remeasured_latency(lat, timing, isomorphism_classes())
    twins = np.isfinite(est)
    assert twins.sum() > 10_000
    assert np.median(np.abs(est[twins] / lat[twins] - 1)) < 0.05
    table = latbench.accuracy("cifar100", data_home=tmp_path)
    acc = table["accuracy"].where(table["valid"]).to_numpy()
    keep = np.isfinite(lat) & np.isfinite(acc)
    filled = np.where(twins, est, lat)[keep]
    miss = oracle_nas(acc[keep], lat[keep], filled, threshold_grid(lat[keep])).missed_accuracy
    assert np.nanmax(miss) > 1.0
    # against the denoised truth the same estimate is far closer
    den = denoised_latency(lat, timing, isomorphism_classes())[keep]
    calm = oracle_nas(acc[keep], den, filled, threshold_grid(den)).missed_accuracy
    assert np.nanmean(calm) < np.nanmean(miss)
