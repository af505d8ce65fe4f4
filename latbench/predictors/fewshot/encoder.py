"""A learned architecture embedding, trained multi-task over every source device.

Two small graph convolution stacks read an architecture: one over its pruned graph
(the GCN inputs of :func:`~latbench.predictors.encoding.gcn_inputs`, what the
LatBench release timed) and one over its unpruned cell (what HELP timed). Each layer
is ``relu(A H W + b)`` with ``A`` the row-normalised adjacency (self-loops and the
global node included); the global node's row of both stacks, concatenated, goes
through ``tanh(. W + b)`` to the ``dim``-wide embedding ``e(a)``. Training fits one
linear head per source device on ``e(a)`` to that source's standardised log-latency
(masked mean squared error over the observed cells, Adam, weight decay), so the
embedding is what predicts every source at once.

Training uses TensorFlow (imported on first use, never by ``import latbench``);
:func:`embed` is numpy only, so adapting needs no deep-learning framework. Weights are
a dict of float arrays ``enc_p{i}`` / ``enc_c{i}`` (layer ``i`` of the pruned / cell
stack, shape ``(in + 1, hidden)``: the last row is the bias) and ``enc_out``
(``(2 hidden + 1, dim)``), stored in a prior's ``.npz``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np

from latbench.predictors.base import PredictorError

__all__ = [
    "EncoderFit",
    "check_weights",
    "embed",
    "encoder_inputs",
    "is_encoder_array",
    "train_encoder",
]

_NAME = re.compile(r"enc_(?:[pc]\d|out)")
_FEAT_PRUNED, _FEAT_CELL = 6, 8  # one-hot widths of the pruned and cell GCN inputs


def is_encoder_array(name: str) -> bool:
    """Whether ``name`` is an encoder weight array (``enc_p0``.., ``enc_c0``.., ``enc_out``)."""
    return bool(_NAME.fullmatch(name))


@cache
def encoder_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(adj_pruned, feat_pruned, adj_cell, feat_cell)`` of all 15,625, float32, adjacency
    rows normalised to sum 1."""
    from latbench.predictors.encoding import gcn_inputs

    out = []
    for enc in ("pruned", "cell"):
        adj, feat = gcn_inputs(enc)
        adj = adj / np.maximum(adj.sum(axis=2, keepdims=True), 1.0)
        out += [adj.astype(np.float32), np.asarray(feat, np.float32)]
    for a in out:
        a.setflags(write=False)
    return tuple(out)  # type: ignore[return-value]


def _layers(weights: Mapping[str, np.ndarray], stack: str) -> list[np.ndarray]:
    out, i = [], 0
    while f"enc_{stack}{i}" in weights:
        out.append(np.asarray(weights[f"enc_{stack}{i}"], np.float32))
        i += 1
    return out


def check_weights(weights: Mapping[str, np.ndarray]) -> str | None:
    """What is wrong with an encoder's weight shapes (``None``: they chain)."""
    p, c = _layers(weights, "p"), _layers(weights, "c")
    if not p or len(p) != len(c) or "enc_out" not in weights:
        return "encoder layers missing"
    for stack, width in ((p, _FEAT_PRUNED), (c, _FEAT_CELL)):
        for w in stack:
            if w.ndim != 2 or w.shape[0] != width + 1:
                return "encoder layer shapes do not chain"
            width = w.shape[1]
    out = weights["enc_out"]
    if out.ndim != 2 or out.shape[0] != p[-1].shape[1] + c[-1].shape[1] + 1:
        return "encoder output layer does not fit its stacks"
    return None


def embed(weights: Mapping[str, np.ndarray], ids: np.ndarray | None = None) -> np.ndarray:
    """``(len(ids), dim)`` float64 embedding (numpy; ``ids`` default: all 15,625)."""
    bad = check_weights(weights)
    if bad:
        raise PredictorError(bad)
    ap, xp, ac, xc = encoder_inputs()
    sel = slice(None) if ids is None else np.asarray(ids, np.int64)

    def stack(a: np.ndarray, h: np.ndarray, ws: list[np.ndarray]) -> np.ndarray:
        for w in ws:
            h = np.maximum(a @ (h @ w[:-1]) + w[-1], 0.0)
        return h[:, 0]

    g = np.hstack([stack(ap[sel], xp[sel], _layers(weights, "p")),
                   stack(ac[sel], xc[sel], _layers(weights, "c"))])  # fmt: skip
    out = np.asarray(weights["enc_out"], np.float32)
    return np.tanh(g @ out[:-1] + out[-1]).astype(np.float64)


@dataclass(frozen=True)
class EncoderFit:
    """A trained encoder: its weights, the heads, and TensorFlow's own embedding of all
    15,625 (to check :func:`embed` against)."""

    weights: dict[str, np.ndarray]
    heads: np.ndarray
    """``(dim + 1, sources)``: each source's linear head on the embedding (last row: bias)."""
    tf_embedding: np.ndarray
    loss: float
    """Final training loss (mean squared error of standardised log-latency)."""


def _glorot(rng: np.random.Generator, n_in: int, n_out: int) -> np.ndarray:
    lim = np.sqrt(6.0 / (n_in + n_out))
    w = rng.uniform(-lim, lim, (n_in + 1, n_out))
    w[-1] = 0.0
    return w.astype(np.float32)


def train_encoder(
    z: np.ndarray,
    *,
    hidden: int = 32,
    dim: int = 16,
    layers: int = 3,
    epochs: int = 60,
    batch: int = 256,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    threads: int | None = 1,
) -> EncoderFit:
    """Train the encoder on ``z`` (15625 x sources log-latencies, NaN where unobserved).

    Each column is standardised over its observed cells; rows with no observation are
    not trained on. Deterministic for a seed on one thread.
    """
    from latbench.predictors.gcn import _tf

    if z.ndim != 2 or z.shape[1] < 1:
        raise PredictorError("encoder training needs a 2-d latency table")
    if min(hidden, dim, layers, epochs, batch) < 1:
        raise PredictorError("encoder sizes, epochs and batch must be >= 1")
    seen = np.isfinite(z)
    mu = np.nanmean(np.where(seen, z, np.nan), axis=0)
    sd = np.nanstd(np.where(seen, z, np.nan), axis=0)
    zs = np.where(seen, (z - mu) / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)
    rows = np.flatnonzero(seen.any(axis=1))
    rng = np.random.default_rng(seed)
    init: dict[str, np.ndarray] = {}
    for stack, width in (("p", _FEAT_PRUNED), ("c", _FEAT_CELL)):
        for i in range(layers):
            init[f"enc_{stack}{i}"] = _glorot(rng, width if i == 0 else hidden, hidden)
    init["enc_out"] = _glorot(rng, 2 * hidden, dim)
    init["head"] = _glorot(rng, dim, z.shape[1])

    tf, _ = _tf(threads)
    tf.random.set_seed(seed)
    var = {k: tf.Variable(v) for k, v in init.items()}
    ap, xp, ac, xc = (tf.constant(a) for a in encoder_inputs())
    zt, mt = tf.constant(zs), tf.constant(seen.astype(np.float32))

    def forward(idx):
        def stack(a, h, s):
            for i in range(layers):
                w = var[f"enc_{s}{i}"]
                h = tf.nn.relu(tf.matmul(a, tf.matmul(h, w[:-1])) + w[-1])
            return h[:, 0]

        g = tf.concat([stack(tf.gather(ap, idx), tf.gather(xp, idx), "p"),
                       stack(tf.gather(ac, idx), tf.gather(xc, idx), "c")], axis=1)  # fmt: skip
        w = var["enc_out"]
        return tf.tanh(tf.matmul(g, w[:-1]) + w[-1])

    params = list(var.values())
    # Adam by hand: a few lines, and no Keras optimizer state to reconcile with tf.Variables
    m1 = [tf.Variable(tf.zeros_like(v)) for v in params]
    m2 = [tf.Variable(tf.zeros_like(v)) for v in params]
    t = tf.Variable(0.0)

    @tf.function
    def step(idx):
        with tf.GradientTape() as tape:
            e = forward(idx)
            h = var["head"]
            pred = tf.matmul(e, h[:-1]) + h[-1]
            m = tf.gather(mt, idx)
            err = (pred - tf.gather(zt, idx)) * m
            loss = tf.reduce_sum(err**2) / tf.maximum(tf.reduce_sum(m), 1.0)
            reg = tf.add_n([tf.reduce_sum(v[:-1] ** 2) for v in params])
            total = loss + weight_decay * reg
        t.assign_add(1.0)
        lr = learning_rate * tf.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for v, g, a, b in zip(params, tape.gradient(total, params), m1, m2, strict=True):
            a.assign(0.9 * a + 0.1 * g)
            b.assign(0.999 * b + 0.001 * g * g)
            v.assign_sub(lr * a / (tf.sqrt(b) + 1e-7))
        return loss

    loss = np.nan
    for _ in range(epochs):
        order = rng.permutation(rows)
        losses = [
            float(step(tf.constant(order[i : i + batch]))) for i in range(0, len(order), batch)
        ]
        loss = float(np.mean(losses))
    all_ids = tf.constant(np.arange(z.shape[0]))
    tf_emb = np.concatenate(
        [forward(all_ids[i : i + 4096]).numpy() for i in range(0, z.shape[0], 4096)]
    )
    weights = {k: v.numpy() for k, v in var.items() if k != "head"}
    return EncoderFit(weights=weights, heads=var["head"].numpy(), tf_embedding=tf_emb, loss=loss)
