"""End-to-end GCN latency predictor (Section 3.2, Table S1; docs/design.md §9).

Network: 4 graph convolutions of 600 units, each ``LayerNorm(A H W + b)`` -> ReLU ->
dropout (the bias and layer norm are the authors' released code's), then a fully
connected layer on the global node's embedding. ``A`` is the unnormalized 9x9
adjacency with the global node and self-loops, oriented so that each node
aggregates its predecessors and the global node aggregates every node.

Target: standardised log latency, ``z = (ln y - mean) / std`` over the training set,
loss L1 on ``z`` (as the authors' code; MSE scored ~9 points lower within +-1 %,
docs/predictors.md). The log makes the loss a relative error, which is what the
within-+-k% metric scores.

Training (Table S1): AdamW (lr 8e-4, decoupled weight decay 5e-4), batch 10,
learning rate halved on a plateau of 10 epochs (an improvement must be 1 % relative,
PyTorch's rule, as the authors' code), at most 250 epochs, early stopping after 35;
plateau and early stopping count from epoch 22 (the authors'), the best-validation
weights are kept from epoch 1. One epoch is one
compiled TensorFlow function (a ``tf.while_loop`` over the batches), so Python runs
once per epoch, not once per step. The network, optimizer and compiled functions are
built once per configuration and process (:class:`_Runner`) and reused by every fit
and prediction: each new predictor resets their values instead of tracing and
XLA-compiling again (no ``tf.function`` retracing, no repeated compile time).

TensorFlow and Keras are imported on first use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from latbench.predictors.base import Archs, Predictor, PredictorError, arch_ids, check_targets
from latbench.predictors.encoding import ENCODINGS, gcn_inputs, valid_mask

__all__ = ["LOSSES", "TARGETS", "GCNConfig", "GCNPredictor", "TrainingLog"]

LOSSES = ("mse", "l1")
TARGETS = ("zlog", "raw")


@dataclass(frozen=True)
class GCNConfig:
    """Architecture and training hyperparameters (defaults: the paper's Table S1)."""

    layers: int = 4
    hidden: int = 600
    dropout: float = 0.002
    learning_rate: float = 8e-4
    weight_decay: float = 5e-4
    batch_size: int = 10
    max_epochs: int = 250
    patience: int = 35
    """Early stopping: epochs without validation improvement before training stops."""
    plateau_patience: int = 10
    """Epochs without validation improvement before the learning rate is halved."""
    plateau_factor: float = 0.5
    plateau_threshold: float = 0.01
    """Relative drop of the monitored loss that counts as an improvement for the plateau
    (PyTorch ``ReduceLROnPlateau(threshold=...)``, the authors' 0.01; 0: any drop)."""
    schedule_delay: int = 21
    """Epochs before the plateau and early stopping start counting, the authors' 21 (the
    best weights are tracked from the first epoch)."""
    loss: str = "l1"
    """Training and monitored loss on the target: ``mse`` or ``l1``."""
    target: str = "zlog"
    """``zlog`` (standardised log latency) or ``raw`` (latency in ms, Eagle's)."""
    encoding: str = "pruned"
    """``pruned`` (the paper, docs/design.md §3) or ``cell`` (unpruned cell, for HELP data)."""
    jit_compile: bool = True
    """Compile the training epoch with XLA (faster on CPU; same results to float tolerance)."""

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise PredictorError(f"GCNConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise PredictorError(f"GCNConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise PredictorError("GCNConfig: learning_rate must be > 0 and weight_decay >= 0")
        if self.encoding not in ENCODINGS:
            raise PredictorError(
                f"unknown GCN encoding {self.encoding!r}; choose one of {', '.join(ENCODINGS)}"
            )
        if not 0 < self.plateau_factor <= 1 or self.plateau_patience < 1:
            raise PredictorError("GCNConfig: plateau_factor in (0, 1], plateau_patience >= 1")
        if not 0 <= self.plateau_threshold < 1 or self.schedule_delay < 0:
            raise PredictorError("GCNConfig: plateau_threshold in [0, 1), schedule_delay >= 0")
        if self.loss not in LOSSES:
            raise PredictorError(
                f"unknown GCN loss {self.loss!r}; choose one of {', '.join(LOSSES)}"
            )
        if self.target not in TARGETS:
            raise PredictorError(
                f"unknown GCN target {self.target!r}; choose one of {', '.join(TARGETS)}"
            )


@dataclass
class TrainingLog:
    """What happened during :meth:`GCNPredictor.fit`."""

    epochs: int = 0
    best_epoch: int = 0
    """1-based epoch whose weights were kept."""
    best_val_loss: float = float("inf")
    seconds: float = 0.0
    """Wall time of the epoch loop (compilation included)."""
    steps: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    """Wall time per epoch (training pass and validation); the first includes compilation."""
    cpu_seconds: float = 0.0
    """Process CPU time of the epoch loop (all threads)."""


class GCNPredictor(Predictor):
    """GCN latency predictor; ``GCNPredictor(seed=0).fit(archs, ms, val_archs=..., val_latency_ms=...)``.

    Without validation data, early stopping and the learning-rate plateau watch the
    training loss instead. ``threads`` caps TensorFlow's threads (only effective
    before TensorFlow first runs in the process).
    """

    name: ClassVar[str] = "gcn"

    def __init__(
        self,
        config: GCNConfig | None = None,
        *,
        seed: int = 0,
        threads: int | None = None,
        verbose: bool = False,
        **overrides: Any,
    ) -> None:
        base = config or GCNConfig()
        try:
            self.config = GCNConfig(**{**asdict(base), **overrides})
        except TypeError as exc:
            raise PredictorError(f"unknown GCN option: {exc}") from exc
        self.seed = int(seed)
        self.threads = threads
        self.verbose = verbose
        self.log = TrainingLog()
        self._weights: list[np.ndarray] | None = None
        self._target: tuple[float, float] = (0.0, 1.0)

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        archs: Archs,
        latency_ms: Sequence[float] | np.ndarray,
        *,
        val_archs: Archs = None,
        val_latency_ms: Sequence[float] | np.ndarray | None = None,
    ) -> GCNPredictor:
        """Train from scratch (Table S1 schedule); keeps the best-validation weights."""
        ids = arch_ids(archs)
        y = check_targets(ids, latency_ms)
        has_val = val_archs is not None or val_latency_ms is not None
        if has_val:
            if val_archs is None or val_latency_ms is None:
                raise PredictorError("give both val_archs and val_latency_ms, or neither")
            vids = arch_ids(val_archs)
            vy = check_targets(vids, val_latency_ms, "validation")
        tf, keras = _tf(self.threads)
        cfg = self.config
        keras.utils.set_random_seed(self.seed)
        runner = _runner(tf, keras, cfg)
        runner.reset(tf, keras, cfg, self.seed)
        net = runner.net
        if cfg.target == "zlog":
            logy = np.log(y)
            mean, std = float(logy.mean()), float(logy.std())
            std = std if std > 0 else 1.0
        else:
            mean, std = 0.0, 1.0
        self._target = (mean, std)
        adj_all, feat_all = gcn_inputs(self.config.encoding)
        z = _to_target(cfg.target, mean, std)

        adj, feat, target = (
            tf.constant(adj_all[ids]),
            tf.constant(feat_all[ids]),
            tf.constant(z(y)),
        )
        if has_val:
            v_adj, v_feat, v_target = (
                tf.constant(adj_all[vids]),
                tf.constant(feat_all[vids]),
                tf.constant(z(vy)),
            )
        opt = runner.opt

        rng = np.random.default_rng(self.seed)
        n = len(ids)
        steps = -(-n // cfg.batch_size)
        log = TrainingLog(steps=steps)
        best = float("inf")
        plateau_best = es_best = float("inf")
        best_weights = [v.numpy() for v in net.weights]
        wait = plateau_wait = 0
        lr = cfg.learning_rate
        t0 = time.perf_counter()
        c0 = time.process_time()
        for epoch in range(1, cfg.max_epochs + 1):
            te = time.perf_counter()
            idx, w = _batches(rng, n, cfg.batch_size)
            key = tf.constant(self.seed * 1_000 + epoch, tf.int64)
            train_loss = float(
                runner.run_epoch(tf.constant(idx), tf.constant(w), key, adj, feat, target)
            )
            if has_val:
                monitored = float(runner.loss(v_adj, v_feat, v_target))
                log.val_loss.append(monitored)
            else:
                monitored = train_loss
            log.epoch_seconds.append(time.perf_counter() - te)
            log.train_loss.append(train_loss)
            log.learning_rate.append(lr)
            if self.verbose:
                print(
                    f"epoch {epoch:3d} train {train_loss:.5f} monitor {monitored:.5f} lr {lr:.2e}"
                )
            if monitored < best:
                best = monitored
                best_weights = [v.numpy() for v in net.weights]
                log.best_epoch = epoch
            log.epochs = epoch
            if epoch <= cfg.schedule_delay:
                continue
            if monitored < es_best:
                es_best, wait = monitored, 0
            else:
                wait += 1
            if monitored < plateau_best * (1 - cfg.plateau_threshold):
                plateau_best, plateau_wait = monitored, 0
            else:
                plateau_wait += 1
                # PyTorch's plateau cuts after `patience` epochs *beyond* the patience
                limit = cfg.plateau_patience + (cfg.plateau_threshold > 0)
                if plateau_wait >= limit:
                    lr *= cfg.plateau_factor
                    opt.learning_rate.assign(lr)
                    plateau_wait = 0
            if wait >= cfg.patience:
                break
        log.seconds = time.perf_counter() - t0
        log.cpu_seconds = time.process_time() - c0
        log.best_val_loss = best
        for v, value in zip(net.weights, best_weights, strict=True):
            v.assign(value)
        self.log = log
        self._weights = best_weights
        self._fitted = True
        return self

    # -- prediction ------------------------------------------------------------------------

    def predict(self, archs: Archs = None) -> np.ndarray:
        """Predicted latency (ms) per architecture; ``NaN`` for invalid ones."""
        self._check_fitted()
        ids = arch_ids(archs)
        out = np.full(len(ids), np.nan)
        ok = valid_mask()[ids]
        if ok.any():
            z = self._predict_z(ids[ok])
            mean, std = self._target
            v = z.astype(np.float64) * std + mean
            out[ok] = np.exp(v) if self.config.target == "zlog" else v
        return out

    def _predict_z(self, ids: np.ndarray) -> np.ndarray:
        tf, keras = _tf(self.threads)
        runner = _runner(tf, keras, self.config)
        runner.load(self._weights)
        adj_all, feat_all = gcn_inputs(self.config.encoding)
        uniq, inverse = np.unique(ids, return_inverse=True)  # each architecture once
        parts = []
        for i in range(0, len(uniq), _CHUNK):
            chunk = uniq[i : i + _CHUNK]
            # Padded to one shape: one trace and one compiled kernel for every call.
            pad = np.zeros(_CHUNK, dtype=np.int64)
            pad[: len(chunk)] = chunk
            z = runner.predict(tf.constant(adj_all[pad]), tf.constant(feat_all[pad]))
            parts.append(z.numpy().ravel()[: len(chunk)])
        return np.concatenate(parts)[inverse.ravel()]

    # -- persistence -----------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self._weights is not None
        config = {
            "config": asdict(self.config),
            "seed": self.seed,
            "target_log_mean": self._target[0],
            "target_log_std": self._target[1],
            "best_epoch": self.log.best_epoch,
            "epochs": self.log.epochs,
        }
        arrays = {f"w{i:02d}": w for i, w in enumerate(self._weights)}
        return config, arrays

    @classmethod
    def _from_state(
        cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> GCNPredictor:
        pred = cls(GCNConfig(**config["config"]), seed=config.get("seed", 0))
        pred._target = (float(config["target_log_mean"]), float(config["target_log_std"]))
        pred._weights = [arrays[k] for k in sorted(arrays)]
        pred.log = TrainingLog(
            epochs=config.get("epochs", 0), best_epoch=config.get("best_epoch", 0)
        )
        expected = 4 * pred.config.layers + 2  # kernel, bias, LN gamma, LN beta per layer; fc
        if len(pred._weights) != expected:
            raise PredictorError(
                f"GCN file holds {len(pred._weights)} weight arrays, the config needs {expected}"
            )
        return pred


# -- TensorFlow pieces (built lazily) ----------------------------------------------------------

_CHUNK = 2048
"""Architectures per prediction call (padded), so every call has the same shape."""


class _Runner:
    """One network, optimizer and compiled epoch/loss/predict functions for a configuration.

    Shared by every :class:`GCNPredictor` of that configuration in the process: a fit
    resets the values (:meth:`reset`), a prediction loads its weights (:meth:`load`),
    and the functions, whose inputs have fixed signatures, are traced once.
    """

    def __init__(self, tf: Any, keras: Any, cfg: GCNConfig) -> None:
        self.net = _build_net(tf, keras, cfg, 0)
        self.opt = keras.optimizers.AdamW(
            learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.opt.build(self.net.trainable_variables)
        n_feat = gcn_inputs(cfg.encoding)[1].shape[-1]
        self.run_epoch = _epoch_fn(tf, self.net, self.opt, cfg, n_feat)
        self.loss = _loss_fn(tf, self.net, cfg, n_feat)
        self.predict = _predict_fn(tf, self.net, n_feat)

    def reset(self, tf: Any, keras: Any, cfg: GCNConfig, seed: int) -> None:
        """Fresh seeded initial weights, zeroed optimizer state, the initial learning rate."""
        fresh = _build_net(tf, keras, cfg, seed)
        self.load([v.numpy() for v in fresh.weights])
        for v in self.opt.variables:
            v.assign(tf.zeros(v.shape, v.dtype))
        self.opt.learning_rate.assign(cfg.learning_rate)

    def load(self, weights: Sequence[np.ndarray] | None) -> None:
        """Set the network's weights (e.g. a fitted predictor's)."""
        assert weights is not None
        for v, value in zip(self.net.weights, weights, strict=True):
            v.assign(value)


_RUNNERS: dict[tuple[Any, ...], _Runner] = {}

_FLAT_KERNEL = True
"""Multiply each layer's kernel as one 2-D product (False: the batched product used
before, kept so that a test can pin the two to the same numbers)."""


def _runner(tf: Any, keras: Any, cfg: GCNConfig) -> _Runner:
    # Only what shapes the network, the optimizer's update or the compiled code.
    key = (cfg.layers, cfg.hidden, cfg.dropout, cfg.weight_decay, cfg.batch_size,
           cfg.encoding, cfg.jit_compile, cfg.loss, _FLAT_KERNEL)  # fmt: skip
    if key not in _RUNNERS:
        _RUNNERS[key] = _Runner(tf, keras, cfg)
    return _RUNNERS[key]


def _tf(threads: int | None = None) -> tuple[Any, Any]:
    import contextlib
    import os
    import sys

    from latbench.quiet import native_stderr_filtered

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    first = "tensorflow" not in sys.modules or "keras" not in sys.modules
    # absl's and oneDNN's import banners ignore TF_CPP_MIN_LOG_LEVEL
    with native_stderr_filtered() if first else contextlib.nullcontext():
        import keras
        import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow already running in this process: its thread pools are fixed

    if keras.backend.backend() != "tensorflow":
        raise PredictorError(
            f"the GCN predictor needs the Keras TensorFlow backend, not {keras.backend.backend()!r}"
            " (set KERAS_BACKEND=tensorflow)"
        )
    return tf, keras


def _batches(rng: np.random.Generator, n: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled indices as (steps, batch), padded with weight-0 entries to full batches."""
    steps = -(-n // batch)
    idx = np.zeros(steps * batch, dtype=np.int32)
    w = np.zeros(steps * batch, dtype=np.float32)
    idx[:n] = rng.permutation(n)
    w[:n] = 1.0
    return idx.reshape(steps, batch), w.reshape(steps, batch)


def _build_net(tf: Any, keras: Any, cfg: GCNConfig, seed: int) -> Any:
    class GraphConv(keras.layers.Layer):
        """``LayerNorm(A H W + b)`` -> ReLU -> dropout; ``last`` keeps the global node only."""

        def __init__(self, units: int, last: bool, seed: int) -> None:
            super().__init__()
            self.units, self.last, self.seed = units, last, seed
            self.norm = keras.layers.LayerNormalization(epsilon=1e-5)

        def build(self, input_shape: Any) -> None:
            fan_in = input_shape[-1]
            # Kipf & Welling's GCN init (the authors' "thomas"): U(+-1/sqrt(units))
            bound = 1.0 / np.sqrt(self.units)
            init = keras.initializers.RandomUniform(-bound, bound, seed=self.seed)
            self.kernel = self.add_weight(shape=(fan_in, self.units), initializer=init)
            init_b = keras.initializers.RandomUniform(-bound, bound, seed=self.seed + 2)
            self.bias = self.add_weight(shape=(self.units,), initializer=init_b)
            self.norm.build((None, None, self.units))

        def call(self, h: Any, adj: Any, rng: Any = None) -> Any:
            if self.last:
                # Only the global node reaches the output: aggregate its row alone.
                adj = adj[:, :1, :]
            # (A H) W: as cheap as A (H W) for square W, cheaper for the 6-wide input
            # and for the last layer's single row.
            ah = tf.matmul(adj, h)
            if _FLAT_KERNEL:
                # One (graphs x nodes, in) @ (in, units) product: its kernel gradient is one
                # matmul, where the batched product's is a (graphs, in, units) stack summed
                # afterwards (~30 % of a step on CPU). Same values up to float rounding.
                shape = tf.shape(ah)
                flat = tf.matmul(tf.reshape(ah, [-1, ah.shape[-1]]), self.kernel)
                out = tf.reshape(flat, [shape[0], shape[1], self.units]) + self.bias
            else:
                out = tf.matmul(ah, self.kernel) + self.bias
            out = tf.nn.relu(self.norm(out))
            if rng is None or cfg.dropout == 0:
                return out
            # Stateless threefry masks keyed by (run seed, step, layer): reproducible, and
            # ~6x cheaper under XLA on CPU than Keras' Dropout (philox), which cost ~40%
            # of a training step.
            # (threefry has no kernel outside XLA; philox there)
            alg = "threefry" if cfg.jit_compile else "philox"
            keep = tf.random.stateless_uniform(tf.shape(out), seed=rng, alg=alg)
            return tf.where(keep >= cfg.dropout, out / (1.0 - cfg.dropout), 0.0)

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.convs = [
                GraphConv(cfg.hidden, i == cfg.layers - 1, seed + 10 * i) for i in range(cfg.layers)
            ]
            bound = 1.0 / np.sqrt(cfg.hidden)
            self.fc = keras.layers.Dense(
                1,
                kernel_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed + 97),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed + 98),
            )

        def call(self, adj: Any, feat: Any, rng: Any = None) -> Any:
            """Predicted z per graph; ``rng`` (int64 pair) turns dropout on."""
            h = feat
            for i, conv in enumerate(self.convs):
                h = conv(h, adj, None if rng is None else rng + [0, i])
            return self.fc(h[:, 0, :])[:, 0]

    net = Net()
    n_feat = gcn_inputs(cfg.encoding)[1].shape[-1]
    net(tf.zeros((1, 9, 9)), tf.zeros((1, 9, n_feat)))  # create the weights
    return net


def _graph_specs(tf: Any, n_feat: int) -> tuple[Any, Any]:
    return (
        tf.TensorSpec([None, 9, 9], tf.float32),
        tf.TensorSpec([None, 9, n_feat], tf.float32),
    )


def _epoch_fn(tf: Any, net: Any, opt: Any, cfg: GCNConfig, n_feat: int) -> Any:
    variables = net.trainable_variables
    spec = (
        tf.TensorSpec([None, cfg.batch_size], tf.int32),
        tf.TensorSpec([None, cfg.batch_size], tf.float32),
        tf.TensorSpec([], tf.int64),
        *_graph_specs(tf, n_feat),
        tf.TensorSpec([None], tf.float32),
    )

    @tf.function(input_signature=spec, jit_compile=cfg.jit_compile)
    def run_epoch(idx: Any, w: Any, key: Any, adj: Any, feat: Any, target: Any) -> Any:
        def body(i: Any, total: Any) -> tuple[Any, Any]:
            b = idx[i]
            wb = w[i]
            rng = tf.stack([key, tf.cast(i, tf.int64) * 64])
            with tf.GradientTape() as tape:
                pred = net(tf.gather(adj, b), tf.gather(feat, b), rng)
                err = _err(tf, cfg, pred - tf.gather(target, b)) * wb
                loss = tf.reduce_sum(err) / tf.reduce_sum(wb)
            grads = tape.gradient(loss, variables)
            opt.apply_gradients(zip(grads, variables, strict=True))
            return i + 1, total + loss

        steps = tf.shape(idx)[0]
        _, total = tf.while_loop(
            lambda i, _: i < steps, body, (tf.constant(0), tf.constant(0.0)), parallel_iterations=1
        )
        return total / tf.cast(steps, tf.float32)

    return run_epoch


def _err(tf: Any, cfg: GCNConfig, diff: Any) -> Any:
    return tf.abs(diff) if cfg.loss == "l1" else tf.square(diff)


def _to_target(target: str, mean: float, std: float) -> Any:
    """Latency (ms) -> the network's target space."""

    def z(v: np.ndarray) -> np.ndarray:
        base = np.log(v) if target == "zlog" else v
        return ((base - mean) / std).astype(np.float32)

    return z


def _loss_fn(tf: Any, net: Any, cfg: GCNConfig, n_feat: int) -> Any:
    spec = (*_graph_specs(tf, n_feat), tf.TensorSpec([None], tf.float32))

    @tf.function(input_signature=spec, jit_compile=cfg.jit_compile)
    def loss(adj: Any, feat: Any, target: Any) -> Any:
        return tf.reduce_mean(_err(tf, cfg, net(adj, feat) - target))

    return loss


def _predict_fn(tf: Any, net: Any, n_feat: int) -> Any:
    @tf.function(input_signature=_graph_specs(tf, n_feat))
    def predict(adj: Any, feat: Any) -> Any:
        return net(adj, feat)

    return predict
