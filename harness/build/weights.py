"""Seeded random weights shared by every artifact builder (docs/design.md §4).

Each weight tensor has a stable name (``stem``, ``s2/c3/n4`` for op slot 4 of cell 3
in stage 2, ``reduction1/main_a``, ``head/kernel``...). Its values are a standard
normal draw seeded by ``(seed, name)`` alone, so the Keras and ONNX builders, and a
layer built alone or inside a network, all get the same draw for the same name.

The draw is then scaled He-style by ``gain / (sqrt(fan_in) * rms_in)``, where
``rms_in`` is an upper bound on the root-mean-square of the layer's input, propagated
through the network from a standard normal input (sums of branches bounded by the
sum of their rms). Identity and average-pool paths are summed without weights, so a
stage of 5 cells could otherwise grow activations by orders of magnitude; dividing by
``rms_in`` keeps every convolution's output at rms <= ~1, which keeps float
comparisons and int8 calibration well conditioned. Measured over sampled graphs,
activation rms stays within ~1e-3..1e3 (the top end only in weightless pool-only
cells) and logits within ~5e-3..1.

Kernels are stored in Keras layout: conv ``(kh, kw, cin, cout)``, dense ``(cin, cout)``.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

from latbench.graph import OUTPUT, PrunedGraph
from latbench.network import CELLS_PER_STAGE, N_CLASSES, STAGES, Layer

__all__ = ["INPUT_RMS", "cell_weight_name", "layer_weights", "network_weights"]

INPUT_RMS = 1.0
"""Root-mean-square of the random inputs the harness feeds (standard normal)."""

_RELU_GAIN = math.sqrt(2.0)  # He: ReLU halves the second moment
# The two reduction branches are summed; each gets half the output variance.
_BRANCH_GAIN = math.sqrt(0.5)


def cell_weight_name(stage: int, cell: int, slot: int) -> str:
    """Name of the conv kernel at op ``slot`` of ``cell`` (0..4) in ``stage`` (1..3)."""
    return f"s{stage}/c{cell}/n{slot}"


@functools.lru_cache(maxsize=512)
def _draw(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    # Hash the name rather than use Python's hash(), which is salted per process.
    # Cached (read-only): a campaign draws the same ~200 tensors for every graph, and
    # the draw dominates a direct .tflite build.
    digest = hashlib.sha256(name.encode()).digest()
    rng = np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])
    out = rng.standard_normal(shape, dtype=np.float32)
    out.flags.writeable = False
    return out


def _conv(seed: int, name: str, k: int, cin: int, cout: int, gain: float, rms_in: float):
    scale = gain / (math.sqrt(k * k * cin) * rms_in)
    return (_draw(seed, name, (k, k, cin, cout)) * np.float32(scale)).astype(np.float32)


def _stem(seed: int, out: dict[str, np.ndarray]) -> float:
    c = STAGES[0][0]
    out["stem"] = _conv(seed, "stem", 3, 3, c, _RELU_GAIN, INPUT_RMS)
    return 1.0


def _reduction(seed: int, i: int, cin: int, rms_in: float, out: dict[str, np.ndarray]) -> float:
    cout = 2 * cin
    p = f"reduction{i}"
    out[f"{p}/main_a"] = _conv(seed, f"{p}/main_a", 3, cin, cout, 1.0, rms_in)
    out[f"{p}/main_b"] = _conv(seed, f"{p}/main_b", 3, cout, cout, _BRANCH_GAIN, 1.0)
    # The 2x2 average pool before the shortcut conv keeps the rms at most rms_in.
    out[f"{p}/shortcut"] = _conv(seed, f"{p}/shortcut", 1, cin, cout, _BRANCH_GAIN, rms_in)
    return 1.0


def _head(seed: int, rms_in: float, out: dict[str, np.ndarray]) -> None:
    c = STAGES[-1][0]
    scale = 1.0 / (math.sqrt(c) * rms_in)
    out["head/kernel"] = (_draw(seed, "head/kernel", (c, N_CLASSES)) * np.float32(scale)).astype(
        np.float32
    )
    out["head/bias"] = (_draw(seed, "head/bias", (N_CLASSES,)) * np.float32(0.01)).astype(
        np.float32
    )


def _cell(
    graph: PrunedGraph, seed: int, stage: int, cell: int, rms_in: float, out: dict[str, np.ndarray]
) -> float:
    c = STAGES[stage - 1][0]
    rms = {0: rms_in}
    for slot in (*graph.op_nodes, OUTPUT):
        # Upper bound (summed inputs treated as fully correlated): a lower estimate,
        # e.g. correlation 1/pi for ReLU outputs, let some graphs grow to 1e4.
        r = sum(rms[p] for p in graph.preds(slot))
        label = graph.labels[slot]
        if label in ("conv1x1", "conv3x3"):
            k = 1 if label == "conv1x1" else 3
            out[cell_weight_name(stage, cell, slot)] = _conv(
                seed, cell_weight_name(stage, cell, slot), k, c, c, _RELU_GAIN, r
            )
            r = 1.0
        rms[slot] = r
    return rms[OUTPUT]


def network_weights(graph: PrunedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """All weights of the docs/design.md §4 network of ``graph``, by name (float32, Keras layout).

    Raises ``ValueError`` for an invalid graph (its cell output is disconnected).
    """
    if not graph.valid:
        raise ValueError(f"graph is invalid (output not reachable from input): {graph.labels}")
    out: dict[str, np.ndarray] = {}
    rms = _stem(seed, out)
    for stage in (1, 2, 3):
        if stage > 1:
            rms = _reduction(seed, stage - 1, STAGES[stage - 2][0], rms, out)
        for cell in range(CELLS_PER_STAGE):
            rms = _cell(graph, seed, stage, cell, rms, out)
    _head(seed, rms, out)
    return out


def layer_weights(layer: Layer, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of ``layer`` built alone, by name; empty for pools and adds.

    A conv is named by its signature (``stem``, ``s2/conv3x3``); a reduction block
    and the head use the same names as in :func:`network_weights`. Inputs are
    assumed standard normal.
    """
    out: dict[str, np.ndarray] = {}
    if layer.signature == "stem":
        _stem(seed, out)
    elif layer.kind == "conv":
        out[layer.signature] = _conv(
            seed, layer.signature, layer.kernel, layer.cin, layer.cout, _RELU_GAIN, INPUT_RMS
        )
    elif layer.kind == "reduction":
        _reduction(seed, int(layer.signature.removeprefix("reduction")), layer.cin, INPUT_RMS, out)
    elif layer.kind == "head":
        _head(seed, INPUT_RMS, out)
    elif layer.kind not in ("add", "avgpool"):
        raise ValueError(f"unknown layer kind {layer.kind!r} for {layer.signature!r}")
    return out
