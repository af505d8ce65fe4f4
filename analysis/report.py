"""Write every result (tables, figures) into one folder with a README.md that embeds them.

Each ``write_*`` function computes one result from a :class:`Datasets`, writes its
files into ``out`` and returns a :class:`Section` (Markdown + file names); the README
states the datasets with their provenance, the parameters, and sets the paper's
numbers beside ours where the analysed dataset is the paper's own. Nothing
run-dependent (time, host name, absolute paths) goes into the outputs, so the same
inputs and parameters give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from latbench.analysis import paper
from latbench.analysis.correlation import (
    METHODS,
    correlation_figure,
    correlation_matrix,
    correlation_pairs,
    pair_correlation,
)
from latbench.analysis.data import Datasets
from latbench.analysis.pairs import MAX_DEVICES, pairs_figure, select_devices
from latbench.analysis.proxies import proxies_figure, proxy_correlations
from latbench.analysis.style import save_png
from latbench.analysis.tables import markdown_table, write_csv, write_text

__all__ = [
    "PROXIES_PER_FIGURE",
    "Section",
    "datasets_section",
    "default_predictors",
    "paper_s4_comparison",
    "predictor_parameters",
    "versions",
    "write_correlation",
    "write_pairs",
    "write_predictors",
    "write_proxies",
    "write_readme",
]

PROXIES_PER_FIGURE = 12
"""Datasets per Figure S12 image; more datasets are split over several images."""

_TITLES = {"pearson": "Pearson r", "spearman": "Spearman ρ", "kendall": "Kendall τ-b"}


@dataclass
class Section:
    """One part of the report: a heading, its Markdown body and the files it wrote."""

    title: str
    body: str
    files: list[str] = field(default_factory=list)


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers and the figures."""
    out = {}
    for name in ("latbench", "numpy", "pandas", "scipy", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def datasets_section(data: Datasets) -> Section:
    """The datasets analysed, with provenance and citations."""
    prov = data.provenance()
    cols = ["key", "name", "class", "hardware", "runtime", "precision", "batch",
            "protocol", "host", "source", "origin", "ok", "rows"]  # fmt: skip
    body = [markdown_table(prov[cols])]
    body.append("\n`ok` = architectures with a valid measurement (`status=ok`) out of `rows`.\n")
    cites = sorted({c for c in prov["citation"] if c})
    if cites:
        body.append("\nCite, for these datasets:\n")
        body += [f"\n- {c}" for c in cites]
        body.append("\n")
    return Section("Datasets", "".join(body))


def write_correlation(data: Datasets, out: str | os.PathLike[str]) -> Section:
    """Table S4: correlation matrices (CSV, Markdown, heatmap PNG) and the pairs table."""
    out = Path(out)
    pairs = correlation_pairs(data.latency())
    files = [write_csv(pairs, out / "correlation_pairs.csv").name]
    body = [
        "Computed over the architectures measured on both datasets of each pair "
        "(`status=ok` in both). The paper's Table S4 is Spearman ρ (checked on the "
        "release files; see below); Pearson r and Kendall τ-b (ties from architectures "
        "that share a pruned graph are handled) are given as extra tables.\n\n"
    ]
    for method in METHODS:
        m = correlation_matrix(pairs, method)
        files.append(write_csv(m, out / f"correlation_{method}.csv", index=True).name)
        md = markdown_table(m.rename_axis(""), index=True)
        write_text(out / f"correlation_{method}.md", md)
        files.append(f"correlation_{method}.md")
        png = save_png(correlation_figure(m, title=_TITLES[method]),
                       out / f"correlation_{method}.png")  # fmt: skip
        files.append(png.name)
        body.append(f"### {_TITLES[method]}\n\n![{method} heatmap]({png.name})\n\n{md}\n")
    n = correlation_matrix(pairs, "n").astype("Int64")
    body.append("### Architectures in common\n\n" + markdown_table(n.rename_axis(""), index=True))
    body.append(
        "\nFiles: " + ", ".join(f"[`{f}`]({f})" for f in files if f.endswith(".csv")) + ".\n"
    )
    text, table = _paper_s4(data.keys, pairs)
    if table is not None:
        files.append(write_csv(table, out / "table_s4_vs_paper.csv").name)
    body.append("\n" + text)
    return Section("Cross-device latency correlation (Table S4)", "".join(body), files)


def paper_s4_comparison(keys: Sequence[str], pairs: pd.DataFrame) -> pd.DataFrame:
    """Table S4 pair by pair: our Spearman beside the paper's, with Pearson and Kendall.

    One row per pair of paper datasets among ``keys`` (paper column order); ``mobile``
    marks pairs with a mobile column, whose released files are not the paper's data.
    """
    label = {k: paper.paper_label(k) for k in keys}
    order = list(paper.PAPER_DEVICES)
    got = {}
    for r in pairs.itertuples(index=False):
        if r.a != r.b and label.get(r.a) and label.get(r.b):
            a, b = sorted((r.a, r.b), key=lambda k: order.index(label[k]))
            got[(a, b)] = r
    rows = []
    for (a, b), r in sorted(
        got.items(), key=lambda kv: tuple(order.index(label[k]) for k in kv[0])
    ):
        la, lb = label[a], label[b]
        p = float(paper.TABLE_S4.loc[la, lb])
        rows.append({"paper pair": f"{la} / {lb}", "dataset a": a, "dataset b": b,
                     "n": r.n, "ours (Spearman)": r.spearman, "paper": p,
                     "difference": r.spearman - p,
                     "mobile": la in paper.MOBILE_COLUMNS or lb in paper.MOBILE_COLUMNS,
                     "Pearson": r.pearson, "Pearson - paper": r.pearson - p,
                     "Kendall": r.kendall})  # fmt: skip
    return pd.DataFrame(rows)


def _paper_s4(keys: Sequence[str], pairs: pd.DataFrame) -> tuple[str, pd.DataFrame | None]:
    table = paper_s4_comparison(keys, pairs)
    text = "### Beside the paper (Table S4, Spearman ρ)\n\n"
    if table.empty:
        return (
            text + "None of the pairs analysed here is a pair of the paper's datasets (the "
            "LatBench release, `latbench fetch latbench`), so there is nothing to set "
            "beside them; the paper's Table S4 for reference:\n\n"
            + markdown_table(paper.TABLE_S4.rename_axis(""), index=True)
            + "\nColumns: "
            + ", ".join(f"{label} = `{key}`" for label, key in paper.PAPER_DEVICES.items())
            + ".\n",
            None,
        )
    cols = ["paper pair", "dataset a", "dataset b", "n", "ours (Spearman)", "paper", "difference"]
    shown = table[cols]
    text += (
        "Paper columns: "
        + ", ".join(f"{lab} = `{k}`" for lab, k in paper.PAPER_DEVICES.items() if k in keys)
        + ".\n\n"
        + markdown_table(shown, floatfmt=".3f")
        + "\n"
    )
    fixed, mobile = table[~table["mobile"]], table[table["mobile"]]
    if len(fixed):
        worst = fixed.loc[fixed["difference"].abs().idxmax()]
        text += (
            f"\nDesktop and embedded pairs: largest |ours − paper| = "
            f"{abs(worst['difference']):.3f} ({worst['paper pair']}), over {len(fixed)} pair(s).\n"
        )
    if len(mobile):
        worst = mobile.loc[mobile["difference"].abs().idxmax()]
        text += (
            f"\n**The released mobile files do not reproduce the paper's mobile columns**: "
            f"over the {len(mobile)} pair(s) with M. GPU or M. DSP, |ours − paper| reaches "
            f"{abs(worst['difference']):.3f} ({worst['paper pair']}: ours "
            f"{worst['ours (Spearman)']:.3f}, paper {worst['paper']:.3f}), against at most "
            f"{fixed['difference'].abs().max() if len(fixed) else float('nan'):.3f} "
            "elsewhere. The files published for those devices are not the measurements "
            "the paper's mobile columns were computed on; we report the difference and "
            "do not adjust for it.\n"
        )
    extra = table[["paper pair", "paper", "ours (Spearman)", "Pearson", "Pearson - paper",
                   "Kendall"]]  # fmt: skip
    text += (
        "\nThe same pairs under the other statistics (Pearson r is *not* what Table S4 "
        "prints: its differences from the paper are much larger):\n\n"
        + markdown_table(extra, floatfmt=".3f")
        + "\nFile: [`table_s4_vs_paper.csv`](table_s4_vs_paper.csv).\n"
    )
    return text, table


def write_proxies(data: Datasets, out: str | os.PathLike[str]) -> Section:
    """Figure S12: latency vs FLOPs / params per dataset, and the coefficients table."""
    out = Path(out)
    coeffs = proxy_correlations(data)
    files = [write_csv(coeffs, out / "proxies.csv").name]
    keys = data.keys
    chunks = [keys[i : i + PROXIES_PER_FIGURE] for i in range(0, len(keys), PROXIES_PER_FIGURE)]
    body = [
        "Latency of every architecture measured on the dataset against the FLOPs "
        "(multiply-accumulates, the NAS-Bench-201 convention) and the parameter count "
        "of its pruned network, latency on a log axis in every panel. Each panel "
        "prints the coefficients of its points.\n\n"
    ]
    for i, chunk in enumerate(chunks, 1):
        name = "proxies.png" if len(chunks) == 1 else f"proxies-{i}.png"
        sub = Datasets({k: data.frames[k] for k in chunk}, data.origins)
        save_png(proxies_figure(sub), out / name)
        files.append(name)
        body.append(f"![latency vs FLOPs and params]({name})\n\n")
    body.append(markdown_table(coeffs) + "\nFile: [`proxies.csv`](proxies.csv).\n")
    flops = pd.concat([df["flops"] for df in data.frames.values()]).to_numpy(dtype=float)
    params = pd.concat([df["params"] for df in data.frames.values()]).to_numpy(dtype=float)
    r = pair_correlation(flops, params)["pearson"]
    if r > 1 - 1e-9:
        body.append(
            f"\nFLOPs and params give the same coefficients because, in these networks, "
            f"one is an affine function of the other (Pearson r of FLOPs vs params over all "
            f"rows = {r:.9f}): every NAS-Bench-201 cell op has the same MACs in each stage "
            "while its weights grow 4x per stage, and all stages repeat the same cell.\n"
        )
    return Section("Latency vs FLOPs and parameters (Figure S12)", "".join(body), files)


def write_pairs(
    data: Datasets, out: str | os.PathLike[str], *, max_devices: int = MAX_DEVICES
) -> Section:
    """Figure S13: scatter matrix of latency between datasets."""
    out = Path(out)
    prov = data.provenance()
    classes = dict(zip(prov["key"], prov["class"], strict=True))
    keys = select_devices(data.keys, classes, max_devices)
    latency = data.latency()
    if len(keys) < 2:
        body = "Needs at least two datasets; only one was analysed.\n"
        save_png(pairs_figure(latency, keys), out / "pairs.png")
        return Section("Latency between datasets (Figure S13)", body + "\n![](pairs.png)\n",
                       ["pairs.png"])  # fmt: skip
    save_png(pairs_figure(latency, keys), out / "pairs.png")
    body = (
        "Lower triangle: latency of one dataset against another, one point per "
        "architecture measured on both, Pearson r and Spearman ρ in the corner; "
        "diagonal: latency histogram. Latency is on log axes in every panel "
        "(latencies compare by ratio).\n\n![pairwise scatter matrix](pairs.png)\n"
    )
    if len(keys) < len(data.keys):
        body += (
            f"\nShown: {len(keys)} of {len(data.keys)} datasets (at most {max_devices}, "
            "taken round-robin over device classes): "
            + ", ".join(f"`{k}`" for k in keys)
            + ". Choose others with `--devices`; the correlation tables cover all.\n"
        )
    return Section("Latency between datasets (Figure S13)", body, ["pairs.png"])


def write_readme(
    data: Datasets,
    out: str | os.PathLike[str],
    sections: Sequence[Section],
    *,
    command: str,
    parameters: dict[str, object],
) -> Path:
    """Write ``out/README.md`` embedding every section; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = dict(parameters) | {f"{k} version": v for k, v in versions().items()}
    lines = [
        "# LatBench results\n\n",
        "The LatBench results of the BRP-NAS paper (Dudziak et al., NeurIPS 2020, "
        "Section 6 and Supplementary S4), regenerated from the datasets listed below. "
        "Regenerate with:\n\n",
        f"```bash\n{command}\n```\n\n",
        "## Parameters\n\n",
        markdown_table(pd.DataFrame({"parameter": list(params), "value": list(params.values())})),
        "\n",
    ]
    for s in (datasets_section(data), *sections):
        lines.append(f"## {s.title}\n\n{s.body.rstrip()}\n\n")
    path = out / "README.md"
    write_text(path, "".join(lines).rstrip() + "\n")
    return path


def default_predictors() -> tuple[str, ...]:
    """Predictors compared when none are named."""
    from latbench.analysis.predictors import DEFAULT_PREDICTORS

    return DEFAULT_PREDICTORS


def predictor_parameters(
    *,
    predictors: Sequence[str] | None = None,
    repeats: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    seed: int = 0,
    gcn_epochs: int | None = None,
) -> dict[str, object]:
    """The predictor protocol's parameters as the report lists them."""
    from latbench.analysis import predictors as P

    names = list(predictors or P.DEFAULT_PREDICTORS)
    plan = P.protocols(names, repeats, gcn_epochs)
    counts = {pr.repeats for pr in plan.values()}
    each = ", ".join(f"{P.LABELS.get(p, p)} {pr.repeats}" for p, pr in plan.items())
    return {
        "predictors": ", ".join(names),
        "predictor repeats": counts.pop() if len(counts) == 1 else each,
        "predictor protocols": "; ".join(
            f"{P.LABELS.get(p, p)}: {pr.label(p)}" for p, pr in plan.items()
        ),
        "train / validation models per repeat": f"{n_train or P.DEFAULT_TRAIN} / "
        f"{n_val or P.DEFAULT_VAL} (the rest: test)",
        "seed": seed,
    }


def write_predictors(
    data: Datasets,
    out: str | os.PathLike[str],
    *,
    predictors: Sequence[str] | None = None,
    repeats: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    seed: int = 0,
    data_home: str | os.PathLike[str] | None = None,
    gcn_options: dict | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Section:
    """Tables 1/S2 (accuracy within ±1/5/10 %) and a Figure 1 panel per dataset.

    ``repeats=None``: the default protocols (:func:`latbench.analysis.predictors.protocols`);
    every table names the protocol behind each number.
    """
    from latbench.analysis import predictors as P

    out = Path(out)
    names = list(predictors or P.DEFAULT_PREDICTORS)
    n_train = n_train or P.DEFAULT_TRAIN
    n_val = P.DEFAULT_VAL if n_val is None else n_val
    run = P.run_predictors(data, names, repeats=repeats, n_train=n_train, n_val=n_val,
                           seed=seed, data_home=data_home, options=gcn_options, cache=cache,
                           progress=progress)  # fmt: skip
    plan = "; ".join(f"{P.LABELS.get(p, p)} {pr.label(p)}" for p, pr in run.protocols.items())
    body = [
        f"The paper's protocol: each repeat draws {n_train} training and {n_val} validation "
        "models at random and tests on all the others; the numbers are the share of test "
        "models predicted within ±1/5/10 % of the measured latency, mean ± standard "
        "deviation over repeats (Table S2 layout). The panels show repeat 0.\n\n"
        f"Protocols here: {plan}. *paper* = the paper's 100 repeats (Table S1 training "
        "for the GCN); *quick* = fewer repeats or capped GCN training, to keep the default "
        "run to minutes (`latbench-analysis all --repeats 100` runs the paper's). Each "
        "table's `protocol` row says which produced its numbers.\n\n"
    ]
    files: list[str] = []
    if run.results.empty:
        body.append("No dataset had the data any requested predictor needs.\n")
    else:
        from latbench.predictors import summarize

        # training time varies from run to run: kept out so the files are reproducible
        results = run.results.drop(columns=["train_seconds"], errors="ignore")
        files.append(write_csv(results, out / "predictors.csv").name)
        summary = summarize(run.results).drop(columns=["train_seconds_mean"], errors="ignore")
        summary["protocol"] = [run.protocols[p].label(p) for p in summary["predictor"]]
        files.append(write_csv(summary, out / "predictors_summary.csv").name)
        table = P.predictor_table(run.results)
        flat = table.copy()
        flat.columns = [f"{d} / {p}" for d, p in table.columns]
        files.append(write_csv(flat, out / "predictors_table_s2.csv", index=True).name)
        for key in data.keys:
            if key not in table.columns.get_level_values(0):
                continue
            sub = table[key]
            body.append(f"### {key}\n\n" + markdown_table(sub, index=True) + "\n")
            preds = {}
            layers = P._layers_for(key, data.frames[key], data_home)[0]
            ran = run.results.loc[run.results["dataset"] == key, "predictor"].unique()
            for name in ran:
                if name == "params" and "flops" in ran:
                    continue  # Figure 1 shows FLOPs; params ranks NAS-Bench-201 identically
                opts = dict(gcn_options or {})
                if run.protocols[name].max_epochs:  # the options its repeats ran with
                    opts["max_epochs"] = run.protocols[name].max_epochs
                preds[name] = P.repeat0_predictions(data.frames[key], name, n_train=n_train,
                                                   n_val=n_val, seed=seed, layers=layers,
                                                   options=opts, cache=cache)  # fmt: skip
            png = save_png(P.figure1(key, preds), out / f"predictors_{key}.png")
            files.append(png.name)
            body.append(f"![predicted vs measured, {key}]({png.name})\n\n")
        metric_cols = ["dataset", "predictor", "protocol", "spearman_mean", "kendall_mean",
                       "rmse_ms_mean"]  # fmt: skip
        body.append("### Rank correlation and error of the predictions (means over repeats)\n\n")
        body.append(markdown_table(summary[metric_cols], floatfmt=".3f") + "\n")
        body.append(
            "Files: [`predictors.csv`](predictors.csv) (every repeat), "
            "[`predictors_summary.csv`](predictors_summary.csv), "
            "[`predictors_table_s2.csv`](predictors_table_s2.csv).\n\n"
        )
    if run.skipped:
        body.append("Skipped:\n\n")
        body += [f"- `{k}`, {p}: {why}\n" for (k, p), why in sorted(run.skipped.items())]
        body.append("\n")
    body.append(_paper_s2(data.keys, run.results, n_train))
    return Section("Latency predictors (Figure 1, Tables 1 and S2)", "".join(body), files)


def _paper_s2(keys: Sequence[str], results: pd.DataFrame, n_train: int) -> str:
    from latbench.analysis import predictors as P

    text = "### Beside the paper (Table S2)\n\n"
    every = paper.paper_predictor_table(list(keys))
    wanted = {"gcn": f"GCN ({n_train} pts.)", "layerwise": f"Layer-wise ({n_train} pts.)"}
    ref = every[every["predictor"].isin(wanted.values())]
    if not results.empty and not ref.empty:
        from latbench.predictors import summarize

        s = summarize(results).set_index(["dataset", "predictor"])
        rows = []
        for r in ref.itertuples(index=False):
            name = next(k for k, v in wanted.items() if v == r.predictor)
            if (r.key, name) not in s.index:
                continue
            m = s.loc[(r.key, name)]
            proto = results.loc[results["predictor"] == name, "protocol"]
            rows.append({
                "dataset": r.key, "predictor": P.LABELS[name], "bound": f"±{r.bound_pct}%",
                "protocol": proto.iloc[0] if "protocol" in results and len(proto) else "",
                "ours": f"{m[f'within_{r.bound_pct}pct_mean'] * 100:.1f} ± "
                        f"{m[f'within_{r.bound_pct}pct_std'] * 100:.1f}",
                "paper": f"{r.mean:.1f} ± {r.std:.1f}",
            })  # fmt: skip
        if rows:
            return text + markdown_table(pd.DataFrame(rows)) + "\n"
    ran = set(results["predictor"]) if not results.empty else set()
    if every.empty:
        why = ("None of the datasets analysed here is one the paper evaluated (the LatBench "
               "release: `latbench fetch latbench`, or `latbench import eagle PATH`)")  # fmt: skip
    elif not ran & set(wanted):
        why = ("The paper's Table S2 holds the GCN and the layer-wise predictor only, and "
               "this run compared neither (`--predictors gcn,layerwise` would)")  # fmt: skip
    else:
        why = (f"The paper trained its predictors on 900 or 100 models; this run trained"
               f" on {n_train} (`--train`)")  # fmt: skip
    return (
        text + why + ", so there is nothing to set beside it; the paper's Table S2 "
        "(accuracy [%], mean ± std over 100 repeats) for reference:\n\n"
        + _paper_s2_reference()
        + "\n"
    )


def _paper_s2_reference() -> str:
    t = paper.TABLE_S2.copy()
    t["cell"] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(t["mean"], t["std"], strict=True)]
    t["bound"] = [f"±{b}%" for b in t["bound_pct"]]
    wide = t.pivot_table(index=["predictor", "bound"], columns="device", values="cell",
                         aggfunc="first", sort=False)  # fmt: skip
    wide = wide.reindex(columns=list(paper.PAPER_DEVICES))
    return markdown_table(wide.reset_index().rename_axis(None, axis=1))
