"""Predictor comparison (Figure 1, Tables 1 and S2) on the datasets analysed.

The numbers come from :func:`latbench.predictors.evaluate` (the paper's protocol:
``repeats`` random splits of ``n_train`` training and ``n_val`` validation models,
the rest tested). By default the cheap predictors (FLOPs, params, layer-wise) run the
paper's 100 repeats and the GCN a quick protocol (:data:`QUICK_GCN_REPEATS` repeats of
at most :data:`QUICK_GCN_EPOCHS` epochs), so ``latbench-analysis all`` takes minutes;
``repeats=100`` runs the paper's protocol for all (Table S1 training for the GCN).
Every result row names its :class:`Protocol`. The Figure 1-style panels show repeat 0
of that protocol: the same split and model, read back from the repeat cache. The
layer-wise predictor needs the dataset's per-layer table (``<key>.layers.parquet``);
where it is absent the predictor is skipped and the reason is reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latbench.analysis.data import Datasets
from latbench.analysis.scales import point_alpha
from latbench.analysis.style import new_figure, plot_style

if TYPE_CHECKING:  # matplotlib loads with latbench.analysis.style, naming its extra
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_PREDICTORS",
    "DEFAULT_REPEATS",
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
    "LABELS",
    "PAPER_REPEATS",
    "QUICK_GCN_EPOCHS",
    "QUICK_GCN_REPEATS",
    "PredictorRun",
    "Protocol",
    "figure1",
    "predictor_table",
    "protocols",
    "repeat0_predictions",
    "run_predictors",
]

DEFAULT_PREDICTORS: tuple[str, ...] = ("flops", "params", "layerwise", "gcn")
"""Predictors compared when none are named (Figure 1's three plus params)."""
PAPER_REPEATS = 100
"""Repeats of the paper's protocol (Table S2: mean ± std over 100 random splits)."""
DEFAULT_REPEATS = PAPER_REPEATS
"""Default repeats of the cheap predictors (FLOPs, params, layer-wise): the paper's."""
QUICK_GCN_REPEATS = 2
"""Default GCN repeats: few, so the default analysis stays within minutes on a CPU."""
QUICK_GCN_EPOCHS = 20
"""Default cap on GCN epochs (Table S1: up to 250, early stopping after 35)."""
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


@dataclass(frozen=True)
class Protocol:
    """How one predictor was evaluated: repeats and, for the GCN, the epoch cap."""

    repeats: int
    max_epochs: int | None = None
    """GCN epoch cap; None = Table S1 (at most 250 epochs, early stopping after 35)."""

    def is_paper(self, predictor: str) -> bool:
        """True when this is the paper's protocol (100 repeats, Table S1 training)."""
        return self.repeats >= PAPER_REPEATS and (predictor != "gcn" or self.max_epochs is None)

    def label(self, predictor: str) -> str:
        """E.g. ``paper (100 repeats)`` or ``quick (2 repeats, ≤ 30 epochs)``."""
        parts = [f"{self.repeats} repeat{'s' if self.repeats != 1 else ''}"]
        if predictor == "gcn":
            parts.append(f"≤ {self.max_epochs} epochs" if self.max_epochs else "Table S1")
        kind = "paper" if self.is_paper(predictor) else "quick"
        return f"{kind} ({', '.join(parts)})"


def protocols(
    predictors: Sequence[str], repeats: int | None = None, gcn_epochs: int | None = None
) -> dict[str, Protocol]:
    """The protocol of each predictor: ``repeats=None`` is the default (cheap ones the
    paper's 100 repeats, the GCN the quick one); a number applies to all, the GCN then
    training by Table S1 unless ``gcn_epochs`` caps it."""
    out = {}
    for name in predictors:
        if name == "gcn":
            if repeats is None:
                out[name] = Protocol(QUICK_GCN_REPEATS, gcn_epochs or QUICK_GCN_EPOCHS)
            else:
                out[name] = Protocol(repeats, gcn_epochs)
        else:
            out[name] = Protocol(repeats or DEFAULT_REPEATS)
    return out


class PredictorRun:
    """What :func:`run_predictors` produced: per-repeat results and what was skipped."""

    def __init__(
        self,
        results: pd.DataFrame,
        skipped: Mapping[tuple[str, str], str],
        protocols: Mapping[str, Protocol] | None = None,
    ) -> None:
        self.results = results
        """One row per dataset, predictor and repeat (``evaluate``'s columns, ``dataset`` =
        key, ``protocol`` = the :meth:`Protocol.label` it ran under)."""
        self.skipped = dict(skipped)
        """(dataset key, predictor) -> why it was not run."""
        self.protocols = dict(protocols or {})
        """predictor -> :class:`Protocol`."""
        self.computed = int(results.attrs.get("computed", len(results)))
        """Repeats computed in this run (the others came from the cache)."""


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
    repeats: int | None = None,
    n_train: int = DEFAULT_TRAIN,
    n_val: int = DEFAULT_VAL,
    seed: int = 0,
    data_home: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: Any = None,
    progress: bool = False,
) -> PredictorRun:
    """Run the protocol for every dataset and predictor that has the data it needs.

    ``repeats=None`` gives each predictor its default :func:`protocols`; a number
    applies to all. ``options`` go to the GCN (e.g. ``{"max_epochs": 5}``, which also
    caps the default quick protocol). ``cache`` is a folder of repeat results
    (:mod:`latbench.predictors.cache`): repeats found there are not recomputed.
    ``progress`` shows a bar per dataset and per predictor repeat. Raises
    :class:`~latbench.predictors.PredictorError` for unknown predictor names or split
    sizes that leave no test data.
    """
    from latbench.predictors import PREDICTORS, PredictorError, evaluate, usable_rows
    from latbench.progress import Progress

    bad = [p for p in predictors if p not in PREDICTORS]
    if bad or not predictors:
        raise PredictorError(f"unknown predictor(s) {bad}; choose from {', '.join(PREDICTORS)}")
    options = dict(options or {})
    plan = protocols(predictors, repeats, options.get("max_epochs"))
    frames, skipped, computed = [], {}, 0
    bar = Progress(len(data.frames), "predictors", unit="dataset", enabled=progress)
    for key, frame in data.frames.items():
        bar.update(0, note=key)
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
        for group in _groups(names, plan):
            proto = plan[group[0]]
            opts = options | ({"max_epochs": proto.max_epochs} if proto.max_epochs else {})
            res = evaluate(frame, group, train=n_train, val=n_val, repeats=proto.repeats,
                           seed=seed, layers=layers, options=opts, cache=cache,
                           progress=progress, progress_desc=f"{key}: {', '.join(group)}")  # fmt: skip
            computed += res.attrs.get("computed", len(res))
            res["dataset"] = key
            res["protocol"] = [plan[p].label(p) for p in res["predictor"]]
            frames.append(res)
        bar.update(note=key)
    bar.close()
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    results.attrs["computed"] = computed
    return PredictorRun(results, skipped, plan)


def _groups(names: Sequence[str], plan: Mapping[str, Protocol]) -> list[list[str]]:
    """Predictors sharing a protocol, evaluated together (same splits)."""
    groups: dict[Protocol, list[str]] = {}
    for n in names:
        groups.setdefault(plan[n], []).append(n)
    return list(groups.values())


def predictor_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table S2 layout: rows = error bound, columns = dataset x predictor, "mean ± std" in %.

    Std is the sample standard deviation over repeats (a cell of one repeat shows the
    mean alone). A last row
    ``protocol`` names the protocol behind each column where ``results`` has one.
    """
    from latbench.predictors import BOUNDS, summarize

    summary = summarize(results)
    if "protocol" in results.columns:
        label = results.groupby(["dataset", "predictor"], sort=False)["protocol"].first()
        summary["protocol"] = [label[(d, p)] for d, p in zip(summary["dataset"],
                                                            summary["predictor"], strict=True)]  # fmt: skip
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
            # one repeat has no spread to show: not "± 0.0"
            cells.append(f"{mean:.1f} ± {std:.1f}" if row.repeats > 1 else f"{mean:.1f}")
        if "protocol" in summary.columns:
            cells.append(row.protocol)
        cols[(row.dataset, LABELS.get(row.predictor, row.predictor))] = cells
    index = [f"±{b}%" for b in BOUNDS] + (["protocol"] if "protocol" in summary.columns else [])
    table = pd.DataFrame(cols, index=index)
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
    cache: Any = None,
) -> pd.DataFrame:
    """Test-set predictions of repeat 0 of the protocol: ``arch_id``, ``measured``, ``predicted``.

    With the ``cache`` :func:`run_predictors` used (and the same ``options``), the
    repeat is read back rather than refitted.
    """
    from latbench.predictors import predictions

    if predictor == "layerwise" and layers is None:
        raise ValueError("layerwise needs layers= (the per-layer table)")
    return predictions(frame, predictor, train=n_train, val=n_val, seed=seed, repeat=0,
                       layers=layers, options=options, cache=cache)  # fmt: skip


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
        fig = new_figure(max(4.6, 2.7 * len(names) + 0.3), 3.5)  # the title fits one panel
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
