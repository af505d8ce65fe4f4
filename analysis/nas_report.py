"""Write the NAS analysis: CSVs, Figures 2, 3 and S3 per dataset, and its report section."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from latbench.analysis.nas import ORACLE_COLUMNS, DeviceNAS, NasOptions, cross_device, summary_table
from latbench.analysis.nas_sources import label
from latbench.analysis.report import Section
from latbench.analysis.staging import staged
from latbench.analysis.style import save_png
from latbench.analysis.tables import markdown_table, write_csv, write_text

__all__ = ["EVOLUTION_EVERY", "PROVENANCE", "write_nas_results"]

EVOLUTION_EVERY = 10
"""``evolution.csv`` keeps step 1 and every 10th step (the figures use every step)."""

PROVENANCE = (
    "Accuracy: NAS-Bench-201 (Dong & Yang, ICLR 2020) as served by NATS-Bench's topology "
    "space (Dong et al., TPAMI 2021), both MIT-licensed: test accuracy after 200 epochs, "
    "**averaged over training seeds** (the paper's oracle NAS used seed 888 alone), from "
    "the public CSV export `latbench fetch nb201-accuracy` downloads (not redistributed)."
)


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


def write_nas_results(
    results: Sequence[DeviceNAS],
    accuracy: pd.Series,
    out: str | os.PathLike[str],
    options: NasOptions,
    *,
    log: Callable[[str], None] | None = None,
) -> Section:
    """Write ``oracle_nas.csv``, ``pareto.csv``, ``evolution.csv``, ``nas_summary.csv``, ``nas.md``,
    ``cross_device.csv`` and three figures per dataset into ``out``; return the section.

    The files are made in a hidden folder inside ``out`` and moved in only once all
    are made, so a run that fails (or is interrupted) leaves ``out``'s earlier results
    whole rather than half replaced."""
    with staged(out, prefix=".nas-partial-") as stage:
        return _write(results, accuracy, stage, options, log)


def _write(
    results: Sequence[DeviceNAS],
    accuracy: pd.Series,
    out: Path,
    options: NasOptions,
    log: Callable[[str], None] | None,
) -> Section:
    from latbench.analysis.nas_figures import figure2, figure3, figure_s3

    say = log or (lambda _m: None)
    acc_name = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(
        options.accuracy, options.accuracy.upper()
    )
    files: list[str] = []
    oracle = pd.concat([r.oracle for r in results], ignore_index=True)
    rest = [c for c in oracle.columns if c not in ORACLE_COLUMNS]
    oracle = oracle[[*ORACLE_COLUMNS, *rest]]
    oracle = oracle[oracle["predictor"] != "measured"]  # all zero by construction
    files.append(write_csv(oracle, out / "oracle_nas.csv").name)
    pareto = pd.concat([r.pareto for r in results], ignore_index=True)
    files.append(write_csv(pareto, out / "pareto.csv").name)
    evolution = pd.concat([r.evolution for r in results], ignore_index=True)
    every = evolution[(evolution["step"] % EVOLUTION_EVERY == 0) | (evolution["step"] == 1)]
    files.append(write_csv(every, out / "evolution.csv").name)
    summary = summary_table(results)
    summary = summary[summary["predictor"] != "measured"].reset_index(drop=True)
    files.append(write_csv(summary, out / "nas_summary.csv").name)
    for r in results:
        say(f"  figures for {r.key}")
        for name, fig in (("fig2", figure2(r, acc_name)),
                          ("fig3", figure3(r, acc_name, _fig3_sources(r))),
                          ("figS3", figure_s3(r, acc_name))):  # fmt: skip
            path = out / f"nas_{name}_{_safe(r.key)}.png"
            # Figure 2's overlapping IQR bands need every colour; the others compress
            (save_png if name == "fig2" else _save_compact)(fig, path)
            files.append(path.name)
    cross = None
    if len(results) > 1:
        lat = {r.key: pd.Series(r.latency["measured"], index=r.arch_ids) for r in results}
        cross = cross_device(lat, accuracy)
        files.append(write_csv(cross, out / "cross_device.csv").name)
    body = _markdown(results, summary, cross, options, acc_name)
    title = f"NAS with latency estimates ({acc_name})"
    write_text(out / "nas.md", f"# {title}\n\n{body.rstrip()}\n")
    files.append("nas.md")
    return Section(title, body, files)


def _save_compact(fig: object, path: Path) -> None:
    """PNG with a 128-colour octree palette, which keeps the few line colours distinct: a
    third of the size, the same to the eye (scatter clouds of 15k points make
    full-colour PNGs large for a committed report)."""
    from PIL import Image  # matplotlib's own dependency

    save_png(fig, path)
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(
            colors=128, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
    small.save(path, format="PNG", optimize=True)


def _prior_text(prior: str | None) -> str:
    if prior is None:
        return "the shipped prior"
    from latbench.predictors.fewshot import load_prior

    return f"the prior `{Path(prior).name}` (sources: {', '.join(load_prior(prior).sources)})"


def _fig3_sources(r: DeviceNAS) -> list[str]:
    """Every estimate but one few-shot N of each kind (the middle one): six rows are too
    many to read."""
    nas = [n for n in r.latency if n.startswith("fewshot-nas-")]
    few = [n for n in r.latency if n.startswith("fewshot-") and n not in nas]
    keep = few[len(few) // 2 : len(few) // 2 + 1] + nas[len(nas) // 2 : len(nas) // 2 + 1]
    return [n for n in r.latency if n != "measured" and (n not in few + nas or n in keep)]


def _markdown(
    results: Sequence[DeviceNAS],
    summary: pd.DataFrame,
    cross: pd.DataFrame | None,
    options: NasOptions,
    acc_name: str,
) -> str:
    gcn = f"at most {options.gcn_epochs} epochs" if options.gcn_epochs else "Table S1 training"
    parts = [
        f"{PROVENANCE}\n\n",
        "**Oracle NAS** (Supplementary S1.3): at each latency threshold (97, at the 2nd to "
        "98th percentiles of the dataset's measured latency) the most accurate model the "
        "estimate admits is re-validated on its measured latency; *missed* = ground-truth "
        "best minus effective best, *over-claimed* = assumed best minus effective best, in "
        f"{acc_name} points. **Front recall**: share of the measured Pareto front "
        "(accuracy vs latency) that is also on the estimate's front (Figure 3). **Aging "
        f"Evolution**: population 64, sample 16, {options.ae_steps} models, "
        f"{options.ae_seeds} seeds, limit = the median measured latency; the best "
        "accuracy of a trained model that truly meets the limit after the last step "
        "(median [IQR] over seeds; Figure 3 shows one few-shot N, the middle one). "
        "`evolution.csv` keeps step 1 and every 10th step.\n\n",
        f"Estimates: FLOPs/params fits, layer-wise and GCN are fitted on {options.n_train} "
        f"random models (seed {options.seed}; the GCN with {options.n_val} more for early "
        f"stopping, {gcn}) and asked for all; few-shot N = the adapter with "
        f"{_prior_text(options.prior)} on the N architectures its design picks (one seeded "
        "draw); few-shot NAS N (meas.+pred.) = the same adapter with half the N designed "
        "and the rest measured one at a time where the expected missed accuracy drops "
        "most, its estimate **measured where measured, else predicted** "
        "(docs/analysis.md).\n\n",
    ]
    if any("remeasured" in r.latency for r in results):
        parts.append(
            "*re-measured (noise floor)* is not a predictor: each model's latency as the "
            "dataset's other timings of the same computation (isomorphic pruned graphs timed "
            "apart) put it, its own measurement where there is none. It is as exact as the "
            "device's run-to-run noise allows, so what it misses is the noise's share of "
            "every estimate's misses, and no predictor of a computation's cost can be expected "
            "to miss less without measuring more.\n\n"
        )
    if options.fewshot_accept != 0.5:
        parts.append(
            f"Few-shot estimates here accept a model at a threshold when the adapter gives it a "
            f"probability of at least {options.fewshot_accept:g} of being under it (not the "
            "median): fewer misses, more re-validations.\n\n"
        )
    show = summary.copy()
    show["predictor"] = [label(p) + (" *" if "in-sample" in c else "") for p, c in
                         zip(show["predictor"], show["caveat"], strict=True)]  # fmt: skip
    show["evolution"] = [f"{m:.2f} [{a:.2f}, {b:.2f}]" if m == m else "not run" for m, a, b in
                         zip(show["ae_final_median"], show["ae_final_q25"], show["ae_final_q75"],
                             strict=True)]  # fmt: skip
    show["missed at"] = [
        f"{m}/{t}" + (f" ({z} none)" if z else "")
        for m, t, z in zip(show["thresholds_missed"], show["thresholds"],
                           show["thresholds_no_model"], strict=True)
    ]  # fmt: skip
    show["re-validations"] = [f"{m:g} / {x}" for m, x in
                              zip(show["median_revalidations"], show["max_revalidations"],
                                  strict=True)]  # fmt: skip
    cols = {"device": "dataset", "predictor": "estimate", "max_missed_accuracy": "max missed",
            "mean_missed_accuracy": "mean missed", "missed at": "thresholds missed",
            "max_overclaimed_accuracy": "max over-claimed",
            "re-validations": "re-validations (median / max)", "front_recall": "front recall",
            "evolution": "AE best [IQR]"}  # fmt: skip
    parts.append(markdown_table(show[list(cols)].rename(columns=cols), floatfmt=".2f") + "\n")
    if show["caveat"].str.contains("in-sample").any():
        parts.append("\\* the few-shot prior was pretrained on this dataset, so the "
                     "few-shot figure is in-sample, not a fair test.\n\n")  # fmt: skip
    parts.append("*thresholds missed*: thresholds where the best model is missed; *(k none)*: "
                 "where the estimate admits no model at all (left out of max and mean); "
                 "*re-validations*: models the search measures and rejects before the one "
                 "it keeps, per threshold.\n\n")  # fmt: skip
    skipped = [(r.key, s, why) for r in results for s, why in r.skipped.items()]
    if skipped:
        parts.append("Not run: " + "; ".join(f"{label(s)} on {k} ({w})" for k, s, w in skipped)
                     + ".\n\n")  # fmt: skip
    for r in results:
        safe = _safe(r.key)
        parts.append(
            f"### {r.key}\n\n![Figure 2](nas_fig2_{safe}.png)\n\n"
            f"![Figure 3](nas_fig3_{safe}.png)\n\n![Figure S3](nas_figS3_{safe}.png)\n\n"
        )
    if cross is not None:
        parts.append(
            "### Searching on the wrong device\n\nOf the architectures Pareto-optimal on "
            "the device of the row (measured), the best one meeting each threshold on the "
            "device of the column, against the best of all models there: mean accuracy "
            f"lost over the column's threshold grid ({acc_name} points).\n\n"
        )
        mat = cross.pivot(index="searched_on", columns="deployed_on", values="mean_lost_accuracy")
        mat.index.name = "searched on \\ deployed on"
        parts.append(markdown_table(mat, index=True, floatfmt=".2f") + "\n")
    return "".join(parts)
