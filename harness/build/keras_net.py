"""Keras models of a pruned graph's network and of its single layers (docs/design.md §4).

Models are functional, batch 1, NHWC float32, input named ``input`` and output
``logits`` (layer models: ``output``); weights come from :mod:`latbench.harness.build.weights`.
"""

from __future__ import annotations

import os

# Must precede TensorFlow's first import to hide its C++ INFO/WARNING logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from latbench.graph import INPUT, OUTPUT, PrunedGraph
from latbench.harness.build.weights import cell_weight_name, layer_weights, network_weights
from latbench.network import CELLS_PER_STAGE, INPUT_SHAPE, N_CLASSES, Layer

__all__ = ["build_keras", "build_layer_keras"]


def _conv(x, name: str, w: np.ndarray, stride: int = 1, relu: bool = True):
    layer = keras.layers.Conv2D(
        w.shape[-1],
        w.shape[0],
        strides=stride,
        padding="same",
        use_bias=False,
        activation="relu" if relu else None,
        kernel_initializer="zeros",  # overwritten below; cheaper than a random init
        name=_safe(name),
    )
    y = layer(x)
    # Not a Constant initializer: Keras would store the array in the model config.
    layer.set_weights([w])
    return y


def _safe(name: str) -> str:
    # Keras 3 rejects '/' in layer names.
    return name.replace("/", "_")


def _sum(xs: list, name: str):
    return xs[0] if len(xs) == 1 else keras.layers.Add(name=_safe(name))(xs)


def _avgpool(x, name: str):
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=_safe(name))(x)


def _cell(x, graph: PrunedGraph, stage: int, cell: int, weights: dict[str, np.ndarray]):
    node = {INPUT: x}
    for slot in (*graph.op_nodes, OUTPUT):
        name = cell_weight_name(stage, cell, slot)
        h = _sum([node[p] for p in graph.preds(slot)], f"{name}/add")
        label = graph.labels[slot]
        if label in ("conv1x1", "conv3x3"):
            h = _conv(h, name, weights[name])
        elif label == "avgpool3x3":
            h = _avgpool(h, name)
        node[slot] = h
    return node[OUTPUT]


def _reduction(x, i: int, weights: dict[str, np.ndarray]):
    p = f"reduction{i}"
    main = _conv(x, f"{p}/main_a", weights[f"{p}/main_a"], stride=2, relu=False)
    main = _conv(main, f"{p}/main_b", weights[f"{p}/main_b"], relu=False)
    short = keras.layers.AveragePooling2D(2, strides=2, name=_safe(f"{p}/pool"))(x)
    short = _conv(short, f"{p}/shortcut", weights[f"{p}/shortcut"], relu=False)
    return keras.layers.Add(name=_safe(f"{p}/add"))([main, short])


def _head(x, weights: dict[str, np.ndarray], name: str):
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    dense = keras.layers.Dense(N_CLASSES, kernel_initializer="zeros", name=name)
    y = dense(x)
    dense.set_weights([weights["head/kernel"], weights["head/bias"]])
    return y


def _input(h: int, c: int, name: str = "input") -> keras.KerasTensor:
    return keras.Input(shape=(h, h, c), batch_size=1, dtype="float32", name=name)


def build_keras(graph: PrunedGraph, seed: int = 0) -> keras.Model:
    """The docs/design.md §4 network of ``graph`` with seeded weights.

    Raises ``ValueError`` when ``graph`` is invalid.
    """
    weights = network_weights(graph, seed)
    inp = _input(INPUT_SHAPE[1], INPUT_SHAPE[3])
    x = _conv(inp, "stem", weights["stem"])
    for stage in (1, 2, 3):
        if stage > 1:
            x = _reduction(x, stage - 1, weights)
        for cell in range(CELLS_PER_STAGE):
            x = _cell(x, graph, stage, cell, weights)
    out = _head(x, weights, "logits")
    return keras.Model(inp, out, name="latbench")


def build_layer_keras(layer: Layer, seed: int = 0) -> keras.Model:
    """``layer`` alone as a model: NHWC input(s) of shape ``(1, h, h, cin)``.

    An add with ``k`` inputs takes ``k`` inputs named ``input``, ``input_1``...
    Raises ``ValueError`` for an unknown layer kind.
    """
    weights = layer_weights(layer, seed)
    if layer.kind == "add":
        inputs = [
            _input(layer.h, layer.cin, "input" if i == 0 else f"input_{i}")
            for i in range(layer.n_inputs)
        ]
        return keras.Model(inputs, _sum(inputs, "output"), name=_safe(layer.signature))
    inp = _input(layer.h, layer.cin)
    if layer.kind == "conv":
        out = _conv(inp, "output", weights[layer.signature], stride=layer.stride)
    elif layer.kind == "avgpool":
        out = _avgpool(inp, "output")
    elif layer.kind == "reduction":
        out = _reduction(inp, int(layer.signature.removeprefix("reduction")), weights)
    elif layer.kind == "head":
        out = _head(inp, weights, "output")
    else:
        raise ValueError(f"unknown layer kind {layer.kind!r} for {layer.signature!r}")
    return keras.Model(inp, out, name=_safe(layer.signature))
