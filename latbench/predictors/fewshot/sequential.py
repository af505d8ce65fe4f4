"""Measure in two rounds: when the first disagrees with the prior, aim the rest at it.

A design fixed before measuring (:func:`~.selection.select_archs`) trusts the prior
about where devices differ. :func:`select_more` looks at what was measured first: if
the target is like some source (the nearest one's RMS log error at most
:data:`~.adapter.UNLIKE_RMSE_LOG`), the rest continues D-optimally under the posterior;
if it is unlike every source, the prior is blind there, and the rest goes where the
adapter's candidate models (log-linear, additive, FLOPs fit, best source) disagree
most, scaled by how much of each prediction the log-linear posterior still leaves
unexplained (so picks spread out), which is where measurements tell the models apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latbench.predictors.base import arch_ids
from latbench.predictors.fewshot.adapter import FewShotAdapter, source_distances
from latbench.predictors.fewshot.selection import select_archs

__all__ = ["select_more"]


def select_more(
    adapter: FewShotAdapter,
    measured: Sequence[int] | np.ndarray,
    latency_ms: Sequence[float] | np.ndarray,
    n: int,
    *,
    seed: int = 0,
    pool: int | None = 4000,
    candidates: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """``n`` more ``arch_id`` values after ``measured``, and whether the target looked
    unlike every source (the discriminating round was used)."""
    ids = arch_ids(measured)
    y = np.asarray(latency_ms, np.float64)
    prior = adapter.prior
    blind = bool(source_distances(prior, ids, y).get("unlike_sources", False))
    weight = None
    if blind:
        models = ["log-linear", "flops"]
        if prior.additive_mean is not None:
            models.append("additive")
        if prior.source_weights is not None:
            models.append("best-source")
        fits = adapter._fits(models, ids, y)
        post = fits["log-linear"]  # the log-linear posterior, fitted once
        mus = np.stack([f.predict_log(None)[0] for f in fits.values()])
        weight = mus.var(axis=0)
    else:
        post = adapter._fit_log(ids, y)
    more = select_archs(
        prior, n, seed=seed, pool=pool, candidates=candidates, cov=post.cov,
        noise_var=post.noise_var, criterion="d", exclude=ids, weight=weight,
    )  # fmt: skip
    return more, blind
