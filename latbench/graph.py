"""Pruned op-node graphs of NAS-Bench-201 cells (docs/design.md §3, Supplementary S1.1).

Node slots: ``0`` is the cell input, ``1..6`` the op nodes of the six edges in vector
order, ``7`` the cell output. Every edge goes from a lower slot to a higher one, so
slot order is a topological order. ``none`` nodes are removed, ``skip_connect`` nodes
are bypassed (each predecessor wired to each successor, in vector order), and nodes
not on an input-to-output path are dropped. What remains is the network that is built
and timed; two architectures with equal :attr:`PrunedGraph.key` are the same network.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from latbench.space import EDGES, _check_vector

__all__ = [
    "GCN_FEATURES",
    "INPUT",
    "LAYER_OPS",
    "OUTPUT",
    "PrunedGraph",
    "gcn_encoding",
    "prune",
]

INPUT = 0
OUTPUT = 7
LAYER_OPS = ("conv1x1", "conv3x3", "avgpool3x3")
"""Labels of op nodes that survive pruning (``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``)."""

_LABEL = {2: "conv1x1", 3: "conv3x3", 4: "avgpool3x3"}
_CODE = {"conv1x1": "1", "conv3x3": "3", "avgpool3x3": "a"}
GCN_FEATURES = ("conv1x1", "conv3x3", "avgpool3x3", "input", "output", "global")
"""Columns of the GCN feature matrix, in order."""


@dataclass(frozen=True)
class PrunedGraph:
    """A pruned cell graph.

    ``labels[s]`` is the op label of slot ``s`` (``None`` when removed; slots 0 and 7
    are always ``"input"``/``"output"``); ``edges`` are ``(u, v)`` slot pairs, u < v.
    """

    labels: tuple[str | None, ...]
    edges: frozenset[tuple[int, int]]

    @property
    def valid(self) -> bool:
        """True when the output is connected to the input."""
        return any(v == OUTPUT for _, v in self.edges)

    @property
    def op_nodes(self) -> tuple[int, ...]:
        """Surviving op slots in topological (slot) order."""
        return tuple(s for s in range(1, 7) if self.labels[s] is not None)

    def preds(self, slot: int) -> tuple[int, ...]:
        """Direct predecessors of ``slot``, sorted."""
        return tuple(sorted(u for u, v in self.edges if v == slot))

    @property
    def key(self) -> str:
        """Positional key: surviving op per slot 1..6 and the sorted edge list.

        ``"3-1---|0>1,0>3,1>7,3>7"``: slot codes ``1`` conv1x1, ``3`` conv3x3,
        ``a`` avgpool3x3, ``-`` removed. Invalid cells give ``"invalid"``.
        """
        if not self.valid:
            return "invalid"
        ops = "".join(_CODE[lab] if lab else "-" for lab in self.labels[1:7])
        return ops + "|" + ",".join(f"{u}>{v}" for u, v in sorted(self.edges))

    @property
    def iso_key(self) -> str:
        """Key invariant to renumbering of op nodes (equal iff the graphs are isomorphic)."""
        if not self.valid:
            return "invalid"
        return _canonical(self.key)

    def gcn_encoding(self) -> tuple[np.ndarray, np.ndarray]:
        """The 9x9 adjacency and 9x6 feature matrices of Supplementary S1.1.

        Node order: global, input, op slots 1..6, output. ``A[u, v] = 1`` for an edge
        ``u -> v``; the global node is a sink fed by every node (detached ones too);
        self-loops everywhere. Removed nodes keep their slot with a zero feature row.
        """
        adj = np.eye(9, dtype=np.float32)
        for u, v in self.edges:
            adj[u + 1, v + 1] = 1.0
        adj[:, 0] = 1.0
        feat = np.zeros((9, len(GCN_FEATURES)), dtype=np.float32)
        feat[0, GCN_FEATURES.index("global")] = 1.0
        feat[1, GCN_FEATURES.index("input")] = 1.0
        feat[8, GCN_FEATURES.index("output")] = 1.0
        for s in self.op_nodes:
            feat[s + 1, GCN_FEATURES.index(self.labels[s])] = 1.0
        return adj, feat


def gcn_encoding(vector: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Shortcut for ``prune(vector).gcn_encoding()``."""
    return prune(vector).gcn_encoding()


def prune(vector: Sequence[int]) -> PrunedGraph:
    """Build the pruned op-node graph of a 6-op vector (docs/design.md §3)."""
    return _prune(_check_vector(vector))


@cache
def _prune(v: tuple[int, ...]) -> PrunedGraph:
    # Unpruned op-node DAG: op slot k+1 sits on edge EDGES[k] = (i -> j) and reads
    # cell node i: the input when i == 0, else the op slots of edges ending at i.
    ending_at = {n: [k + 1 for k, (_, dst) in enumerate(EDGES) if dst == n] for n in (1, 2, 3)}
    edges: set[tuple[int, int]] = set()
    for k, (src, _) in enumerate(EDGES):
        for p in [INPUT] if src == 0 else ending_at[src]:
            edges.add((p, k + 1))
    for p in ending_at[3]:
        edges.add((p, OUTPUT))

    alive = set(range(8))
    for slot in range(1, 7):
        if v[slot - 1] == 0:  # none: detach
            alive.discard(slot)
            edges = {(a, b) for a, b in edges if slot not in (a, b)}
    for slot in range(1, 7):
        if v[slot - 1] == 1:  # skip_connect: wire predecessors to successors
            pre = [a for a, b in edges if b == slot]
            suc = [b for a, b in edges if a == slot]
            edges = {(a, b) for a, b in edges if slot not in (a, b)}
            edges |= {(a, b) for a in pre for b in suc}
            alive.discard(slot)

    fwd = _reach(INPUT, edges, forward=True)
    bwd = _reach(OUTPUT, edges, forward=False)
    keep = (fwd & bwd) if OUTPUT in fwd else set()
    edges = {(a, b) for a, b in edges if a in keep and b in keep}
    labels: list[str | None] = ["input"] + [None] * 6 + ["output"]
    for slot in range(1, 7):
        if slot in keep and slot in alive:
            labels[slot] = _LABEL[v[slot - 1]]
    return PrunedGraph(tuple(labels), frozenset(edges))


def _reach(start: int, edges: set[tuple[int, int]], forward: bool) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        n = stack.pop()
        for a, b in edges:
            nxt, frm = (b, a) if forward else (a, b)
            if frm == n and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


@cache
def _canonical(key: str) -> str:
    ops, edge_part = key.split("|")
    edges = [tuple(map(int, e.split(">"))) for e in edge_part.split(",")]
    slots = [s + 1 for s, c in enumerate(ops) if c != "-"]
    labels = {s: ops[s - 1] for s in slots}
    # Only permutations that list op nodes grouped by label can be minimal, so try
    # every ordering within each label group (at most 6! = 720).
    groups = [[s for s in slots if labels[s] == c] for c in sorted(set(labels.values()))]
    best: str | None = None
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [s for g in perm for s in g]
        rename = {INPUT: 0, OUTPUT: len(order) + 1} | {s: i + 1 for i, s in enumerate(order)}
        cand = ",".join(f"{a}>{b}" for a, b in sorted((rename[u], rename[v]) for u, v in edges))
        if best is None or cand < best:
            best = cand
    code = "".join(labels[s] for g in groups for s in g)
    return f"{code}|{best}"
