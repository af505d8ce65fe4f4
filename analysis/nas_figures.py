"""Figures of the NAS analysis: Figure 2 (oracle miss, evolution), 3 (fronts), S3 (six panels)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from latbench.analysis.nas import DeviceNAS
from latbench.analysis.nas_sources import label
from latbench.analysis.style import new_figure, plot_style
from latbench.nas.pareto import pareto_front

__all__ = ["COLORS", "figure2", "figure3", "figure_s3"]

COLORS = {"measured": "black", "flops": "tab:gray", "params": "tab:brown",
          "layerwise": "tab:red", "gcn": "tab:green"}  # fmt: skip
_FEWSHOT = ("tab:blue", "tab:purple", "tab:cyan", "tab:olive")
_FEWSHOT_NAS = ("tab:orange", "tab:pink", "gold")


def _color(name: str, names: list[str]) -> str:
    if name in COLORS:
        return COLORS[name]
    nas = [n for n in names if n.startswith("fewshot-nas-")]
    if name in nas:
        return _FEWSHOT_NAS[nas.index(name) % len(_FEWSHOT_NAS)]
    few = [n for n in names if n.startswith("fewshot-") and n not in nas]
    return _FEWSHOT[few.index(name) % len(_FEWSHOT)] if name in few else "tab:olive"


def _predictors(r: DeviceNAS) -> list[str]:
    return [n for n in r.latency if n != "measured"]


def figure2(r: DeviceNAS, accuracy_name: str) -> Figure:
    """Left: accuracy missed by oracle NAS vs threshold; right: Aging Evolution, median and IQR."""
    names = list(r.latency)
    with plot_style():
        fig = new_figure(9.0, 3.4)
        left, right = fig.subplots(1, 2)
        marked = False
        for name in _predictors(r):
            g = r.oracle[r.oracle["predictor"] == name]
            left.plot(g["threshold_ms"], g["missed_accuracy"], color=_color(name, names),
                      linewidth=1.1, label=label(name))  # fmt: skip
            none = g[g["missed_accuracy"].isna()]
            if len(none):  # the estimate admits no model at all there: nothing is found
                left.scatter(none["threshold_ms"], np.zeros(len(none)), marker="|", s=40,
                             color=_color(name, names),
                             label=None if marked else "admits no model")  # fmt: skip
                marked = True
        left.set_xlabel("latency threshold [ms]")
        left.set_ylabel(f"missed {accuracy_name} accuracy [points]")
        left.set_title("oracle NAS on the estimate: best model missed")
        if _predictors(r):  # with every estimate skipped, matplotlib warns of an empty legend
            left.legend(loc="upper right")
        if r.evolution.empty:
            right.text(0.5, 0.5, "aging evolution not run:\n" + r.skipped.get("aging evolution", ""),
                       ha="center", va="center", transform=right.transAxes)  # fmt: skip
            right.set_axis_off()
        for name in [] if r.evolution.empty else names:
            g = r.evolution[r.evolution["predictor"] == name]
            if g.empty:  # its search could not run under the limit (named in the report)
                continue
            c = _color(name, names)
            right.plot(g["step"], g["median"], color=c, linewidth=1.1, label=label(name))
            right.fill_between(g["step"], g["q25"], g["q75"], color=c, alpha=0.15, linewidth=0)
        if not r.evolution.empty:
            # the first population is random: scale the axis to the search after it
            settled = r.evolution["step"] >= min(100, r.evolution["step"].max() // 2)
            lo = np.nanmin(r.evolution.loc[settled, "q25"])
            hi = np.nanmax(r.evolution["q75"])
            right.set_ylim(lo - 0.1 * (hi - lo + 0.1), hi + 0.1 * (hi - lo + 0.1))
        right.set_xlabel("search step (models trained)")
        right.set_ylabel(f"best {accuracy_name} accuracy found [%]")
        if not r.evolution.empty:
            right.set_title(f"aging evolution, limit {r.limit_ms:.3g} ms: median, IQR over seeds")
        if not r.evolution.empty:
            right.legend(loc="lower right")
        fig.suptitle(f"{r.key}: what a latency estimate's error costs (Figure 2)")
    return fig


def figure3(r: DeviceNAS, accuracy_name: str, sources: list[str] | None = None) -> Figure:
    """Accuracy vs latency, one row per estimate: its predicted space (left) and the
    measured space (right), both Pareto fronts marked in both (the paper's Figure 3)."""
    preds = _predictors(r) if sources is None else list(sources)
    acc = r.accuracy
    m_front = pareto_front(r.latency["measured"], acc)
    rows = max(1, len(preds))
    ylim = (max(0.0, float(np.percentile(acc, 1)) - 2), float(acc.max()) + 1.5)
    recall = r.pareto.set_index("predictor")["recall"]
    with plot_style():
        fig = new_figure(8.0, 2.9 * rows + 0.5)
        axes = fig.subplots(rows, 2, squeeze=False)
        for row, pred in zip(axes, preds or ["measured"], strict=True):
            p_front = pareto_front(r.latency[pred], acc)
            colour = _color(pred, list(r.latency))
            for ax, space in zip(row, (pred, "measured"), strict=True):
                x = r.latency[space]
                # one flat grey (no alpha): a committed PNG of 15k points stays small
                ax.scatter(x, acc, s=1.5, color="0.78", linewidths=0, rasterized=True,
                           label="model")  # fmt: skip
                ax.scatter(x[m_front], acc[m_front], marker="x", s=24, color="red",
                           linewidths=1.0, label="Pareto-optimal on measured")  # fmt: skip
                ax.scatter(x[p_front], acc[p_front], marker="o", s=20, facecolors="none",
                           edgecolors=colour, linewidths=0.9,
                           label=f"Pareto-optimal on {label(pred)}")  # fmt: skip
                ax.set_ylim(ylim)
                # measured-where-measured and the device's re-measurements are no predictions
                guessed = not (pred.startswith("fewshot-nas-") or pred == "remeasured")
                what = ("measured" if space == "measured"
                        else f"{label(pred)} {'predicted' if guessed else 'estimated'}")  # fmt: skip
                ax.set_xlabel(f"{what} latency [ms]")
                ax.set_ylabel(f"{accuracy_name} accuracy [%]")
                ax.legend(loc="lower right", fontsize=6)
            row[0].set_title(f"{label(pred)} space")
            wrap = "\n" if len(label(pred)) > 20 else " "  # a long label would be clipped
            row[1].set_title(
                f"measured space: {label(pred)} front{wrap}recovers {recall[pred]:.0%} of it"
            )
        fig.suptitle(f"{r.key}: Pareto fronts, accuracy vs latency (Figure 3)")
    return fig


_S3 = (
    ("false_positives", "false positives [models]"),
    ("false_negatives", "false negatives [models]"),
    ("missed_accuracy", "missed accuracy [points]"),
    ("missed_latency_error_ms", "latency error of the missed best [ms]"),
    ("overclaimed_accuracy", "over-claimed accuracy [points]"),
    ("overclaimed_latency_error_ms", "latency error of the over-claimed best [ms]"),
)


def figure_s3(r: DeviceNAS, accuracy_name: str) -> Figure:
    """Oracle NAS vs threshold: the six panels of Figure S3, one line per estimate."""
    names = list(r.latency)
    with plot_style():
        fig = new_figure(9.0, 8.0)
        axes = fig.subplots(3, 2).ravel()
        for ax, (col, ylabel) in zip(axes, _S3, strict=True):
            for name in _predictors(r):
                g = r.oracle[r.oracle["predictor"] == name]
                ax.plot(g["threshold_ms"], g[col], color=_color(name, names), linewidth=1.0,
                        label=label(name))  # fmt: skip
            ax.set_xlabel("latency threshold [ms]")
            ax.set_ylabel(ylabel)
            if "error" in col:
                ax.axhline(0, color="black", linewidth=0.5)
        if _predictors(r):
            axes[0].legend(loc="upper left")
        fig.suptitle(
            f"{r.key}: oracle NAS on {accuracy_name} (Figure S3); thresholds: 2nd-98th"
            " percentile of measured latency"
        )
    return fig
