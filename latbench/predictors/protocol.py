"""The paper's evaluation protocol (Section 3.2, S1.2): repeated random splits.

Each repeat draws a fresh split (``train`` models to fit, ``val`` for early stopping,
the rest to test), fits a new predictor and scores it on the test set. Repeat ``r``
of seed ``s`` uses split and model seeds derived from ``(s, r)`` alone, so every
predictor sees the same splits and a rerun reproduces the numbers. With ``cache=`` a
folder, each repeat's result is stored there (:mod:`latbench.predictors.cache`) and a
rerun, e.g. with more repeats, computes only the repeats it does not find.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.predictors.base import PredictorError
from latbench.predictors.cache import RepeatCache, frame_checksum, series_checksum
from latbench.predictors.data import UNITS, split_rows, usable_rows
from latbench.predictors.metrics import METRICS, metrics
from latbench.predictors.registry import PREDICTORS, make_predictor

__all__ = ["RESULT_COLUMNS", "evaluate", "predictions", "repeat_seeds", "summarize"]

RESULT_COLUMNS = (
    "dataset", "predictor", "repeat", "seed", "unit", "n_train", "n_val", "n_test",
    *METRICS, "train_seconds", "epochs", "best_epoch",
)  # fmt: skip
"""Columns of :func:`evaluate`'s frame (one row per predictor and repeat)."""


def repeat_seeds(seed: int, repeat: int) -> tuple[int, int]:
    """``(split_seed, model_seed)`` of repeat ``repeat`` under protocol seed ``seed``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(repeat),)).generate_state(2)
    return int(state[0]), int(state[1])


def evaluate(
    dataset: str | pd.DataFrame,
    predictor: str | Iterable[str] = "gcn",
    *,
    train: int = 900,
    val: int = 100,
    repeats: int = 1,
    seed: int = 0,
    unit: str = "models",
    jobs: int = 1,
    layers: Any = None,
    data_home: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | RepeatCache | None = None,
    progress: bool = False,
    progress_desc: str | None = None,
) -> pd.DataFrame:
    """Run the protocol; one row per predictor and repeat (:data:`RESULT_COLUMNS`).

    ``predictor`` is one name of :data:`~latbench.predictors.registry.PREDICTORS` or
    several. ``layers`` is the per-layer table for ``layerwise`` (default: the
    dataset's ``<key>.layers.parquet``). ``options`` go to the GCN (e.g.
    ``{"max_epochs": 50}``); its ``encoding`` defaults to the dataset's
    :func:`~latbench.predictors.data.timed_encoding`. ``jobs > 1`` runs repeats in that many processes, each
    with ``cpu_count // jobs`` TensorFlow threads. Shares are fractions in 0..1.
    ``cache`` (a folder) keeps every repeat's result; repeats found there are not
    recomputed, and ``attrs["computed"]``/``attrs["cached"]`` of the result count
    both kinds. ``progress`` shows a bar (or ETA lines) per predictor repeat on stderr.
    """
    names = [predictor] if isinstance(predictor, str) else list(predictor)
    bad = [n for n in names if n not in PREDICTORS]
    if bad or not names:
        raise PredictorError(f"unknown predictor(s) {bad}; choose from {', '.join(PREDICTORS)}")
    if repeats < 1 or jobs < 1:
        raise PredictorError(f"need repeats >= 1 and jobs >= 1, got {repeats} and {jobs}")
    if unit not in UNITS:
        raise PredictorError(f"unknown split unit {unit!r}; choose one of {', '.join(UNITS)}")
    rows = usable_rows(dataset, data_home)
    name = rows.attrs["dataset"]
    # Fail on bad sizes and a missing layers table before any training starts.
    split_rows(rows, train, val, 0, unit)
    layer_lat = _layer_latency(dataset, layers, data_home) if "layerwise" in names else None
    ids = rows["arch_id"].to_numpy()
    y = rows["latency_ms"].to_numpy()
    store = _as_cache(cache)
    base = _base_fields(rows, train, val, unit, seed) if store else {}
    tasks, keys = [], []
    for r in range(repeats):
        split_seed, model_seed = repeat_seeds(seed, r)
        sp = split_rows(rows, train, val, split_seed, unit)
        for n in names:
            opts = _options(n, rows, model_seed, layer_lat, options)
            tasks.append((n, opts, ids, y, sp.train, sp.val, sp.test, r))
            keys.append(_key(store, base, n, r, opts))
    # Cheap predictors first: the ETA then comes from the expensive repeats left.
    order = sorted(range(len(tasks)), key=lambda i: (tasks[i][0] == "gcn", i))
    from latbench.progress import Progress

    results: dict[int, dict[str, Any]] = {}
    desc = progress_desc or f"{name}: predictor repeats"
    with Progress(len(tasks), desc, unit="repeat", enabled=progress, leave=False) as bar:
        todo = []
        for i in order:
            hit = store.get(keys[i][0]) if store else None
            if hit is not None and len(hit[1]) == len(tasks[i][6]):
                results[i] = hit[0]
                bar.update(note=f"{tasks[i][0]} #{tasks[i][7]} cached")
            else:
                todo.append(i)

        def done(i: int, out: tuple[dict[str, Any], np.ndarray]) -> None:
            results[i] = out[0]
            if store:
                store.put(keys[i][0], out[0], out[1], keys[i][1])
            bar.update(note=f"{tasks[i][0]} #{tasks[i][7]}")

        if jobs == 1 or len(todo) <= 1:
            for i in todo:
                if tasks[i][0] == "gcn":  # minutes each: say what runs now
                    bar.update(0, note=f"gcn #{tasks[i][7]} training")
                done(i, _run(*tasks[i]))
        else:
            import multiprocessing as mp

            threads = max(1, (os.cpu_count() or 1) // jobs)
            # spawn: TensorFlow's thread pools do not survive fork
            pool = ProcessPoolExecutor(
                jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                initargs=(threads,),
            )  # fmt: skip
            try:
                futures = {pool.submit(_run_packed, tasks[i]): i for i in todo}
                for fut in as_completed(futures):
                    done(futures[fut], fut.result())
            except BaseException:
                # an error, Ctrl-C or SIGTERM: the queued repeats (minutes each) must not
                # run on, nor the running ones: the workers (processes of their own) are
                # stopped. Listed first: shutdown forgets them.
                procs = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.join(timeout=5)
                    if proc.is_alive():
                        proc.kill()
                raise
            pool.shutdown()
    frame = pd.DataFrame([results[i] for i in range(len(tasks))])
    frame.insert(0, "dataset", name)
    frame["seed"] = seed
    frame["unit"] = unit
    frame["n_train"], frame["n_val"] = train, val
    frame["epochs"] = frame["epochs"].astype("Int64")
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")
    out = frame[list(RESULT_COLUMNS)].sort_values(["predictor", "repeat"], ignore_index=True)
    out.attrs["computed"] = len(todo)
    out.attrs["cached"] = len(tasks) - len(todo)
    return out


def predictions(
    dataset: str | pd.DataFrame,
    predictor: str,
    *,
    train: int = 900,
    val: int = 100,
    seed: int = 0,
    repeat: int = 0,
    unit: str = "models",
    layers: Any = None,
    data_home: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | RepeatCache | None = None,
) -> pd.DataFrame:
    """Test-set predictions of one repeat of :func:`evaluate` (same split, same model).

    Columns ``arch_id``, ``measured``, ``predicted`` (ms); for scatter plots (Figure 1).
    With ``cache``, a repeat that :func:`evaluate` stored there is read, not refitted
    (and one computed here is stored for it).
    """
    if predictor not in PREDICTORS:
        raise PredictorError(
            f"unknown predictor {predictor!r}; choose from {', '.join(PREDICTORS)}"
        )
    rows = usable_rows(dataset, data_home)
    split_seed, model_seed = repeat_seeds(seed, repeat)
    sp = split_rows(rows, train, val, split_seed, unit)
    layer_lat = _layer_latency(dataset, layers, data_home) if predictor == "layerwise" else None
    opts = _options(predictor, rows, model_seed, layer_lat, options)
    ids, y = rows["arch_id"].to_numpy(), rows["latency_ms"].to_numpy()
    store = _as_cache(cache)
    key, fields_ = _key(store, _base_fields(rows, train, val, unit, seed), predictor, repeat, opts)
    hit = store.get(key) if store else None
    if hit is not None and len(hit[1]) == len(sp.test):
        predicted = hit[1]
    else:
        result, predicted = _run(predictor, opts, ids, y, sp.train, sp.val, sp.test, repeat)
        if store:
            store.put(key, result, predicted, fields_)
    return pd.DataFrame({"arch_id": ids[sp.test], "measured": y[sp.test], "predicted": predicted})


def _as_cache(cache: str | os.PathLike[str] | RepeatCache | None) -> RepeatCache | None:
    if cache is None or isinstance(cache, RepeatCache):
        return cache
    return RepeatCache(Path(cache))


def _base_fields(rows: pd.DataFrame, train: int, val: int, unit: str, seed: int) -> dict:
    return {"dataset": frame_checksum(rows), "train": train, "val": val, "unit": unit,
            "seed": int(seed)}  # fmt: skip


def _key(
    store: RepeatCache | None, base: dict, name: str, repeat: int, opts: Mapping[str, Any]
) -> tuple[str, dict]:
    """Cache file key and the fields it hashes (empty without a cache)."""
    if store is None:
        return "", {}
    f = {**base, "predictor": name, "repeat": int(repeat), "settings": _settings(name, opts)}
    return RepeatCache.key(f), f


def _settings(name: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    """What of a predictor's options can change its numbers (not threads or verbosity)."""
    if name == "gcn":
        from latbench.predictors.gcn import GCNConfig

        names = {f.name for f in fields(GCNConfig)}
        cfg = GCNConfig(**{k: v for k, v in opts.items() if k in names})
        return {"config": asdict(cfg), "seed": int(opts.get("seed", 0))}
    if name == "layerwise":
        return {"layers": series_checksum(opts["layers"])}
    return {}


def _layer_latency(
    dataset: str | pd.DataFrame, layers: Any, data_home: str | os.PathLike[str] | None
) -> pd.Series:
    from latbench.predictors.layerwise import layers_path, read_layers

    if layers is None:
        if not isinstance(dataset, str):
            raise PredictorError("layerwise on a DataFrame needs layers= (a per-layer table)")
        layers = layers_path(dataset, data_home)
    return layers if isinstance(layers, pd.Series) else read_layers(layers)


def _options(
    name: str,
    rows: pd.DataFrame,
    model_seed: int,
    layer_lat: pd.Series | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if name == "gcn":
        opts = dict(options or {})
        opts.setdefault("seed", model_seed)
        opts.setdefault("encoding", rows.attrs["encoding"])
        return opts
    if name == "layerwise":
        return {"layers": layer_lat}
    return {}


def _fit(pred: Any, ids: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> None:
    if len(va):
        pred.fit(ids[tr], y[tr], val_archs=ids[va], val_latency_ms=y[va])
    else:
        pred.fit(ids[tr], y[tr])


def _init_worker(threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from latbench.predictors.gcn import _tf

    _tf(threads)


def _run_packed(task: tuple) -> tuple[dict[str, Any], np.ndarray]:
    return _run(*task)


def _run(
    name: str,
    opts: dict[str, Any],
    ids: np.ndarray,
    y: np.ndarray,
    tr: np.ndarray,
    va: np.ndarray,
    te: np.ndarray,
    repeat: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """One repeat: its result row and its test-set predictions."""
    pred = make_predictor(name, **opts)
    t0 = time.perf_counter()
    _fit(pred, ids, y, tr, va)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"predictor": name, "repeat": repeat, "n_test": len(te)}
    predicted = pred.predict(ids[te])
    out.update(metrics(y[te], predicted))
    out["train_seconds"] = seconds
    log = getattr(pred, "log", None)
    out["epochs"] = log.epochs if log is not None else None
    out["best_epoch"] = log.best_epoch if log is not None else None
    return out, predicted


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over repeats, per dataset and predictor.

    Columns ``<metric>_mean`` and ``<metric>_std`` (sample std, ddof=1; 0 for one
    repeat), plus ``repeats`` and ``train_seconds_mean``.
    """
    cols = [*METRICS, "train_seconds"]
    g = results.groupby(["dataset", "predictor"], sort=False)
    mean = g[cols].mean().add_suffix("_mean")
    std = g[list(METRICS)].std(ddof=1).fillna(0.0).add_suffix("_std")
    out = pd.concat([g.size().rename("repeats"), mean, std], axis=1)
    order = ["repeats"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    return out[[*order, "train_seconds_mean"]].reset_index()
