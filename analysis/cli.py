"""The ``latbench-analysis`` command: regenerate the paper's LatBench results.

``latbench-analysis all`` writes every table and figure and ``OUT/README.md``;
``correlation``, ``proxies``, ``pairs`` and ``predictors`` write one result each and
print its Markdown. Errors (unknown or absent dataset keys, bad options) are one
line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from latbench.argparsing import (
    OneLineParser,
    folder,
    interruptible,
    nonempty,
    nonnegative_int,
    path_arg,
    positive_int,
)

__all__ = ["DEFAULT_OUT", "build_parser", "main"]

# Defaults shown in --help; the numbers live in latbench.analysis.predictors, which
# imports matplotlib, so they are repeated here for a fast --help (a test keeps them equal).
QUICK_GCN_REPEATS = 2
QUICK_GCN_EPOCHS = 20
MIN_ARCHS = 100  # latbench.analysis.pipeline.MIN_ARCHS

_PROG = "latbench-analysis"
DEFAULT_OUT = "latbench-results"
"""Output folder when ``--out`` is not given (relative to the working directory)."""


def _keys(text: str) -> list[str]:
    keys = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not keys:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return keys  # once each: a name given twice would count its repeats twice


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``latbench-analysis``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--devices", type=_keys, default=None, metavar="K1,K2,...",
                        help="dataset keys or aliases (default: every dataset available here)")  # fmt: skip
    common.add_argument("--bundled", action="store_true",
                        help="default devices: only the datasets bundled with the package")  # fmt: skip
    common.add_argument("--out", type=folder,
                        default=Path(DEFAULT_OUT),
                        help=f"output folder (default: ./{DEFAULT_OUT})")  # fmt: skip
    common.add_argument("--data-home", type=nonempty("a folder"), default=None,
                        help="LatBench data home (default: $LATBENCH_HOME or the user data dir)")  # fmt: skip
    common.add_argument("--max-pairs", type=positive_int, default=None, metavar="N",
                        help="most datasets in the pairs scatter matrix (default 8)")  # fmt: skip
    common.add_argument("--min-archs", type=positive_int, default=MIN_ARCHS, metavar="N",
                        help="leave out datasets with fewer measured architectures, saying"
                             f" which (default {MIN_ARCHS})")  # fmt: skip
    common.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    common.add_argument("--verbose", "-v", action="store_true",
                        help="keep TensorFlow's log lines (silenced by default)")  # fmt: skip
    pred = argparse.ArgumentParser(add_help=False)
    pred.add_argument("--repeats", type=positive_int, default=None, metavar="N",
                      help="repeats of every predictor, each a fresh random split; 100 is the "
                           "paper's protocol (default: FLOPs/params/layer-wise 100, the GCN "
                           f"{QUICK_GCN_REPEATS} of at most {QUICK_GCN_EPOCHS} epochs)")  # fmt: skip
    pred.add_argument("--no-cache", action="store_true",
                      help="recompute every repeat (default: reuse those stored in "
                           "<data home>/cache/predictors)")  # fmt: skip
    pred.add_argument("--seed", type=nonnegative_int, default=0,
                      help="seed of splits and training, at least 0 (default 0)")  # fmt: skip
    pred.add_argument("--predictors", type=_keys, default=None, metavar="P1,P2,...",
                      help="predictors to compare (default: flops, params, layerwise, gcn)")  # fmt: skip
    pred.add_argument("--train", type=positive_int, default=None, metavar="N",
                      help="training architectures per repeat (default 900, as the paper)")  # fmt: skip
    pred.add_argument("--gcn-epochs", type=positive_int, default=None, metavar="N",
                      help="cap on GCN training epochs (default: the paper's 250, early "
                           f"stopping 35, with --repeats; else {QUICK_GCN_EPOCHS})")  # fmt: skip
    parser = OneLineParser(
        prog=_PROG,
        description="Regenerate the BRP-NAS paper's LatBench tables and figures from the "
        "datasets on this machine (bundled, imported or measured). The default predictor "
        "protocol is quick (minutes); --repeats 100 runs the paper's (hours on a CPU). "
        "Predictor repeats are cached, so a rerun computes only the new ones.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    every = sub.add_parser("all", parents=[common, pred],
                           help="every result below and OUT/README.md embedding them")  # fmt: skip
    every.add_argument("--fewshot", type=path_arg, default=None, metavar="CSV",
                       help="also report few-shot adaptation from this "
                            "'latbench-predict evaluate-adapt -o' file")  # fmt: skip
    sub.add_parser("correlation", parents=[common],
                   help="cross-device Pearson/Spearman/Kendall (Table S4)")  # fmt: skip
    sub.add_parser("proxies", parents=[common], help="latency vs FLOPs and params (Figure S12)")
    sub.add_parser("pairs", parents=[common], help="device-pair scatter matrix (Figure S13)")
    sub.add_parser("predictors", parents=[common, pred],
                   help="predictor comparison (Figure 1, Tables 1 and S2)")  # fmt: skip
    nas_pred = argparse.ArgumentParser(add_help=False)  # what NAS reads of `pred`'s options
    nas_pred.add_argument("--seed", type=nonnegative_int, default=0,
                          help="seed of splits, training, designs and searches, at least 0"
                               " (default 0)")  # fmt: skip
    nas_pred.add_argument("--predictors", type=_keys, default=None, metavar="P1,P2,...",
                          help="latency estimates to compare (default: flops, layerwise, gcn,"
                               " fewshot, remeasured)")  # fmt: skip
    nas_pred.add_argument("--train", type=positive_int, default=None, metavar="N",
                          help="models the FLOPs/params/layer-wise fits and the GCN train on"
                               " (default 900)")  # fmt: skip
    nas_pred.add_argument("--gcn-epochs", type=positive_int, default=None, metavar="N",
                          help=f"cap on GCN training epochs (default {QUICK_GCN_EPOCHS})")  # fmt: skip
    nas = sub.add_parser("nas", parents=[common, nas_pred],
                         help="NAS with latency estimates: oracle NAS, Pareto fronts, aging "
                              "evolution (Figures 2, 3, S3); needs `latbench fetch nb201-accuracy`",
                         description="Oracle NAS over latency thresholds (Supplementary S1.3), "
                         "Pareto-front recovery and aging evolution under a latency limit, with "
                         "measured latency and each estimate (--predictors: flops, params, "
                         "layerwise, gcn, fewshot, fewshot-nas, remeasured; default "
                         "flops,layerwise,gcn,fewshot,remeasured; remeasured is the device's own "
                         "re-measurement of each computation, the noise floor).")  # fmt: skip
    _nas_options(nas)
    _nas_options(every, accuracy_only=True)
    return parser


def _nas_options(p: argparse.ArgumentParser, accuracy_only: bool = False) -> None:
    p.add_argument("--accuracy", default="cifar100", metavar="DATASET",
                   help="NAS-Bench-201 accuracy to search on: cifar10, cifar100 (default), "
                        "imagenet16-120")  # fmt: skip
    if accuracy_only:
        return
    p.add_argument("--fewshot-n", type=_counts, default=(20,), metavar="N1,N2,...",
                   help="measurements the few-shot adapter gets (default 20)")  # fmt: skip
    p.add_argument("--ae-steps", type=_ae_steps, default=1000, metavar="N",
                   help="aging evolution: models trained per search, at least its population "
                        "of 64, at most 100000 (default 1000)")  # fmt: skip
    p.add_argument("--ae-seeds", type=_ae_seeds, default=20, metavar="N",
                   help="aging evolution: searches per latency source, at most 1000 "
                        "(default 20)")  # fmt: skip
    p.add_argument("--limit-ms", type=_positive_float, default=None, metavar="MS",
                   help="aging evolution's latency limit (default: each dataset's median)")  # fmt: skip
    p.add_argument("--prior", type=nonempty("a file"), default=None, metavar="NPZ",
                   help="few-shot prior file (default: the shipped one; "
                        "`latbench-predict pretrain` makes one without your target)")  # fmt: skip
    p.add_argument("--fewshot-accept", type=_probability, default=0.5, metavar="P",
                   help="few-shot estimates accept a model under a threshold when the adapter "
                        "gives it at least this probability of being under it (default 0.5, "
                        "the median; lower: fewer misses, more re-validations)")  # fmt: skip


def _ae_steps(text: str) -> int:
    from latbench.analysis.nas import AE_MAX_STEPS, AE_POPULATION

    v = positive_int(text)
    if v < AE_POPULATION:
        raise argparse.ArgumentTypeError(
            f"must be at least {AE_POPULATION}, the population aging evolution first fills, got {v}"
        )
    if v > AE_MAX_STEPS:  # its curves are held in memory: 10**12 steps is 7 TiB
        raise argparse.ArgumentTypeError(f"must be at most {AE_MAX_STEPS}, got {v}")
    return v


def _ae_seeds(text: str) -> int:
    from latbench.analysis.nas import AE_MAX_SEEDS

    v = positive_int(text)
    if v > AE_MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"must be at most {AE_MAX_SEEDS}, got {v}")
    return v


def _counts(text: str) -> tuple[int, ...]:
    return tuple(positive_int(k) for k in _keys(text))


def _number(ok: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argument ``type``: a number for which ``ok`` holds (NaN never does), else
    a one-line usage error saying it ``must be <rule>``."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return v

    return parse


_probability = _number(lambda v: 0 < v < 1, "strictly between 0 and 1")
_positive_float = _number(lambda v: 0 < v < float("inf"), "a positive number")


def _nas_from_args(args: argparse.Namespace) -> object | None:
    if args.command not in ("nas", "all"):
        return None
    from latbench.analysis.nas import DEFAULT_NAS_PREDICTORS, NasOptions
    from latbench.analysis.nas_sources import source_names

    if args.command == "nas" and args.predictors:
        preds = tuple(args.predictors)
    elif args.predictors:  # `all`: the compared predictors, and the free noise floor
        preds = (*args.predictors, "remeasured")
    else:
        preds = DEFAULT_NAS_PREDICTORS
    from latbench.accuracy_table import accuracy_dataset_name

    # the canonical name: the report titles and the README's command line use it
    kw: dict = {
        "accuracy": accuracy_dataset_name(args.accuracy),
        "predictors": preds,
        "seed": args.seed,
    }
    if args.command == "all":
        kw["fewshot_strict"] = False  # `all` has no --fewshot-n to lower
    if args.command == "nas":
        kw |= {"fewshot_ns": args.fewshot_n, "ae_steps": args.ae_steps,
               "ae_seeds": args.ae_seeds, "limit_ms": args.limit_ms, "prior": args.prior,
               "fewshot_accept": args.fewshot_accept}  # fmt: skip
    if args.train:
        kw["n_train"] = args.train
    if args.gcn_epochs:
        kw["gcn_epochs"] = args.gcn_epochs
    opts = NasOptions(**kw)
    source_names(opts.predictors, opts.fewshot_ns)  # unknown names: one line, before any work
    from latbench.accuracy_table import accuracy_path

    if args.command == "nas" or accuracy_path(args.data_home).is_file():
        import latbench

        # a damaged table would fail `all` only after hours of the other results
        latbench.accuracy(opts.accuracy, data_home=args.data_home)
    if opts.prior is not None:
        # checked even when no few-shot estimate uses it: the report describes it
        from latbench.predictors.fewshot import load_prior

        load_prior(opts.prior)  # a missing or damaged prior: one line, before any work
    return opts


def _errors() -> tuple[type[BaseException], ...]:
    from latbench.accuracy_table import AccuracyFormatError, AccuracyNotFoundError
    from latbench.analysis.data import NoDatasetsError
    from latbench.catalog import UnknownDatasetError
    from latbench.dataset import DatasetError
    from latbench.loader import DatasetNotFoundError

    errors: list[type[BaseException]] = [
        UnknownDatasetError, DatasetNotFoundError, NoDatasetsError, DatasetError,
        AccuracyNotFoundError, AccuracyFormatError,
    ]  # fmt: skip
    try:
        from latbench.analysis.nas import NasError
    except ImportError:  # matplotlib absent: reported where it is needed
        pass
    else:
        errors.append(NasError)
    try:
        from latbench.analysis.fewshot import FewshotResultsError
    except ImportError:  # matplotlib absent: reported where it is needed
        pass
    else:
        errors.append(FewshotResultsError)
    try:
        from latbench.predictors import PredictorError
    except ImportError:  # predictors not installed: their errors cannot occur
        pass
    else:
        errors.append(PredictorError)
    return tuple(errors)


@interruptible(_PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``latbench-analysis``; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # never open a window, even via pyplot
    args = build_parser().parse_args(argv)
    from latbench.quiet import filter_native_stderr, quiet_tensorflow

    quiet_tensorflow(args.verbose)
    if argv is None:  # a console script: the process is ours to filter
        filter_native_stderr(args.verbose)
    try:
        from latbench.analysis.pipeline import run
    except ModuleNotFoundError as exc:
        from latbench.extras import missing_extra

        if (exc.name or "").startswith("latbench"):
            raise
        print(missing_extra(exc, _PROG, "analysis"), file=sys.stderr)
        return 2
    from latbench.terminal import one_line_warnings, safe_line

    try:
        from latbench.files import require_folder
        from latbench.loader import home_folder

        # before hours of analysis, not at the first write
        require_folder(args.out, creatable=True, writable=True)
        home = home_folder(args.data_home)
        require_folder(home, "the data home", creatable=True)
        with one_line_warnings(_PROG):  # reading the accuracy table or prior may warn
            nas = _nas_from_args(args)  # after: a file for a data home is named as such
    except (ValueError, *_errors()) as exc:  # an unknown name, a file for a folder, no table
        print(f"{_PROG}: error: {safe_line(str(exc))}", file=sys.stderr)
        return 2
    if not home.is_dir():  # a mistyped --data-home or $LATBENCH_HOME: say what is left
        print(f"{_PROG}: warning: the data home {safe_line(str(home))} does not exist;"
              " only the bundled datasets are here", file=sys.stderr)  # fmt: skip
    try:
        with one_line_warnings(_PROG):
            sections = run(
                args.command,
                devices=args.devices,
                out=args.out,
                data_home=args.data_home,
                max_pairs=args.max_pairs,
                repeats=getattr(args, "repeats", None),
                n_train=getattr(args, "train", None),
                predictors=getattr(args, "predictors", None),
                seed=getattr(args, "seed", 0),
                gcn_epochs=getattr(args, "gcn_epochs", None),
                bundled_only=args.bundled,
                log=None if args.quiet else lambda msg: print(msg, file=sys.stderr, flush=True),
                cache=not getattr(args, "no_cache", False),
                progress=not args.quiet,
                fewshot=getattr(args, "fewshot", None),
                min_archs=args.min_archs,
                nas=nas,
            )
    except _errors() as exc:
        print(f"{_PROG}: error: {safe_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write refused late: a full disk, a folder in a file's place
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{_PROG}: error: {safe_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # e.g. TensorFlow for the GCN
        from latbench.extras import missing_extra

        if (exc.name or "").startswith("latbench"):
            raise
        print(missing_extra(exc, _PROG, "analysis"), file=sys.stderr)
        return 2
    if args.command != "all":
        print(sections[0].body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
