"""Run one result or all of them into a folder: what ``latbench-analysis`` does, as a function."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from latbench.analysis import report
from latbench.analysis.data import Datasets, NoDatasetsError, load_datasets
from latbench.analysis.pairs import MAX_DEVICES
from latbench.analysis.staging import claim, staged

__all__ = ["MIN_ARCHS", "RESULTS", "command_line", "enough_archs", "run"]

MIN_ARCHS = 100
"""Fewest measured architectures a dataset needs to enter the report: below that its
correlations and predictor scores are noise printed to three decimals."""

RESULTS: tuple[str, ...] = ("correlation", "proxies", "pairs", "predictors", "nas")
"""The results ``run`` can produce, in report order."""


def command_line(
    result: str,
    *,
    devices: Sequence[str] | None = None,
    out: str | os.PathLike[str] = "latbench-results",
    max_pairs: int | None = None,
    repeats: int | None = None,
    n_train: int | None = None,
    predictors: Sequence[str] | None = None,
    seed: int = 0,
    gcn_epochs: int | None = None,
    bundled_only: bool = False,
    fewshot: str | os.PathLike[str] | None = None,
    min_archs: int = MIN_ARCHS,
    accuracy: str | None = None,
) -> str:
    """The ``latbench-analysis`` command line equivalent to :func:`run` with these arguments."""
    parts = ["latbench-analysis", result]
    if bundled_only and not devices:
        parts.append("--bundled")
    if devices:
        parts += ["--devices", ",".join(devices)]
    if max_pairs:
        parts += ["--max-pairs", str(max_pairs)]
    if repeats:
        parts += ["--repeats", str(repeats)]
    if n_train:
        parts += ["--train", str(n_train)]
    if predictors:
        parts += ["--predictors", ",".join(predictors)]
    if seed:
        parts += ["--seed", str(seed)]
    if gcn_epochs:
        parts += ["--gcn-epochs", str(gcn_epochs)]
    if fewshot:
        parts += ["--fewshot", str(fewshot)]
    if min_archs != MIN_ARCHS:
        parts += ["--min-archs", str(min_archs)]
    if accuracy and accuracy != "cifar100":
        parts += ["--accuracy", accuracy]
    parts += ["--out", Path(out).as_posix()]
    return shlex.join(parts)


def enough_archs(data: Datasets, min_archs: int = MIN_ARCHS) -> tuple[Datasets, dict[str, str]]:
    """``data`` without the datasets of fewer than ``min_archs`` measured architectures,
    and ``{key: why}`` for each left out. Raises :class:`NoDatasetsError` if none is left."""
    kept: dict = {}
    left_out: dict[str, str] = {}
    for key, df in data.frames.items():
        n = int((df["status"] == "ok").sum())
        if n >= min_archs:
            kept[key] = df
        else:
            left_out[key] = f"{n} measured architecture(s), fewer than {min_archs}"
            where = df.attrs.get("path")  # frames made in memory have none
            if where and Path(where).with_name(f"{key}.predicted.parquet").is_file():
                left_out[key] += (
                    f"; its few-shot prediction ({key}.predicted.parquet) is not analysed:"
                    " predictions never stand in for measurements"
                )
    if not kept:
        why = "; ".join(f"{k}: {v}" for k, v in left_out.items())
        raise NoDatasetsError(
            f"no dataset has {min_archs} measured architectures ({why}); measure more"
            " (`latbench-measure ... --limit N` resumes) or lower --min-archs"
        )
    return Datasets(kept, {k: v for k, v in data.origins.items() if k in kept}), left_out


def run(
    result: str = "all",
    *,
    devices: Sequence[str] | None = None,
    out: str | os.PathLike[str] = "latbench-results",
    data_home: str | os.PathLike[str] | None = None,
    max_pairs: int | None = None,
    repeats: int | None = None,
    n_train: int | None = None,
    predictors: Sequence[str] | None = None,
    seed: int = 0,
    gcn_epochs: int | None = None,
    bundled_only: bool = False,
    log: Callable[[str], None] | None = None,
    cache: str | os.PathLike[str] | None | bool = True,
    progress: bool = False,
    fewshot: str | os.PathLike[str] | None = None,
    min_archs: int = MIN_ARCHS,
    nas: object | None = None,
) -> list[report.Section]:
    """Write ``result`` (one of :data:`RESULTS`, or ``"all"`` plus ``out/README.md``) into ``out``.

    ``devices=None`` takes every dataset available here (only the bundled ones with
    ``bundled_only``). ``repeats=None`` runs the default protocols (cheap predictors
    100 repeats, the GCN a quick few; see :func:`latbench.analysis.predictors.protocols`);
    ``gcn_epochs`` caps GCN training. ``cache`` is the folder of predictor repeat
    results (``True``: ``<data home>/cache/predictors``; ``False``/``None``: none), so
    a rerun computes only the repeats it lacks. ``progress`` shows bars (or ETA lines)
    on stderr. ``fewshot`` is a ``latbench-predict evaluate-adapt -o`` CSV: with it,
    ``all`` also writes the few-shot section (its figure and tables). Datasets with
    fewer than ``min_archs`` measured architectures are left out (:func:`enough_archs`),
    named in the log and the README. ``nas`` is a
    :class:`~latbench.analysis.nas.NasOptions` (default: its defaults); ``all`` runs
    the NAS result only where the accuracy table is present, and says how to get it
    where not. Returns the sections written.

    All or nothing: the files are made in a hidden folder inside ``out`` and moved in
    only once every one is made, so a run that fails or is interrupted leaves
    ``out``'s earlier results whole (and removes its hidden folder). Files of ``out``
    that the run does not write are kept, except those an earlier run wrote for one
    of the results this run writes (a dataset's figure it no longer makes): each
    result's files are listed under its name in ``out/.latbench-results.json``
    (:func:`latbench.analysis.staging.publish`).
    """
    if result != "all" and result not in RESULTS:
        raise ValueError(f"unknown result {result!r}; choose all or one of {', '.join(RESULTS)}")
    data, left_out = enough_archs(
        load_datasets(devices, data_home=data_home, bundled_only=bundled_only), min_archs
    )
    out = Path(out)
    max_pairs = max_pairs or MAX_DEVICES
    pred_kw: dict = {"seed": seed}
    if repeats:
        pred_kw["repeats"] = repeats
    if n_train:
        pred_kw["n_train"] = n_train
    if predictors:
        pred_kw["predictors"] = list(predictors)
    gcn_options = {"max_epochs": gcn_epochs} if gcn_epochs else None
    if cache is True:
        from latbench.predictors.cache import default_cache_dir

        cache = default_cache_dir(data_home)
    cache = cache or None
    # each step writes into the folder it is given: the staging folder, see below
    steps: dict[str, Callable[[Path], report.Section]] = {
        "correlation": lambda d: report.write_correlation(data, d),
        "proxies": lambda d: report.write_proxies(data, d),
        "pairs": lambda d: report.write_pairs(data, d, max_devices=max_pairs),
        "predictors": lambda d: report.write_predictors(
            data, d, data_home=data_home, gcn_options=gcn_options, cache=cache,
            progress=progress, **pred_kw,
        ),
    }  # fmt: skip
    from latbench.analysis.nas import NasOptions, write_nas

    nas_options = nas if isinstance(nas, NasOptions) else NasOptions()
    steps["nas"] = lambda d: write_nas(data, d, nas_options, data_home=data_home, log=log)
    names = RESULTS if result == "all" else (result,)
    say = log or (lambda _msg: None)
    from latbench.accuracy_table import accuracy_path

    no_accuracy = not accuracy_path(data_home).is_file()
    if result == "all" and no_accuracy:
        names = tuple(n for n in names if n != "nas")
    elif result == "nas" and no_accuracy:
        import latbench

        latbench.accuracy(nas_options.accuracy, data_home=data_home)  # its error says how
    if "nas" in names:
        from latbench.analysis.nas import check_options

        check_options(data, nas_options)  # under `all` too: before the other results
    if fewshot is not None and result == "all":
        from latbench.analysis.fewshot import read_fewshot, write_fewshot

        adapt = read_fewshot(fewshot)  # checked before hours of work, not after
        steps["fewshot"] = lambda d: write_fewshot(adapt, d)
        names = (*names, "fewshot")
    say(f"{len(data.keys)} dataset(s): {', '.join(data.keys)}")
    for key, why in left_out.items():
        say(f"left out {key}: {why} (--min-archs {min_archs})")
    if result == "all" and no_accuracy:
        say("nas: skipped, no NAS-Bench-201 accuracy here; get it with "
            "`latbench fetch nb201-accuracy`, then rerun")  # fmt: skip
    if "predictors" in names:
        from latbench.analysis.predictors import DEFAULT_PREDICTORS, protocols

        plan = protocols(predictors or DEFAULT_PREDICTORS, repeats, gcn_epochs)
        say("predictor protocols: " + "; ".join(f"{p} {pr.label(p)}" for p, pr in plan.items()))
        if repeats is None:
            say("  (the paper's protocol for all: --repeats 100; fewer predictors: --predictors)")
        if cache:
            say(f"  repeat cache: {cache} (a rerun computes only new repeats)")
    # the whole set is written into a hidden folder inside ``out`` and moved in only once
    # all of it is made: a failure or Ctrl-C midway leaves the previous results whole,
    # never a README whose tables and figures come from different runs. Each result's
    # files are recorded under its name in ``out``'s manifest (the README under "all"),
    # so the next run of that result removes those it no longer writes, and no other
    # a single result's run marks an `all` README out of date, while it holds the lock
    stale = None if result == "all" else (lambda: _mark_readme_stale(out, result))
    with staged(out, results=result, after=stale) as stage:
        sections = []
        for i, name in enumerate(names, 1):
            t0 = time.perf_counter()
            say(f"[{i}/{len(names)}] {name} ...")
            sections.append(steps[name](stage))
            if result != "all" and not sections[-1].files:
                # publishing nothing would remove this result's earlier files from ``out``
                raise NoDatasetsError(
                    f"{name}: no dataset here had what the options ask for"
                    f" ({_first_reason(sections[-1].body)}); nothing was written and the"
                    f" earlier results in {out} are kept"
                )
            claim(stage, name)
            say(
                f"[{i}/{len(names)}] {name}: {time.perf_counter() - t0:.0f} s, wrote "
                + ", ".join(sections[-1].files)
            )
        if result == "all":
            command = command_line(
                "all", devices=devices, out=out, max_pairs=None if max_pairs == MAX_DEVICES else max_pairs,
                repeats=repeats, n_train=n_train, predictors=predictors, seed=seed,
                gcn_epochs=gcn_epochs, bundled_only=bundled_only, fewshot=fewshot,
                min_archs=min_archs,
                accuracy=nas_options.accuracy,
            )  # fmt: skip
            params = {"datasets": ", ".join(data.keys), "pairs: most datasets shown": max_pairs}
            params["fewest measured architectures per dataset"] = min_archs
            if left_out:
                params["left out"] = "; ".join(f"{k} ({why})" for k, why in left_out.items())
            params |= report.predictor_parameters(**pred_kw, gcn_epochs=gcn_epochs)
            if "nas" in names:
                params["NAS latency estimates"] = ", ".join(nas_options.sources())
            if no_accuracy:
                sections.append(report.Section(
                    "NAS with latency estimates", "Not run: no NAS-Bench-201 accuracy in the data "
                    "home. Get it with `latbench fetch nb201-accuracy` (a pinned public export of "
                    "NAS-Bench-201/NATS-Bench accuracies, checked by SHA-256) and rerun.\n"))  # fmt: skip
            report.write_readme(data, stage, sections, command=command, parameters=params)
    if result == "all":
        say(f"report: {out / 'README.md'}")
    return sections


def _first_reason(body: str) -> str:
    """The first line of a result's text that says why a dataset was not used."""
    lines = [t.strip(" -*") for t in body.splitlines()]
    for word in ("too few", "not run", "no "):
        why = [t for t in lines if word in t.lower() and not t.endswith(":")]
        if why:
            return why[0][:200]
    return "see the options"


STALE = "> **Out of date:** "
"""How the line begins that a single result's run adds atop an ``all`` README it changed."""


def _mark_readme_stale(out: Path, result: str) -> None:
    """After ``result``'s files are in ``out``: add a line atop ``out``'s README (made by
    ``all``, which the manifest lists) saying that ``result`` was rerun since, so its
    section shows the earlier results and may link figures this run replaced or removed.
    One such line per result, the latest kept. Rewritten in place (atomically, while
    publishing holds the folder's lock): it stays the ``all`` run's file in the manifest."""
    import datetime
    import stat

    from latbench.analysis.publishing import read_manifest
    from latbench.dataset import atomic_path
    from latbench.files import read_capped

    readme = out / "README.md"
    if read_manifest(out).get("README.md") != "all":
        return  # none, or not ours
    try:
        if not stat.S_ISREG(os.lstat(readme).st_mode):
            return
        text = read_capped(readme, 16 << 20).decode("utf-8")
    except (OSError, ValueError):
        return
    lines = text.splitlines(keepends=True)
    top, rest = [], lines
    while rest and (rest[0].startswith(STALE) or not rest[0].strip()):
        top += [rest[0]] if rest[0].startswith(STALE) else []
        rest = rest[1:]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mine = (
        f"{STALE}`latbench-analysis {result}` ran into this folder on {when}, after this"
        f" README was made: its section below shows the earlier {result} results and may"
        " link figures that run replaced or removed. Rerun `latbench-analysis all` to"
        " rebuild this file.\n"
    )
    top = [t for t in top if f"`latbench-analysis {result}`" not in t] + [mine]
    with atomic_path(readme) as tmp:
        tmp.write_text("\n".join(top) + "\n" + "".join(rest), encoding="utf-8")
