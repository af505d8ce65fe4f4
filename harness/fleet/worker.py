"""``latbench-measure worker``: put this host's devices into a fleet's Ray cluster.

The worker checks what this *device host* needs for the profile (runtime, device, adb;
the head builds the artifacts, so not the build tools, except for formats built on the
device), checks that the head answers and is a Ray head whose cluster does not already
hold these device ids, then runs ``ray start --address ADDRESS --block`` advertising
one custom resource per device (:mod:`.resources`), retried when a port it picked was
taken meanwhile. SIGTERM or Ctrl-C stops the node. Hosts whose device is their own CPU, a
USB accelerator or an on-board GPU (the runner is *host bound*) advertise no CPUs for
builds by default, so no converter ever runs beside a timing; hosts that drive phones
over adb offer their CPUs to the fleet's builds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time

from latbench.argparsing import OneLineParser
from latbench.harness.fleet import FleetError, require_ray
from latbench.harness.fleet.resources import device_resource, devices_in, make_device_id

__all__ = ["parse_cpus", "ray_start_command", "worker_main"]

START_TRIES = 3
"""``ray start`` attempts when a port it picked is taken by another node starting."""

PASSED_THROUGH = (
    ("--temp-dir", str, "DIR", "Ray's temporary folder (two clusters on one host: one each)"),
    ("--node-ip-address", str, "IP", "the address other nodes reach this one at"),
    ("--node-manager-port", int, "PORT", "fixed raylet port (a firewall)"),
    ("--object-manager-port", int, "PORT", "fixed object manager port (a firewall)"),
    ("--min-worker-port", int, "PORT", "lowest port of Ray's worker processes"),
    ("--max-worker-port", int, "PORT", "highest port of Ray's worker processes"),
    ("--object-store-memory", int, "BYTES", "object store size"),
)
"""``ray start`` options the worker takes and passes on (anything after ``--`` too)."""


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="latbench-measure worker",
        description="Check that the head answers and what this device host needs for the "
        "profile (runtime, device, adb; the head builds), then join the LatBench fleet (a Ray "
        "cluster) as a node advertising one resource per device. Stop it with Ctrl-C or "
        "SIGTERM. Options after -- go to 'ray start' unchanged.",
    )
    p.add_argument("--device", "-d", required=True, help="device profile name or .toml path")
    p.add_argument("--address", required=True, help="the head node, HOST:PORT (e.g. 10.0.0.1:6379)")
    p.add_argument(
        "--serial",
        action="append",
        default=[],
        metavar="SERIAL",
        help="an Android device (adb serial) this host drives; repeat for several phones",
    )
    p.add_argument("--name", help="host part of the device ids (default: this host's name)")
    p.add_argument(
        "--build-cpus",
        type=int,
        metavar="N",
        help="CPUs offered to the fleet's artifact builds (default: 0 when the device is "
        "this host's CPU or is host bound, else all)",
    )
    p.add_argument("--pin", metavar="CPUS", help="pin the node to these cores, e.g. 2 or 0-3,6")
    p.add_argument("--threads", type=int, help="runtime threads (overrides the profile)")
    p.add_argument("--skip-check", action="store_true", help="join without running --check")
    p.add_argument(
        "--dry-run", action="store_true", help="print the ray start command, do not run it"
    )
    p.add_argument(
        "--head-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the head to answer (default: 5)",
    )
    ray_opts = p.add_argument_group("passed to ray start (more after --)")
    for flag, kind, var, text in PASSED_THROUGH:
        ray_opts.add_argument(flag, type=kind, metavar=var, help=text)
    return p  # fmt: skip


def parse_cpus(text: str) -> set[int]:
    """``"0-3,6"`` -> ``{0, 1, 2, 3, 6}``; :class:`ValueError` for anything else."""
    out: set[int] = set()
    try:
        for part in filter(None, text.split(",")):
            lo, _, hi = part.partition("-")
            out |= set(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"--pin {text!r}: expected cores like 2 or 0-3,6") from None
    if not out or min(out) < 0:
        raise ValueError(f"--pin {text!r}: expected cores like 2 or 0-3,6")
    return out


def ray_start_command(
    address: str, resources: dict[str, float], num_cpus: int, python: str = sys.executable,
    extra: list[str] | None = None,
) -> list[str]:  # fmt: skip
    """The ``ray start`` command line that joins ``address`` with ``resources``."""
    return [
        python, "-m", "ray.scripts.scripts", "start", "--address", address,
        "--num-cpus", str(num_cpus), "--resources", json.dumps(resources, sort_keys=True),
        *(extra or []), "--block", "--disable-usage-stats",
    ]  # fmt: skip


def _passed_through(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, _, _, _ in PASSED_THROUGH:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            out += [flag, str(value)]
    return out


def _check_head(address: str, timeout_s: float, profile: str, devices: list[str]) -> None:
    """:class:`FleetError` when the head is not there, not Ray, or holds these devices."""
    from latbench.harness.fleet.head import head_nodes

    live = devices_in(head_nodes(address, timeout_s), profile)
    taken = [d for d in devices if d in live]
    if taken:
        which = ", ".join(f"{d} (node {live[d]['node_ip']})" for d in taken)
        raise FleetError(
            f"device id {which} is already in the fleet at {address}; give this host "
            "another --name (device ids must be unique), or stop the other worker"
        )


def _role_stages(profile) -> tuple[str, ...]:
    """What a device host checks: the run side, plus builds for formats built on the device."""
    from latbench.harness.fleet.device import DEVICE_BUILT

    return ("build", "run") if profile.artifact_format.startswith(DEVICE_BUILT) else ("run",)


def _stop_tree(pid: int) -> None:
    """SIGTERM ``ray start`` and every process it started (raylet, agents), as ``ray stop``
    does for a host, but for this node only."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()


def _start(cmd: list[str], tries: int = START_TRIES) -> int:
    """Run ``ray start --block`` (its output shown); retry a start that lost a port race.

    SIGTERM and SIGINT are passed to it, so stopping the worker stops the node.
    """
    for attempt in range(1, tries + 1):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def forward(_signum, _frame, proc=proc):
            _stop_tree(proc.pid)

        old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        clash = False
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                clash = clash or "already in use" in line.lower()
                print(line, end="", flush=True)
            rc = proc.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if rc == 0 or not clash or attempt == tries:
            if clash:
                print(f"latbench-measure worker: ray start failed {tries} times on a port "
                      "already in use; fix the ports (--node-manager-port ...) or retry",
                      file=sys.stderr)  # fmt: skip
            return 0 if rc in (0, -signal.SIGTERM, -signal.SIGINT) else 2
        wait = random.uniform(1.0, 3.0) * attempt  # noqa: S311 - spreading retries, not secrets
        print(f"latbench-measure worker: a port was taken while starting; retrying in "
              f"{wait:.1f} s ({attempt}/{tries})", file=sys.stderr)  # fmt: skip
        time.sleep(wait)
    return 2


def worker_main(argv: list[str]) -> int:
    """Entry point of ``latbench-measure worker``; returns an exit status (or execs Ray)."""
    from latbench.harness.check import check_profile
    from latbench.harness.host import host_name
    from latbench.harness.profiles import load_profile
    from latbench.harness.runners import runner_class

    extra: list[str] = []
    if "--" in argv:  # the rest goes to ray start unchanged
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    require_ray()
    profile = load_profile(args.device)
    if args.threads is not None:
        profile = profile.with_threads(args.threads)
    if args.build_cpus is not None and args.build_cpus < 0:
        raise ValueError(f"--build-cpus must be >= 0, got {args.build_cpus}")
    if ":" not in args.address and args.address != "auto":
        raise ValueError(f"--address {args.address!r}: expected HOST:PORT of the head node")
    cpus = parse_cpus(args.pin) if args.pin else None
    if cpus is not None and not cpus <= os.sched_getaffinity(0):
        raise ValueError(f"--pin {args.pin}: this host has cores {sorted(os.sched_getaffinity(0))}")
    host = args.name or host_name()
    slots = [f"serial={s}" for s in args.serial] or ["0"]
    devices = [make_device_id(host, slot) for slot in slots]
    if not args.head_timeout > 0:
        raise ValueError(f"--head-timeout must be > 0, got {args.head_timeout}")
    resource_names = [device_resource(profile.name, d) for d in devices]
    if not args.dry_run:  # before the check: a dead head fails in seconds, not minutes
        _check_head(args.address, args.head_timeout, profile.name, devices)
    if not args.skip_check and not args.dry_run:
        import dataclasses

        for dev, serial in zip(devices, args.serial or [None], strict=True):
            prof = profile
            if serial:
                prof = dataclasses.replace(profile, options={**profile.options, "serial": serial})
            report = check_profile(prof, stages=_role_stages(prof))
            for line in report.lines:
                print(line)
            if not report.ok:
                print(f"latbench-measure worker: device {dev} failed --check; not joining",
                      file=sys.stderr)  # fmt: skip
                return 2
    host_bound = getattr(runner_class(profile.runtime), "host_bound", profile.target == "cpu")
    if args.build_cpus is not None:
        build_cpus = args.build_cpus
    else:
        build_cpus = 0 if host_bound else len(cpus or os.sched_getaffinity(0))
    resources = {r: 1.0 for r in resource_names}
    cmd = ray_start_command(
        args.address, resources, build_cpus, extra=[*_passed_through(args), *extra]
    )
    print(f"devices: {', '.join(devices)} ({profile.name}); builds on {build_cpus} CPU(s)")
    shown = ["ray", *cmd[3:]]
    if cpus is not None:
        shown = ["taskset", "-c", args.pin, *shown]
    print(shlex.join(shown), flush=True)
    if args.dry_run:
        return 0
    if cpus is not None:
        os.sched_setaffinity(0, cpus)  # inherited by the raylet and every actor it starts
    return _start(cmd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(worker_main(sys.argv[1:]))
