"""FLOPs (MACs), params and layers of the timed network (docs/design.md §4), worked by hand.

Conventions: a k x k convolution Cin -> Cout producing an Ho x Ho map costs
Ho*Ho*k*k*Cin*Cout MACs and k*k*Cin*Cout weights (no bias); the dense head costs
64*10 MACs and 64*10 + 10 params; pooling and adds cost nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from latbench.graph import prune
from latbench.network import (
    CELLS_PER_STAGE,
    INPUT_SHAPE,
    STAGES,
    Costs,
    costs,
    distinct_layers,
    layer_counts,
    network_layers,
)
from latbench.space import all_archs

NONE, SKIP, C1, C3, POOL = range(5)

# --- the skeleton, by hand -------------------------------------------------------------
# stem: conv3x3 3->16 at 32x32
STEM_PARAMS = 3 * 3 * 3 * 16  # 432
STEM_MACS = 32 * 32 * (3 * 3 * 3) * 16  # 442,368
# reduction 16->32 from 32x32 to 16x16:
#   conv3x3 stride 2  16->32: 16*16 * 9*16*32 = 1,179,648 MACs, 4,608 params
#   conv3x3 stride 1  32->32: 16*16 * 9*32*32 = 2,359,296 MACs, 9,216 params
#   avgpool 2x2, conv1x1 16->32: 16*16 * 16*32 =  131,072 MACs,   512 params
RED1_MACS = 16 * 16 * 9 * 16 * 32 + 16 * 16 * 9 * 32 * 32 + 16 * 16 * 16 * 32
RED1_PARAMS = 9 * 16 * 32 + 9 * 32 * 32 + 16 * 32
# reduction 32->64 from 16x16 to 8x8, same shape of arithmetic
RED2_MACS = 8 * 8 * 9 * 32 * 64 + 8 * 8 * 9 * 64 * 64 + 8 * 8 * 32 * 64
RED2_PARAMS = 9 * 32 * 64 + 9 * 64 * 64 + 32 * 64
HEAD_MACS = 64 * 10
HEAD_PARAMS = 64 * 10 + 10
SKELETON = Costs(
    STEM_MACS + RED1_MACS + RED2_MACS + HEAD_MACS,
    STEM_PARAMS + RED1_PARAMS + RED2_PARAMS + HEAD_PARAMS,
)

# One conv3x3 CxC per cell, 5 cells per stage:
#   stage 1: 32*32 * 9*16*16 = 2,359,296 MACs, 2,304 params
#   stage 2: 16*16 * 9*32*32 = 2,359,296 MACs, 9,216 params
#   stage 3:  8*8  * 9*64*64 = 2,359,296 MACs, 36,864 params
CONV3_PER_CELL_POSITION = Costs(
    5 * (32 * 32 * 9 * 16 * 16 + 16 * 16 * 9 * 32 * 32 + 8 * 8 * 9 * 64 * 64),
    5 * (9 * 16 * 16 + 9 * 32 * 32 + 9 * 64 * 64),
)
CONV1_PER_CELL_POSITION = Costs(
    5 * (32 * 32 * 16 * 16 + 16 * 16 * 32 * 32 + 8 * 8 * 64 * 64),
    5 * (16 * 16 + 32 * 32 + 64 * 64),
)


def test_hand_constants():
    # the arithmetic above, spelled out as numbers (sanity of the test itself)
    assert STEM_MACS == 442_368 and STEM_PARAMS == 432
    assert RED1_MACS == RED2_MACS == 3_670_016
    assert (RED1_PARAMS, RED2_PARAMS) == (14_336, 57_344)
    assert Costs(7_783_040, 72_762) == SKELETON
    assert Costs(35_389_440, 241_920) == CONV3_PER_CELL_POSITION
    assert Costs(3_932_160, 26_880) == CONV1_PER_CELL_POSITION


def test_macro_constants():
    assert INPUT_SHAPE == (1, 32, 32, 3)
    assert STAGES == ((16, 32), (32, 16), (64, 8))
    assert CELLS_PER_STAGE == 5


def test_all_skip_is_the_skeleton():
    assert costs((SKIP,) * 6) == SKELETON
    layers = network_layers((SKIP,) * 6)
    assert [x.signature for x in layers] == ["stem", "reduction1", "reduction2", "head"]


def test_invalid_arch_costs_the_skeleton():
    assert costs((NONE,) * 6) == SKELETON


def test_pool_only_adds_no_flops_or_params():
    vec = (NONE, NONE, NONE, POOL, NONE, NONE)  # avgpool on 0->3
    assert costs(vec) == SKELETON
    counts = layer_counts(vec)
    assert counts["s1/avgpool3x3"] == counts["s2/avgpool3x3"] == counts["s3/avgpool3x3"] == 5


def test_single_conv3x3_path():
    vec = (NONE, NONE, NONE, C3, NONE, NONE)
    assert costs(vec) == Costs(
        SKELETON.flops + CONV3_PER_CELL_POSITION.flops,
        SKELETON.params + CONV3_PER_CELL_POSITION.params,
    )
    assert costs(vec) == Costs(43_172_480, 314_682)


def test_single_conv1x1_path_via_skips():
    vec = (SKIP, NONE, NONE, NONE, C1, NONE)  # skip 0->1, conv1x1 1->3
    assert costs(vec) == Costs(
        SKELETON.flops + CONV1_PER_CELL_POSITION.flops,
        SKELETON.params + CONV1_PER_CELL_POSITION.params,
    )


def test_all_conv3x3():
    # six conv3x3 nodes survive in every cell
    assert costs((C3,) * 6) == Costs(
        SKELETON.flops + 6 * CONV3_PER_CELL_POSITION.flops,
        SKELETON.params + 6 * CONV3_PER_CELL_POSITION.params,
    )
    assert costs((C3,) * 6) == Costs(220_119_680, 1_524_282)


def test_dangling_conv_costs_nothing():
    # conv3x3 on 0->1 with both successors none is dropped; only the conv1x1 on 0->3 counts
    assert costs((C3, NONE, NONE, C1, NONE, NONE)) == costs((NONE, NONE, NONE, C1, NONE, NONE))


def test_costs_follow_the_surviving_nodes_everywhere():
    """For every valid arch: skeleton + per-node costs of the surviving conv nodes."""
    for a in all_archs():
        if not a.valid:
            continue
        labels = [a.graph.labels[s] for s in a.graph.op_nodes]
        n3, n1 = labels.count("conv3x3"), labels.count("conv1x1")
        expect = Costs(
            SKELETON.flops
            + n3 * CONV3_PER_CELL_POSITION.flops
            + n1 * CONV1_PER_CELL_POSITION.flops,
            SKELETON.params
            + n3 * CONV3_PER_CELL_POSITION.params
            + n1 * CONV1_PER_CELL_POSITION.params,
        )
        assert costs(a.vector) == expect, a.str


def test_costs_accept_graph_or_vector():
    vec = (C3, C1, POOL, SKIP, C3, C1)
    assert costs(vec) == costs(prune(vec))
    assert layer_counts(vec) == layer_counts(prune(vec))


def test_layer_counts_all_conv3x3():
    # preds: slot 6 <- {2, 3} (add of 2), output <- {4, 5, 6} (add of 3)
    expected = Counter({"stem": 1, "reduction1": 1, "reduction2": 1, "head": 1})
    for s in (1, 2, 3):
        expected[f"s{s}/conv3x3"] = 6 * 5
        expected[f"s{s}/add2"] = 5
        expected[f"s{s}/add3"] = 5
    assert layer_counts((C3,) * 6) == expected


def test_layer_counts_residual_block():
    # conv3 0->1, skip 0->3, skip 1->3: output <- {input, slot 1}: one add of 2 per cell
    counts = layer_counts((C3, NONE, NONE, SKIP, SKIP, NONE))
    for s in (1, 2, 3):
        assert counts[f"s{s}/conv3x3"] == 5
        assert counts[f"s{s}/add2"] == 5
    assert sum(counts.values()) == 4 + 3 * 10


def test_add_of_four_inputs():
    # (conv3 0->1, conv3 0->2, conv3 1->2, conv3 0->3, skip 1->3, skip 2->3):
    # output reads slot 4 (conv on 0->3), slot 1 (via skip 1->3) and slots 2, 3 (via
    # skip 2->3, since cell node 2 = slot 2 + slot 3): 4 inputs.
    vec = (C3, C3, C3, C3, SKIP, SKIP)
    assert prune(vec).preds(7) == (1, 2, 3, 4)
    counts = layer_counts(vec)
    for s in (1, 2, 3):
        assert counts[f"s{s}/add4"] == 5
        assert counts[f"s{s}/conv3x3"] == 4 * 5
    add = next(x for x in network_layers(vec) if x.signature == "s2/add4")
    assert (add.kind, add.n_inputs, add.cin, add.h, add.flops, add.params) == (
        "add",
        4,
        32,
        16,
        0,
        0,
    )


def test_layer_order_and_shapes():
    layers = network_layers((C3,) * 6)
    sigs = [x.signature for x in layers]
    assert sigs[0] == "stem" and sigs[-1] == "head"
    r1, r2 = sigs.index("reduction1"), sigs.index("reduction2")
    assert all(s.startswith("s1/") for s in sigs[1:r1])
    assert all(s.startswith("s2/") for s in sigs[r1 + 1 : r2])
    assert all(s.startswith("s3/") for s in sigs[r2 + 1 : -1])
    # within one cell, in slot order, an add comes right before the node it feeds:
    # conv slots 1..5, add2 -> conv slot 6, add3 -> output
    cell = sigs[1 : 1 + len(sigs[1:r1]) // 5]
    assert cell == ["s1/conv3x3"] * 5 + ["s1/add2", "s1/conv3x3", "s1/add3"]
    red = layers[r2]
    assert (red.kind, red.cin, red.cout, red.h, red.stride) == ("reduction", 32, 64, 16, 2)
    conv = next(x for x in layers if x.signature == "s3/conv3x3")
    assert (conv.cin, conv.cout, conv.h, conv.kernel) == (64, 64, 8, 3)
    assert conv.flops == 8 * 8 * 9 * 64 * 64 and conv.params == 9 * 64 * 64


def test_distinct_layers():
    sigs = [x.signature for x in distinct_layers()]
    assert len(sigs) == len(set(sigs))
    expected = {"stem", "reduction1", "reduction2", "head"}
    for s in (1, 2, 3):
        # adds of 2..4 inputs exist (4 = the largest fan-in, see test_add_of_four_inputs)
        expected |= {
            f"s{s}/{k}" for k in ("conv1x1", "conv3x3", "avgpool3x3", "add2", "add3", "add4")
        }
    assert set(sigs) == expected
    assert sigs[0] == "stem" and sigs[-1] == "head"
    assert sigs.index("reduction1") < sigs.index("s2/conv3x3") < sigs.index("reduction2")


@pytest.mark.parametrize("vec", [(C3,) * 6, (C1, C3, POOL, SKIP, C3, C1)])
def test_cost_of_layers_sums(vec):
    layers = network_layers(vec)
    assert costs(vec) == Costs(sum(x.flops for x in layers), sum(x.params for x in layers))
