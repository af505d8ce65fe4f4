"""Latency sources for the NAS analysis: measured, or a predictor's estimate of all models.

Every source is an array of 15,625 latencies (ms) indexed by ``arch_id`` (NaN where it
has none). Predictors are fitted as a user would fit them, then asked for every
architecture (training models included):

- ``flops``, ``params``: linear fit on the ``n_train`` models of repeat 0 of the
  predictor protocol (:func:`latbench.predictors.repeat_seeds`);
- ``layerwise``: scaled sum of the dataset's per-layer table, scale fitted likewise
  (only datasets with a ``<key>.layers.parquet``);
- ``gcn``: the GCN trained on those ``n_train`` models (+ ``n_val`` for early
  stopping), with the quick protocol's epoch cap unless told otherwise;
- ``fewshot-N``: the few-shot adapter with the shipped prior (or one given), fitted on the ``N``
  architectures its design selects among the measured ones;
- ``fewshot-nas-N``: the same adapter with its ``N`` measurements spent for NAS
  (:mod:`latbench.predictors.fewshot.nasaware`: a designed half, then one at a time where
  the expected missed accuracy drops most); the estimate is **measured where measured,
  else predicted** (the N measured models keep their dataset latency);
- ``remeasured``: not a predictor but the device's own noise floor
  (:func:`latbench.nas.remeasure.remeasured_latency`): each model's latency as the
  dataset's other timings of the same computation (isomorphic graphs) put it, its own
  measurement where there is no other. What oracle NAS misses with it, no predictor of
  the computation's cost can be blamed for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from latbench.space import N_ARCHS

__all__ = [
    "BASE_PREDICTORS",
    "LABELS",
    "label",
    "distinct_graphs",
    "latency_sources",
    "remeasurements",
    "source_names",
    "timings",
]

BASE_PREDICTORS = ("flops", "params", "layerwise", "gcn", "fewshot", "fewshot-nas", "remeasured")
"""Names ``--predictors`` accepts (``fewshot`` and ``fewshot-nas`` expand to one source per N)."""
LABELS = {"measured": "measured", "flops": "FLOPs fit", "params": "params fit",
          "layerwise": "layer-wise", "gcn": "GCN",
          "remeasured": "re-measured (noise floor)"}  # fmt: skip


def label(source: str) -> str:
    """Display name of a source (``fewshot-20`` -> ``few-shot N=20``)."""
    if source.startswith("fewshot-nas-"):
        return f"few-shot NAS N={source.rsplit('-', 1)[1]} (meas.+pred.)"
    if source.startswith("fewshot-"):
        return f"few-shot N={source.split('-', 1)[1]}"
    return LABELS.get(source, source)


def source_names(predictors: Sequence[str], fewshot_ns: Sequence[int]) -> list[str]:
    """The sources ``predictors`` stand for, ``fewshot`` expanded over ``fewshot_ns``."""
    bad = [p for p in predictors if p not in BASE_PREDICTORS]
    if bad:
        raise ValueError(
            f"unknown predictor(s) {', '.join(bad)}; choose from {', '.join(BASE_PREDICTORS)}"
        )
    out: list[str] = []
    for p in predictors:
        if p in ("fewshot", "fewshot-nas"):
            out += [f"{p}-{n}" for n in fewshot_ns]
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def _full(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(N_ARCHS, np.nan)
    out[ids] = values
    return out


def latency_sources(
    frame: pd.DataFrame,
    sources: Sequence[str],
    *,
    n_train: int = 900,
    n_val: int = 100,
    seed: int = 0,
    layers: Any = None,
    gcn_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    key: str | None = None,
    prior: str | os.PathLike[str] | None = None,
    accuracy: np.ndarray | None = None,
    fewshot_accept: float = 0.5,
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """``({source: latency by arch_id}, {source: why skipped}, {source: caveat})``;
    ``measured`` always first. A caveat names a few-shot estimate whose prior was
    pretrained on the dataset ``key`` itself (not a fair test).

    Only usable rows (valid, ``status == "ok"``) are measured; predictions cover every
    valid architecture. ``layers`` is the per-layer table for ``layerwise`` (None: skip);
    ``accuracy`` (per ``arch_id``) is what ``fewshot-nas-N`` selects by (None: skipped);
    ``fewshot_accept`` the acceptance probability of the few-shot estimates (module doc).
    """
    from latbench.predictors import make_predictor, repeat_seeds, split_rows, usable_rows
    from latbench.predictors.encoding import valid_mask

    say = log or (lambda _m: None)
    rows = usable_rows(frame)
    ids, y = rows["arch_id"].to_numpy(), rows["latency_ms"].to_numpy()
    out = {"measured": _full(ids, y)}
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    split_seed, model_seed = repeat_seeds(seed, 0)
    sp = None
    if n_train + n_val < len(rows):
        sp = split_rows(rows, n_train, n_val, split_seed, "models")
    valid = np.flatnonzero(valid_mask())
    distinct = distinct_graphs(ids)
    for name in sources:
        if name.startswith("fewshot-"):
            n = int(name.rsplit("-", 1)[1])
            if n > distinct:  # the design takes one model of each graph
                skipped[name] = f"{distinct} distinct measured graphs, fewer than N = {n}"
                continue
        if name == "remeasured":
            est, why = _remeasured(frame, out["measured"])
            if why:
                skipped[name] = why
            else:
                out[name] = est
            continue
        if name.startswith("fewshot-nas-"):
            if accuracy is None:
                skipped[name] = "no accuracy table to select by"
                continue
            n = int(name.rsplit("-", 1)[1])
            with _naming(key, name):
                out[name], prior_sources = _fewshot_nas(
                    ids, y, n, seed, prior, accuracy, fewshot_accept
                )
            _fewshot_notes(notes, name, key, prior_sources, fewshot_accept, n >= distinct)
            continue
        if name.startswith("fewshot-"):
            n = int(name.split("-", 1)[1])
            with _naming(key, name):
                out[name], prior_sources = _fewshot(ids, y, n, seed, prior, fewshot_accept)
            _fewshot_notes(notes, name, key, prior_sources, fewshot_accept, n >= distinct)
            continue
        if sp is None:
            skipped[name] = f"{len(rows)} measured models, too few for {n_train} + {n_val}"
            continue
        if name == "layerwise" and layers is None:
            skipped[name] = "no per-layer table (`latbench-measure --layers` makes one)"
            continue
        if name == "gcn":
            opts = {"seed": model_seed, "encoding": rows.attrs["encoding"]}
            opts.update(gcn_options or {})
            say(
                f"  training the GCN on {n_train} models ({opts.get('max_epochs', 250)} epochs max)"
            )
            pred = make_predictor("gcn", **opts)
            pred.fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val], val_latency_ms=y[sp.val])
        elif name == "layerwise":
            from latbench.predictors import read_layers

            table = layers if isinstance(layers, pd.Series) else read_layers(layers)
            pred = make_predictor("layerwise", layers=table).fit(ids[sp.train], y[sp.train])
        else:
            pred = make_predictor(name).fit(ids[sp.train], y[sp.train])
        out[name] = _full(valid, pred.predict(valid))
    return out, skipped, notes


@contextmanager
def _naming(key: str | None, source: str) -> Iterator[None]:
    """A few-shot selection's error names the dataset and estimate: the design draws
    from a pool, so an N that fits the measured graphs can still exceed the pool's."""
    from latbench.predictors import PredictorError

    try:
        yield
    except PredictorError as exc:
        where = f"{key}, " if key else ""
        raise PredictorError(f"{where}{label(source)}: {exc}") from None


def timings(frame: pd.DataFrame) -> np.ndarray:
    """Per ``arch_id``, the architecture whose timing gave its latency (``timed_arch_id``;
    -1 where the frame has no row or none recorded): the ``timing`` of
    :func:`latbench.nas.remeasure.remeasured_latency`. A frame without ``timed_arch_id``
    counts each row as its own timing."""
    ids = frame["arch_id"].to_numpy(dtype=np.int64)
    col = frame["timed_arch_id"] if "timed_arch_id" in frame.columns else frame["arch_id"]
    out = np.full(N_ARCHS, -1, dtype=np.int64)
    out[ids] = pd.to_numeric(col).astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
    return out


def remeasurements(frame: pd.DataFrame, measured: np.ndarray) -> tuple[np.ndarray, str]:
    """Per ``arch_id``, the latency the dataset's other timings of the same computation
    give (:func:`latbench.nas.remeasure.remeasured_latency`; NaN where there is none),
    and why there is none at all ("" when some model has one). ``measured`` is the
    dataset's latency per ``arch_id``; :func:`timings` says which timing gave each."""
    from latbench.nas.remeasure import isomorphism_classes, remeasured_latency
    from latbench.predictors.data import timed_encoding

    none = np.full(N_ARCHS, np.nan)
    if timed_encoding(frame.attrs.get("metadata", {})) == "cell":
        # unpruned cells run their dead branches: isomorphic pruned graphs differ in work
        return none, "the dataset timed unpruned cells, so isomorphs are not re-measurements"
    timing = timings(frame)
    if not np.isfinite(measured).any():
        return none, "the dataset has no measured rows"
    if not (timing[np.isfinite(measured)] >= 0).any():
        return none, "the dataset's timed_arch_id is empty for its measured rows"
    est = remeasured_latency(measured, timing, isomorphism_classes())
    if not np.isfinite(est).any():
        return est, "no computation was timed more than once (no isomorphic graphs timed apart)"
    return est, ""


def _remeasured(frame: pd.DataFrame, measured: np.ndarray) -> tuple[np.ndarray, str]:
    """The ``remeasured`` source (:func:`remeasurements`, each model's own measurement
    where it has no other) and, when it cannot be formed, why."""
    est, why = remeasurements(frame, measured)
    if why:
        return measured, why
    return np.where(np.isfinite(est), est, measured), ""


def distinct_graphs(ids: np.ndarray) -> int:
    """How many distinct pruned graphs the architectures ``ids`` have."""
    from latbench.predictors.fewshot.selection import graph_index

    graphs = graph_index()[np.asarray(ids, dtype=np.int64)]
    return int(np.unique(graphs[graphs >= 0]).size)


def _fewshot_notes(
    notes: dict[str, str], name: str, key: str | None, sources: Sequence[str], accept: float,
    every_graph: bool = False,
) -> None:  # fmt: skip
    said = []
    if key is not None and key in sources:
        said.append("the few-shot prior was pretrained on this dataset (in-sample)")
    if every_graph:
        said.append("its N measurements are every graph this dataset measured (in-sample)")
    if accept != 0.5:
        said.append(f"accepted where P(latency <= threshold) >= {accept:g}, not the median")
    if said:
        notes[name] = "; ".join(said)


def _fewshot(
    ids: np.ndarray, y: np.ndarray, n: int, seed: int, prior_path: Any = None, accept: float = 0.5
) -> tuple[np.ndarray, tuple[str, ...]]:
    from latbench.predictors.fewshot import FewShotAdapter, select_archs
    from latbench.predictors.fewshot.nasaware import acceptance_estimate

    prior = _prior(str(prior_path) if prior_path is not None else None)
    chosen = select_archs(prior, n, seed=seed, candidates=ids)
    where = {int(a): i for i, a in enumerate(ids)}
    fitted = FewShotAdapter(prior).fit(chosen, y[[where[int(a)] for a in chosen]])
    return acceptance_estimate(fitted, accept), tuple(prior.sources)


def _fewshot_nas(
    ids: np.ndarray,
    y: np.ndarray,
    n: int,
    seed: int,
    prior_path: Any,
    accuracy: np.ndarray,
    accept: float = 0.5,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Measured where measured, else predicted: ``n`` measurements spent for NAS."""
    from latbench.predictors.fewshot import FewShotAdapter
    from latbench.predictors.fewshot.nasaware import adapt_for_nas

    prior = _prior(str(prior_path) if prior_path is not None else None)
    lat = _full(ids, y)
    done = adapt_for_nas(FewShotAdapter(prior), accuracy, n, lambda a: lat[a], seed=seed,
                         candidates=ids)  # fmt: skip
    return done.estimate(accept), tuple(prior.sources)


@lru_cache(maxsize=2)
def _prior(path: str | None) -> Any:
    from latbench.predictors.fewshot import load_prior

    return load_prior(path)


def default_layers(key: str, frame: pd.DataFrame, data_home: str | os.PathLike[str] | None) -> Any:
    """The per-layer table of ``key`` or None (same lookup as the predictor comparison)."""
    from latbench.analysis.predictors import _layers_for

    path, _why = _layers_for(key, frame, data_home)
    return path
