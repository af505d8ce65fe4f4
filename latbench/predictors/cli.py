"""``latbench-predict``: train, evaluate and apply latency predictors.

latbench-predict evaluate --dataset KEY --predictor gcn,flops --repeats 10 --out res.csv
latbench-predict train    --dataset KEY --predictor gcn -o gcn.npz
latbench-predict predict  gcn.npz '|nor_conv_3x3~0|+|...|' 123   # or --all --out all.csv
latbench-predict pretrain --sources 'help-*,xeon2c-*' -o prior.npz   # few-shot prior
latbench-predict evaluate-adapt --n 5,10,20,50 --repeats 20 -o adapt.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from latbench.argparsing import OneLineParser, folder, interruptible, nonnegative_int

__all__ = ["main"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", "-d", required=True, help="dataset key (see `latbench devices`)")
    p.add_argument("--data-home", type=folder, help="LatBench data home (default: $LATBENCH_HOME)")
    p.add_argument("--train", type=int, default=900, help="training models (default 900)")
    p.add_argument("--val", type=int, default=100, help="validation models (default 100)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="protocol seed (default 0)")
    p.add_argument(
        "--unit",
        choices=("models", "graphs"),
        default="models",
        help="split architectures (paper) or distinct pruned graphs (no shared graph "
        "between train and test); default models",
    )
    p.add_argument("--layers", type=Path, help="per-layer table for layerwise "
                   "(default: the dataset's <key>.layers.parquet)")  # fmt: skip
    g = p.add_argument_group("GCN options (default: Table S1)")
    g.add_argument("--max-epochs", type=int)
    g.add_argument("--patience", type=int)
    g.add_argument("--threads", type=int, help="TensorFlow threads")
    g.add_argument("--no-xla", action="store_true", help="run the training step without XLA")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-predict",
        description="Latency predictors (GCN, layer-wise, FLOPs, params) and the paper's "
        "protocol: random train/val/test splits, shares of test models within +-1/5/10 %.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="repeated random splits; metrics per repeat")
    _common(ev)
    ev.add_argument("--predictor", "-p", default="gcn",
                    help="gcn, layerwise, flops, params, or a comma list (default gcn)")  # fmt: skip
    ev.add_argument("--repeats", "-n", type=int, default=1, help="repeats (paper: 100)")
    ev.add_argument("--jobs", "-j", type=int, default=1, help="parallel processes")
    ev.add_argument("--out", "-o", type=Path, help="CSV with one row per predictor and repeat")
    ev.add_argument("--no-cache", action="store_true",
                    help="recompute every repeat (default: reuse the results stored in "
                         "<data home>/cache/predictors, so more --repeats computes only the new)")  # fmt: skip
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    ev.add_argument("--verbose", "-v", action="store_true",
                    help="keep TensorFlow's log lines (silenced by default)")  # fmt: skip
    tr = sub.add_parser("train", help="fit one predictor on one random split and save it")
    _common(tr)
    tr.add_argument("--predictor", "-p", default="gcn", help="gcn, layerwise, flops or params")
    tr.add_argument("--out", "-o", type=Path, required=True, help="predictor file (.npz)")
    tr.add_argument("--verbose", "-v", action="store_true",
                    help="GCN: print every epoch; keep TensorFlow's log lines")  # fmt: skip
    pr = sub.add_parser("predict", help="predict latency with a saved predictor")
    pr.add_argument("model", type=Path, help="file written by `train`")
    pr.add_argument("archs", nargs="*", help="NAS-Bench-201 strings or arch_ids")
    pr.add_argument("--all", action="store_true",
                    help="all 15,625 architectures (prints a summary; the table goes to -o)")  # fmt: skip
    pr.add_argument("--out", "-o", type=Path, help="CSV (default: print; --all: a summary)")
    pr.add_argument("--verbose", "-v", action="store_true",
                    help="keep TensorFlow's log lines (silenced by default)")  # fmt: skip
    from latbench.predictors.fewshot.commands import add_parsers

    add_parsers(sub)  # pretrain, evaluate-adapt
    return p


def _gcn_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.max_epochs is not None:
        opts["max_epochs"] = args.max_epochs
    if args.patience is not None:
        opts["patience"] = args.patience
    if args.threads is not None:
        opts["threads"] = args.threads
    if args.no_xla:
        opts["jit_compile"] = False
    return opts


def _evaluate(args: argparse.Namespace) -> int:
    from latbench.predictors import PredictorError, evaluate, summarize
    from latbench.predictors.cache import default_cache_dir

    names = list(dict.fromkeys(n.strip() for n in args.predictor.split(",") if n.strip()))
    if not names:
        raise PredictorError(f"--predictor {args.predictor!r} names no predictor")
    if args.out:
        check_out(args.out, probe=True)  # before minutes of training, not after
    res = evaluate(
        args.dataset, names, train=args.train, val=args.val, repeats=args.repeats,
        seed=args.seed, unit=args.unit, jobs=args.jobs, layers=args.layers,
        data_home=args.data_home, options=_gcn_options(args),
        cache=None if args.no_cache else default_cache_dir(args.data_home),
        progress=not args.quiet, progress_desc=f"{args.dataset}: repeats",
    )  # fmt: skip
    if res.attrs.get("cached"):
        print(f"{res.attrs['cached']} repeat(s) from the cache, {res.attrs['computed']} computed",
              file=sys.stderr)  # fmt: skip
    if args.out:
        write_csv(res, args.out)
    print(format_summary(summarize(res)))
    return 0


def format_summary(summary: Any) -> str:
    """Table S2-style text: percentages as mean +- std (the mean alone for one repeat),
    correlations, RMSE."""
    lines = [
        f"{'dataset':<28} {'predictor':<10} {'n':>3} {'+-1%':>11} {'+-5%':>11} {'+-10%':>11} "
        f"{'spearman':>8} {'kendall':>8} {'rmse ms':>9} {'train s':>8}"
    ]
    for _, r in summary.iterrows():
        pct = [  # one repeat has no spread to show: not "+- 0.0"
            f"{100 * r[f'within_{b}pct_mean']:5.1f}"
            + (f"+-{100 * r[f'within_{b}pct_std']:4.1f}" if r["repeats"] > 1 else "")
            for b in (1, 5, 10)
        ]
        lines.append(
            f"{r['dataset']:<28} {r['predictor']:<10} {r['repeats']:>3} {pct[0]:>11} {pct[1]:>11} "
            f"{pct[2]:>11} {r['spearman_mean']:8.4f} {r['kendall_mean']:8.4f} "
            f"{r['rmse_ms_mean']:9.4f} {r['train_seconds_mean']:8.1f}"
        )
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> int:
    from latbench.predictors import make_predictor, metrics, repeat_seeds, split_rows, usable_rows
    from latbench.predictors.layerwise import layers_path

    check_out(args.out, probe=True)  # before the training, not after
    rows = usable_rows(args.dataset, args.data_home)
    split_seed, model_seed = repeat_seeds(args.seed, 0)
    sp = split_rows(rows, args.train, args.val, split_seed, args.unit)
    if args.predictor == "gcn":
        pred = make_predictor("gcn", seed=model_seed, verbose=args.verbose, **_gcn_options(args))
    elif args.predictor == "layerwise":
        pred = make_predictor(
            "layerwise", layers=args.layers or layers_path(args.dataset, args.data_home)
        )
    else:
        pred = make_predictor(args.predictor)
    ids, y = rows["arch_id"].to_numpy(), rows["latency_ms"].to_numpy()
    pred.fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val] if len(sp.val) else None,
             val_latency_ms=y[sp.val] if len(sp.val) else None)  # fmt: skip
    path = pred.save(args.out)
    m = metrics(y[sp.test], pred.predict(ids[sp.test]))
    print(
        f"wrote {path}; test ({len(sp.test)} models): "
        + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
    )
    return 0


def check_out(path: Path, probe: bool = False) -> None:
    """The one output policy (:func:`latbench.keys.check_output`): regular files only;
    with ``probe``, also that the folder can be made and written now."""
    from latbench.keys import check_output, check_writable
    from latbench.predictors import PredictorError

    try:
        check_writable(path) if probe else check_output(path, overwrite=True)
    except ValueError as exc:
        raise PredictorError(str(exc)) from None


def write_csv(df: Any, path: Path) -> None:
    """Write ``df`` to ``path`` atomically and say so."""
    from latbench.dataset import atomic_path

    check_out(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    print(f"wrote {len(df)} row(s) -> {path}")


def _arch_arg(text: str) -> int | str:
    """An ``arch_id`` when ``text`` is an (ASCII, maybe negative) integer, else the text."""
    digits = text.removeprefix("-")
    return int(text) if digits.isascii() and digits.isdigit() else text


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from latbench.predictors import PredictorError, arch_ids, load_predictor
    from latbench.space import format_arch, from_id

    if args.all == bool(args.archs):
        raise PredictorError(
            "give architectures or --all, not both" if args.all else "give architectures or --all"
        )
    if args.out:
        check_out(args.out, probe=True)  # before predicting, not after
    pred = load_predictor(args.model)
    # ASCII digits only: str.isdigit() also takes other scripts' digits, int() too
    archs = None if args.all else [_arch_arg(a) for a in args.archs]
    ids = arch_ids(archs)
    df = pd.DataFrame(
        {
            "arch_id": ids,
            "arch_str": [format_arch(from_id(int(i))) for i in ids],
            "predicted_ms": pred.predict(ids),
        }
    )
    if args.out:
        from latbench.dataset import atomic_path

        check_out(args.out)
        with atomic_path(args.out) as tmp:
            df.to_csv(tmp, index=False)
        print(f"wrote {len(df)} prediction(s) -> {args.out}")
    elif args.all:  # 15,626 lines would bury the terminal: a summary, the table with -o
        print(_summary(df, args.model))
    else:
        print(df.to_string(index=False))
    return 0


def _summary(df: Any, model: Path) -> str:
    ms = df["predicted_ms"].dropna()
    fastest = df.dropna(subset=["predicted_ms"]).nsmallest(5, "predicted_ms")
    return "\n".join(
        [
            f"{len(df)} architectures: {len(ms)} predicted,"
            f" {len(df) - len(ms)} invalid (no network, no latency)",
            f"predicted ms: min {ms.min():.4g}  median {ms.median():.4g}  max {ms.max():.4g}",
            "fastest 5:",
            fastest.to_string(index=False),
            f"all {len(df)} rows: latbench-predict predict {model} --all -o FILE.csv",
        ]
    )


@interruptible("latbench-predict")
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``latbench-predict``; returns the exit status."""
    from latbench.quiet import filter_native_stderr, quiet_tensorflow

    args = _parser().parse_args(argv)
    quiet_tensorflow(getattr(args, "verbose", False))
    if argv is None:  # a console script: the process is ours to filter
        filter_native_stderr(getattr(args, "verbose", False))
    from latbench.catalog import UnknownDatasetError
    from latbench.dataset import DatasetError
    from latbench.loader import DatasetNotFoundError
    from latbench.predictors import PredictorError
    from latbench.space import ArchError
    from latbench.terminal import one_line_warnings

    try:
        from latbench.loader import home_folder

        home_folder(getattr(args, "data_home", None))  # caches and imports are written there
    except ValueError as exc:
        print(f"latbench-predict: error: {exc}", file=sys.stderr)
        return 2
    try:
        from latbench.predictors.fewshot.commands import HANDLERS

        handlers = {"evaluate": _evaluate, "train": _train, "predict": _predict, **HANDLERS}
        with one_line_warnings("latbench-predict"):
            return handlers[args.command](args)
    except (
        PredictorError, UnknownDatasetError, DatasetNotFoundError, DatasetError, ArchError
    ) as exc:  # fmt: skip
        from latbench.terminal import safe_line

        print(f"latbench-predict: error: {safe_line(str(exc), 1000)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # TensorFlow or SciPy: the analysis extra
        from latbench.extras import missing_extra

        if (exc.name or "").startswith("latbench"):
            raise
        print(missing_extra(exc, "latbench-predict", "analysis"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # a reader gone is not an error (interruptible)
    except OSError as exc:  # a write refused late: a full disk, a folder turned read-only
        from latbench.terminal import safe_line

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"latbench-predict: error: {safe_line(where + (exc.strerror or str(exc)))}",
              file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
