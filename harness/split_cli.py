"""``latbench-measure build`` and ``latbench-measure run``: the two halves of a measurement.

latbench-measure build --device edgetpu --limit 200 --out artifacts/   # x86-64 host
latbench-measure run   --device edgetpu --artifacts artifacts/         # Coral board
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from latbench.argparsing import OneLineParser, nonnegative_int, path_arg
from latbench.terminal import safe_line

__all__ = ["build_main", "run_main"]

log = logging.getLogger("latbench.measure")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", "-d", required=True, help="device profile name or .toml path")
    p.add_argument("--check", action="store_true",
                   help="only check this side's tools / runtime and device, then exit")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--layers", action="store_true", help="also every distinct layer alone")


def _build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-measure build",
        description="Build every artifact a profile needs, with a manifest (graph keys, "
        "files, SHA-256, toolchain versions), for 'latbench-measure run' on the device.",
    )
    _common(p)
    p.add_argument("--out", "-o", type=path_arg, required=True, help="artifacts folder")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--all", action="store_true", help="all 15,625 architectures")
    sel.add_argument("--limit", type=int, metavar="N", help="seeded sample of N valid archs")
    sel.add_argument("--archs", type=path_arg, metavar="FILE", help="one arch string or id a line")
    p.add_argument("--shard", metavar="I/N", help="build shard I of N")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed for sampling, weights and inputs"
    )
    p.add_argument("--build-workers", type=int, metavar="N", help="converter processes")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-measure run",
        description="Time the artifacts 'latbench-measure build' made (checksums verified) "
        "and write the dataset. Rerun the same command to resume.",
    )
    _common(p)
    p.add_argument("--artifacts", "-a", type=path_arg, required=True, help="artifacts folder")
    p.add_argument("--out", "-o", type=path_arg, help="output folder (default: LatBench data home)")
    p.add_argument("--key", help="dataset key (default: <host>-<profile>)")
    p.add_argument("--runs", "-R", type=int, help="timed runs per model")
    p.add_argument("--group-size", "-g", type=int, help="runs per group g")
    p.add_argument("--warmup", type=int, help="warm-up runs per model")
    p.add_argument("--threads", type=int, help="runtime threads")
    p.add_argument("--flush-every", type=int, default=8, metavar="N")
    p.add_argument("--fresh", action="store_true", help="discard stored parts of an earlier run")
    return p


def _print_check(report) -> int:
    for line in report.lines:
        print(line)
    return 0 if report.ok else 1


def build_main(argv: list[str]) -> int:
    """``latbench-measure build``; returns the exit status."""
    from latbench.harness.check import check_profile
    from latbench.harness.manifest import build_artifacts
    from latbench.harness.options import check_ranges, check_shard
    from latbench.harness.plan import make_plan, read_arch_file, select_archs
    from latbench.harness.profiles import load_profile

    args = _build_parser().parse_args(argv)
    check_ranges(args)
    profile = load_profile(args.device)
    if args.check:
        return _print_check(check_profile(profile, stages=("build",)))
    archs = read_arch_file(args.archs) if args.archs else None
    selection = select_archs(all=args.all, limit=args.limit, archs=archs, seed=args.seed)
    plan = make_plan(selection, check_shard(args.shard) if args.shard else (1, 1))
    if args.all:
        desc = "all"
    elif args.archs:
        desc = f"archs file {args.archs}"
    else:
        desc = f"random sample of {args.limit or 'default'} valid architectures, seed {args.seed}"
    counts = {"ok": 0, "failed": 0}

    def on_built(entry: dict) -> None:
        counts[entry["status"]] += 1
        if entry["status"] == "failed":
            log.warning("%s %s: %s", entry["kind"], entry["key"], safe_line(entry["error"], 1000))
        elif not args.quiet:
            log.info("built %s (%d bytes)", entry["file"], entry["bytes"])

    path = build_artifacts(
        profile, plan, args.out, selection=[a.id for a in selection], seed=args.seed,
        workers=args.build_workers, layers=args.layers, description=desc, on_built=on_built,
    )  # fmt: skip
    print(f"built {counts['ok']} artifacts ({counts['failed']} failed) for {profile.name}; "
          f"manifest {path}")  # fmt: skip
    print(f"time them on the device with: latbench-measure run --device {profile.name} "
          f"--artifacts {args.out}")  # fmt: skip
    return 0


def run_main(argv: list[str]) -> int:
    """``latbench-measure run``; returns the exit status."""
    from latbench.harness.check import check_profile
    from latbench.harness.lock import hold, run_stem
    from latbench.harness.manifest import ManifestArtifacts
    from latbench.harness.options import check_ranges
    from latbench.harness.plan import make_plan
    from latbench.harness.profiles import load_profile
    from latbench.loader import data_home
    from latbench.space import Arch

    args = _run_parser().parse_args(argv)
    check_ranges(args)
    profile = load_profile(args.device)
    if args.runs is not None or args.group_size is not None or args.warmup is not None:
        profile = profile.with_protocol(args.runs, args.group_size, args.warmup)
    if args.threads is not None:
        profile = profile.with_threads(args.threads)
    source = ManifestArtifacts(args.artifacts)
    source.check_profile(profile)
    if args.check:
        return _print_check(
            check_profile(profile, artifact=source.first_ok(), stages=("run",), seed=source.seed)
        )
    ids, shard = source.selection()
    plan = make_plan([Arch.parse(i) for i in ids], shard)
    out = args.out or data_home()
    from latbench.harness.cli import measurement_key

    key = measurement_key(args.key, profile.name, out, into_home=args.out is None)
    with hold(out, run_stem(key, plan.shard)):  # one writer per key, for the whole run
        return _run_locked(args, profile, plan, source, out, key)


def _run_locked(args: argparse.Namespace, profile, plan, source, out: Path, key: str) -> int:
    from latbench.harness.session import measure, measure_layers

    summary = measure(
        profile, plan, out_dir=out, key=key, seed=source.seed, cache=source, fresh=args.fresh,
        flush_every=max(1, args.flush_every), progress=not args.quiet,
        extra_metadata={"selection": source.data["selection"].get("description", ""),
                        "build": source.provenance()},
    )  # fmt: skip
    for line in summary.lines():
        print(line)
    if args.layers:
        path = measure_layers(profile, out_dir=out, key=key, seed=source.seed, cache=source,
                              progress=not args.quiet)  # fmt: skip
        print(f"wrote {path}")
    if source.rejected:  # never a quiet success when artifacts were refused
        print(
            f"latbench-measure run: error: {len(source.rejected)} artifact(s) failed"
            f" verification and were recorded as failed, not timed (first: "
            f"{source.rejected[0][:300]}); rebuild them with 'latbench-measure build'",
            file=sys.stderr,
        )
        return 2
    return 0
