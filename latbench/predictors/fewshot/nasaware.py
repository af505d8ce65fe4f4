"""Spend the few-shot measurements where hardware-aware NAS needs them.

Oracle NAS (:mod:`latbench.nas.oracle`) misses accuracy at a threshold ``t`` only
through false negatives: the best model truly under ``t`` is estimated above it. A
model whose estimate is under ``t`` but whose latency is not costs nothing, as the
search re-validates what it picks. So :func:`adapt_for_nas` measures a first designed
batch (:data:`FIRST_SHARE` of N, D-optimal as :func:`~.selection.select_archs`), fits
the adapter once, then spends the rest one architecture at a time on the model whose
measurement most lowers the expected missed accuracy over a grid of thresholds (the
2nd to 98th percentiles of the current estimate), each measured latency known before
the next pick. The search's estimate is **measured where measured, else the designed
fit's prediction**. The fit is not redone with the later picks: they are chosen where
the estimate errs, and refitting on them moved other models across thresholds and
raised the largest miss on the devices this was tuned on (docs/analysis.md); without a
refit a measurement can only lower the miss at every threshold (it admits a model
truly under a threshold, or drops one the search would have re-validated away).

The expectation treats each unmeasured model's latency as independent log-normal
under the adapter's predictive band (``N(mu_i, sd_i)`` in log space, ``sd`` already
scaled by the leave-one-out ``band_scale``); a measured one is known. With models in
decreasing accuracy order ``acc_1 >= acc_2 >= ...``, ``q_i = P(lat_i <= t)`` and the
search's chain ``Q_i = q_i`` for models it accepts (estimate ``<= t``; measured
models are accepted when truly under) and ``0`` otherwise, the expected accuracy it
ends with is ``sum_i acc_i Q_i C_i`` with ``C_i = prod_{j<i} (1 - Q_j)``. Measuring a
rejected model ``c`` puts it in the chain with ``Q_c = q_c``; the expected gain is

``gain(c, t) = q_c [acc_c (C_c - C_end) - sum_{i>c} acc_i Q_i C_i]``

(zero for an accepted model; outcomes where no chain model is under ``t`` count no
gain). A candidate's score is ``sum_t gain(c, t) m(t)^FOCUS``, ``m(t)`` the expected
miss at ``t`` (expected best accuracy under ``t`` minus the expected effective best),
so the thresholds where the largest misses are expected dominate. Architectures
sharing a pruned graph count on their own (their accuracies differ). Numpy only; the
seed draws the first batch's pool and breaks ties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from latbench.predictors.base import PredictorError, arch_ids
from latbench.predictors.fewshot.adapter import AdaptedDevice, FewShotAdapter
from latbench.predictors.fewshot.selection import select_archs
from latbench.space import N_ARCHS

__all__ = [
    "NASAdapted",
    "acceptance_estimate",
    "adapt_for_nas",
    "check_accuracy",
    "expected_gain",
    "nas_gain",
    "nas_picks",
]

FIRST_SHARE = 0.5
"""Share of the N measurements spent on the first, designed (D-optimal) batch."""
FOCUS = 2.0
"""Power of the expected miss that weights each threshold's gains (module doc)."""


def check_accuracy(accuracy: object) -> np.ndarray:
    """Accuracy per ``arch_id`` as 15,625 floats (NaN: not searched), or a one-line error.

    Takes an array of 15,625 values, or a Series or a frame with an ``accuracy``
    column (or one ``accuracy_*`` column, as ``load(key, accuracy=...)`` adds it; and
    optionally ``valid``: false rows become NaN) indexed by ``arch_id`` 0..15,624, as
    :func:`latbench.accuracy` returns it.
    """
    import pandas as pd

    if isinstance(accuracy, pd.DataFrame):
        named = [c for c in accuracy.columns if str(c).startswith("accuracy_")]
        if "accuracy" not in accuracy.columns and len(named) != 1:
            raise PredictorError(
                "accuracy table has no 'accuracy' column"
                + (
                    f" and several accuracy_* columns ({', '.join(named)}): pass one"
                    if named
                    else ""
                )
            )
        col = accuracy["accuracy" if "accuracy" in accuracy.columns else named[0]]
        # invalid cells keep their published value in the table; nothing to search there
        accuracy = col.where(accuracy["valid"].astype(bool)) if "valid" in accuracy else col
    if isinstance(accuracy, pd.Series):
        from latbench.nas.inputs import per_arch

        try:  # the NAS tools' own check: arch_id order, not nb201_index
            accuracy = per_arch("accuracy", accuracy)
        except ValueError as exc:
            raise PredictorError(str(exc)) from None
    if accuracy is None:
        raise PredictorError("NAS-aware selection needs an accuracy table (latbench.accuracy)")
    try:
        acc = np.asarray(accuracy, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise PredictorError("accuracy must be numbers, one per arch_id") from None
    if acc.size != N_ARCHS:
        raise PredictorError(
            f"accuracy must hold {N_ARCHS} values (one per arch_id), got {acc.size}"
        )
    if not np.isfinite(acc).any():
        raise PredictorError("accuracy holds no finite value")
    return acc


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26, error < 1e-7; no scipy import)."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                + t * 1.061405429))))  # fmt: skip
    erfc = poly * np.exp(-z * z)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def nas_gain(
    fit: AdaptedDevice,
    accuracy: np.ndarray,
    search: np.ndarray,
    *,
    accepted: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
    focus: float = FOCUS,
) -> np.ndarray:
    """Expected missed accuracy (points, over ``thresholds``) that measuring each of
    ``search`` would save under ``fit`` (:func:`expected_gain`); 0 for measured ones.

    ``search`` are the ``arch_id`` values the NAS ranges over (finite accuracy);
    ``accepted`` (bool per ``search``) marks unmeasured models to treat as already in
    the chain (chosen but not yet measured). ``thresholds`` default to the 2nd..98th
    percentiles of the estimate; ``focus`` as in :func:`expected_gain`.
    """
    mu, sd = fit.predict_log(search)
    known = np.full(len(search), np.nan)
    where = {int(a): float(v) for a, v in zip(fit.measured, fit.measured_ms, strict=True)}
    for k, a in enumerate(search):
        known[k] = where.get(int(a), np.nan)
    est = np.where(np.isfinite(known), known, np.exp(mu))
    th = np.unique(np.percentile(est, np.arange(2, 99))) if thresholds is None else thresholds
    return expected_gain(accuracy[search], mu, sd, known, th, accepted=accepted,
                         focus=focus)  # fmt: skip


def expected_gain(
    acc: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
    known: np.ndarray,
    thresholds: np.ndarray,
    *,
    accepted: np.ndarray | None = None,
    focus: float = 0.0,
) -> np.ndarray:
    """Per model, the module doc's ``gain`` summed over ``thresholds`` (ms).

    Model ``i`` has accuracy ``acc[i]`` and log-latency ``N(mu[i], sd[i])``, or the
    latency ``known[i]`` (ms; NaN: unknown); its estimate is ``known`` or ``exp(mu)``.
    ``accepted`` puts unknown models in the chain regardless of their estimate. With
    ``focus`` > 0 each threshold's gains are weighted by its expected miss (the
    expected best accuracy under it minus the expected effective best) to that power.
    Independent latencies; ties in accuracy go to the lower position. Known models: 0.
    """
    is_known = np.isfinite(known)
    est = np.where(is_known, known, np.exp(mu))
    t = np.asarray(thresholds, np.float64)[:, None]
    q = _norm_cdf((np.log(t) - mu[None, :]) / np.maximum(sd, 1e-12)[None, :])
    q = np.where(is_known[None, :], known[None, :] <= t, q)
    chain = est[None, :] <= t
    if accepted is not None:
        chain |= accepted[None, :] & ~is_known[None, :]
    order = np.lexsort((np.arange(len(acc)), -acc))
    q, chain, acc_s = q[:, order], chain[:, order], acc[order]
    big_q = np.where(chain, q, 0.0)
    c, c_end = _survival(big_q)
    contrib = acc_s[None, :] * big_q * c
    after = np.cumsum(contrib[:, ::-1], axis=1)[:, ::-1] - contrib  # sum over i > c
    gain = q * (acc_s[None, :] * (c - c_end) - after)
    gain = np.where(chain, 0.0, np.maximum(gain, 0.0))
    if focus:
        c_all, _ = _survival(q)
        miss = (acc_s[None, :] * q * c_all).sum(axis=1) - contrib.sum(axis=1)
        gain = gain * np.maximum(miss, 0.0)[:, None] ** focus
    out = np.empty(len(acc))
    out[order] = gain.sum(axis=0)
    return np.where(is_known, 0.0, out)


def _survival(big_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold, ``prod_{j<i} (1 - Q_j)`` for every ``i``, and the full product."""
    ones = np.ones((big_q.shape[0], 1))
    c = np.cumprod(np.concatenate([ones, 1.0 - big_q], axis=1), axis=1)
    return c[:, :-1], c[:, -1:]


def nas_picks(
    fit: AdaptedDevice,
    accuracy: np.ndarray,
    n: int,
    *,
    candidates: np.ndarray | None = None,
    seed: int = 0,
    focus: float = FOCUS,
) -> np.ndarray:
    """``n`` ``arch_id`` values to measure next after ``fit``, chosen greedily by
    :func:`nas_gain`, each chosen one entering the chain as if measured (no refit)."""
    acc = check_accuracy(accuracy)
    prior = fit.prior
    pool = np.flatnonzero(prior.valid) if candidates is None else np.unique(arch_ids(candidates))
    search = pool[prior.valid[pool] & np.isfinite(acc[pool])]
    free = ~np.isin(search, fit.measured)
    if not 0 <= n <= int(free.sum()):
        raise PredictorError(f"can select 0..{int(free.sum())} more architectures, asked for {n}")
    jitter = 1e-9 * np.random.default_rng(seed).random(len(search))
    accepted = np.zeros(len(search), dtype=bool)
    out = []
    for _ in range(n):
        gain = nas_gain(fit, acc, search, accepted=accepted, focus=focus)
        score = np.where(free & ~accepted, gain + jitter, -np.inf)
        i = int(np.argmax(score))
        accepted[i] = True
        out.append(int(search[i]))
    return np.array(out, dtype=np.int64)


@dataclass(frozen=True)
class NASAdapted:
    """A few-shot fit whose measurements were spent for NAS (:func:`adapt_for_nas`)."""

    fit: AdaptedDevice
    """The adapter's posterior on the designed batch; ``measured`` / ``measured_ms``
    hold all ``n`` measurements (the later ones are not fitted, module doc)."""
    designed: int
    """How many of ``fit.measured`` came from the first, designed batch."""

    def estimate(self, accept: float = 0.5) -> np.ndarray:
        """Latency (ms) per ``arch_id`` for the search: **measured where measured**, else
        :func:`acceptance_estimate` of the designed fit (the median at ``accept`` 0.5; NaN
        for invalid architectures). Not a prediction: keep it out of measured datasets."""
        est = acceptance_estimate(self.fit, accept)
        est[self.fit.measured] = self.fit.measured_ms
        return est


def acceptance_estimate(fit: AdaptedDevice, accept: float = 0.5) -> np.ndarray:
    """Per ``arch_id``, the latency (ms) ``x`` with ``P(lat <= x) = accept`` under the
    fit's predictive band (log-normal): a search that takes a model as under ``t`` when
    this is ``<= t`` accepts it when ``P(lat <= t) >= accept``
    (:meth:`AdaptedDevice.quantile`; the median at 0.5); lower values miss fewer models
    truly under ``t`` and re-validate more that are not (:mod:`latbench.nas.oracle`).
    NaN for invalid ones."""
    return np.where(fit.prior.valid, fit.quantile(accept), np.nan)


def adapt_for_nas(
    adapter: FewShotAdapter,
    accuracy: object,
    n: int,
    measure: Callable[[np.ndarray], Sequence[float] | np.ndarray],
    *,
    seed: int = 0,
    candidates: Sequence[int] | np.ndarray | None = None,
    first: int | None = None,
    pool: int | None = 4000,
) -> NASAdapted:
    """Measure ``n`` architectures for NAS: a designed first batch, then one at a time
    where the expected missed accuracy drops most (module doc).

    ``measure(ids)`` returns their latencies (ms). ``first`` is the designed batch's
    size (default :data:`FIRST_SHARE` of ``n``, at least 3 so that the band has a
    leave-one-out scale). ``candidates`` are the architectures one can measure and
    search over (default: every valid one). Same inputs, same answer.
    """
    acc = check_accuracy(accuracy)
    if n < 1:
        raise PredictorError(f"need at least one measurement, asked for {n}")
    k = max(min(3, n), round(FIRST_SHARE * n)) if first is None else first
    if not 1 <= k <= n:
        raise PredictorError(f"first batch must be 1..{n}, got {k}")
    cand = None if candidates is None else arch_ids(np.asarray(candidates, dtype=np.int64))
    if cand is not None:
        cand = cand[np.isfinite(acc[cand])]
    ids = select_archs(adapter.prior, k, seed=seed, pool=pool, candidates=cand)
    y = _measured(measure, ids)
    fit = adapter.fit(ids, y)
    designed = fit
    for _ in range(n - k):
        nxt = nas_picks(fit, acc, 1, candidates=cand, seed=seed)
        ids = np.concatenate([ids, nxt])
        y = np.concatenate([y, _measured(measure, nxt)])
        # no refit: the estimate stays the designed fit's, so a measurement can only
        # lower the miss (a refit moved other models across thresholds, module doc)
        fit = replace(designed, measured=ids, measured_ms=y)
    return NASAdapted(fit, k)


def _measured(measure: Callable, ids: np.ndarray) -> np.ndarray:
    y = np.asarray(measure(ids), dtype=np.float64).ravel()
    if y.shape != ids.shape or not np.all(np.isfinite(y) & (y > 0)):
        raise PredictorError(f"measure() must return {len(ids)} positive finite latencies")
    return y
