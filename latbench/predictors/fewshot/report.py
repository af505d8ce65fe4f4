"""Text and Markdown tables of a few-shot evaluation (:func:`~.evaluate.group_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latbench.predictors.fewshot.evaluate import HELP_PUBLISHED

__all__ = ["format_group_table", "markdown_tables"]


def format_group_table(table: pd.DataFrame) -> str:
    """One line per group, protocol, method and N: Spearman, within +-10 %, coverage."""
    lines = [
        f"{'group':<17} {'protocol':<9} {'method':<15} {'N':>3} {'targets':>7} "
        f"{'spearman':>8} {'+-10%':>6} {'cov90':>6} {'reps':>4}"
    ]
    for _, r in table.iterrows():
        cov = "" if np.isnan(r["coverage_90"]) else f"{100 * r['coverage_90']:5.1f}"
        lines.append(
            f"{r['group']:<17} {r['protocol']:<9} {r['method']:<15} {r['n']:>3} "
            f"{r['targets']:>7} {r['spearman']:8.3f} {100 * r['within_10pct']:6.1f} "
            f"{cov:>6} {r['repeats']:>4}"
        )
    return "\n".join(lines)


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(out)


def markdown_tables(res: pd.DataFrame, n_focus: int = 10) -> str:
    """Markdown: group means (Spearman / within +-10 % per method and N), and per-target
    Spearman at ``n_focus`` (else the N run nearest it) beside HELP's published numbers."""
    from latbench.predictors.fewshot.evaluate import group_table

    ns = sorted(int(n) for n in res["n"].unique())
    if ns and n_focus not in ns:  # the results hold other N: the nearest, smaller first
        n_focus = min(ns, key=lambda n: (abs(n - n_focus), n))

    g = group_table(res)
    g["cell"] = [
        f"{s:.3f} / {100 * w:.0f} %" for s, w in zip(g["spearman"], g["within_10pct"], strict=True)
    ]
    wide = g.pivot_table(
        index=["group", "protocol", "method"], columns="n", values="cell", aggfunc="first"
    ).reset_index()
    wide = wide.fillna("")  # an N one protocol was not run at
    wide.columns = [f"N={c}" if isinstance(c, int | np.integer) else c for c in wide.columns]
    per = (
        res[res["n"] == n_focus]
        .groupby(["target", "protocol", "method"])["spearman"]
        .mean()
        .unstack("method")
        .round(3)
        .reset_index()
    )
    per = per.astype(object).where(per.notna(), "")
    per.insert(2, "HELP (published)", [HELP_PUBLISHED.get(t, "") for t in per["target"]])
    return (
        "Mean Spearman / share within +-10 % over each group's targets:\n\n"
        + _md(wide)
        + f"\n\nSpearman per target at N = {n_focus}:\n\n"
        + _md(per)
    )
