"""Which N architectures to measure: a greedy optimal design under the device prior.

Under Bayesian linear regression the posterior covariance ``S`` of a device's weights
does not depend on the measured values, so the whole design can be chosen before
measuring, one architecture at a time with a rank-1 update of ``S``. Two criteria:
D-optimal takes the architecture whose prediction is most uncertain (largest
``phi S phi'``: it maximises ``log det`` of the posterior precision, so it pins the
weights down and favours unusual architectures); integrated (I-optimal, MacKay's ALC)
takes the one whose measurement most lowers the predictive variance summed over the
pool, ``phi S G S phi' / (s2 + phi S phi')`` with ``G`` the pool's second moment, so
it favours typical architectures. Integrated relies on the prior's covariance being
right about where devices differ, D-optimal does not, so the default (``"auto"``) is
D-optimal: with a prior trained on HELP and the bundled sets and adapted as is on the
seven LatBench release devices (none in the prior; 4 seeded repeats), D gave mean
Spearman 0.891 at N = 10 and integrated 0.847 (docs/predictors.md; those seven
targets are where this choice was tuned). Candidates are
valid architectures, optionally a seeded random pool of them; once one is chosen,
every architecture sharing its pruned graph leaves the pool (timing one graph twice
teaches nothing). The seed draws the pool and breaks ties, so repeats differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from latbench.predictors.base import PredictorError
from latbench.predictors.fewshot.prior import DevicePrior

__all__ = [
    "CRITERIA",
    "CRITERION_LABELS",
    "distinct_graph_archs",
    "graph_index",
    "resolve_criterion",
    "select_archs",
]


CRITERIA = ("auto", "integrated", "d", "hybrid")
CRITERION_LABELS = {
    "integrated": "greedy integrated (I-optimal) design under the device prior",
    "d": "greedy D-optimal design under the device prior",
    "hybrid": "greedy design alternating D-optimal and integrated under the device prior",
}
"""What each resolved criterion is called in a dataset's metadata."""


def resolve_criterion(criterion: str = "auto") -> str:
    """The criterion ``select_archs`` uses (``auto`` is D-optimal, see the module doc)."""
    if criterion not in CRITERIA:
        raise PredictorError(
            f"unknown selection criterion {criterion!r}: auto, integrated, d or hybrid"
        )
    return "d" if criterion == "auto" else criterion


@cache
def distinct_graph_archs() -> np.ndarray:
    """Lowest ``arch_id`` of each distinct pruned graph of a valid architecture."""
    g = graph_index()
    _, first = np.unique(g, return_index=True)
    out = np.sort(first[g[first] >= 0]).astype(np.int64)
    out.setflags(write=False)
    return out


@cache
def graph_index() -> np.ndarray:
    """Per ``arch_id``, the number of its distinct pruned graph (-1 for invalid)."""
    from latbench.predictors.encoding import pruned_graph_index

    return pruned_graph_index()


def select_archs(
    prior: DevicePrior,
    n: int,
    *,
    seed: int = 0,
    pool: int | None = 4000,
    candidates: Sequence[int] | np.ndarray | None = None,
    noise_var: float | None = None,
    criterion: str = "auto",
    cov: np.ndarray | None = None,
    exclude: Sequence[int] | np.ndarray = (),
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` ``arch_id`` values to measure, in the order they were chosen.

    ``candidates`` defaults to every valid architecture; ``pool`` draws that many of them
    at random (seeded) first, ``None`` keeps all. ``criterion``: ``"d"`` (D-optimal),
    ``"integrated"`` (I-optimal), ``"hybrid"`` (alternating, D first) or ``"auto"``
    (D; see the module doc). To continue a design after measuring: ``cov`` replaces the
    prior's covariance (a posterior's), ``exclude`` are measured ``arch_id`` values
    (their graphs leave the pool), and ``weight`` (per ``arch_id``, D-optimal only)
    scales each gain by the share of its variance still unexplained times that
    weight. Same inputs, same answer.
    """
    criterion = resolve_criterion(criterion)
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
    s = (prior.cov if cov is None else np.asarray(cov, np.float64)).copy()
    s2 = prior.noise_var if noise_var is None else noise_var
    jitter = 1e-9 * rng.random(len(cand))
    var = np.einsum("ij,jk,ik->i", a, s, a, optimize=True)
    graph = prior.graph[cand]
    taken = np.isin(graph, prior.graph[np.asarray(exclude, dtype=np.int64)])
    var0 = var.copy() + 1e-300
    wt = None if weight is None else np.asarray(weight, np.float64)[cand]
    chosen = []
    gram = a.T @ a / len(a)  # the pool's second moment: sum_j (a_j S a_i)^2 = a_i S G S a_i
    for step in range(n):
        if wt is not None:
            gain = wt * var / var0
        elif criterion == "d" or (criterion == "hybrid" and step % 2 == 0):
            gain = var
        else:
            q = s @ gram @ s
            gain = np.einsum("ij,jk,ik->i", a, q, a, optimize=True) / (s2 + var)
        score = np.where(taken, -np.inf, gain + jitter)
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            # every free graph is taken by now, one per step
            raise PredictorError(
                f"asked for {n} architectures, one per pruned graph, but the candidates"
                f" hold {step} distinct pruned graphs not yet measured; ask for at most {step}"
            )
        chosen.append(i)
        taken |= graph == graph[i]
        sa = s @ a[i]
        denom = s2 + a[i] @ sa
        s = s - np.outer(sa, sa) / denom
        var = np.einsum("ij,jk,ik->i", a, s, a, optimize=True)  # fresh: no drift as S shrinks
    return cand[np.array(chosen)]
