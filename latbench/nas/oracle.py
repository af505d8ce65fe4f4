"""Oracle NAS under a latency threshold, exactly as the paper's Supplementary S1.3.

For models ``S`` with accuracy ``acc``, measured latency ``lat`` and an estimate
``pred``, and a threshold ``t`` (a model *satisfies* it when its latency is <= t):

- false positives ``Pf = {s : pred(s) <= t and lat(s) > t}``, false negatives
  ``Nf = {s : pred(s) > t and lat(s) <= t}``, true positives ``Pt`` (both <= t), the
  truly positive ``P = {s : lat(s) <= t}``;
- assumed best ``s*_f = argmax_{Pf u Pt} acc``, effective best
  ``s*_p = argmax_{Pt} acc`` (the first model, in the search's accuracy order, whose
  measured latency passes the re-validation), ground-truth best ``s* = argmax_P acc``;
- missed accuracy ``acc(s*) - acc(s*_p)``, over-claimed accuracy
  ``acc(s*_f) - acc(s*_p)``, and the latency errors behind them,
  ``pred(s*) - lat(s*)`` when ``s* != s*_p`` and ``pred(s*_f) - lat(s*_f)`` when
  ``s*_f != s*_p`` (else 0);
- re-validations: the false positives the search measures, and rejects, before it
  reaches ``s*_p`` (those of ``Pf`` ahead of it in the accuracy order; all of ``Pf``
  when no model is effective). An over-claim costs no accuracy, only these
  measurements: the price of an estimate that errs low.

Ties in accuracy are broken by position (the lower index wins) in every argmax, so
the three bests are consistent: with ``pred == lat`` they coincide. A latency equal
to the threshold satisfies it: the paper writes ``lat(s) < t`` for the positives
and ``>`` for the others, leaving equality in neither set; on its 0.1 ms grid that
never mattered, but a percentile grid (:func:`threshold_grid`) lands on measured
values, and many architectures share one latency (one pruned graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from latbench.nas.inputs import per_model, same_order

__all__ = ["ORACLE_FIELDS", "OracleResult", "oracle_nas", "threshold_grid"]

ORACLE_FIELDS = (
    "threshold_ms",
    "false_positives",
    "false_negatives",
    "missed_accuracy",
    "overclaimed_accuracy",
    "missed_latency_error_ms",
    "overclaimed_latency_error_ms",
    "revalidations",
    "ground_truth_best",
    "assumed_best",
    "effective_best",
    "ground_truth_accuracy",
    "assumed_accuracy",
    "effective_accuracy",
)
"""Fields of :meth:`OracleResult.as_dict`, in order (the first seven are Figure S3's)."""


@dataclass(frozen=True)
class OracleResult:
    """Oracle NAS at every threshold; arrays of one entry per threshold.

    ``*_best`` are positions into the inputs (-1 where no model qualifies); the
    accuracy differences are NaN where a model they need does not exist (e.g. no
    model satisfies the threshold by the estimate).
    """

    threshold_ms: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray
    ground_truth_best: np.ndarray
    assumed_best: np.ndarray
    effective_best: np.ndarray
    ground_truth_accuracy: np.ndarray
    assumed_accuracy: np.ndarray
    effective_accuracy: np.ndarray
    missed_accuracy: np.ndarray
    overclaimed_accuracy: np.ndarray
    missed_latency_error_ms: np.ndarray
    overclaimed_latency_error_ms: np.ndarray
    revalidations: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """Column name -> array, in :data:`ORACLE_FIELDS` order."""
        return {f: getattr(self, f) for f in ORACLE_FIELDS}


def threshold_grid(measured: ArrayLike, lo: float = 2.0, hi: float = 98.0) -> np.ndarray:
    """Thresholds (ms) at every whole percentile from ``lo`` to ``hi`` of ``measured``
    (97 by default), so every device gets a grid spanning its own range; percentiles
    that land on the same latency (architectures sharing a graph) count once."""
    lat = per_model("measured", measured)
    lat = lat[np.isfinite(lat)]
    if lat.size == 0:
        raise ValueError("no finite measured latency to place thresholds on")
    if not 0 <= lo <= hi <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= lo <= hi <= 100, got {lo}, {hi}")
    return np.unique(np.percentile(lat, np.arange(lo, hi + 0.5, 1.0)))


def _first(mask: np.ndarray) -> np.ndarray:
    """Per row, the column of the first True (-1 where none)."""
    idx = mask.argmax(axis=1)
    return np.where(mask[np.arange(mask.shape[0]), idx], idx, -1)


def oracle_nas(
    accuracy: ArrayLike,
    measured: ArrayLike,
    predicted: ArrayLike,
    thresholds: ArrayLike,
) -> OracleResult:
    """Run oracle NAS (module doc) at every threshold (ms).

    ``accuracy``, ``measured`` and ``predicted`` hold one finite value per model.
    """
    same_order(accuracy=accuracy, measured=measured, predicted=predicted)
    acc, lat = per_model("accuracy", accuracy), per_model("measured", measured)
    pred, th = per_model("predicted", predicted), per_model("thresholds", thresholds)
    if not acc.shape == lat.shape == pred.shape:
        raise ValueError(
            f"need one accuracy, measured and predicted latency per model; got {acc.size},"
            f" {lat.size}, {pred.size}"
        )
    if acc.size == 0:
        raise ValueError("no models: accuracy, measured and predicted are empty")
    for name, a in (("accuracy", acc), ("measured", lat), ("predicted", pred), ("thresholds", th)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values (drop those models first)")
    order = np.lexsort((np.arange(acc.size), -acc))  # the oracle's accuracy order
    a_s, l_s, p_s = acc[order], lat[order], pred[order]
    under = l_s[None, :] <= th[:, None]  # truly satisfies, per threshold x model
    accepted = p_s[None, :] <= th[:, None]  # believed to satisfy
    fp = np.count_nonzero(accepted & ~under, axis=1)
    fn = np.count_nonzero(~accepted & under, axis=1)
    gt, assumed, eff = _first(under), _first(accepted), _first(accepted & under)
    # false positives ahead of the effective best (all of them when there is none)
    fp_ahead = np.cumsum(accepted & ~under, axis=1)
    stop = np.where(eff >= 0, eff, l_s.size - 1)
    reval = fp_ahead[np.arange(th.size), stop] if l_s.size else np.zeros(th.size, dtype=int)

    def pick(values: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.where(k >= 0, values[np.maximum(k, 0)], np.nan)

    gt_acc, as_acc, ef_acc = pick(a_s, gt), pick(a_s, assumed), pick(a_s, eff)
    err = p_s - l_s
    miss_err = np.where((gt >= 0) & (gt != eff), pick(err, gt), 0.0)
    over_err = np.where((assumed >= 0) & (assumed != eff), pick(err, assumed), 0.0)

    def position(k: np.ndarray) -> np.ndarray:
        return np.where(k >= 0, order[np.maximum(k, 0)], -1)

    return OracleResult(
        threshold_ms=th,
        false_positives=fp,
        false_negatives=fn,
        ground_truth_best=position(gt),
        assumed_best=position(assumed),
        effective_best=position(eff),
        ground_truth_accuracy=gt_acc,
        assumed_accuracy=as_acc,
        effective_accuracy=ef_acc,
        missed_accuracy=gt_acc - ef_acc,
        overclaimed_accuracy=as_acc - ef_acc,
        missed_latency_error_ms=miss_err,
        overclaimed_latency_error_ms=over_err,
        revalidations=reval,
    )
