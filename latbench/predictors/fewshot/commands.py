"""``latbench-predict pretrain`` and ``latbench-predict evaluate-adapt``.

latbench-predict pretrain --sources 'help-*,xeon2c-*' -o prior.npz
latbench-predict evaluate-adapt --protocol class --mode host --by class --n 5,10,20 -o res.csv
latbench-predict evaluate-adapt --prior prior.npz --targets 'jetson-*' -o res.csv
latbench-predict evaluate-adapt --protocol siblings --n 5,10,20,50 --repeats 20 -o res.csv
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

from latbench.argparsing import folder, nonnegative_int, positive_int
from latbench.space import N_ARCHS

__all__ = ["HANDLERS", "add_parsers", "match_keys"]

RELEASE_KEYS = (
    "desktop-cpu-i7-7820x-fp32",
    "desktop-gpu-gtx-1080-ti-fp32",
    "jetson-nano-fp32",
    "jetson-nano-fp16",
    "edgetpu-int8",
    "snapdragon-855-dsp-int8",
    "snapdragon-675-gpu-int8",
)
"""The seven LatBench release files (Apache-2.0) as dataset keys."""
SHIPPED_SOURCES = "help-*," + ",".join(RELEASE_KEYS) + ",xeon2c-*"
"""Sources of the shipped prior: HELP's files (MIT), the LatBench release (Apache-2.0)
and the bundled datasets (CC-BY-4.0)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the two few-shot subcommands to ``latbench-predict``'s subparsers."""
    from latbench.predictors.fewshot.prior import VIEWS

    pt = sub.add_parser("pretrain", help="learn a few-shot prior from source datasets")
    pt.add_argument("--sources", default="*",
                    help="comma list of dataset keys or globs (default: every available "
                         "dataset; the shipped prior uses HELP's, the LatBench release's and "
                         "the bundled ones)")  # fmt: skip
    pt.add_argument("--exclude", default="", help="comma list of keys or globs to leave out")
    pt.add_argument("--data-home", type=folder, help="LatBench data home (default: $LATBENCH_HOME)")
    pt.add_argument("--rank", type=positive_int, default=8,
                    help="architecture factors k (default 8; at most sources - 1)")  # fmt: skip
    pt.add_argument("--shrink", type=float, default=0.1, help="covariance shrinkage (default 0.1)")
    pt.add_argument("--encoder", action="store_true",
                    help="also learn an architecture encoder over all sources (needs "
                         "TensorFlow; adapting stays numpy)")  # fmt: skip
    pt.add_argument("--view", choices=VIEWS, default="pruned",
                    help="how the prior sees sources that timed unpruned cells (HELP, "
                         "HW-NAS-Bench): as their pruned networks, for targets that time "
                         "pruned graphs as latbench-measure does (pruned, default), or as "
                         "timed, for targets that time unpruned cells")  # fmt: skip
    pt.add_argument("--out", "-o", type=Path, required=True, help="prior file (.npz)")
    ea = sub.add_parser("evaluate-adapt", help="leave-one-device-out few-shot evaluation")
    ea.add_argument("--data-home", type=folder, help="LatBench data home (default: $LATBENCH_HOME)")
    ea.add_argument("--protocol", choices=(*PROTOCOL_CHOICES, "both"), default="both",
                    help="sources: all but the target's siblings (siblings), also all but "
                         "its device class (class), HELP's meta-train set (help), the "
                         "shipped or --prior prior as is (shipped), or siblings and help "
                         "(both, default)")  # fmt: skip
    ea.add_argument("--prior", type=Path,
                    help="adapt this prior as is (implies --protocol shipped) on the targets "
                         "it was not trained on")  # fmt: skip
    ea.add_argument("--sources", default=None,
                    help="comma list of keys or globs the sources are drawn from (default: "
                         "every available dataset); a plain key that is not available is an "
                         "error, so a figure does not move with the data home")  # fmt: skip
    ea.add_argument(
        "--by",
        choices=("group", "class"),
        default="group",
        help="summary rows per target group (default) or device class",
    )
    ea.add_argument(
        "--mode",
        choices=("chip", "host"),
        default="chip",
        help="siblings: same chip/SoC/board (default) or also the same machine",
    )
    ea.add_argument("--targets", default="*", help="comma list of keys or globs (default all)")
    ea.add_argument("--n", type=_sizes, default="5,10,20,50",
                    help="measured architectures (comma list)")  # fmt: skip
    ea.add_argument("--repeats", type=positive_int, default=20, help="seeded repeats (default 20)")
    ea.add_argument(
        "--methods",
        type=_methods,
        default="adapter,adapter-random,flops,best-source",
        help="comma list of adapter, adapter-random, flops, best-source, gcn",
    )
    ea.add_argument("--model", choices=MODEL_CHOICES, default="auto",
                    help="adapter model: chosen by leave-one-out (auto, default) or fixed")  # fmt: skip
    ea.add_argument("--blend", action="store_true",
                    help="auto: average the chosen model with the FLOPs fit, weighted by "
                         "leave-one-out evidence (an experiment, not the default)")  # fmt: skip
    ea.add_argument("--encoder", action="store_true",
                    help="pretrain each target's prior with an architecture encoder too "
                         "(not with --prior: a given prior is used as is)")  # fmt: skip
    ea.add_argument(
        "--gcn-repeats", type=positive_int, default=2, help="repeats of the GCN baseline"
    )
    ea.add_argument("--gcn-n", type=_sizes, default="10", help="N values of the GCN baseline")
    ea.add_argument("--seed", type=nonnegative_int, default=0)
    ea.add_argument("--out", "-o", type=Path, help="CSV with one row per target/method/N/repeat")


def _sizes(text: str) -> list[int]:
    """``--n``/``--gcn-n``: a comma list of positive counts, or a one-line usage error."""
    try:
        ns = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of counts, got {text!r}") from None
    if min(ns) < 1:
        raise argparse.ArgumentTypeError(f"counts must be at least 1, got {text!r}")
    if max(ns) > N_ARCHS:  # also keeps a 30-digit count away from numpy's C longs
        raise argparse.ArgumentTypeError(f"counts must be at most {N_ARCHS}, got {text!r}")
    _no_repeats(ns, text)
    return ns


def _methods(text: str) -> list[str]:
    """``--methods``: known names, each once, checked before any dataset is read."""
    names = [m.strip() for m in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected a comma list of methods, got {text!r}")
    bad = [m for m in names if m not in METHOD_CHOICES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHOD_CHOICES)}"
        )
    _no_repeats(names, text)
    return names


def _no_repeats(items: list, text: str) -> None:
    # a repeat would write duplicate CSV rows that the summary then counts twice
    twice = sorted({str(x) for x in items if items.count(x) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} listed twice in {text!r}")


MODEL_CHOICES = (
    "auto",
    "log-linear",
    "additive",
    "encoder",
    "encoder-full",
    "flops",
    "best-source",
)
"""``adapter.MODELS``, literal so that ``--help`` imports no numpy (a test keeps them equal)."""
PROTOCOL_CHOICES = ("siblings", "class", "help", "shipped")
"""``evaluate.PROTOCOLS``, literal for the same reason (a test keeps them equal)."""
METHOD_CHOICES = ("adapter", "adapter-random", "flops", "best-source", "gcn")
"""``evaluate.METHODS``, literal for the same reason (a test keeps them equal)."""


def match_keys(patterns: str, keys: list[str]) -> list[str]:
    """Keys matching any comma-separated key or glob, in ``keys`` order."""
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in pats)]


def _available(data_home: Path | None) -> list[str]:
    from latbench.loader import devices

    d = devices(data_home)
    return d.loc[d["available"], "key"].tolist()


def _absent(option: str, patterns: str, keys: list[str]) -> None:
    """Refuse plain keys (not globs) in ``patterns`` that are not available: a typo must
    not quietly drop a dataset from the figure."""
    from latbench.predictors import PredictorError

    absent = sorted(p for p in _plain(patterns) if p not in keys)
    if absent:
        raise PredictorError(f"{option} names dataset(s) not available: {', '.join(absent)}")


def _plain(patterns: str | None) -> set[str]:
    """The plain keys (no glob) in comma-separated ``patterns``."""
    pats = [p.strip() for p in (patterns or "").split(",")]
    return {p for p in pats if p and not any(c in p for c in "*?[")}


def _drop_small(matrix: Any, named: set[str]) -> Any:
    """``matrix`` without the datasets of fewer latencies than a source needs
    (:data:`~latbench.predictors.fewshot.prior.MIN_SOURCE_LATENCIES`) that a
    glob or a default chose (a quickstart sample, a few-shot run's handful), saying which;
    one named plainly stays, and its refusal says how to leave it out."""
    import numpy as np

    from latbench.predictors import PredictorError
    from latbench.predictors.fewshot.prior import MIN_SOURCE_LATENCIES as MIN_LATENCIES

    counts = np.isfinite(matrix.to_numpy(np.float64)).sum(axis=0)
    small = {
        str(k): int(n) for k, n in zip(matrix.columns, counts, strict=True) if n < MIN_LATENCIES
    }
    for key, n in small.items():
        if key in named:
            raise PredictorError(
                f"{key} has {n} measured latencies, fewer than the {MIN_LATENCIES} a source or"
                " target needs: leave it out of --sources/--targets"
            )
        print(f"leaving out {key}: {n} measured latencies, fewer than {MIN_LATENCIES}",
              file=sys.stderr)  # fmt: skip
    return matrix.drop(columns=list(small))


def _pretrain(args: argparse.Namespace) -> int:
    from latbench.predictors import PredictorError
    from latbench.predictors.cli import check_out
    from latbench.predictors.fewshot import pretrain, source_matrix

    check_out(args.out, probe=True)  # a bad -o fails now, not after the fitting
    keys = _available(args.data_home)
    _absent("--sources", args.sources, keys)
    _absent("--exclude", args.exclude, keys)  # a typo there would exclude nothing
    chosen = [k for k in match_keys(args.sources, keys) if k not in match_keys(args.exclude, keys)]
    if len(chosen) < 2:
        raise PredictorError(
            f"--sources {args.sources!r} matches {len(chosen)} available dataset(s); need 2 "
            "(import some: `latbench import help PATH`, see `latbench devices`)"
        )
    matrix = _drop_small(source_matrix(chosen, args.data_home, view=args.view),
                         _plain(args.sources))  # fmt: skip
    chosen = [str(k) for k in matrix.columns]
    if len(chosen) < 2:
        raise PredictorError(f"--sources {args.sources!r} leaves {len(chosen)} dataset(s); need 2")
    command = "latbench-predict " + " ".join(sys.argv[1:]) if sys.argv[1:] else "pretrain"
    prior = pretrain(matrix, rank=args.rank, shrink=args.shrink, meta={"command": command},
                     encoder={} if args.encoder else None)  # fmt: skip
    path = prior.save(args.out)
    print(f"wrote {path}: {len(chosen)} sources ({args.view} view), rank {prior.rank}, "
          f"{path.stat().st_size / 1e6:.2f} MB")  # fmt: skip
    return 0


def _fixed_sources(patterns: str, keys: list[str]) -> list[str]:
    """Keys of ``--sources``: globs match available keys, plain keys must be available."""
    from latbench.predictors import PredictorError

    _absent("--sources", patterns, keys)
    chosen = match_keys(patterns, keys)
    if len(chosen) < 2:
        raise PredictorError(f"--sources {patterns!r} matches {len(chosen)} dataset(s); need 2")
    return chosen


def _evaluate_adapt(args: argparse.Namespace) -> int:
    import pandas as pd

    from latbench.predictors import PredictorError
    from latbench.predictors.cli import check_out, write_csv
    from latbench.predictors.fewshot import load_prior, source_matrix
    from latbench.predictors.fewshot.evaluate import (
        HELP_META_TEST,
        evaluate_adapt,
        group_table,
        plan_targets,
    )
    from latbench.predictors.fewshot.report import format_group_table

    if args.blend and args.model != "auto":  # else it would be silently ignored
        raise PredictorError(f"--blend averages what --model auto chooses, not {args.model}")
    if args.prior is not None and args.protocol not in ("both", "shipped"):
        raise PredictorError(  # else the given protocol would be silently replaced
            f"--prior adapts that prior as is (protocol shipped), not --protocol {args.protocol}"
        )
    shipped = args.prior is not None or args.protocol == "shipped"
    if args.encoder and shipped:  # likewise: a given prior is used as is
        raise PredictorError(
            "--encoder pretrains each target's prior; --prior uses one as is, as does "
            "--protocol shipped"
        )
    if args.sources is not None and shipped:  # likewise
        raise PredictorError(
            "--sources picks what each target's prior is pretrained on; a shipped or "
            "--prior prior is used as is"
        )
    lost = sorted(set(args.gcn_n) - set(args.n)) if "gcn" in args.methods else []
    if lost:  # else those GCN rows would silently never run
        raise PredictorError(
            f"--gcn-n {','.join(map(str, lost))} is not among --n {','.join(map(str, args.n))}: "
            "the GCN baseline runs only at N values the other methods run at"
        )
    if args.out:
        check_out(args.out, probe=True)  # before minutes of adapting, not after
    keys = _available(args.data_home)
    prior = load_prior(args.prior) if shipped else None
    sources = _fixed_sources(args.sources, keys) if args.sources is not None else None
    _absent("--targets", args.targets, keys)
    targets = match_keys(args.targets, keys)
    if not targets:
        raise PredictorError(f"--targets {args.targets!r} matches no available dataset")
    if prior is not None:
        protocols: tuple[str, ...] = ("shipped",)
        if not [t for t in targets if t not in prior.sources]:
            raise PredictorError(
                f"every target of --targets {args.targets!r} is one of the prior's sources; "
                "a prior is tested on datasets it was not trained on"
            )
    elif args.protocol == "both":
        protocols = ("siblings", "help")
    else:
        protocols = (args.protocol,)
    if protocols == ("help",) and not [t for t in targets if t in HELP_META_TEST]:
        raise PredictorError(
            f"protocol help tests HELP's meta-test devices ({', '.join(HELP_META_TEST)}); "
            f"--targets {args.targets!r} matches none"
        )
    # a shipped prior's baselines need only its own sources: no other file is read
    needed = set(targets) | set(sources or (prior.sources if prior is not None else keys))
    matrix = source_matrix([k for k in keys if k in needed], args.data_home)
    matrix = _drop_small(matrix, _plain(args.targets) | _plain(args.sources))
    kept = {str(k) for k in matrix.columns}
    targets = [t for t in targets if t in kept]
    sources = None if sources is None else [k for k in sources if k in kept]
    if not targets:
        raise PredictorError(f"--targets {args.targets!r} leaves no dataset with enough latencies")
    chosen = {
        protocol: [t for t in targets if t in HELP_META_TEST] if protocol == "help" else targets
        for protocol in protocols
    }
    for protocol, tg in chosen.items():  # every protocol's refusals before any adapting
        plan_targets(matrix, tg, protocol=protocol, mode=args.mode, ns=args.n, sources=sources,
                     prior=prior)  # fmt: skip
    parts = []
    for protocol, tg in chosen.items():
        parts.append(
            evaluate_adapt(
                matrix, tg, protocol=protocol, mode=args.mode, ns=args.n, repeats=args.repeats,
                seed=args.seed, methods=args.methods, sources=sources, prior=prior,
                prior_options={"encoder": {}} if args.encoder else None,
                adapter_options={"model": args.model, "blend": args.blend},
                gcn_repeats=args.gcn_repeats, gcn_ns=args.gcn_n,
                progress=lambda line: print(line, file=sys.stderr),
            )
        )  # fmt: skip
    res = pd.concat(parts, ignore_index=True)
    if res.empty:
        raise PredictorError("no target to evaluate")
    if args.out:
        write_csv(res, args.out)
    print(format_group_table(group_table(res, by=args.by)))
    return 0


HANDLERS = {"pretrain": _pretrain, "evaluate-adapt": _evaluate_adapt}
"""Subcommand name -> handler(args) -> exit status."""
