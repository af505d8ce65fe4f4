"""``latbench-measure worker``: put this host's devices into a fleet's Ray cluster.

The worker checks the profile here (``--check``: runtime, device, one tiny model timed),
then replaces itself with ``ray start --address ADDRESS --block`` advertising one
custom resource per device (:mod:`.resources`). Hosts whose device is their own CPU, a
USB accelerator or an on-board GPU (the runner is *host bound*) advertise no CPUs for
builds by default, so no converter ever runs beside a timing; hosts that drive phones
over adb offer their CPUs to the fleet's builds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from latbench.harness.fleet import require_ray
from latbench.harness.fleet.resources import device_resource, make_device_id

__all__ = ["parse_cpus", "ray_start_command", "worker_main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="latbench-measure worker",
        description="Check a device profile here, then join a LatBench fleet (a Ray cluster) "
        "as a node advertising one resource per device. Stop it with Ctrl-C.",
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
    address: str, resources: dict[str, float], num_cpus: int, python: str = sys.executable
) -> list[str]:
    """The ``ray start`` command line that joins ``address`` with ``resources``."""
    return [
        python, "-m", "ray.scripts.scripts", "start", "--address", address,
        "--num-cpus", str(num_cpus), "--resources", json.dumps(resources, sort_keys=True),
        "--block", "--disable-usage-stats",
    ]  # fmt: skip


def worker_main(argv: list[str]) -> int:
    """Entry point of ``latbench-measure worker``; returns an exit status (or execs Ray)."""
    from latbench.harness.check import check_profile
    from latbench.harness.host import host_name
    from latbench.harness.profiles import load_profile
    from latbench.harness.runners import runner_class

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
    if not args.skip_check and not args.dry_run:
        import dataclasses

        for dev, serial in zip(devices, args.serial or [None], strict=True):
            prof = profile
            if serial:
                prof = dataclasses.replace(profile, options={**profile.options, "serial": serial})
            report = check_profile(prof)
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
    resources = {device_resource(profile.name, d): 1.0 for d in devices}
    cmd = ray_start_command(args.address, resources, build_cpus)
    print(f"devices: {', '.join(devices)} ({profile.name}); builds on {build_cpus} CPU(s)")
    shown = ["ray", *cmd[3:]]
    if cpus is not None:
        shown = ["taskset", "-c", args.pin, *shown]
    print(shlex.join(shown), flush=True)
    if args.dry_run:
        return 0
    if cpus is not None:
        os.sched_setaffinity(0, cpus)  # inherited by the raylet and every actor it starts
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(worker_main(sys.argv[1:]))
