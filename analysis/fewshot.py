"""Few-shot adaptation in the report: Spearman vs N per device, and the Markdown tables.

Input is the CSV of ``latbench-predict evaluate-adapt -o FILE`` (one row per target,
protocol, method, N and repeat), which takes tens of minutes on 2 cores; this module
only draws and tabulates it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from latbench.analysis.style import plot_style, save_png
from latbench.analysis.tables import write_text

__all__ = ["FewshotResultsError", "fewshot_figure", "read_fewshot", "write_fewshot"]

_PANELS = (("help-meta-test", "HELP's meta-test devices"), ("latbench-release", "LatBench release"))
_BASELINES = {"best-source": "best-correlated source", "flops": "FLOPs fit", "gcn": "GCN on N",
              "adapter-random": "adapter, random N"}  # fmt: skip


_COLUMNS = ("target", "group", "protocol", "method", "n", "repeat", "spearman", "within_10pct")


class FewshotResultsError(ValueError):
    """A few-shot results file that is missing, unreadable or not evaluate-adapt's."""


def read_fewshot(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``latbench-predict evaluate-adapt -o`` CSV, checking its columns."""
    try:
        res = pd.read_csv(path)
    except FileNotFoundError:
        raise FewshotResultsError(f"{path}: no such few-shot results file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise FewshotResultsError(f"{path}: unreadable as CSV ({exc})") from None
    missing = [c for c in _COLUMNS if c not in res.columns]
    if missing:
        raise FewshotResultsError(
            f"{path}: not an evaluate-adapt results file (no column {', '.join(missing)})"
        )
    if res.empty:
        raise FewshotResultsError(f"{path}: no rows")
    return res


def fewshot_figure(res: pd.DataFrame, protocol: str | None = None):
    """Spearman vs N: one thin line per target (adapter), group means of every method; one
    panel per group of targets the results hold, for ``protocol`` (default ``siblings``
    if the results hold it, else their first protocol)."""
    import matplotlib.pyplot as plt

    from latbench.predictors.fewshot.evaluate import HELP_PUBLISHED

    protocols = list(dict.fromkeys(res["protocol"]))
    if protocol is None:
        protocol = "siblings" if "siblings" in protocols else protocols[0]
    res = res[res["protocol"] == protocol]
    titles = dict(_PANELS)
    groups = [g for g in titles if g in set(res["group"])]
    groups += sorted(set(res["group"]) - set(groups), key=str)
    with plot_style():
        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), sharey=True,
                                 squeeze=False)  # fmt: skip
        axes = list(axes[0])
        for ax, group in zip(axes, groups, strict=True):
            title = f"{titles.get(group, group)} ({protocol})"
            sub = res[res["group"] == group]
            per = sub.groupby(["method", "target", "n"])["spearman"].mean()
            if "adapter" in per.index.get_level_values(0):
                for _target, s in per["adapter"].groupby(level=0):
                    ax.plot(s.index.get_level_values(1), s.values, color="C0", lw=0.8, alpha=0.5)
            means = sub.groupby(["method", "target", "n"])["spearman"].mean().groupby(
                ["method", "n"]).mean()  # fmt: skip
            for i, method in enumerate(["adapter", *_BASELINES]):
                if method in means.index.get_level_values(0):
                    m = means[method]
                    ax.plot(m.index, m.values, marker="o", lw=2.2 if method == "adapter" else 1.2,
                            ls="-" if method == "adapter" else "--", color=f"C{i}",
                            label=_BASELINES.get(method, "adapter (mean)"))  # fmt: skip
            shown = [t for t in HELP_PUBLISHED if t in set(sub["target"])]
            if group == "help-meta-test" and shown:  # over the targets drawn, as the means
                pub = sum(HELP_PUBLISHED[t] for t in shown) / len(shown)
                ax.plot([10], [pub], marker="*", ms=12, color="k", ls="", label="HELP (published)")
            ax.set_xscale("log")
            ax.set_xticks(sorted(res["n"].unique()), [str(n) for n in sorted(res["n"].unique())])
            ax.minorticks_off()
            ax.set_xlabel("measured architectures N")
            ax.set_title(title)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("Spearman over all the target's architectures")
        axes[0].set_ylim(0.6, 1.0)
        axes[-1].legend(*_legend_entries(axes), loc="lower right", fontsize=8)
        fig.tight_layout()
    return fig


def _legend_entries(axes) -> tuple[list, list[str]]:
    """Every labelled line of every panel, once: the last panel may lack some methods."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    return list(handles.values()), list(handles)


def write_fewshot(results: str | os.PathLike[str] | pd.DataFrame, out: str | os.PathLike[str]):
    """Write ``fewshot.png``, ``fewshot.md`` into ``out``; returns a report Section."""
    from latbench.analysis.report import Section
    from latbench.predictors.fewshot.report import markdown_tables

    res = results if isinstance(results, pd.DataFrame) else read_fewshot(results)
    out = Path(out)
    png = save_png(fewshot_figure(res), out / "fewshot.png")
    md = markdown_tables(res)
    write_text(out / "fewshot.md", md + "\n")
    protocols = ", ".join(f"`{p}`" for p in dict.fromkeys(res["protocol"]))
    body = (
        f'Few-shot adaptation, protocol {protocols} (docs/predictors.md, "Few-shot '
        'adaptation"): N designed measurements of each target, Spearman over every '
        "architecture the target has.\n\n"
        f"![Spearman vs N]({png.name})\n\n{md}\n"
    )
    return Section("Few-shot adaptation", body, [png.name, "fewshot.md"])
