"""Aging Evolution (Real et al., AAAI 2019) over NAS-Bench-201 under a latency limit.

A population of ``population`` models starts from uniformly random architectures;
each step samples ``sample`` of them, mutates the most accurate one (one edge gets a
different op) and trains the child (reads its accuracy), which replaces the oldest
member. The search decides whether a model satisfies the limit (latency <= limit) by
the latency it is given (measured or predicted): a model it believes too slow, or
that has no latency (disconnected cells), is discarded untrained and does not count
as a step. The paper's Figure 2 (right) runs population 64, sample 16, limit 5 ms on
the desktop GPU (Supplementary S3.1).

Each step records the best accuracy among the models trained so far that *truly*
satisfy the limit (by measured latency; what the search delivers) and the best it
*believes* it has (by its own latency; what it reports).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from latbench.nas.inputs import count, per_arch, real

__all__ = ["EvolutionResult", "InfeasibleLimit", "aging_evolution", "iqr_curves", "mutate"]

N_OPS = 5
N_EDGES = 6
N_ARCHS = N_OPS**N_EDGES
MAX_REJECTIONS = 100_000
"""Consecutive children the search may discard before it gives up (limit too tight)."""


class InfeasibleLimit(ValueError):
    """The latency limit admits no model (or too few to search) under the estimate."""


@dataclass(frozen=True)
class EvolutionResult:
    """Best accuracy per step (step ``i`` = ``i + 1`` models trained), one row per seed."""

    effective: np.ndarray
    """(seeds, steps): best accuracy of a trained model that truly satisfies the limit
    (NaN until one was trained)."""
    assumed: np.ndarray
    """(seeds, steps): best accuracy of a trained model the search believes satisfies it."""
    rejected: np.ndarray
    """(seeds,): children discarded untrained as too slow by the search's latency."""


def mutate(arch_id: int, rng: np.random.Generator) -> int:
    """One edge of ``arch_id`` (base-5 digits, first edge most significant) gets another op."""
    edge = int(rng.integers(N_EDGES))
    place = N_OPS ** (N_EDGES - 1 - edge)
    old = (arch_id // place) % N_OPS
    new = (old + 1 + int(rng.integers(N_OPS - 1))) % N_OPS  # uniform over the other 4
    return arch_id + (new - old) * place


def aging_evolution(
    accuracy: ArrayLike,
    search_latency: ArrayLike,
    measured_latency: ArrayLike,
    limit_ms: float,
    *,
    steps: int = 1000,
    population: int = 64,
    sample: int = 16,
    seeds: int | Iterable[int] = 20,
) -> EvolutionResult:
    """Run Aging Evolution once per seed (module doc).

    Arrays are indexed by ``arch_id`` (15,625 entries): ``accuracy`` (NaN: never
    chosen), ``search_latency`` (what the search believes, NaN: no latency) and
    ``measured_latency`` (the truth, NaN: unknown, never counts as satisfying).
    ``seeds`` is a count (seeds 0..n-1) or a list of seeds. A pandas Series must be
    indexed by ``arch_id`` in order (:func:`~latbench.nas.inputs.per_arch`).
    """
    acc = per_arch("accuracy", accuracy)
    believed = per_arch("search_latency", search_latency)
    truth = per_arch("measured_latency", measured_latency)
    limit_ms = real("limit_ms", limit_ms)
    steps, population, sample = (
        count("steps", steps), count("population", population), count("sample", sample)
    )  # fmt: skip
    if isinstance(seeds, numbers.Integral):
        seed_list = list(range(count("seeds", seeds)))
    elif isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    else:
        seed_list = [count("seed", s, minimum=0) for s in seeds]
        if not seed_list:
            raise ValueError("seeds is an empty list: give a count or at least one seed")
    if not 1 <= sample <= population <= steps:
        raise ValueError(
            f"need 1 <= sample <= population <= steps, got {sample}, {population}, {steps}"
        )
    feasible = np.isfinite(acc) & np.isfinite(believed) & (believed <= limit_ms)
    if not feasible.any():
        raise InfeasibleLimit(f"no architecture is believed to satisfy {limit_ms} ms")
    really = np.isfinite(truth) & (truth <= limit_ms)
    eff = np.full((len(seed_list), steps), np.nan)
    ass = np.full((len(seed_list), steps), np.nan)
    rejected = np.zeros(len(seed_list), dtype=np.int64)
    for r, seed in enumerate(seed_list):
        rng = np.random.default_rng(seed)
        pop: list[int] = []
        best_eff = best_ass = -np.inf
        misses = 0
        for step in range(steps):
            while True:
                if len(pop) < population:
                    child = int(rng.integers(N_ARCHS))
                else:
                    picks = rng.choice(population, size=sample, replace=False)
                    parent = max((pop[i] for i in picks), key=lambda a: acc[a])
                    child = mutate(parent, rng)
                if feasible[child]:
                    misses = 0
                    break
                rejected[r] += 1
                misses += 1
                if misses > MAX_REJECTIONS:
                    raise InfeasibleLimit(
                        f"no feasible child in {MAX_REJECTIONS} tries at {limit_ms} ms"
                    )
            pop.append(child)
            if len(pop) > population:
                pop.pop(0)  # aging: the oldest goes, whatever its accuracy
            best_ass = max(best_ass, acc[child])
            if really[child]:
                best_eff = max(best_eff, acc[child])
            ass[r, step] = best_ass
            eff[r, step] = best_eff if np.isfinite(best_eff) else np.nan
    return EvolutionResult(effective=eff, assumed=ass, rejected=rejected)


def iqr_curves(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step over seeds (rows): 25th, 50th and 75th percentiles (NaNs ignored)."""
    c = np.asarray(curves, dtype=np.float64)
    out = np.full((3, c.shape[1]), np.nan)
    have = np.isfinite(c).any(axis=0)
    if have.any():
        out[:, have] = np.nanpercentile(c[:, have], [25, 50, 75], axis=0)
    return out[0], out[1], out[2]
