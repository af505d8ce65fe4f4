"""Latency predictors for NAS-Bench-201 and the paper's evaluation protocol.

>>> from latbench.predictors import evaluate, summarize, make_predictor
>>> res = evaluate("xeon2c-onnxruntime-fp32", ["gcn", "flops"], repeats=3)  # doctest: +SKIP
>>> summarize(res)                                                          # doctest: +SKIP
>>> gcn = make_predictor("gcn", seed=0).fit(archs, latency_ms,              # doctest: +SKIP
...                                         val_archs=va, val_latency_ms=vy)
>>> gcn.predict()              # all 15,625 architectures (NaN where invalid)  # doctest: +SKIP
>>> gcn.save("gcn.npz"); load_predictor("gcn.npz")                           # doctest: +SKIP

Predictors (all share :class:`Predictor`: ``fit``, ``predict``, ``save``):

- :class:`GCNPredictor`: end-to-end GCN (Section 3.2, Table S1), TensorFlow/Keras.
- :class:`LayerwisePredictor`: scaled sum of per-layer latencies (Section 3.1).
- :class:`ProxyPredictor`: linear fit on FLOPs or params (Figure 1 left).

Architectures are given as NAS-Bench-201 strings, ``arch_id`` values, 6-op vectors,
:class:`~latbench.space.Arch` objects, sequences of those, or ``None`` for the
whole space. Latencies are in milliseconds. See ``docs/predictors.md``.
"""

from latbench.predictors.base import Predictor, PredictorError, arch_ids, load_predictor
from latbench.predictors.data import UNITS, Split, split_rows, timed_encoding, usable_rows
from latbench.predictors.gcn import GCNConfig, GCNPredictor, TrainingLog
from latbench.predictors.layerwise import LayerwisePredictor, layers_path, read_layers
from latbench.predictors.metrics import BOUNDS, METRICS, metrics, within
from latbench.predictors.protocol import (
    RESULT_COLUMNS,
    evaluate,
    predictions,
    repeat_seeds,
    summarize,
)
from latbench.predictors.proxy import ProxyPredictor
from latbench.predictors.registry import PREDICTORS, make_predictor

__all__ = [
    "BOUNDS",
    "METRICS",
    "PREDICTORS",
    "RESULT_COLUMNS",
    "UNITS",
    "GCNConfig",
    "GCNPredictor",
    "LayerwisePredictor",
    "Predictor",
    "PredictorError",
    "ProxyPredictor",
    "Split",
    "TrainingLog",
    "arch_ids",
    "evaluate",
    "layers_path",
    "load_predictor",
    "make_predictor",
    "metrics",
    "predictions",
    "read_layers",
    "repeat_seeds",
    "split_rows",
    "summarize",
    "timed_encoding",
    "usable_rows",
    "within",
]
