"""Predictor comparison (Figure 1, Tables 1 and S2) on the datasets analysed.

The numbers come from :func:`latbench.predictors.evaluate` (the paper's protocol:
``repeats`` random splits of ``n_train`` training and ``n_val`` validation models,
the rest tested). The Figure 1-style panels show repeat 0 of that protocol: the same
split and model seed, refitted here to keep its predictions. The layer-wise predictor
needs the dataset's per-layer table (``<key>.layers.parquet``); where it is absent
the predictor is skipped and the reason is reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from latbench.analysis.data import Datasets
from latbench.analysis.scales import point_alpha
from latbench.analysis.style import new_figure, plot_style

__all__ = [
    "DEFAULT_PREDICTORS",
    "DEFAULT_REPEATS",
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
    "LABELS",
    "PredictorRun",
    "figure1",
    "predictor_table",
    "repeat0_predictions",
    "run_predictors",
]

DEFAULT_PREDICTORS: tuple[str, ...] = ("flops", "params", "layerwise", "gcn")
"""Predictors compared when none are named (Figure 1's three plus params)."""
DEFAULT_REPEATS = 10
"""Repeats per predictor (the paper: 100; 10 keeps a CPU run to minutes per dataset)."""
DEFAULT_TRAIN = 900
"""Training models per repeat (the paper's 900)."""
DEFAULT_VAL = 100
"""Validation models per repeat (the paper's 100)."""
LABELS: dict[str, str] = {
    "flops": "FLOPs",
    "params": "params",
    "layerwise": "layer-wise",
    "gcn": "GCN",
}
"""Display name of each predictor."""
_FIG1_ORDER = ("flops", "params", "layerwise", "gcn")


class PredictorRun:
    """What :func:`run_predictors` produced: per-repeat results and what was skipped."""

    def __init__(self, results: pd.DataFrame, skipped: Mapping[tuple[str, str], str]) -> None:
        self.results = results
        """One row per dataset, predictor and repeat (``evaluate``'s columns, ``dataset`` = key)."""
        self.skipped = dict(skipped)
        """(dataset key, predictor) -> why it was not run."""


def _layers_for(key: str, frame: pd.DataFrame, data_home: Any) -> tuple[Any, str | None]:
    """The per-layer table path for ``key``, or (None, reason)."""
    from latbench.predictors import PredictorError, layers_path

    path = frame.attrs.get("path")
    if path:
        candidate = str(path)[: -len(".parquet")] + ".layers.parquet"
        if os.path.exists(candidate):
            return candidate, None
    try:
        return layers_path(key, data_home), None
    except (PredictorError, LookupError, OSError):
        return None, (
            f"no per-layer table `{key}.layers.parquet` (measure one with "
            "`latbench-measure --device PROFILE --layers`)"
        )


def run_predictors(
    data: Datasets,
    predictors: Sequence[str] = DEFAULT_PREDICTORS,
    *,
    repeats: int = DEFAULT_REPEATS,
    n_train: int = DEFAULT_TRAIN,
    n_val: int = DEFAULT_VAL,
    seed: int = 0,
    data_home: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> PredictorRun:
    """Run the protocol for every dataset and predictor that has the data it needs.

    ``options`` go to the GCN (e.g. ``{"max_epochs": 5}``). Raises
    :class:`~latbench.predictors.PredictorError` for unknown predictor names or split
    sizes that leave no test data.
    """
    from latbench.predictors import PREDICTORS, PredictorError, evaluate, usable_rows

    bad = [p for p in predictors if p not in PREDICTORS]
    if bad or not predictors:
        raise PredictorError(f"unknown predictor(s) {bad}; choose from {', '.join(PREDICTORS)}")
    frames, skipped = [], {}
    for key, frame in data.frames.items():
        names = list(predictors)
        usable = len(usable_rows(frame))
        if n_train + n_val >= usable:  # e.g. a measured sample of a few hundred archs
            for name in names:
                skipped[(key, name)] = (
                    f"{usable} usable architectures, too few for {n_train} training + "
                    f"{n_val} validation models and a test set (lower `--train`)"
                )
            continue
        layers = None
        if "layerwise" in names:
            layers, why = _layers_for(key, frame, data_home)
            if layers is None:
                names.remove("layerwise")
                skipped[(key, "layerwise")] = why
        if not names:
            continue
        res = evaluate(frame, names, train=n_train, val=n_val, repeats=repeats, seed=seed,
                       layers=layers, options=options)  # fmt: skip
        res["dataset"] = key
        frames.append(res)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return PredictorRun(results, skipped)


def predictor_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table S2 layout: rows = error bound, columns = dataset x predictor, "mean ± std" in %.

    Std is the sample standard deviation over repeats (0 for one repeat).
    """
    from latbench.predictors import BOUNDS, summarize

    summary = summarize(results)
    order = {name: i for i, name in enumerate(_FIG1_ORDER)}
    summary = summary.sort_values(
        "predictor", key=lambda s: s.map(lambda p: order.get(p, len(order))), kind="stable"
    )
    cols = {}
    for row in summary.itertuples(index=False):
        cells = []
        for b in BOUNDS:
            mean = getattr(row, f"within_{b}pct_mean") * 100
            std = getattr(row, f"within_{b}pct_std") * 100
            cells.append(f"{mean:.1f} ± {std:.1f}")
        cols[(row.dataset, LABELS.get(row.predictor, row.predictor))] = cells
    table = pd.DataFrame(cols, index=[f"±{b}%" for b in BOUNDS])
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["dataset", "predictor"])
    table.index.name = "error bound"
    return table


def repeat0_predictions(
    frame: pd.DataFrame,
    predictor: str,
    *,
    n_train: int = DEFAULT_TRAIN,
    n_val: int = DEFAULT_VAL,
    seed: int = 0,
    layers: Any = None,
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Test-set predictions of repeat 0 of the protocol: ``arch_id``, ``measured``, ``predicted``."""
    from latbench.predictors import make_predictor, repeat_seeds, split_rows, usable_rows

    rows = usable_rows(frame)
    split_seed, model_seed = repeat_seeds(seed, 0)
    sp = split_rows(rows, n_train, n_val, split_seed)
    opts: dict[str, Any] = {}
    if predictor == "gcn":
        opts = dict(options or {})
        opts.setdefault("seed", model_seed)
        opts.setdefault("encoding", rows.attrs["encoding"])
    elif predictor == "layerwise":
        opts["layers"] = layers
    ids = rows["arch_id"].to_numpy()
    y = rows["latency_ms"].to_numpy()
    pred = make_predictor(predictor, **opts)
    if len(sp.val):
        pred.fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val], val_latency_ms=y[sp.val])
    else:
        pred.fit(ids[sp.train], y[sp.train])
    return pd.DataFrame(
        {"arch_id": ids[sp.test], "measured": y[sp.test], "predicted": pred.predict(ids[sp.test])}
    )


def figure1(key: str, predictions: Mapping[str, pd.DataFrame]) -> Figure:
    """Predicted vs measured latency, one panel per predictor, with the ±10 % band (Figure 1)."""
    from latbench.predictors import within

    names = [p for p in _FIG1_ORDER if p in predictions] + [
        p for p in predictions if p not in _FIG1_ORDER
    ]
    lo = min(float(predictions[p][["measured", "predicted"]].min().min()) for p in names)
    hi = max(float(predictions[p][["measured", "predicted"]].max().max()) for p in names)
    pad = 0.04 * (hi - lo)
    lim = (max(0.0, lo - pad), hi + pad)
    with plot_style():
        fig = new_figure(max(3.6, 2.7 * len(names) + 0.3), 3.2)
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            d = predictions[name]
            m, p = d["measured"].to_numpy(), d["predicted"].to_numpy()
            line = np.array(lim)
            ax.fill_between(line, line * 0.9, line * 1.1, color="tab:orange", alpha=0.25,
                            linewidth=0, label="±10 %")  # fmt: skip
            ax.plot(line, line, color="tab:orange", linewidth=0.8, label="ideal")
            ax.scatter(m, p, s=2, alpha=point_alpha(len(m)), linewidths=0, color="tab:blue",
                       rasterized=True, label="test model")  # fmt: skip
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            ax.set_aspect("equal")
            ax.set_xlabel("measured latency [ms]")
            ax.set_ylabel("predicted latency [ms]")
            share = within(m, p, 10) * 100
            ax.set_title(f"{LABELS.get(name, name)}: {share:.1f}% within ±10%")
            ax.legend(loc="lower right", markerscale=4)
        fig.suptitle(f"{key}\npredicted vs measured, test models of repeat 0 (Figure 1)")
    return fig
