"""ONNX models of a pruned graph's network and of its single layers, built directly
with ``onnx.helper`` (no TensorFlow round trip; docs/design.md §4, §8).

The network takes the same NHWC input as the Keras model (``input``, 1x32x32x3) and
transposes it once to NCHW, ONNX's native layout; its output is ``logits`` (1x10).
Layer models are NCHW end to end (input ``(1, cin, h, h)``, output ``output``) so that
a layer's latency holds no layout transposes. Padding reproduces TensorFlow ``same``:
for stride 2 on even sizes the extra row/column goes after (``pads`` end side), and
average pools exclude padding from the count (``count_include_pad=0``).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from latbench.graph import INPUT, OUTPUT, PrunedGraph
from latbench.harness.build.weights import cell_weight_name, layer_weights, network_weights
from latbench.network import CELLS_PER_STAGE, INPUT_SHAPE, N_CLASSES, STAGES, Layer

__all__ = ["IR_VERSION", "OPSET", "build_layer_onnx", "build_onnx"]

OPSET = 17
"""ONNX default-domain opset the models declare."""
IR_VERSION = 8
"""IR version pinned low enough for TensorRT, SNPE and older ONNX Runtime parsers."""


def _same_pads(h: int, k: int, stride: int) -> list[int]:
    out = -(-h // stride)
    total = max((out - 1) * stride + k - h, 0)
    before = total // 2
    return [before, before, total - before, total - before]


class _Builder:
    """Accumulates nodes and initializers; names values uniquely."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint.replace('/', '_')}_{self._n}"

    def node(self, op: str, inputs: list[str], hint: str, out: str | None = None, **attrs) -> str:
        out = out or self.fresh(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv(
        self, x: str, name: str, w_hwio: np.ndarray, h: int, stride: int = 1, relu: bool = True,
        out: str | None = None,
    ) -> str:  # fmt: skip
        k = w_hwio.shape[0]
        w = self.const(f"{name.replace('/', '_')}_W", w_hwio.transpose(3, 2, 0, 1))
        y = self.node(
            "Conv", [x, w], name, None if relu else out, kernel_shape=[k, k],
            strides=[stride, stride], pads=_same_pads(h, k, stride),
        )  # fmt: skip
        return self.node("Relu", [y], f"{name}/relu", out) if relu else y

    def avgpool(self, x: str, name: str, h: int, out: str | None = None) -> str:
        return self.node(
            "AveragePool", [x], name, out, kernel_shape=[3, 3], strides=[1, 1],
            pads=_same_pads(h, 3, 1), count_include_pad=0,
        )  # fmt: skip

    def sum(self, xs: list[str], name: str, out: str | None = None) -> str:
        if len(xs) == 1:
            return xs[0] if out is None else self.node("Identity", xs, name, out)
        return self.node("Add" if len(xs) == 2 else "Sum", xs, name, out)

    def cell(self, x: str, graph: PrunedGraph, stage: int, cell: int, w: dict) -> str:
        h = STAGES[stage - 1][1]
        node = {INPUT: x}
        for slot in (*graph.op_nodes, OUTPUT):
            name = cell_weight_name(stage, cell, slot)
            v = self.sum([node[p] for p in graph.preds(slot)], f"{name}/add")
            label = graph.labels[slot]
            if label in ("conv1x1", "conv3x3"):
                v = self.conv(v, name, w[name], h)
            elif label == "avgpool3x3":
                v = self.avgpool(v, name, h)
            node[slot] = v
        return node[OUTPUT]

    def reduction(self, x: str, i: int, h: int, w: dict, out: str | None = None) -> str:
        p = f"reduction{i}"
        main = self.conv(x, f"{p}/main_a", w[f"{p}/main_a"], h, stride=2, relu=False)
        main = self.conv(main, f"{p}/main_b", w[f"{p}/main_b"], h // 2, relu=False)
        short = self.node("AveragePool", [x], f"{p}/pool", kernel_shape=[2, 2], strides=[2, 2])
        short = self.conv(short, f"{p}/shortcut", w[f"{p}/shortcut"], h // 2, relu=False)
        return self.node("Add", [main, short], f"{p}/add", out)

    def head(self, x: str, w: dict, out: str) -> str:
        x = self.node("GlobalAveragePool", [x], "head/pool")
        x = self.node("Flatten", [x], "head/flatten", axis=1)
        kernel = self.const("head_kernel", w["head/kernel"])
        bias = self.const("head_bias", w["head/bias"])
        return self.node("Gemm", [x, kernel, bias], "head/dense", out)

    def model(self, name: str, inputs: list, outputs: list) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="latbench",
            ir_version=IR_VERSION,
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def _value(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def build_onnx(graph: PrunedGraph, seed: int = 0) -> onnx.ModelProto:
    """The docs/design.md §4 network of ``graph`` with the same seeded weights as the Keras model.

    Input ``input`` NHWC ``(1, 32, 32, 3)``, output ``logits`` ``(1, 10)``. Raises
    ``ValueError`` when ``graph`` is invalid.
    """
    w = network_weights(graph, seed)
    b = _Builder()
    x = b.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    x = b.conv(x, "stem", w["stem"], INPUT_SHAPE[1])
    for stage in (1, 2, 3):
        if stage > 1:
            x = b.reduction(x, stage - 1, STAGES[stage - 2][1], w)
        for cell in range(CELLS_PER_STAGE):
            x = b.cell(x, graph, stage, cell, w)
    b.head(x, w, "logits")
    return b.model("latbench", [_value("input", INPUT_SHAPE)], [_value("logits", (1, N_CLASSES))])


def build_layer_onnx(layer: Layer, seed: int = 0) -> onnx.ModelProto:
    """``layer`` alone, NCHW: input(s) ``(1, cin, h, h)``, output ``output``.

    An add with ``k`` inputs takes ``input``, ``input_1``... Raises ``ValueError`` for
    an unknown layer kind.
    """
    w = layer_weights(layer, seed)
    b = _Builder()
    n_in = layer.n_inputs if layer.kind == "add" else 1
    names = ["input" if i == 0 else f"input_{i}" for i in range(n_in)]
    inputs = [_value(n, (1, layer.cin, layer.h, layer.h)) for n in names]
    ho = layer.h // layer.stride
    if layer.kind == "add":
        b.sum(names, "add", "output")
    elif layer.kind == "conv":
        b.conv("input", layer.signature, w[layer.signature], layer.h, layer.stride, out="output")
    elif layer.kind == "avgpool":
        b.avgpool("input", layer.signature, layer.h, "output")
    elif layer.kind == "reduction":
        b.reduction("input", int(layer.signature.removeprefix("reduction")), layer.h, w, "output")
    elif layer.kind == "head":
        b.head("input", w, "output")
    else:
        raise ValueError(f"unknown layer kind {layer.kind!r} for {layer.signature!r}")
    out_shape = (1, N_CLASSES) if layer.kind == "head" else (1, layer.cout, ho, ho)
    return b.model(layer.signature.replace("/", "_"), inputs, [_value("output", out_shape)])
