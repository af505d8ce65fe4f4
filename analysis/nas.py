"""What a latency estimate's error costs in NAS (the paper's Figures 2, 3 and S3).

For every dataset analysed, with NAS-Bench-201 accuracy (:func:`latbench.accuracy`):
oracle NAS over a grid of latency thresholds (Supplementary S1.3), the share of the
measured Pareto front each estimate recovers, and Aging Evolution under a latency
limit; then, across datasets, the accuracy lost by deploying on device B the
architectures that are Pareto-optimal on device A. The computations are
:mod:`latbench.nas`; the latency sources :mod:`latbench.analysis.nas_sources`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from latbench.analysis.data import Datasets
from latbench.analysis.nas_sources import label, latency_sources, source_names
from latbench.nas import (
    InfeasibleLimit,
    aging_evolution,
    front_recovery,
    iqr_curves,
    oracle_nas,
    threshold_grid,
)
from latbench.nas.pareto import pareto_front

__all__ = [
    "AE_MAX_SEEDS",
    "AE_MAX_STEPS",
    "AE_POPULATION",
    "AE_SAMPLE",
    "DEFAULT_FEWSHOT_NS",
    "DEFAULT_NAS_PREDICTORS",
    "DeviceNAS",
    "NasError",
    "NasOptions",
    "ORACLE_COLUMNS",
    "check_options",
    "cross_device",
    "device_nas",
    "summary_table",
]

DEFAULT_NAS_PREDICTORS = ("flops", "layerwise", "gcn", "fewshot", "remeasured")
DEFAULT_FEWSHOT_NS = (20,)
AE_POPULATION = 64
"""Aging Evolution's population (Supplementary S3.1)."""
AE_SAMPLE = 16
"""Aging Evolution's sample size (Supplementary S3.1)."""
AE_MAX_STEPS = 100_000
"""Most Aging Evolution steps per search (100 times the paper's); its curves are held
in memory, seeds x steps."""
AE_MAX_SEEDS = 1_000
"""Most Aging Evolution searches per latency source."""
AE_MIN_MEASURED = 0.9
"""Share of valid architectures a dataset must measure for Aging Evolution to run on it."""
ORACLE_COLUMNS = (
    "device", "predictor", "threshold_ms", "false_positives", "false_negatives",
    "missed_accuracy", "overclaimed_accuracy", "missed_latency_error_ms",
    "overclaimed_latency_error_ms",
)  # fmt: skip
"""The first columns of ``oracle_nas.csv`` (more follow: the three bests and their accuracies)."""


class NasError(ValueError):
    """Options the datasets cannot satisfy (a few-shot N larger than a dataset's
    measurements, a latency limit below every measured model), found before any work."""


@dataclass(frozen=True)
class NasOptions:
    """Parameters of the NAS analysis."""

    accuracy: str = "cifar100"
    predictors: tuple[str, ...] = DEFAULT_NAS_PREDICTORS
    fewshot_ns: tuple[int, ...] = DEFAULT_FEWSHOT_NS
    n_train: int = 900
    n_val: int = 100
    seed: int = 0
    gcn_epochs: int | None = 20
    """GCN epoch cap (None: Table S1's up to 250 with early stopping)."""
    ae_steps: int = 1000
    ae_seeds: int = 20
    limit_ms: float | None = None
    """Aging Evolution's latency limit (None: each dataset's median measured latency)."""
    prior: str | None = None
    """Few-shot prior file (None: the shipped one)."""
    fewshot_accept: float = 0.5
    """Few-shot estimates accept a model at ``t`` when ``P(lat <= t)`` reaches this
    (0.5: their median; :func:`~latbench.predictors.fewshot.nasaware.acceptance_estimate`)."""
    fewshot_strict: bool = True
    """A few-shot N above a dataset's measured distinct graphs is an error (``nas``, where
    N was asked for); else that estimate is left out for that dataset, saying why (``all``)."""

    def sources(self) -> list[str]:
        """Latency sources compared (predictors, ``fewshot`` expanded per N)."""
        return source_names(self.predictors, self.fewshot_ns)


@dataclass
class DeviceNAS:
    """The NAS analysis of one dataset."""

    key: str
    arch_ids: np.ndarray
    """Models analysed: valid, measured, with accuracy (positions of the arrays below)."""
    accuracy: np.ndarray
    latency: dict[str, np.ndarray]
    """Source -> latency of each analysed model (``measured`` first)."""
    oracle: pd.DataFrame
    pareto: pd.DataFrame
    evolution: pd.DataFrame
    limit_ms: float
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """Source -> caveat (e.g. a few-shot prior pretrained on this very dataset)."""


def _by_arch(accuracy: pd.Series) -> np.ndarray:
    from latbench.space import N_ARCHS

    return accuracy.reindex(np.arange(N_ARCHS)).to_numpy(dtype=np.float64)


def _positions_to_ids(pos: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(pos >= 0, ids[np.maximum(pos, 0)], -1)


def device_nas(
    key: str,
    frame: pd.DataFrame,
    accuracy: pd.Series,
    options: NasOptions,
    *,
    layers: Any = None,
    log: Callable[[str], None] | None = None,
) -> DeviceNAS:
    """Oracle NAS, Pareto recovery and Aging Evolution on one dataset.

    ``accuracy`` is indexed by ``arch_id`` (percent).
    """
    from latbench.predictors.encoding import valid_mask

    say = log or (lambda _m: None)
    gcn = {"max_epochs": options.gcn_epochs} if options.gcn_epochs else None
    full, skipped, notes = latency_sources(frame, options.sources(), n_train=options.n_train,
                                           n_val=options.n_val, seed=options.seed,
                                           layers=layers, gcn_options=gcn, log=say,
                                           key=key, prior=options.prior,
                                           accuracy=_by_arch(accuracy),
                                           fewshot_accept=options.fewshot_accept)  # fmt: skip
    acc_full = _by_arch(accuracy)
    keep = np.isfinite(acc_full) & np.all([np.isfinite(v) for v in full.values()], axis=0)
    ids = np.flatnonzero(keep)
    acc = acc_full[ids]
    lat = {name: v[ids] for name, v in full.items()}
    measured = lat["measured"]
    grid = threshold_grid(measured)
    oracle_rows, pareto_rows = [], []
    for name, pred in lat.items():
        res = oracle_nas(acc, measured, pred, grid).as_dict()
        for k in ("ground_truth_best", "assumed_best", "effective_best"):
            res[k] = _positions_to_ids(res[k], ids)
        oracle_rows.append(pd.DataFrame({"device": key, "predictor": name, **res}))
        pareto_rows.append(
            {"device": key, "predictor": name, **front_recovery(measured, pred, acc)}
        )
    limit = options.limit_ms or float(np.median(measured))
    curves = []
    n_valid = int(valid_mask().sum())
    if len(ids) < AE_MIN_MEASURED * n_valid:
        # the search's children would mostly be unmeasured: no truth to judge them by
        skipped["aging evolution"] = (
            f"{len(ids)} of {n_valid} architectures measured; it needs (almost) all"
        )
    elif not (measured <= limit).any():  # --limit-ms below this device's fastest model
        skipped["aging evolution"] = (
            f"no model measured under the {limit:.3g} ms limit (fastest {measured.min():.3g} ms)"
        )
    else:
        say(f"  aging evolution: {options.ae_seeds} seeds x {options.ae_steps} steps,"
            f" limit {limit:.3g} ms")  # fmt: skip
    ae_sources = {} if "aging evolution" in skipped else full
    for name, v in ae_sources.items():
        say(f"    {label(name)}")
        try:
            res = aging_evolution(acc_full, v, full["measured"], limit, steps=options.ae_steps,
                                  population=AE_POPULATION, sample=AE_SAMPLE,
                                  seeds=options.ae_seeds)  # fmt: skip
        except InfeasibleLimit as exc:  # a source admitting no model (or too few) under it
            if name == "measured":  # no true search to set the estimates' against
                skipped["aging evolution"] = str(exc)
                break
            skipped[f"aging evolution with {label(name)}"] = str(exc)
            continue
        q25, med, q75 = iqr_curves(res.effective)
        _, assumed, _ = iqr_curves(res.assumed)
        curves.append(pd.DataFrame({
            "device": key, "predictor": name, "step": np.arange(1, options.ae_steps + 1),
            "q25": q25, "median": med, "q75": q75, "assumed_median": assumed,
        }))  # fmt: skip
    # typed when empty: concatenated with other devices' curves, object columns would
    # turn theirs to objects too, which the CSV's float format skips
    evolution = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame({
        "device": pd.Series(dtype=object), "predictor": pd.Series(dtype=object),
        "step": pd.Series(dtype=np.int64),
        **{c: pd.Series(dtype=np.float64) for c in ("q25", "median", "q75", "assumed_median")},
    })  # fmt: skip
    return DeviceNAS(
        key=key,
        arch_ids=ids,
        accuracy=acc,
        latency=lat,
        oracle=pd.concat(oracle_rows, ignore_index=True),
        pareto=pd.DataFrame(pareto_rows),
        evolution=evolution,
        limit_ms=limit,
        skipped=skipped,
        notes=notes,
    )


def summary_table(results: Sequence[DeviceNAS]) -> pd.DataFrame:
    """One row per dataset and latency source: the oracle, Pareto and evolution figures."""
    rows = []
    for r in results:
        last = r.evolution[r.evolution["step"] == r.evolution["step"].max()]
        ev = last.set_index("predictor").reindex(list(r.latency))
        front = r.pareto.set_index("predictor")
        for name, g in r.oracle.groupby("predictor", sort=False):
            miss = g["missed_accuracy"]
            rows.append({
                "device": r.key,
                "predictor": name,
                "caveat": r.notes.get(name, ""),
                "max_missed_accuracy": float(miss.max()),
                "mean_missed_accuracy": float(miss.mean()),
                "thresholds_missed": int((miss > 0).sum()),
                "thresholds_no_model": int(miss.isna().sum()),
                "thresholds": len(g),
                "max_overclaimed_accuracy": float(g["overclaimed_accuracy"].max()),
                "median_revalidations": float(g["revalidations"].median()),
                "max_revalidations": int(g["revalidations"].max()),
                "mean_false_positives": float(g["false_positives"].mean()),
                "front_recall": float(front.loc[name, "recall"]),
                "front_precision": float(front.loc[name, "precision"]),
                "ae_limit_ms": r.limit_ms,
                "ae_final_median": float(ev.loc[name, "median"]),
                "ae_final_q25": float(ev.loc[name, "q25"]),
                "ae_final_q75": float(ev.loc[name, "q75"]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def cross_device(latency: Mapping[str, pd.Series], accuracy: pd.Series) -> pd.DataFrame:
    """Accuracy lost on device B by the architectures Pareto-optimal on device A.

    For each ordered pair and every threshold ``t`` of B's grid (:func:`threshold_grid`):
    ``loss(t) = max {acc(s) : lat_B(s) <= t} - max {acc(s) : s on A's front, lat_B(s) <= t}``
    over the models both measured; rows hold its mean and maximum over the grid and the
    number of thresholds at which no model of A's front fits (left out of both).
    """
    keys = list(latency)
    table = pd.DataFrame({k: latency[k] for k in keys})
    table["acc"] = accuracy.reindex(table.index)
    rows = []
    for a in keys:
        for b in keys:
            if a == b:
                continue
            d = table[[a, b, "acc"]].dropna()
            acc = d["acc"].to_numpy()
            front = pareto_front(d[a].to_numpy(), acc)
            lat_b = d[b].to_numpy()
            grid = threshold_grid(lat_b)
            fits = lat_b[None, :] <= grid[:, None]
            best = np.where(fits, acc, -np.inf).max(axis=1)
            best_front = np.where(fits & front, acc, -np.inf).max(axis=1)
            loss = np.where(np.isfinite(best_front), best - best_front, np.nan)
            rows.append({
                "searched_on": a, "deployed_on": b, "front_size": int(front.sum()),
                "common_models": len(d), "mean_lost_accuracy": float(np.nanmean(loss)),
                "max_lost_accuracy": float(np.nanmax(loss)),
                "thresholds_without_front_model": int(np.isnan(loss).sum()),
            })  # fmt: skip
    return pd.DataFrame(rows)


def check_options(data: Datasets, options: NasOptions) -> None:
    """Raise :class:`NasError` when ``options`` ask what ``data`` cannot give, before the
    first dataset's hours of work: a few-shot N above a dataset's measured distinct
    graphs (the design picks one model per graph), or a latency limit under every
    measured model of every dataset Aging Evolution would search."""
    from latbench.analysis.nas_sources import distinct_graphs
    from latbench.predictors import usable_rows
    from latbench.predictors.encoding import valid_mask

    few = [s for s in options.sources() if s.startswith("fewshot-")]
    n_few = max(options.fewshot_ns) if few else 0
    n_valid = int(valid_mask().sum())
    fastest: dict[str, float] = {}
    for key, frame in data.frames.items():
        rows = usable_rows(frame)
        distinct = distinct_graphs(rows["arch_id"].to_numpy(dtype=np.int64))
        if n_few > distinct and options.fewshot_strict:
            raise NasError(
                f"--fewshot-n {n_few}: {key} measured {distinct} distinct pruned graphs (the"
                f" few-shot design takes one model of each), fewer than {n_few}; lower --fewshot-n"
            )
        if len(rows) >= AE_MIN_MEASURED * n_valid:
            fastest[key] = float(rows["latency_ms"].min())
    limit = options.limit_ms
    if limit is not None and fastest and all(v > limit for v in fastest.values()):
        shown = ", ".join(f"{k} {v:.3g} ms" for k, v in fastest.items())
        raise NasError(
            f"--limit-ms {limit:g}: below every measured model, Aging Evolution would find"
            f" none (fastest: {shown})"
        )


def run_nas(
    data: Datasets,
    options: NasOptions,
    *,
    data_home: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[DeviceNAS], pd.Series]:
    """:func:`device_nas` on every dataset; returns the results and the accuracy used."""
    import latbench
    from latbench.analysis.nas_sources import default_layers

    say = log or (lambda _m: None)
    acc = latbench.accuracy(options.accuracy, data_home=data_home)["accuracy"]
    check_options(data, options)
    results = []
    for i, (key, frame) in enumerate(data.frames.items(), 1):
        say(f"nas [{i}/{len(data.frames)}] {key}: latency sources {', '.join(options.sources())}")
        layers = (
            default_layers(key, frame, data_home) if "layerwise" in options.predictors else None
        )
        results.append(device_nas(key, frame, acc, options, layers=layers, log=say))
    return results, acc


def write_nas(
    data: Datasets,
    out: str | os.PathLike[str],
    options: NasOptions,
    *,
    data_home: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Compute and write the NAS results into ``out`` (see :mod:`latbench.analysis.nas_report`)."""
    from latbench.analysis.nas_report import write_nas_results

    results, acc = run_nas(data, options, data_home=data_home, log=log)
    return write_nas_results(results, acc, out, options, log=log)


def sources_label(names: Sequence[str]) -> str:
    """``FLOPs fit, GCN, few-shot N=20`` for the report."""
    return ", ".join(label(n) for n in names)
