"""The BRP-NAS paper's LatBench numbers (Table S4, Table S2), to set beside ours.

Paper devices map to the catalog keys of the published LatBench release; a
comparison is made only where the dataset analysed *is* that release file, never a
similar device from another source. The embedded GPU of Tables S2/S4 is the Jetson
Nano file of 14.5 ms median (SHA-256 ``e129686b...``), named ``jetson-nano-fp32`` on
today's Drive folder and ``jetson-nono-fp16`` in older copies: with it the paper's
non-mobile Table S4 entries reproduce to three decimals
(``latbench.importers.registry.JETSON_LABEL_HISTORY``).

Table S4 is **Spearman** rank correlation (checked on the release files: Pearson
differs from the printed values by up to 0.11, Spearman by at most 0.001 over the
desktop and embedded devices). The released mobile files do not reproduce the
paper's mobile columns (differences up to about 0.1): they are not the data the
paper's mobile columns were computed on.
"""

from __future__ import annotations

import pandas as pd

from latbench.catalog import PAPER_COLUMNS, resolve

__all__ = [
    "MOBILE_COLUMNS",
    "PAPER_DEVICES",
    "TABLE_S2",
    "TABLE_S4",
    "TABLE_S4_METHOD",
    "paper_correlation",
    "paper_label",
    "paper_predictor_table",
    "s2_beside_paper",
    "s2_markdown",
]

PAPER_DEVICES: dict[str, str] = dict(PAPER_COLUMNS)
"""Paper column label -> catalog key of the release dataset it was computed on."""

TABLE_S4_METHOD = "spearman"
"""The statistic of Table S4 (the paper's caption says only "correlation")."""

MOBILE_COLUMNS: tuple[str, ...] = ("M. GPU", "M. DSP")
"""Paper columns whose released files are not the data behind the printed numbers."""

_S4_ROWS = [
    [1.000, 0.997, 0.700, 0.844, 0.751, 0.727],
    [0.997, 1.000, 0.702, 0.844, 0.752, 0.728],
    [0.700, 0.702, 1.000, 0.574, 0.866, 0.821],
    [0.844, 0.844, 0.574, 1.000, 0.548, 0.690],
    [0.751, 0.752, 0.866, 0.548, 1.000, 0.821],
    [0.727, 0.728, 0.821, 0.690, 0.821, 1.000],
]
TABLE_S4 = pd.DataFrame(_S4_ROWS, index=list(PAPER_DEVICES), columns=list(PAPER_DEVICES))
"""Table S4: Spearman rank correlation of latency between the paper's six devices."""

# (predictor, bound) -> six devices' (mean, std) in %; None = N/A in the paper
_S2 = {
    ("GCN (900 pts.)", 1): [(36.0, 3.5), (36.7, 4.0), (24.3, 1.4), (16.2, 3.6), (17.5, 2.8), (21.3, 1.9)],
    ("GCN (900 pts.)", 5): [(85.2, 1.8), (85.9, 1.9), (82.5, 1.5), (64.0, 5.7), (67.5, 7.4), (77.5, 2.6)],
    ("GCN (900 pts.)", 10): [(96.4, 0.7), (96.4, 0.7), (96.3, 0.5), (87.4, 2.7), (90.5, 5.5), (94.2, 0.4)],
    ("GCN (100 pts.)", 1): [(6.1, 1.7), (5.9, 1.3), (9.9, 1.3), (6.2, 1.0), (5.2, 0.9), (10.3, 1.1)],
    ("GCN (100 pts.)", 5): [(27.9, 5.5), (28.7, 3.6), (44.6, 4.0), (30.0, 3.6), (24.9, 3.4), (48.0, 3.8)],
    ("GCN (100 pts.)", 10): [(51.5, 8.3), (52.9, 5.0), (71.8, 3.5), (54.6, 5.7), (46.3, 4.1), (78.4, 3.6)],
    ("Layer-wise (900 pts.)", 1): [(3.5, 0.2), (4.2, 0.2), (6.1, 0.3), None, None, None],
    ("Layer-wise (900 pts.)", 5): [(18.2, 1.5), (17.1, 0.3), (29.7, 0.8), None, None, None],
    ("Layer-wise (900 pts.)", 10): [(29.6, 1.1), (32.6, 1.2), (54.0, 0.8), None, None, None],
}  # fmt: skip

TABLE_S2 = pd.DataFrame(
    [
        {"predictor": p, "bound_pct": b, "device": d, "mean": v[0], "std": v[1]}
        for (p, b), vals in _S2.items()
        for d, v in zip(PAPER_DEVICES, vals, strict=True)
        if v is not None
    ]
)
"""Table S2 in long form: predictor, bound_pct, device (paper label), mean, std (%).

Table 1 of the paper repeats the D. CPU/D. GPU/E. GPU columns with two small
differences (layer-wise D. CPU +-5%: 18.2+-0.4; GCN D. GPU +-10%: 96.9+-0.8);
Table S2 is used here.
"""


def paper_label(key: str) -> str | None:
    """The paper's column label for a catalog key, or ``None``."""
    for label, k in PAPER_DEVICES.items():
        if k == key:
            return label
    return None


def paper_correlation(keys: list[str]) -> pd.DataFrame:
    """Table S4 restricted to the ``keys`` that are paper datasets, indexed by key."""
    labels = {k: paper_label(k) for k in keys}
    present = [k for k in keys if labels[k] is not None]
    t = TABLE_S4.loc[[labels[k] for k in present], [labels[k] for k in present]]
    t.index = t.columns = present
    return t


def paper_predictor_table(keys: list[str]) -> pd.DataFrame:
    """Table S2 rows for the ``keys`` that are paper datasets, with a ``key`` column."""
    by_label = {paper_label(k): k for k in keys if paper_label(k) is not None}
    t = TABLE_S2[TABLE_S2["device"].isin(list(by_label))].copy()
    t.insert(0, "key", t["device"].map(by_label))
    return t.reset_index(drop=True)


def s2_beside_paper(results: pd.DataFrame, n_train: int = 900) -> pd.DataFrame:
    """Our Table S2 cells beside the paper's, per paper device, predictor and bound.

    ``results`` is :func:`latbench.predictors.evaluate`'s frame (one row per
    predictor and repeat, any number of datasets). Rows only for datasets that are
    the paper's own release files and predictors the paper reports (GCN, layer-wise)
    with the paper's training-set size; shares in %. ``bar`` is the paper's mean minus
    one of its standard deviations, ``meets bar`` whether our mean reaches it.
    """
    names = {"gcn": f"GCN ({n_train} pts.)", "layerwise": f"Layer-wise ({n_train} pts.)"}
    rows = []
    for (typed, pred), g in results.groupby(["dataset", "predictor"], sort=False):
        key = resolve(str(typed)) or str(typed)  # evaluate records the key as typed: "D.CPU"
        label = paper_label(key)
        if label is None or pred not in names or (g["n_train"] != n_train).any():
            continue
        ref = TABLE_S2[(TABLE_S2["device"] == label) & (TABLE_S2["predictor"] == names[pred])]
        for r in ref.itertuples(index=False):
            share = g[f"within_{r.bound_pct}pct"].to_numpy(dtype=float) * 100
            std = float(share.std(ddof=1)) if len(share) > 1 else 0.0
            rows.append({"device": label, "dataset": key, "predictor": names[pred],
                         "bound": f"±{r.bound_pct}%", "repeats": len(share),
                         "ours mean": float(share.mean()), "ours std": std,
                         "paper mean": r.mean, "paper std": r.std,
                         "ours - paper": float(share.mean()) - r.mean,
                         "bar": r.mean - r.std,
                         "meets bar": bool(share.mean() >= r.mean - r.std)})  # fmt: skip
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    rank = {label: i for i, label in enumerate(PAPER_DEVICES)}
    keys = [out["device"].map(rank), out["predictor"], out["bound"].str.strip("±%").astype(int)]
    order = sorted(range(len(out)), key=lambda i: tuple(k.iloc[i] for k in keys))
    return out.iloc[order].reset_index(drop=True)


def s2_markdown(results: pd.DataFrame, n_train: int = 900) -> str:
    """:func:`s2_beside_paper` as a Markdown table ("mean ± std" cells, difference in points)."""
    from latbench.analysis.tables import markdown_table

    t = s2_beside_paper(results, n_train)
    if t.empty:
        return "(no paper dataset with GCN or layer-wise results)\n"
    shown = pd.DataFrame({
        "device": t["device"], "dataset": t["dataset"], "predictor": t["predictor"],
        "bound": t["bound"], "repeats": t["repeats"],
        "ours": [f"{m:.1f} ± {s:.1f}" for m, s in zip(t["ours mean"], t["ours std"], strict=True)],
        "paper": [f"{m:.1f} ± {s:.1f}" for m, s in zip(t["paper mean"], t["paper std"], strict=True)],
        "ours − paper": [f"{d:+.1f}" for d in t["ours - paper"]],
        "≥ paper − 1 sd": [f"{'yes' if ok else 'no'} ({b:.1f})"
                           for ok, b in zip(t["meets bar"], t["bar"], strict=True)],
    })  # fmt: skip
    return markdown_table(shown)


def main(argv: list[str] | None = None) -> int:
    """``python -m latbench.analysis.paper RESULTS.csv...``: Table S2 beside the paper.

    Reads ``latbench-predict evaluate -o`` CSVs and prints the Markdown table: the
    900-point rows, then the 100-point rows where the CSVs hold such runs.
    """
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m latbench.analysis.paper RESULTS.csv...", file=sys.stderr)
        return 2
    results = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    print(s2_markdown(results), end="")
    if "n_train" in results and (results["n_train"] == 100).any():
        print()
        print(s2_markdown(results, 100), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
