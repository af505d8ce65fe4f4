"""Per-architecture inputs of the predictors, computed once for the whole space.

Everything here is a dense array indexed by ``arch_id`` (15,625 rows), cached per
process, so that fitting or predicting is array indexing, not graph work.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from latbench.space import N_ARCHS, from_id

__all__ = [
    "CELL_FEATURES",
    "ENCODINGS",
    "cost_arrays",
    "gcn_inputs",
    "layer_count_matrix",
    "pruned_graph_index",
    "valid_mask",
]


@cache
def _graphs() -> tuple:
    from latbench.graph import prune

    return tuple(prune(from_id(i)) for i in range(N_ARCHS))


@cache
def _valid() -> np.ndarray:
    out = _pruned_edges()[:, :, 7].any(axis=1)  # an edge into the output survives
    out.setflags(write=False)
    return out


@cache
def pruned_graph_index() -> np.ndarray:
    """Per ``arch_id``, the number of its distinct pruned graph, numbered in ``arch_id``
    order of first appearance (-1 for invalid): two architectures share a number iff
    their :attr:`latbench.graph.PrunedGraph.key` is equal."""
    edges = _pruned_edges().reshape(N_ARCHS, 64)
    ops = np.where(_pruned_alive(), _vectors(), -1)  # a removed slot has no op
    rows = np.ascontiguousarray(np.hstack([edges.astype(np.int8), ops.astype(np.int8)]))
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one bytes key per row
    valid = _valid()
    _, first, inverse = np.unique(keys[valid], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    out = np.full(N_ARCHS, -1, dtype=np.int64)
    out[valid] = rank[inverse.ravel()]
    out.setflags(write=False)
    return out


def valid_mask() -> np.ndarray:
    """Read-only bool array: ``valid_mask()[arch_id]`` is True for valid architectures."""
    return _valid()


ENCODINGS = ("pruned", "cell")
"""GCN encodings: the pruned graph (docs/design.md §3, the paper) or the full, unpruned cell."""
CELL_FEATURES = (
    "none",
    "skip_connect",
    "conv1x1",
    "conv3x3",
    "avgpool3x3",
    "input",
    "output",
    "global",
)
"""Feature columns of the ``cell`` encoding."""


def gcn_inputs(encoding: str = "pruned") -> tuple[np.ndarray, np.ndarray]:
    """GCN inputs of every architecture: ``(adj, feat)``, float32, read-only.

    ``pruned``: ``adj[i]`` (9x9) is the *transpose* of
    :meth:`PrunedGraph.gcn_encoding`'s matrix, so that row ``v`` of ``adj @ H`` sums
    the predecessors of ``v`` and the global node (row 0) sums every node
    (docs/design-notes.md); ``feat[i]`` is its 9x6 one-hot feature matrix.
    ``cell``: the same 9 slots and orientation over the *unpruned* op-node DAG (Figure
    S1 middle), every op kept, features one-hot over :data:`CELL_FEATURES` (9x8); for
    datasets that timed unpruned cells (HELP).
    """
    if encoding == "pruned":
        return _pruned_inputs()
    if encoding == "cell":
        return _cell_inputs()
    raise ValueError(f"unknown GCN encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")


@cache
def _cell_inputs() -> tuple[np.ndarray, np.ndarray]:
    from latbench.space import EDGES

    # Fixed DAG (docs/design.md §3 before pruning): op k+1 reads cell node src of EDGES[k].
    ending_at = {n: [k + 1 for k, (_, dst) in enumerate(EDGES) if dst == n] for n in (1, 2, 3)}
    a = np.eye(9, dtype=np.float32)
    for k, (src, _) in enumerate(EDGES):
        for p in [0] if src == 0 else ending_at[src]:
            a[p + 1, k + 2] = 1.0
    for p in ending_at[3]:
        a[p + 1, 8] = 1.0
    a[:, 0] = 1.0
    adj = np.broadcast_to(a.T, (N_ARCHS, 9, 9)).copy()
    feat = np.zeros((N_ARCHS, 9, len(CELL_FEATURES)), dtype=np.float32)
    feat[:, 0, CELL_FEATURES.index("global")] = 1.0
    feat[:, 1, CELL_FEATURES.index("input")] = 1.0
    feat[:, 8, CELL_FEATURES.index("output")] = 1.0
    vectors = _vectors()  # op index = feature column
    for k in range(6):
        feat[np.arange(N_ARCHS), k + 2, vectors[:, k]] = 1.0
    adj.setflags(write=False)
    feat.setflags(write=False)
    return adj, feat


def _vectors() -> np.ndarray:
    """``(N_ARCHS, 6)`` op indices of every architecture (:func:`latbench.space.from_id`)."""
    ids = np.arange(N_ARCHS)
    return np.stack([ids // 5 ** (5 - k) % 5 for k in range(6)], axis=1)


@cache
def _pruned() -> tuple[np.ndarray, np.ndarray]:
    # graph.prune (docs/design.md §3) on all 15,625 at once, an edge set being a
    # boolean 8x8 matrix (0 input, 1..6 op slots, 7 output) per architecture; equal to
    # the per-graph path for every architecture (tests/test_predictors.py) in a tenth
    # of the time. Returns the pruned edges and the nodes kept.
    from latbench.graph import INPUT, OUTPUT
    from latbench.space import EDGES

    v = _vectors()
    ending_at = {n: [k + 1 for k, (_, dst) in enumerate(EDGES) if dst == n] for n in (1, 2, 3)}
    base = np.zeros((8, 8), dtype=bool)
    for k, (src, _) in enumerate(EDGES):
        base[[INPUT] if src == 0 else ending_at[src], k + 1] = True
    base[ending_at[3], OUTPUT] = True
    e = np.broadcast_to(base, (N_ARCHS, 8, 8)).copy()
    for slot in range(1, 7):  # none: detach
        none = v[:, slot - 1] == 0
        e[none, slot, :] = e[none, :, slot] = False
    for slot in range(1, 7):  # skip_connect, slot by slot: wire predecessors to successors
        skip = v[:, slot - 1] == 1
        pre, suc = e[skip, :, slot], e[skip, slot, :]
        e[skip, slot, :] = e[skip, :, slot] = False
        e[skip] |= pre[:, :, None] & suc[:, None, :]
    fwd = np.zeros((N_ARCHS, 8), dtype=bool)
    bwd = np.zeros((N_ARCHS, 8), dtype=bool)
    fwd[:, INPUT] = bwd[:, OUTPUT] = True
    for _ in range(7):  # a path visits at most 8 nodes
        fwd |= (fwd[:, :, None] & e).any(axis=1)
        bwd |= (e & bwd[:, None, :]).any(axis=2)
    keep = fwd & bwd & fwd[:, OUTPUT, None]
    e &= keep[:, :, None] & keep[:, None, :]
    e.setflags(write=False)
    keep.setflags(write=False)
    return e, keep


def _pruned_edges() -> np.ndarray:
    """``(N_ARCHS, 8, 8)`` bool: ``[a, u, v]`` is an edge ``u -> v`` of ``a``'s pruned graph."""
    return _pruned()[0]


def _pruned_alive() -> np.ndarray:
    """``(N_ARCHS, 6)`` bool: op slot ``1..6`` survives pruning with an op (not a skip)."""
    return _pruned()[1][:, 1:7] & (_vectors() >= 2)


@cache
def _pruned_inputs() -> tuple[np.ndarray, np.ndarray]:
    from latbench.graph import _LABEL, GCN_FEATURES

    v = _vectors()
    e, keep = _pruned()

    # PrunedGraph.gcn_encoding, transposed: node u sits in row/column u + 1 after global
    adj = np.zeros((N_ARCHS, 9, 9), dtype=np.float32)
    adj[:, 1:, 1:] = e.transpose(0, 2, 1)
    adj[:, np.arange(9), np.arange(9)] = 1.0
    adj[:, 0, :] = 1.0
    feat = np.zeros((N_ARCHS, 9, len(GCN_FEATURES)), dtype=np.float32)
    feat[:, 0, GCN_FEATURES.index("global")] = 1.0
    feat[:, 1, GCN_FEATURES.index("input")] = 1.0
    feat[:, 8, GCN_FEATURES.index("output")] = 1.0
    column = np.full(5, -1)
    for op, label in _LABEL.items():
        column[op] = GCN_FEATURES.index(label)
    for slot in range(1, 7):
        rows = np.flatnonzero(keep[:, slot] & (column[v[:, slot - 1]] >= 0))
        feat[rows, slot + 1, column[v[rows, slot - 1]]] = 1.0
    adj.setflags(write=False)
    feat.setflags(write=False)
    return adj, feat


def _pruned_inputs_from_graphs() -> tuple[np.ndarray, np.ndarray]:
    """The definition :func:`_pruned_inputs` computes fast: each architecture's
    :func:`latbench.graph.prune` graph and its ``gcn_encoding`` (tests, benchmarks)."""
    adj = np.empty((N_ARCHS, 9, 9), dtype=np.float32)
    feat = np.empty((N_ARCHS, 9, 6), dtype=np.float32)
    by_key: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, g in enumerate(_graphs()):
        enc = by_key.get(g.key) if g.valid else None
        if enc is None:
            enc = g.gcn_encoding()
            if g.valid:
                by_key[g.key] = enc
        adj[i] = enc[0].T
        feat[i] = enc[1]
    return adj, feat


@cache
def cost_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(flops, params)`` of every architecture as float64 arrays (docs/design.md §4)."""
    from latbench.network import costs

    flops = np.empty(N_ARCHS)
    params = np.empty(N_ARCHS)
    by_key: dict[str, tuple[int, int]] = {}
    for i, g in enumerate(_graphs()):
        c = by_key.get(g.key)
        if c is None:
            cc = costs(g)
            c = by_key[g.key] = (cc.flops, cc.params)
        flops[i], params[i] = c
    flops.setflags(write=False)
    params.setflags(write=False)
    return flops, params


@cache
def layer_count_matrix() -> tuple[tuple[str, ...], np.ndarray]:
    """Layer signatures and an ``(arch_id, signature)`` matrix of instance counts.

    Row ``i`` counts how often each signature occurs in architecture ``i``'s pruned
    network (:func:`latbench.network.layer_counts`); invalid architectures count the
    cell-less skeleton.
    """
    from latbench.network import layer_counts

    by_key: dict[str, dict[str, int]] = {}
    keys = []
    for g in _graphs():
        if g.key not in by_key:
            by_key[g.key] = layer_counts(g)
        keys.append(g.key)
    sigs = tuple(sorted({s for c in by_key.values() for s in c}))
    col = {s: j for j, s in enumerate(sigs)}
    rows = {}
    for key, c in by_key.items():
        row = np.zeros(len(sigs))
        for sig, n in c.items():
            row[col[sig]] = n
        rows[key] = row
    counts = np.stack([rows[k] for k in keys])
    counts.setflags(write=False)
    return sigs, counts
