"""``latbench-measure``: measure a LatBench dataset on a device profile.

latbench-measure --device cpu-onnxruntime                 # default 20-arch sample
latbench-measure --device cpu-tflite --limit 200 --runs 100 --group-size 10
latbench-measure --device cpu-tflite --all --shard 2/4    # one of four shards
latbench-measure merge OUT/key.shard*of4.parquet -o OUT/key.parquet
latbench-measure --list-devices
latbench-measure --device gpu-tf --check
latbench-measure build --device edgetpu --limit 200 --out ARTIFACTS   # on a build host
latbench-measure run --device edgetpu --artifacts ARTIFACTS           # on the device
latbench-measure worker --device cpu-onnxruntime --address HEAD:6379  # join a fleet
latbench-measure --device cpu-onnxruntime --all --fleet HEAD:6379     # time on the fleet
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from latbench.argparsing import OneLineParser, nonnegative_int, path_arg

__all__ = ["main"]

log = logging.getLogger("latbench.measure")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-measure",
        description="Build, time and record NAS-Bench-201 architectures on a device profile "
        "(docs/design.md §5 protocol: R = G x g timed runs, two-stage quartile filter). "
        "Rerun the same command after a crash to resume. "
        "Use 'latbench-measure merge --help' to combine shards, and 'latbench-measure "
        "build --help' / 'run --help' to build artifacts on one machine and time them "
        "on another.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--device",
        "-d",
        default="cpu-onnxruntime",
        help="device profile name or path to a profile .toml (default: cpu-onnxruntime)",
    )
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--all", action="store_true", help="all 15,625 architectures")
    sel.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="seeded random sample of N valid architectures (default: 20)",
    )
    sel.add_argument(
        "--archs",
        type=path_arg,
        metavar="FILE",
        help="file with one NAS-Bench-201 string (or arch_id) per line",
    )
    sel.add_argument(
        "--adapt",
        type=int,
        metavar="N",
        help="measure N architectures chosen by the few-shot adapter, then predict all "
        "15,625 into <key>.predicted.parquet (latbench.load_predicted)",
    )
    p.add_argument("--prior", type=path_arg, metavar="FILE",
                   help="with --adapt: prior from `latbench-predict pretrain` (default: shipped)")  # fmt: skip
    p.add_argument("--shard", metavar="I/N", help="measure shard I of N (split by pruned graph)")
    p.add_argument("--runs", "-R", type=int, help="timed runs per model (overrides the profile)")
    p.add_argument("--group-size", "-g", type=int, help="runs per group g (G = R / g)")
    p.add_argument("--warmup", type=int, help="warm-up runs per model (overrides the profile)")
    p.add_argument("--threads", type=int, help="runtime threads (overrides the profile)")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed for sampling, weights and inputs"
    )
    p.add_argument(
        "--out",
        "-o",
        type=path_arg,
        help="output folder (default: the LatBench data home, where latbench.load looks)",
    )
    p.add_argument("--key", help="dataset key (default: <host>-<profile>)")
    p.add_argument(
        "--layers",
        action="store_true",
        help="also time every distinct layer alone -> <key>.layers.parquet",
    )
    p.add_argument(
        "--build-workers",
        type=int,
        metavar="N",
        help="processes converting artifacts (default: cores - 1)",
    )
    p.add_argument(
        "--cache", type=path_arg, help="artifact cache folder (default: <data home>/cache)"
    )
    p.add_argument(
        "--builder",
        choices=("direct", "converter"),
        help="who writes .tflite artifacts: the direct schema builder (default, milliseconds) "
        "or the TF converter (reference, seconds); overrides [options] builder",
    )
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="time while later artifacts build (default only for non-host devices)",
    )
    p.add_argument(
        "--passes",
        type=int,
        default=1,
        metavar="P",
        help="time the plan in P interleaved passes of R/P runs each, so slow machine "
        "drift averages out per graph (default: 1)",
    )
    p.add_argument(
        "--flush-every",
        type=int,
        default=8,
        metavar="N",
        help="make results durable every N graphs (default: 8; also every 10 s)",
    )
    p.add_argument("--fresh", action="store_true", help="discard stored parts of an earlier run")
    p.add_argument(
        "--fleet",
        metavar="ADDRESS",
        help="time on every device of this profile in a Ray cluster (HEAD:6379, or auto "
        "for the cluster this machine is part of); see 'latbench-measure worker --help'",
    )
    p.add_argument(
        "--max-device-spread",
        type=float,
        metavar="F",
        help="with --fleet: fail when a device's speed on the anchor graphs is more than "
        "F (e.g. 0.05 = 5 %%) off the fleet median (default: warn beyond the noise floor)",
    )
    p.add_argument("--list-devices", action="store_true", help="list device profiles and exit")
    p.add_argument(
        "--check",
        action="store_true",
        help="probe the profile (runtime, device, one tiny model) and exit",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="keep TensorFlow's and LiteRT's log lines (silenced by default; "
        "also for merge, build, run)",
    )
    return p  # fmt: skip


def _merge_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-measure merge",
        description="Combine shard datasets of one profile and protocol into one dataset. "
        "Refuses to mix profiles, runtime versions, threads, precisions, protocols or "
        "selections, and a set with a shard missing or repeated (unless --allow-partial); "
        "warns when the shards come from hosts with different fingerprints.",
    )
    p.add_argument("shards", nargs="+", type=path_arg, help="shard .parquet files")
    p.add_argument("--out", "-o", type=path_arg, required=True, help="merged .parquet file")
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge even when shards are missing or repeated (the metadata lists those present)",
    )
    return p


def _list_devices() -> int:
    from latbench.harness.profiles import list_profiles

    profiles = list_profiles()
    width = max((len(p.name) for p in profiles), default=0)  # one column for every name
    for prof in profiles:
        print(prof.summary(width))
    return 0


def _check(profile) -> int:
    from latbench.harness.check import check_profile

    report = check_profile(profile)
    for line in report.lines:
        print(line)
    return 0 if report.ok else 1


def _merge(argv: list[str]) -> int:
    from latbench.harness.merge import merge_datasets

    args = _merge_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = merge_datasets(args.shards, args.out, allow_partial=args.allow_partial)
    from latbench.terminal import safe_line

    for w in caught:  # the shards' metadata (hosts, versions) is the files' word: escaped
        print(f"warning: {safe_line(str(w.message), 1000)}", file=sys.stderr)
    from latbench.dataset import read_dataset

    df = read_dataset(path)
    counts = df["status"].value_counts().to_dict()
    print(f"merged {len(args.shards)} shard(s) into {path}: {len(df)} rows {counts}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from latbench.harness.lock import hold, run_stem
    from latbench.harness.options import check_ranges, check_shard
    from latbench.harness.plan import make_plan, read_arch_file, select_archs
    from latbench.harness.profiles import load_profile
    from latbench.loader import home_folder

    check_ranges(args)
    out = home_folder(args.out)  # before anything is built or measured
    profile = load_profile(args.device)
    if args.runs is not None or args.group_size is not None or args.warmup is not None:
        profile = profile.with_protocol(
            runs=args.runs, group_size=args.group_size, warmup=args.warmup
        )
    if args.threads is not None:
        profile = profile.with_threads(args.threads)
    if args.builder is not None:
        profile = profile.with_options(builder=args.builder)
    if args.check:
        return _check(profile)

    archs = read_arch_file(args.archs) if args.archs else None
    adapt = None
    if args.adapt is not None:
        from latbench.harness.adapt import plan_adapt

        if args.shard:
            raise ValueError("--adapt measures a handful of architectures: drop --shard")
        adapt = plan_adapt(args.adapt, args.prior, args.seed)
        archs = adapt.archs
    elif args.prior is not None:
        raise ValueError("--prior needs --adapt N")
    selection = select_archs(all=args.all, limit=args.limit, archs=archs, seed=args.seed)
    shard = check_shard(args.shard) if args.shard else (1, 1)
    plan = make_plan(selection, shard)

    from latbench.harness.artifacts import ArtifactCache

    key = measurement_key(args.key, profile.name, out, into_home=args.out is None)
    cache = ArtifactCache(args.cache) if args.cache else ArtifactCache()
    with hold(out, run_stem(key, shard)):  # one writer per key, for the whole run
        return _measure_run(args, profile, plan, out, key, shard, cache, adapt)


def measurement_key(given: str | None, profile: str, out: Path, *, into_home: bool) -> str:
    """The dataset key of a measurement: ``given`` or ``<host>-<profile>``, checked
    (:func:`~latbench.keys.validate_key`): never a published dataset's key or alias; a
    bundled dataset's key into the data home only with a warning (how the bundled sets
    were made, but ``load`` keeps finding the bundled file)."""
    from latbench.harness.host import host_name
    from latbench.keys import names_bundled, validate_key

    key = validate_key(f"{host_name()}-{profile}" if given is None else given,
                       catalog_check=True)  # fmt: skip
    if into_home and names_bundled(key):
        log.warning(
            "the key %s is a bundled dataset's: latbench.load(%r) keeps returning the"
            " bundled file; yours will be %s (latbench.read_dataset reads it)",
            key, key, out / f"{key}.parquet",
        )  # fmt: skip
    return key


def _measure_run(args, profile, plan, out: Path, key: str, shard, cache, adapt=None) -> int:
    from latbench.harness.passes import measure_passes
    from latbench.harness.session import measure_layers

    fleet = _fleet_executor(args, out, key, shard, cache)
    summary = measure_passes(
        profile,
        plan,
        passes=args.passes,
        out_dir=out,
        key=key,
        seed=args.seed,
        cache=cache,
        build_workers=args.build_workers,
        prebuild=False if args.pipeline else None,
        fresh=args.fresh,
        flush_every=args.flush_every,  # check_ranges: 1 or more
        progress=not args.quiet,
        extra_metadata={"selection": _describe_selection(args)},
        **({"executor": fleet} if fleet is not None else {}),
    )
    for line in summary.lines():
        print(line)
    for line in fleet.report_lines() if fleet is not None else []:
        print(line)
    if fleet is None and summary.dataset is not None and summary.failed == 0:
        _discard_parts(out, summary.key, key, args.passes)
    if args.layers:
        path = measure_layers(
            profile, out_dir=out, key=key, seed=args.seed, cache=cache,
            build_workers=args.build_workers, progress=not args.quiet,
        )  # fmt: skip
        print(f"wrote {path}")
    if adapt is not None and summary.dataset is not None:
        from latbench.harness.adapt import summary_line
        from latbench.predicted import read_predicted

        pred = adapt.finish(out, key)
        print(summary_line(read_predicted(pred).attrs["metadata"]))
        print(f"wrote {pred}; load it with: latbench.load_predicted({key!r})")
    if summary.dataset is not None and shard == (1, 1) and args.out is None:
        from latbench.loader import dataset_path

        if dataset_path(key) == summary.dataset:
            print(f"load it with: latbench.load({key!r})")
        else:  # a bundled dataset's key: `load` returns the bundled file
            print(f"read it with: latbench.read_dataset({str(summary.dataset)!r})")
    return 0


def _discard_parts(out: Path, stem: str, key: str, passes: int) -> None:
    """A finished run's parts are all in its dataset and raw file: remove them (a rerun
    resumes from the dataset). Fleet runs keep theirs: the fleet's state lives there."""
    from latbench.harness.store import RunStore

    RunStore(out, stem, {}).discard_parts()
    if passes > 1:  # each pass's own parts, beside that pass's dataset
        work = Path(out) / f"{key}.passes"
        for p in range(1, passes + 1):
            pass_stem = stem.replace(key, f"{key}.pass{p}of{passes}", 1)
            RunStore(work, pass_stem, {}).discard_parts()


def _fleet_executor(args: argparse.Namespace, out: Path, key: str, shard, cache):
    if args.fleet is None:
        if args.max_device_spread is not None:
            raise ValueError("--max-device-spread needs --fleet")
        return None
    from latbench.harness.fleet import require_ray
    from latbench.harness.fleet.executor import FleetExecutor

    require_ray()
    from latbench.harness.lock import run_stem

    stem = run_stem(key, shard)
    if args.passes > 1:  # one state for every pass: a run anchors its devices once
        where = Path(out) / f"{key}.passes"
        suffix = stem[len(key) :]
        state = where / f"{stem}.fleet.json"
        parts = [where / f"{key}.pass{p}of{args.passes}{suffix}.parts"
                 for p in range(1, args.passes + 1)]  # fmt: skip
    else:
        state = Path(out) / f"{stem}.parts" / "fleet.json"
        parts = [state.parent]
    ex = FleetExecutor(
        args.fleet, cache_root=cache.root, state_path=state, parts_dirs=parts, fresh=args.fresh,
        max_device_spread=args.max_device_spread, progress=not args.quiet,
    )  # fmt: skip
    ex.connect()  # before any file is written: a wrong address leaves nothing behind
    return ex


def _describe_selection(args: argparse.Namespace) -> str:
    if args.all:
        return "all"
    if args.archs:
        return f"archs file {args.archs}"
    if args.adapt is not None:
        return f"few-shot design of {args.adapt} architectures, seed {args.seed}"
    return f"random sample of {args.limit or 'default'} valid architectures, seed {args.seed}"


def _unwind_on_termination() -> None:
    """Make SIGTERM and SIGHUP exit by unwinding, as Ctrl-C does. A tool the run started
    leads its own process group (:func:`~latbench.harness.tools.run_tool`), so a signal to
    ours (``kill %1``, ``timeout``, a closed terminal) no longer reaches it; unwinding
    kills it, and Python's default handling would not unwind."""
    import signal

    from latbench.argparsing import unwind_on_termination

    def stopped(signum: int) -> SystemExit:
        print(f"latbench-measure: stopped by {signal.Signals(signum).name}: results so far"
              " are stored; rerun the same command to resume", file=sys.stderr)  # fmt: skip
        return SystemExit(128 + signum)

    unwind_on_termination(stopped)


def _dispatch(argv: list[str]) -> int:
    """Run the subcommand or measurement ``argv`` names (errors propagate to :func:`main`)."""
    if argv[:1] == ["merge"]:
        return _merge(argv[1:])
    if argv[:1] == ["worker"]:
        from latbench.harness.fleet.worker import worker_main

        return worker_main(argv[1:])
    if argv[:1] in (["build"], ["run"]):
        from latbench.harness.split_cli import build_main, run_main

        return (build_main if argv[0] == "build" else run_main)(argv[1:])
    args = _parser().parse_args(argv)
    if args.quiet:
        logging.getLogger("latbench").setLevel(logging.WARNING)
    if args.list_devices:
        return _list_devices()
    return _run(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``latbench-measure``; returns the exit status."""
    from_console = argv is None  # a console script: the process is ours to filter
    argv = list(sys.argv[1:] if argv is None else argv)
    # TensorFlow's C++ and Python logging floods the terminal during conversion; users
    # can still ask for it (--verbose, or TF_CPP_MIN_LOG_LEVEL set themselves).
    from latbench.quiet import filter_native_stderr, quiet_tensorflow

    verbose = "--verbose" in argv
    if verbose and argv[:1] in (["merge"], ["worker"], ["build"], ["run"]):
        argv.remove("--verbose")  # theirs are separate parsers; the flag is global
    quiet_tensorflow(verbose)
    if from_console:
        filter_native_stderr(verbose)
        _unwind_on_termination()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from latbench.terminal import one_line_warnings, safe_line

    try:
        with one_line_warnings("latbench-measure"):
            return _dispatch(argv)
    except KeyboardInterrupt:
        print("interrupted: results so far are stored; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    except ModuleNotFoundError as exc:  # a runtime of the harness extra
        from latbench.extras import missing_extra

        if (exc.name or "").startswith("latbench"):
            raise
        print(missing_extra(exc, "latbench-measure"), file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"latbench-measure: error: {safe_line(str(msg), 1000)}", file=sys.stderr)
        if from_console and getattr(exc, "hard_exit", False):  # a fleet whose head is gone
            import os

            from latbench import quiet

            sys.stdout.flush()
            sys.stderr.flush()
            if quiet._filter is not None:  # the stderr filter's pump holds the line
                quiet._filter.close()
            os._exit(2)  # Ray's teardown would crash without its head; results are flushed
        return 2
    except OSError as exc:  # a full disk, permissions: what was flushed is kept
        from latbench.harness.errors import os_error_line

        print(f"latbench-measure: error: {os_error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
