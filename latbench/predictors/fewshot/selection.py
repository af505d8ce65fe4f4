"""Which N architectures to measure: greedy D-optimal design under the device prior.

Under Bayesian linear regression the posterior covariance of a device's weights does
not depend on the measured values, so choosing the next architecture as the one whose
prediction is most uncertain (largest ``phi S phi'``, then a rank-1 update of ``S``)
is both the greedy D-optimal design (it maximises ``log det`` of the posterior
precision) and what an active loop would pick. Candidates are valid architectures,
optionally a seeded random pool of them; once one is chosen, every architecture
sharing its pruned graph leaves the pool (timing one graph twice teaches nothing).
The seed draws the pool and breaks ties, so repeats differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from latbench.predictors.base import PredictorError
from latbench.predictors.fewshot.prior import DevicePrior

__all__ = ["distinct_graph_archs", "graph_index", "select_archs"]


@cache
def distinct_graph_archs() -> np.ndarray:
    """Lowest ``arch_id`` of each distinct pruned graph of a valid architecture."""
    from latbench.predictors.encoding import _graphs

    seen: dict[str, int] = {}
    for i, g in enumerate(_graphs()):
        if g.valid:
            seen.setdefault(g.key, i)
    out = np.array(sorted(seen.values()), dtype=np.int64)
    out.setflags(write=False)
    return out


@cache
def graph_index() -> np.ndarray:
    """Per ``arch_id``, the number of its distinct pruned graph (-1 for invalid)."""
    from latbench.predictors.encoding import _graphs

    ids: dict[str, int] = {}
    out = np.array([ids.setdefault(g.key, len(ids)) if g.valid else -1 for g in _graphs()])
    out.setflags(write=False)
    return out


def select_archs(
    prior: DevicePrior,
    n: int,
    *,
    seed: int = 0,
    pool: int | None = 4000,
    candidates: Sequence[int] | np.ndarray | None = None,
    noise_var: float | None = None,
) -> np.ndarray:
    """``n`` ``arch_id`` values to measure, in the order they were chosen.

    ``candidates`` defaults to every valid architecture; ``pool`` draws that many of them
    at random (seeded) first, ``None`` keeps all. Same inputs, same answer.
    """
    if candidates is None:
        cand = np.flatnonzero(prior.valid)
    else:
        cand = np.unique(np.asarray(candidates, dtype=np.int64))
        cand = cand[prior.valid[cand]]
    if cand.size == 0:
        raise PredictorError("no candidate architectures to select from")
    if not 1 <= n <= cand.size:
        raise PredictorError(f"can select 1..{cand.size} architectures, asked for {n}")
    rng = np.random.default_rng(seed)
    if pool is not None and pool < cand.size:
        cand = np.sort(rng.choice(cand, size=max(pool, n), replace=False))
    a = prior.design[cand]
    s = prior.cov.copy()
    s2 = prior.noise_var if noise_var is None else noise_var
    jitter = 1e-9 * rng.random(len(cand))
    var = np.einsum("ij,jk,ik->i", a, s, a, optimize=True)
    taken = np.zeros(len(cand), dtype=bool)
    graph = prior.graph[cand]
    chosen = []
    for _ in range(n):
        score = np.where(taken, -np.inf, var + jitter)
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            raise PredictorError(f"the candidates hold fewer than {n} distinct pruned graphs")
        chosen.append(i)
        taken |= graph == graph[i]
        sa = s @ a[i]
        denom = s2 + a[i] @ sa
        s = s - np.outer(sa, sa) / denom
        var = var - (a @ sa) ** 2 / denom
    return cand[np.array(chosen)]
