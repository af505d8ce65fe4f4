"""Pruned graphs (docs/design.md §3, Supplementary S1.1) and the GCN encoding.

Slots: 0 = cell input, 1..6 = op nodes of the edges in vector order
(1: 0->1, 2: 0->2, 3: 1->2, 4: 0->3, 5: 1->3, 6: 2->3), 7 = cell output.

The unpruned op-node DAG, worked out by hand from the rules ("op node on edge i->j
reads cell node i = input for i = 0, else the sum of the op nodes on edges ending at
i; output reads the op nodes on edges ending at 3"):
    slot 1 (0->1) reads input           -> 0>1
    slot 2 (0->2) reads input           -> 0>2
    slot 3 (1->2) reads node 1 = {1}    -> 1>3
    slot 4 (0->3) reads input           -> 0>4
    slot 5 (1->3) reads node 1 = {1}    -> 1>5
    slot 6 (2->3) reads node 2 = {2, 3} -> 2>6, 3>6
    output reads node 3 = {4, 5, 6}     -> 4>7, 5>7, 6>7
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from latbench.graph import GCN_FEATURES, PrunedGraph, gcn_encoding, prune
from latbench.network import costs
from latbench.space import Arch, all_archs, from_id

NONE, SKIP, C1, C3, POOL = range(5)
FULL_EDGES = {(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)}


def edges(*pairs: str) -> frozenset[tuple[int, int]]:
    return frozenset(tuple(int(x) for x in p.split(">")) for p in pairs)  # type: ignore[misc]


def test_all_conv3x3_keeps_the_full_graph():
    g = prune((C3,) * 6)
    assert g.edges == FULL_EDGES
    assert g.labels == ("input", *["conv3x3"] * 6, "output")
    assert g.valid
    assert g.key == "333333|0>1,0>2,0>4,1>3,1>5,2>6,3>6,4>7,5>7,6>7"
    assert g.op_nodes == (1, 2, 3, 4, 5, 6)
    assert g.preds(6) == (2, 3)
    assert g.preds(7) == (4, 5, 6)


def test_all_skip_collapses_to_one_edge():
    # Bypass in vector order:
    #   slot 1: preds {0}, succs {3, 5} -> add 0>3, 0>5
    #   slot 2: preds {0}, succs {6}    -> add 0>6
    #   slot 3: preds {0}, succs {6}    -> 0>6 again (a set: no duplicate)
    #   slot 4: preds {0}, succs {7}    -> add 0>7
    #   slot 5: preds {0}, succs {7}    -> 0>7 again
    #   slot 6: preds {0}, succs {7}    -> 0>7 again
    # Only 0>7 is left: the cell is the identity.
    g = prune((SKIP,) * 6)
    assert g.edges == edges("0>7")
    assert g.labels == ("input", None, None, None, None, None, None, "output")
    assert g.op_nodes == ()
    assert g.valid
    assert g.key == "------|0>7"


def test_all_none_is_invalid():
    g = prune((NONE,) * 6)
    assert not g.valid
    assert g.edges == frozenset()
    assert g.key == "invalid" and g.iso_key == "invalid"
    assert g.labels == ("input", None, None, None, None, None, None, "output")


def test_skip_chain_into_a_conv():
    # vector (skip, none, skip, none, none, conv3x3): skip 0->1, skip 1->2, conv 2->3.
    # Remove nones (slots 2, 4, 5): left 0>1, 1>3, 3>6, 6>7.
    # Bypass slot 1: 0 -> {3}: 0>3.  Bypass slot 3: {0} -> {6}: 0>6.
    # Left: 0>6, 6>7 -- a single conv3x3 reading the input.
    g = prune((SKIP, NONE, SKIP, NONE, NONE, C3))
    assert g.edges == edges("0>6", "6>7")
    assert g.op_nodes == (6,)
    assert g.labels[6] == "conv3x3"
    assert g.key == "-----3|0>6,6>7"


def test_parallel_skips_collapse_to_one_edge():
    # (skip 0->1, skip 0->2, skip 1->2, none, none, conv3x3 2->3): cell node 2 is x + x,
    # but after bypassing, both routes into slot 6 become the same edge 0>6 and the
    # edge set keeps one copy. The pruned graph is the one of the skip chain above.
    g = prune((SKIP, SKIP, SKIP, NONE, NONE, C3))
    assert g.edges == edges("0>6", "6>7")
    assert g.key == prune((SKIP, NONE, SKIP, NONE, NONE, C3)).key
    assert g.preds(6) == (0,)  # one input, so no add in front of the conv

    # Skip 0->3 next to the chain skip 0->1, skip 1->3: all three become 0>7.
    g2 = prune((SKIP, NONE, NONE, SKIP, SKIP, NONE))
    assert g2.edges == edges("0>7")
    assert g2.key == prune((SKIP,) * 6).key


def test_dangling_branch_after_a_conv_is_removed():
    # conv3x3 on 0->1 whose successors (slot 3: 1->2, slot 5: 1->3) are both none, plus
    # conv1x1 on 0->3. After removing nones: 0>1, 0>4, 4>7. Slot 1 is reached from
    # the input but reaches no output: dangling, dropped.
    g = prune((C3, NONE, NONE, C1, NONE, NONE))
    assert g.edges == edges("0>4", "4>7")
    assert g.labels[1] is None
    assert g.labels[4] == "conv1x1"
    assert g.key == "---1--|0>4,4>7"
    # the same network as the cell that only has the conv1x1
    assert g == prune((NONE, NONE, NONE, C1, NONE, NONE))


def test_dangling_branch_before_a_conv_is_removed():
    # 0->1 is none, so the conv3x3 on 1->2 (slot 3) has no input: it reaches the output
    # through slot 6 but is not reached from the input -> dropped.
    # vector (none, conv1x1, conv3x3, conv3x3, none, conv3x3). After removing nones
    # (slots 1, 5): 0>2, 0>4, 2>6, 3>6, 4>7, 6>7; dropping slot 3 removes 3>6.
    g = prune((NONE, C1, C3, C3, NONE, C3))
    assert g.edges == edges("0>2", "0>4", "2>6", "4>7", "6>7")
    assert g.labels == ("input", None, "conv1x1", None, "conv3x3", None, "conv3x3", "output")
    assert g.key == "-1-3-3|0>2,0>4,2>6,4>7,6>7"


def test_residual_block():
    # (conv3x3 0->1, none, none, skip 0->3, skip 1->3, none): after nones 0>1, 0>4,
    # 1>5, 4>7, 5>7; bypass slot 4: 0>7; bypass slot 5: 1>7.
    g = prune((C3, NONE, NONE, SKIP, SKIP, NONE))
    assert g.edges == edges("0>1", "0>7", "1>7")
    assert g.preds(7) == (0, 1)
    assert g.key == "3-----|0>1,0>7,1>7"


def test_pool_survives_like_a_conv():
    g = prune((POOL, NONE, NONE, NONE, SKIP, NONE))  # pool 0->1 then skip 1->3
    assert g.edges == edges("0>1", "1>7")
    assert g.labels[1] == "avgpool3x3"
    assert g.key == "a-----|0>1,1>7"


def test_isomorphic_graphs_share_iso_key_not_key():
    # One conv3x3 between input and output, placed on three different slots.
    a = prune((C3, NONE, NONE, NONE, SKIP, NONE))  # conv 0->1, skip 1->3: 0>1, 1>7
    b = prune((NONE, NONE, NONE, C3, NONE, NONE))  # conv 0->3: 0>4, 4>7
    c = prune((NONE, C3, NONE, NONE, NONE, SKIP))  # conv 0->2, skip 2->3: 0>2, 2>7
    assert a.edges == edges("0>1", "1>7")
    assert b.edges == edges("0>4", "4>7")
    assert c.edges == edges("0>2", "2>7")
    assert len({a.key, b.key, c.key}) == 3
    assert a.iso_key == b.iso_key == c.iso_key
    assert costs(a) == costs(b) == costs(c)

    # Two branches conv1x1 and conv3x3 in parallel, on different slots.
    d = prune((C3, NONE, NONE, C1, SKIP, NONE))  # conv3 0->1 -> skip -> out; conv1 0->3
    e = prune((NONE, C3, NONE, C1, NONE, SKIP))  # conv3 0->2 -> skip -> out; conv1 0->3
    assert d.edges == edges("0>1", "0>4", "1>7", "4>7")
    assert e.edges == edges("0>2", "0>4", "2>7", "4>7")
    assert d.key != e.key and d.iso_key == e.iso_key


def test_label_matters_for_isomorphism():
    a = prune((NONE, NONE, NONE, C3, NONE, NONE))
    b = prune((NONE, NONE, NONE, C1, NONE, NONE))
    assert a.iso_key != b.iso_key
    # same shape, labels swapped along a chain: conv3 -> conv1 vs conv1 -> conv3
    c = prune((C3, NONE, NONE, NONE, C1, NONE))  # 0>1 (conv3), 1>5 (conv1), 5>7
    d = prune((C1, NONE, NONE, NONE, C3, NONE))
    assert c.edges == d.edges == edges("0>1", "1>5", "5>7")
    assert c.iso_key != d.iso_key


def test_shared_vs_duplicated_node_are_different_networks():
    # Both compute conv1x1(conv3x3(x)) + conv1x1(conv3x3(x)) when unfolded into a tree.
    # Shared: conv3 0->1 (slot 1) feeds conv1 1->2 (slot 3) and conv1 1->3 (slot 5);
    # skip 2->3 (slot 6). After nones (2, 4): 0>1, 1>3, 1>5, 3>6, 5>7, 6>7;
    # bypass slot 6: 3>7.  One conv3x3 node used twice.
    shared = prune((C3, NONE, C1, NONE, C1, SKIP))
    assert shared.edges == edges("0>1", "1>3", "1>5", "3>7", "5>7")
    # Duplicated: conv3 0->1 -> conv1 1->3, and conv3 0->2 -> conv1 2->3; 1->2 none.
    # After nones (3, 4): 0>1, 0>2, 1>5, 2>6, 5>7, 6>7. Two conv3x3 nodes.
    dup = prune((C3, C3, NONE, NONE, C1, C1))
    assert dup.edges == edges("0>1", "0>2", "1>5", "2>6", "5>7", "6>7")
    assert shared.iso_key != dup.iso_key
    assert costs(shared).flops < costs(dup).flops  # the duplicate conv3x3 costs MACs


def test_no_none_or_skip_survives_and_labels_match_ops():
    label = {C1: "conv1x1", C3: "conv3x3", POOL: "avgpool3x3"}
    for a in all_archs():
        g = a.graph
        assert g.valid == a.valid
        if not g.valid:
            assert g.edges == frozenset() and g.op_nodes == ()
            continue
        for s in g.op_nodes:
            assert label[a.vector[s - 1]] == g.labels[s]
        alive = {0, 7, *g.op_nodes}
        for u, v in g.edges:
            assert u < v and u in alive and v in alive
        # every op node has an input and an output edge (no dangling nodes)
        for s in g.op_nodes:
            assert g.preds(s) and any(u == s for u, _ in g.edges)


# --- an independent pruner and isomorphism test -------------------------------------

_CELL_EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
_NAMES = {C1: "conv1x1", C3: "conv3x3", POOL: "avgpool3x3"}


def _symbolic_prune(vec):
    """Evaluate the cell symbolically instead of editing a graph.

    ``value[n]`` is the set of producers summed into cell node n: "in" or an op slot.
    A skip forwards its source's producers, none forwards nothing, an op on edge k
    becomes producer k with the source's producers as inputs (if there are any).
    Then keep the op slots reachable backwards from the output.
    """
    value = {0: frozenset({"in"})}
    inputs: dict[int, frozenset] = {}
    for n in (1, 2, 3):
        acc: set = set()
        for k, (s, d) in enumerate(_CELL_EDGES, start=1):
            if d != n or vec[k - 1] == NONE or not value[s]:
                continue
            if vec[k - 1] == SKIP:
                acc |= value[s]
            else:
                inputs[k] = value[s]
                acc.add(k)
        value[n] = frozenset(acc)
    if not value[3]:
        return None
    keep: set[int] = set()
    stack = [p for p in value[3] if p != "in"]
    while stack:
        k = stack.pop()
        if k not in keep:
            keep.add(k)
            stack.extend(p for p in inputs[k] if p != "in")
    slot = lambda p: 0 if p == "in" else p  # noqa: E731
    es = {(slot(p), k) for k in keep for p in inputs[k]} | {(slot(p), 7) for p in value[3]}
    return {k: _NAMES[vec[k - 1]] for k in keep}, frozenset(es)


def _invariant(labels, es):
    deg = sorted(
        (lab, sum(b == k for _, b in es), sum(a == k for a, _ in es)) for k, lab in labels.items()
    )
    name = lambda n: labels.get(n, {0: "in", 7: "out"}.get(n))  # noqa: E731
    return tuple(deg), tuple(sorted((name(a), name(b)) for a, b in es))


def _isomorphic(g1, g2):
    """Brute force: try every bijection of op nodes, input and output fixed."""
    (l1, e1), (l2, e2) = g1, g2
    n1, n2 = sorted(l1), sorted(l2)
    if len(n1) != len(n2) or len(e1) != len(e2):
        return False
    for perm in itertools.permutations(n2):
        m = {0: 0, 7: 7, **dict(zip(n1, perm, strict=True))}
        if all(l1[a] == l2[m[a]] for a in n1) and {(m[a], m[b]) for a, b in e1} == e2:
            return True
    return False


@pytest.fixture(scope="module")
def library_graphs():
    return {v: prune(v) for v in itertools.product(range(5), repeat=6)}


def test_prune_matches_independent_symbolic_evaluation(library_graphs):
    for v, g in library_graphs.items():
        ref = _symbolic_prune(v)
        if ref is None:
            assert not g.valid, v
            continue
        labels, es = ref
        assert g.edges == es, v
        assert {s: g.labels[s] for s in g.op_nodes} == labels, v


def test_number_of_distinct_pruned_graphs(library_graphs):
    """Among the 15,284 valid architectures there are 8,686 distinct pruned graphs by
    position and 5,256 up to isomorphism (renumbering of op nodes)."""
    valid = {v: g for v, g in library_graphs.items() if g.valid}
    assert len(valid) == 15_284

    # positional: by the library's key and by the independent pruner's output
    assert len({g.key for g in valid.values()}) == 8_686
    positional = {}
    for v in valid:
        labels, es = _symbolic_prune(v)
        positional.setdefault((tuple(sorted(labels.items())), es), v)
    assert len(positional) == 8_686

    # isomorphism classes by pairwise brute force within invariant buckets
    buckets = defaultdict(list)
    for (labels, es), v in positional.items():
        buckets[_invariant(dict(labels), es)].append((dict(labels), es, v))
    cls_of: dict[tuple, int] = {}  # representative vector of each positional graph's class
    n_classes = 0
    for members in buckets.values():
        reps: list[tuple] = []
        for labels, es, v in members:
            for rl, re_, rv in reps:
                if _isomorphic((labels, es), (rl, re_)):
                    cls_of[v] = rv
                    break
            else:
                reps.append((labels, es, v))
                cls_of[v] = v
        n_classes += len(reps)
    assert n_classes == 5_256

    # the library's iso_key induces exactly the same partition
    iso = {v: valid[v].iso_key for v in positional.values()}
    assert len(set(iso.values())) == 5_256
    for v, rep in cls_of.items():
        assert iso[v] == iso[rep]  # same class -> same key; with 5,256 keys also the converse


def test_iso_key_is_invariant_under_relabeling_in_the_key():
    # Build a graph by hand, renumber its op nodes (keeping topological order), and
    # check iso_key does not change while key does.
    g = prune((C3, C1, C3, POOL, C1, C3))
    perm = {0: 0, 7: 7, 1: 2, 2: 1, 3: 3, 4: 5, 5: 4, 6: 6}
    labels = list(g.labels)
    new_labels = [None] * 8
    for s in range(8):
        new_labels[perm[s]] = labels[s]
    h = PrunedGraph(tuple(new_labels), frozenset((perm[u], perm[v]) for u, v in g.edges))
    assert h.key != g.key
    assert h.iso_key == g.iso_key


# --- GCN encoding ---------------------------------------------------------------------


def test_gcn_encoding_of_residual_block():
    # edges 0>1, 0>7, 1>7; node order: global 0, input 1, slots 1..6 -> 2..7, output 8
    adj, feat = gcn_encoding((C3, NONE, NONE, SKIP, SKIP, NONE))
    assert adj.shape == (9, 9) and feat.shape == (9, 6)
    assert adj.dtype == np.float32 and feat.dtype == np.float32
    expected = np.eye(9, dtype=np.float32)  # self-loops everywhere
    expected[:, 0] = 1.0  # every node, detached ones included, feeds the global node
    expected[1, 2] = 1.0  # input -> slot 1   (0>1)
    expected[1, 8] = 1.0  # input -> output   (0>7)
    expected[2, 8] = 1.0  # slot 1 -> output  (1>7)
    np.testing.assert_array_equal(adj, expected)
    assert adj.sum() == 9 + 8 + 3
    assert GCN_FEATURES == ("conv1x1", "conv3x3", "avgpool3x3", "input", "output", "global")
    f = np.zeros((9, 6), dtype=np.float32)
    f[0, 5] = 1  # global
    f[1, 3] = 1  # input
    f[2, 1] = 1  # slot 1: conv3x3
    f[8, 4] = 1  # output
    np.testing.assert_array_equal(feat, f)  # slots 2..6 were removed: zero rows


def test_gcn_encoding_of_full_graph():
    vec = (C1, C3, POOL, C3, C1, POOL)
    adj, feat = gcn_encoding(vec)
    for u, v in FULL_EDGES:
        assert adj[u + 1, v + 1] == 1
    off = adj - np.eye(9) - np.pad(np.ones((8, 1)), ((1, 0), (0, 8)))
    assert off.sum() == len(FULL_EDGES)  # nothing else set
    # one-hot rows, in the right columns
    assert (feat.sum(axis=1) == 1).all()
    cols = [GCN_FEATURES.index(x) for x in ("conv1x1", "conv3x3", "avgpool3x3")]
    assert [int(np.argmax(feat[s + 1])) for s in range(1, 7)] == [cols[op - 2] for op in vec]


def test_gcn_encoding_invariants_over_the_space():
    for aid in range(0, 15_625, 7):
        g = prune(from_id(aid))
        adj, feat = g.gcn_encoding()
        assert (np.diag(adj) == 1).all()
        assert (adj[:, 0] == 1).all() and adj[0, 1:].sum() == 0
        assert adj.sum() == 9 + 8 + len(g.edges)
        assert np.triu(adj, 1)[1:, 1:].sum() == len(g.edges)  # edges go forward only
        rows = feat.sum(axis=1)
        assert rows[0] == rows[1] == rows[8] == 1
        assert set(np.flatnonzero(rows[2:8]) + 1) == set(g.op_nodes)
        assert set(np.unique(feat)) <= {0.0, 1.0}


def test_arch_graph_is_cached_and_equal_to_prune():
    a = Arch((C3, SKIP, C1, POOL, NONE, C3))
    assert a.graph is a.graph
    assert a.graph == prune(a.vector)
