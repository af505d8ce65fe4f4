"""Which architectures build the same network, for all 15,625 at once (vectorized).

:func:`latbench.graph.prune` builds one graph at a time (~3 s for the whole space);
row checks need to know, on every read, whether a row's ``timed_arch_id`` builds the
same pruned network as its ``arch_id``. :func:`pruned_ids` gives that in about a
millisecond: two ids share a number exactly when their :attr:`PrunedGraph.key` are
equal (a test compares the two over the whole space).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from latbench.space import EDGES, N_ARCHS

__all__ = ["pruned_ids"]

_NONE, _SKIP = 0, 1


# bit of the edge u -> v (0 <= u < v <= 7) in a 28-bit edge set
_BIT = {(u, v): b for b, (u, v) in enumerate((u, v) for v in range(1, 8) for u in range(v))}


@cache
def pruned_ids() -> np.ndarray:
    """Per ``arch_id``, an int64 naming its pruned network (invalid cells share -1)."""
    ids = np.arange(N_ARCHS, dtype=np.int64)
    ops = [(ids // 5 ** (5 - k)) % 5 for k in range(6)]
    real = [o > _SKIP for o in ops]
    skip = [(o == _SKIP).astype(np.int64) for o in ops]
    # src[n]: bitmask over slots 0..6 (0: the cell input) whose value reaches cell node
    # n, with skip edges bypassed; only ops that are themselves fed count (forward).
    src = [np.ones(N_ARCHS, dtype=np.int64)] + [np.zeros(N_ARCHS, np.int64) for _ in range(3)]
    fed: list[np.ndarray] = [np.empty(0)] * 6
    for k, (i, j) in enumerate(EDGES):  # EDGES is in topological order of targets
        fed[k] = real[k] & (src[i] != 0)
        src[j] = src[j] | (fed[k].astype(np.int64) << (k + 1)) | (src[i] * skip[k])
    # reach[n]: cell node n has a path of non-none ops to the output
    reach = {3: np.ones(N_ARCHS, dtype=bool), 2: ops[5] != _NONE}
    reach[1] = (ops[4] != _NONE) | ((ops[2] != _NONE) & reach[2])
    alive = [fed[k] & reach[j] for k, (_, j) in enumerate(EDGES)]
    keep = np.ones(N_ARCHS, dtype=np.int64)
    for k in range(6):
        keep |= alive[k].astype(np.int64) << (k + 1)
    labels = np.zeros(N_ARCHS, dtype=np.int64)
    edges = np.zeros(N_ARCHS, dtype=np.int64)
    for k, (i, _) in enumerate(EDGES):
        labels = labels * 5 + ops[k] * alive[k]
        srcs = (src[i] & keep) * alive[k]  # kept slots feeding slot k+1
        for u in range(k + 1):
            edges |= ((srcs >> u) & 1) << _BIT[(u, k + 1)]
    out_src = src[3] & keep
    for u in range(7):
        edges |= ((out_src >> u) & 1) << _BIT[(u, 7)]
    out = np.where(out_src != 0, (labels << 28) | edges, -1)
    out.setflags(write=False)
    return out
