"""Leave-one-device-out evaluation of few-shot adaptation (docs/design.md §10), with baselines.

For each target dataset a prior is pretrained on its sources only, then for every N
and repeat the adapter picks N architectures (designed selection from a seeded random
candidate pool; the seed varies the pool and the tie-breaks), "measures" them by
reading the target's table, fits, and is scored on *every* valid architecture the
target has: Spearman, share within +-10 %, and coverage of the 90 % band.

Protocols: ``siblings`` (every other dataset except the target's siblings, see
:mod:`~latbench.predictors.fewshot.siblings`), ``class`` (also every dataset of the
target's device class, :func:`~latbench.predictors.fewshot.siblings.device_class`:
transfer to a kind of hardware no source is), ``help`` (HELP's meta-train devices
only, for HELP's meta-test targets) and ``shipped`` (a given prior, by default the
shipped one, adapted as is on the targets it was not trained on: what a user gets).
Baselines, scored on the same N architectures as the adapter (its designed draw;
random N when the adapter is not run): ``flops`` (log-latency linear in log-FLOPs),
``best-source`` (the source whose log-latencies correlate best with the target's on
the N, rescaled by a linear fit), ``gcn`` (the paper's GCN trained from scratch on the
N; expensive, so fewer repeats); ``adapter-random`` is the adapter on N random
architectures (the value of the design).

Each target's prior sees its sources the way the target was timed
(:func:`~latbench.predictors.fewshot.prior.source_view`): a target that timed pruned
graphs (the release, this harness) gets sources in the ``pruned`` view, one that timed
unpruned cells (HELP) gets them as timed; ``best-source`` draws from the same view.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latbench.predictors.base import PredictorError
from latbench.predictors.fewshot.adapter import FewShotAdapter
from latbench.predictors.fewshot.prior import DevicePrior, pretrain, source_view, view_for
from latbench.predictors.fewshot.selection import select_archs
from latbench.predictors.fewshot.siblings import device_class, sources_for

__all__ = [
    "HELP_META_TEST",
    "HELP_META_TRAIN",
    "HELP_PUBLISHED",
    "METHODS",
    "PROTOCOLS",
    "dataset_group",
    "evaluate_adapt",
    "group_table",
    "plan_targets",
]

_help = lambda names: tuple(f"help-{n.replace('_', '-')}" for n in names.split())  # noqa: E731
HELP_META_TRAIN = _help(
    "1080ti_1 1080ti_32 1080ti_256 silver_4114 silver_4210r samsung_a50 pixel3 "
    "essential_ph_1 samsung_s7"
)
"""HELP's NAS-Bench-201 meta-train devices (its run scripts), as LatBench keys."""
HELP_META_TEST = _help("titan_rtx_256 gold_6226 fpga pixel2 raspi4 eyeriss")
"""HELP's meta-test devices."""
HELP_PUBLISHED = dict(zip(HELP_META_TEST, (0.987, 0.989, 0.985, 0.802, 0.890, 0.940), strict=True))
"""HELP's published Spearman with 10 samples (NeurIPS 2021, NAS-Bench-201); mean 0.932."""
PROTOCOLS = ("siblings", "class", "help", "shipped")
METHODS = ("adapter", "adapter-random", "flops", "best-source", "gcn")


def dataset_group(key: str, metadata: Mapping[str, Any] | None = None) -> str:
    """``help-meta-test``, ``latbench-release``, ``help``, ``measured`` or ``other``."""
    meta = metadata or {}
    imported = meta.get("imported_from") if isinstance(meta.get("imported_from"), Mapping) else {}
    if key in HELP_META_TEST:
        return "help-meta-test"
    if imported.get("importer") == "eagle":
        return "latbench-release"
    if imported.get("importer") == "help":
        return "help"
    if "harness_version" in meta:
        return "measured"
    return "other"


def _seed(*parts: object) -> np.random.SeedSequence:
    return np.random.SeedSequence([zlib.crc32(str(p).encode()) for p in parts])


def _spearman(rank_true: np.ndarray, pred: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(pred)
    r = r - r.mean()
    denom = np.sqrt((r @ r) * (rank_true @ rank_true))
    # a constant prediction (N = 1 baselines) ranks nothing: NaN, without numpy's warning
    return float(r @ rank_true / denom) if denom > 0 else float("nan")


def _sources(
    protocol: str,
    target: str,
    pool: Sequence[str],
    metas: Mapping[str, Any],
    mode: str,
) -> list[str]:
    """The sources a target's prior is pretrained on under ``protocol``."""
    if protocol == "help":
        return list(HELP_META_TRAIN)
    srcs = sources_for(target, pool, metas, mode)
    if protocol == "class":
        mine = device_class(target, metas.get(target))
        if mine != "other":
            srcs = [k for k in srcs if device_class(k, metas.get(k)) != mine]
    return srcs


def evaluate_adapt(
    matrix: pd.DataFrame,
    targets: Iterable[str] | None = None,
    *,
    protocol: str = "siblings",
    mode: str = "chip",
    ns: Sequence[int] = (5, 10, 20, 50),
    repeats: int = 20,
    seed: int = 0,
    methods: Sequence[str] = ("adapter", "adapter-random", "flops", "best-source"),
    pool: int | None = 4000,
    sources: Sequence[str] | None = None,
    prior: DevicePrior | None = None,
    gcn_repeats: int = 2,
    gcn_ns: Sequence[int] = (10,),
    gcn_options: Mapping[str, Any] | None = None,
    prior_options: Mapping[str, Any] | None = None,
    adapter_options: Mapping[str, Any] | None = None,
    selection_options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per target, method, N and repeat (see module doc).

    ``matrix`` is a :func:`~latbench.predictors.fewshot.prior.source_matrix` of every
    dataset that may serve as target or source. ``sources`` fixes the datasets sources
    are drawn from (default: every column; each must be in ``matrix``), so a figure does
    not move when more files are imported. ``prior`` (protocol ``shipped``, default the
    shipped one) is adapted as is, on the targets it was not trained on. ``matrix`` holds
    the sources as timed; each target's prior sees them in the target's own view (module
    doc; ``shipped``: the prior's). Columns: target, group, class, protocol, mode, view,
    method, draw, n, repeat, spearman, within_10pct, coverage_90, model, n_sources, seconds.
    """
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        raise PredictorError(f"unknown method(s) {', '.join(bad)}; choose from {METHODS}")
    if protocol == "shipped" and prior is None:
        from latbench.predictors.fewshot.prior import load_prior

        prior = load_prior()
    plan = plan_targets(matrix, targets, protocol=protocol, mode=mode, ns=ns, sources=sources,
                        prior=prior)  # fmt: skip
    metas = matrix.attrs.get("metadata", {}) or {}
    keys = [str(c) for c in matrix.columns]
    lat = matrix.to_numpy(np.float64)
    logz = np.log(lat)
    views: dict[str, pd.DataFrame] = {}

    def seen(view: str) -> pd.DataFrame:  # each view is built once
        if view not in views:
            views[view] = source_view(matrix, view)
        return views[view]

    rows: list[dict[str, Any]] = []
    priors: dict[tuple[str, ...], DevicePrior] = {}
    for t, srcs, view in plan:
        t0 = time.perf_counter()
        if protocol == "shipped":
            assert prior is not None
            tprior = prior
        else:
            if (view, *srcs) not in priors:  # targets with the same sources share a prior
                priors[(view, *srcs)] = pretrain(seen(view)[srcs], **dict(prior_options or {}))
            tprior = priors[(view, *srcs)]
        y = lat[:, keys.index(t)]
        have = np.flatnonzero(np.isfinite(y))
        from scipy.stats import rankdata

        rank_true = rankdata(logz[have, keys.index(t)])
        rank_true -= rank_true.mean()
        src_z = np.log(seen(view)[srcs].to_numpy(np.float64))
        base = {"target": t, "group": dataset_group(t, metas.get(t)),
                "class": device_class(t, metas.get(t)), "protocol": protocol, "mode": mode,
                "view": view, "n_sources": len(tprior.sources)}  # fmt: skip
        for n in ns:
            for r in range(repeats):
                rng = np.random.default_rng(_seed(seed, t, n, r))
                rand_ids = np.sort(rng.choice(have, size=n, replace=False))
                sel_seed = int(rng.integers(2**31))
                designed = None
                if "adapter" in methods:
                    designed = select_archs(tprior, n, seed=sel_seed, pool=pool, candidates=have,
                                            **dict(selection_options or {}))  # fmt: skip
                for method in methods:
                    if method == "gcn" and (r >= gcn_repeats or n not in gcn_ns):
                        continue
                    s0 = time.perf_counter()
                    lo = hi = None
                    chosen = ""
                    # the baselines are scored on the adapter's own draw when it runs
                    use_design = designed is not None and method != "adapter-random"
                    ids = designed if use_design else rand_ids
                    assert ids is not None
                    if method.startswith("adapter"):
                        fit = FewShotAdapter(tprior, **dict(adapter_options or {})).fit(ids, y[ids])
                        mu, sd = fit.predict_log(have)
                        chosen = fit.model
                        pred = np.exp(mu)
                        lo, hi = np.exp(mu - 1.6449 * sd), np.exp(mu + 1.6449 * sd)
                    elif method == "flops":
                        pred = _flops_fit(ids, y[ids], have)
                    elif method == "best-source":
                        pred = _best_source(src_z, ids, np.log(y[ids]), have)
                    else:
                        pred = _gcn_fit(ids, y[ids], have, int(rng.integers(2**31)), gcn_options)
                    truth = y[have]
                    rows.append({
                        **base, "method": method, "draw": "designed" if use_design else "random",
                        "n": n, "repeat": r,
                        "spearman": _spearman(rank_true, pred),
                        "within_10pct": float(np.mean(np.abs(pred - truth) <= 0.1 * truth)),
                        "coverage_90": (float(np.mean((lo <= truth) & (truth <= hi)))
                                        if lo is not None else np.nan),
                        "model": chosen,
                        "seconds": time.perf_counter() - s0,
                    })  # fmt: skip
        if progress is not None:
            progress(f"{t}: {len(tprior.sources)} sources, {time.perf_counter() - t0:.1f} s")
    return pd.DataFrame(rows)


def plan_targets(
    matrix: pd.DataFrame,
    targets: Iterable[str] | None = None,
    *,
    protocol: str = "siblings",
    mode: str = "chip",
    ns: Sequence[int] = (5, 10, 20, 50),
    sources: Sequence[str] | None = None,
    prior: DevicePrior | None = None,
) -> list[tuple[str, list[str], str]]:
    """What :func:`evaluate_adapt` will do: each target it evaluates, with the sources
    its prior learns from and the view it sees them in.

    Only metadata and counts are read, so every :class:`PredictorError` a bad request
    earns (a source not in ``matrix``, HELP's meta-train sets missing, a target with
    fewer measured architectures than ``max(ns)`` or fewer than two sources) comes
    before minutes of adapting, not after some targets are done. Targets not in
    ``matrix`` and, under ``shipped``, the prior's own sources are skipped.
    """
    if protocol not in PROTOCOLS:
        raise PredictorError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if protocol == "shipped" and prior is None:
        raise PredictorError("protocol shipped adapts a given prior; none was given")
    metas = matrix.attrs.get("metadata", {}) or {}
    keys = [str(c) for c in matrix.columns]
    src_pool = keys if sources is None else list(sources)
    missing = [k for k in src_pool if k not in keys]
    if missing:
        raise PredictorError(f"source dataset(s) not available: {', '.join(missing)}")
    if targets is None:
        targets = HELP_META_TEST if protocol == "help" else keys
    targets = [t for t in targets if t in keys]
    if prior is not None and protocol == "shipped":
        targets = [t for t in targets if t not in prior.sources]
    if protocol == "help" and targets:
        # the meta-train sets must be among the allowed sources, not merely on disk
        missing = [k for k in HELP_META_TRAIN if k not in src_pool]
        if missing:
            where = "the sources" if sources is not None else "the data"
            raise PredictorError(
                f"protocol help needs HELP's meta-train sets; {where} lack {', '.join(missing)}"
            )
    plan = []
    for t in targets:
        have = int(np.isfinite(matrix[t].to_numpy(np.float64)).sum())
        if max(ns, default=0) > have:
            raise PredictorError(
                f"target {t} has {have} measured architectures, fewer than N = {max(ns)}"
            )
        if protocol == "shipped":
            assert prior is not None
            if view_for(metas.get(t)) != prior.view:  # e.g. a `--view timed` prior on the release
                import warnings

                warnings.warn(
                    f"the prior sees its sources in the {prior.view} view, but target {t}"
                    f" timed {'pruned networks' if prior.view == 'timed' else 'unpruned cells'}:"
                    f" its figures show that mismatch (pretrain --view {view_for(metas.get(t))})",
                    stacklevel=2,
                )
            plan.append((t, [s for s in prior.sources if s in keys], prior.view))
            continue
        srcs = _sources(protocol, t, src_pool, metas, mode)
        if len(srcs) < 2:  # pretrain needs two; say why this target has fewer
            left_out = "its siblings" + (" and its device class" if protocol == "class" else "")
            raise PredictorError(
                f"target {t} has {len(srcs)} source dataset(s) under protocol {protocol}, "
                f"which leaves out the target, {left_out}; need 2"
            )
        plan.append((t, srcs, view_for(metas.get(t))))
    return plan


def _flops_fit(ids: np.ndarray, y: np.ndarray, have: np.ndarray) -> np.ndarray:
    from latbench.predictors.encoding import cost_arrays

    lf = np.log(cost_arrays()[0])
    b, a = np.polyfit(lf[ids], np.log(y), 1) if np.ptp(lf[ids]) > 0 else (0.0, np.log(y).mean())
    return np.exp(a + b * lf[have])


def _best_source(z: np.ndarray, ids: np.ndarray, zt: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Rescale the source best correlated with the target on the measured rows."""
    best, best_r = None, -np.inf
    for j in range(z.shape[1]):
        col = z[ids, j]
        if not np.isfinite(z[have, j]).mean() >= 0.99 or not np.isfinite(col).all():
            continue
        if np.ptp(col) == 0:
            continue
        r = np.corrcoef(col, zt)[0, 1]
        if r > best_r:
            best, best_r = j, r
    if best is None:
        return np.full(len(have), float(np.exp(zt.mean())))
    b, a = np.polyfit(z[ids, best], zt, 1)
    pz = a + b * z[have, best]
    return np.exp(np.where(np.isfinite(pz), pz, zt.mean()))


def _gcn_fit(ids, y, have, seed, options) -> np.ndarray:
    from latbench.predictors.gcn import GCNPredictor

    return GCNPredictor(seed=seed, **dict(options or {})).fit(ids, y).predict(have)


def group_table(res: pd.DataFrame, by: str = "group") -> pd.DataFrame:
    """Mean Spearman / within +-10 % per target ``by`` (``group`` or ``class``), protocol,
    method and N.

    Columns: group (the ``by`` value), protocol, mode, method, n, targets, spearman,
    within_10pct, coverage_90, repeats; plus ``help_published`` (HELP's mean,
    help-meta-test only).
    """
    res = res.assign(group=res[by]) if by != "group" else res
    per_target = (
        res.groupby(["group", "protocol", "mode", "method", "n", "target"], sort=False)
        .agg(
            spearman=("spearman", "mean"),
            within_10pct=("within_10pct", "mean"),
            coverage_90=("coverage_90", "mean"),
            repeats=("repeat", "nunique"),
        )  # fmt: skip
        .reset_index()
    )
    out = (
        per_target.groupby(["group", "protocol", "mode", "method", "n"], sort=False)
        .agg(
            targets=("target", "nunique"),
            spearman=("spearman", "mean"),
            within_10pct=("within_10pct", "mean"),
            coverage_90=("coverage_90", "mean"),
            repeats=("repeats", "min"),
        )  # fmt: skip
        .reset_index()
    )
    pub = float(np.mean(list(HELP_PUBLISHED.values())))
    out["help_published"] = np.where(out["group"] == "help-meta-test", pub, np.nan)
    return out
