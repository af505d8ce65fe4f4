"""The timed network as a list of layers, and its FLOPs and params (docs/design.md §4).

The macro skeleton is NAS-Bench-201's: stem, 3 stages of 5 cells (C = 16, 32, 64 at
32x32, 16x16, 8x8) with two residual reduction blocks between them, and a head. A
:class:`Layer` is one layer *instance*; its :attr:`Layer.signature` names the distinct
layer kind that the per-layer latency table and the layer-wise predictor key on.
FLOPs count multiply-accumulates of convolutions and the dense layer (one MAC = one
FLOP, the NAS-Bench-201/LatBench convention); pooling and adds count zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from latbench.graph import PrunedGraph, prune

__all__ = [
    "CELLS_PER_STAGE",
    "INPUT_SHAPE",
    "N_CLASSES",
    "STAGES",
    "Costs",
    "Layer",
    "costs",
    "distinct_layers",
    "layer_counts",
    "network_layers",
]

INPUT_SHAPE = (1, 32, 32, 3)
"""NHWC input of the timed network (batch 1, CIFAR-sized)."""
STAGES = ((16, 32), (32, 16), (64, 8))
"""(channels, spatial size) of the three stages."""
CELLS_PER_STAGE = 5
N_CLASSES = 10


@dataclass(frozen=True)
class Layer:
    """One layer instance of the timed network.

    ``kind`` is ``conv``, ``avgpool``, ``add``, ``reduction`` or ``head``; ``h`` is the
    input height (= width); ``n_inputs`` > 1 only for adds.
    """

    signature: str
    kind: str
    cin: int
    cout: int
    h: int
    kernel: int = 1
    stride: int = 1
    n_inputs: int = 1
    flops: int = 0
    params: int = 0


@dataclass(frozen=True)
class Costs:
    """FLOPs (MACs) and parameter count of a pruned network."""

    flops: int
    params: int


def _conv(
    sig: str, cin: int, cout: int, h: int, k: int, stride: int = 1, bias: bool = False
) -> Layer:
    ho = h // stride
    return Layer(
        sig, "conv", cin, cout, h, k, stride,
        flops=ho * ho * k * k * cin * cout,
        params=k * k * cin * cout + (cout if bias else 0),
    )  # fmt: skip


def _stem() -> Layer:
    return _conv("stem", 3, 16, 32, 3)


def _reduction(i: int, cin: int, h: int) -> Layer:
    cout = 2 * cin
    parts = [
        _conv("", cin, cout, h, 3, 2),  # main branch, stride 2
        _conv("", cout, cout, h // 2, 3),  # main branch, stride 1
        _conv("", cin, cout, h // 2, 1),  # shortcut after 2x2 avg-pool
    ]
    return Layer(
        f"reduction{i}", "reduction", cin, cout, h, 3, 2,
        flops=sum(p.flops for p in parts), params=sum(p.params for p in parts),
    )  # fmt: skip


def _head() -> Layer:
    c = STAGES[-1][0]
    return Layer("head", "head", c, N_CLASSES, STAGES[-1][1], flops=c * N_CLASSES,
                 params=c * N_CLASSES + N_CLASSES)  # fmt: skip


def cell_layers(graph: PrunedGraph, stage: int) -> list[Layer]:
    """Layers of one cell at ``stage`` (1..3), in execution order."""
    c, h = STAGES[stage - 1]
    out: list[Layer] = []
    for slot in (*graph.op_nodes, 7):
        k = len(graph.preds(slot))
        if k > 1:
            out.append(Layer(f"s{stage}/add{k}", "add", c, c, h, n_inputs=k))
        label = graph.labels[slot]
        if label == "conv1x1":
            out.append(_conv(f"s{stage}/conv1x1", c, c, h, 1))
        elif label == "conv3x3":
            out.append(_conv(f"s{stage}/conv3x3", c, c, h, 3))
        elif label == "avgpool3x3":
            out.append(Layer(f"s{stage}/avgpool3x3", "avgpool", c, c, h, 3))
    return out


def network_layers(arch: PrunedGraph | Sequence[int]) -> list[Layer]:
    """Every layer instance of the pruned network, in execution order.

    ``arch`` is a :class:`~latbench.graph.PrunedGraph` or a 6-op vector.
    """
    graph = arch if isinstance(arch, PrunedGraph) else prune(arch)
    layers = [_stem()]
    for stage in (1, 2, 3):
        if stage > 1:
            cin, h = STAGES[stage - 2]
            layers.append(_reduction(stage - 1, cin, h))
        cell = cell_layers(graph, stage) if graph.valid else []
        layers.extend(cell * CELLS_PER_STAGE)
    layers.append(_head())
    return layers


def layer_counts(arch: PrunedGraph | Sequence[int]) -> Counter[str]:
    """How many times each layer signature occurs in the network."""
    return Counter(layer.signature for layer in network_layers(arch))


def costs(arch: PrunedGraph | Sequence[int]) -> Costs:
    """FLOPs (MACs) and params of the pruned network (0-op cells contribute nothing)."""
    layers = network_layers(arch)
    return Costs(sum(x.flops for x in layers), sum(x.params for x in layers))


def distinct_layers() -> list[Layer]:
    """One :class:`Layer` per signature that any valid architecture can contain.

    Adds with 2..k inputs appear up to the largest fan-in found in the space.
    """
    from latbench.space import all_archs

    seen: dict[str, Layer] = {}
    for arch in all_archs():
        if arch.valid:
            for layer in network_layers(arch.graph):
                seen.setdefault(layer.signature, layer)
    return sorted(seen.values(), key=_layer_order)


def _layer_order(layer: Layer) -> tuple:
    stage = {"stem": 0, "head": 9}.get(layer.signature)
    if stage is None:
        stage = (
            int(layer.signature[-1]) + 0.5 if layer.kind == "reduction" else int(layer.signature[1])
        )
    return (stage, layer.kind, layer.n_inputs, layer.signature)
