"""The driver side of a fleet run: :class:`FleetExecutor`, the Ray executor of the seam.

It plugs into :func:`latbench.harness.session.measure` like the local executor: the
session plans what is left, this class builds and times, the session records every
result in the one crash-safe store as it streams back. Scheduling follows the TVM RPC
tracker: devices register (a worker node's custom resources), each has a short queue
(``depth`` calls in flight, so a device never waits for the driver), and the graphs
of a device that drops out are re-queued on the others with their artifacts sent
again (never a reference whose copy may have died with the node). Builds are Ray
tasks of one remote function with retries. A graph that fails on one device is tried
on another; on two, it is recorded as failed with both reasons.

Every invocation is a *run* with its own id; each device that takes part times the
anchor graphs in it, and each row records the run it was timed in (``fleet_run``),
whose anchor ratio the metadata holds (:mod:`.anchors`).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import logging
import statistics
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.fleet import FleetError, require_ray
from latbench.harness.fleet.anchors import (
    ANCHOR_ARCHS,
    SpreadCheck,
    anchor_work,
    check_spread,
    moved_ratios,
    relative_spread,
)
from latbench.harness.fleet.device import DEVICE_BUILT, DeviceWorker, build_bytes, slowdown_for
from latbench.harness.fleet.head import HeadWatch, head_nodes, split_address
from latbench.harness.fleet.progress import FleetProgress
from latbench.harness.fleet.resources import device_resource, devices_in, duplicate_devices
from latbench.harness.fleet.state import read_state
from latbench.harness.plan import GraphWork
from latbench.harness.store import GraphResult

__all__ = ["FleetExecutor", "HeadLost"]

log = logging.getLogger("latbench.measure")

MAX_ATTEMPTS = 2
"""Devices a failing graph is tried on before it is recorded as failed."""

WAIT_LOG_S = 10.0
"""How often a driver waiting for devices says so."""


class HeadLost(FleetError):
    """The Ray head stopped answering mid-run."""

    hard_exit = True
    """Ray's C++ core crashes (SIGSEGV) in interpreter teardown once its head is gone, so
    a console process that caught this should end with ``os._exit`` after saying why."""


@dataclass
class _Device:
    id: str
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    inflight: set[Any] = field(default_factory=set)
    anchors_ms: dict[str, float] = field(default_factory=dict)
    anchor_spread: list[float] = field(default_factory=list)
    node_ip: str | None = None
    node_id: str | None = None
    run: int = 0
    """The run id its rows carry: the invocation's, or a new one when it rejoined mid-run."""
    anchors_left: int = 0
    anchored: bool = False
    alive: bool = True
    lost: str | None = None

    @property
    def ready(self) -> bool:
        return self.alive and self.anchored and self.anchors_left == 0

    @property
    def machine(self) -> str | None:
        """The host the device's node runs on (its name: two nodes of one host may differ in
        address), for devices that must take turns on the anchors."""
        return self.info.get("node") or self.node_ip


class FleetExecutor:
    """Builds on any node and times on every device of ``profile`` in a Ray cluster.

    ``address`` is a Ray address (``host:6379``, ``ray://...``) or ``auto`` (the cluster
    this machine is part of). ``state_path`` (a JSON file beside the store's parts)
    keeps the runs of the campaign (devices, anchor timings), so a resumed run checks
    every device of every run. ``parts_dirs`` (default: the state file's folder) hold
    the parts whose rows ``graphs_timed`` counts. ``max_device_spread`` turns the anchor
    check's warning into a :class:`FleetError`. A process already connected to Ray
    (``ray.init`` done) keeps that connection. :attr:`affinity` (graph key -> device
    id) makes a graph go to that device while it is alive (interleaved passes).
    """

    def __init__(
        self,
        address: str,
        *,
        cache_root: str | Path | None = None,
        state_path: str | Path | None = None,
        parts_dirs: Sequence[str | Path] | None = None,
        fresh: bool = False,
        max_device_spread: float | None = None,
        depth: int = 2,
        device_wait_s: float = 60.0,
        progress: bool = True,
        anchors: Sequence[str] = ANCHOR_ARCHS,
    ) -> None:
        if max_device_spread is not None and not max_device_spread > 0:
            raise ValueError(f"--max-device-spread must be > 0, got {max_device_spread}")
        self.address = address
        self.cache_root = str(cache_root) if cache_root is not None else None
        self.state_path = Path(state_path) if state_path is not None else None
        if parts_dirs is None:
            parts_dirs = [self.state_path.parent] if self.state_path is not None else []
        self.parts_dirs = [Path(p) for p in parts_dirs]
        self.max_device_spread = max_device_spread
        self.anchor_archs = tuple(anchors)
        if not self.anchor_archs:
            raise ValueError("a fleet needs at least one anchor graph")
        self.depth, self.device_wait_s = max(1, depth), device_wait_s
        self.build_s = 0.0  # builds overlap timing on a fleet
        self.setup_s = 0.0
        self.progress = FleetProgress(progress)
        self.devices: dict[str, _Device] = {}
        self.check: SpreadCheck | None = None
        self.affinity: dict[str, str] = {}
        self.resolved: str | None = None
        """The head's address as Ray resolved it (``auto`` included)."""
        self._lost_lines: list[str] = []
        self._spread_msgs: dict[Any, str] = {}
        self._ray: Any = None
        self._owns_ray = False
        self._profile: Any = None
        self._watch: HeadWatch | None = None
        self._head_lost = False
        self._build: Any = None
        self._actor: Any = None
        self._yielded = 0
        self._pending: dict[Any, tuple[_Device, GraphWork, str]] = {}
        self._queue: deque[GraphWork] = deque()
        self._artifacts: dict[str, Any] = {}
        self._dups_warned: set[str] = set()
        self._state: dict[str, Any] = {"runs": {}, "devices": {}}
        if self.state_path is not None and self.state_path.exists() and not fresh:
            self._state = read_state(self.state_path)
        elif fresh and self.state_path is not None:
            self.state_path.unlink(missing_ok=True)
        self.run_id = 1 + max((int(r) for r in self._state["runs"]), default=0)
        """This invocation's run id (``fleet_run`` of the rows it times)."""
        self._my_runs = {self.run_id}

    # -- cluster --------------------------------------------------------------------

    def connect(self) -> Any:
        """Join the cluster (idempotent); :class:`FleetError` in seconds when it is not there."""
        if self._ray is not None:
            return self._ray
        ray = require_ray()
        if not ray.is_initialized():
            if split_address(self.address) is not None:
                head_nodes(self.address)  # a TCP connect and one GCS call, with timeouts
            try:
                ray.init(
                    address=self.address, logging_level=logging.WARNING, log_to_driver=False,
                    namespace="latbench",
                )  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FleetError(
                    f"cannot join the Ray cluster at {self.address!r} ({_first_line(exc)}); "
                    "start its head with 'ray start --head --port 6379' and pass "
                    "--fleet HEAD_IP:6379 (or --fleet auto on a node of the cluster)"
                ) from None
            self._owns_ray = True
        self._ray = ray
        try:
            self.resolved = ray.get_runtime_context().gcs_address
        except Exception:  # an older Ray: the address given is all we know
            self.resolved = self.address
        log.info(
            "fleet: Ray cluster at %s%s", self.resolved,
            " (resolved from --fleet auto)" if self.address == "auto" else "",
        )  # fmt: skip
        self._watch = HeadWatch(self.resolved or self.address).start()
        return ray

    def _check_head(self) -> None:
        """:class:`HeadLost` when the head stopped answering (the watch, or one connect now)."""
        why = self._watch.lost if self._watch is not None else None
        hp = split_address(self.resolved or self.address)
        if why is None and hp is not None:
            import socket

            try:
                socket.create_connection(hp, timeout=2.0).close()
            except OSError as exc:
                why = exc.strerror or str(exc)
        if why is not None:
            self._head_lost = True
            where = ", ".join(str(p) for p in self.parts_dirs) or "the store"
            raise HeadLost(
                f"the Ray head at {self.resolved or self.address} was lost mid-run ({why}); "
                f"the {self._yielded} results of this run received before it and every "
                f"earlier one are stored in {where}; start the head and the workers again "
                "and rerun the same command to resume"
            )

    def _nodes(self) -> list[dict[str, Any]]:
        self._check_head()  # a GCS call to a dead head blocks until Ray ends the process
        return self._ray.nodes()

    def _discover(self, profile: Any) -> None:
        """Start an actor on every device of ``profile`` not yet known; drop vanished ones."""
        nodes = self._nodes()
        seen = devices_in(nodes, profile.name)
        for dev_id, ips in duplicate_devices(nodes, profile.name).items():
            if dev_id not in self._dups_warned:
                self._dups_warned.add(dev_id)
                log.warning(
                    "fleet: device id %s is advertised by %d nodes (%s); only one of them "
                    "times: restart the others' workers with another --name",
                    dev_id, len(ips), ", ".join(ips),
                )  # fmt: skip
        for dev_id, dev in self.devices.items():
            if dev.alive and dev_id not in seen:
                self._lose(dev, "its node left the cluster")
        for dev_id in sorted(seen):
            old = self.devices.get(dev_id)
            if old is not None and (old.alive or seen[dev_id].get("node_id") == old.node_id):
                continue  # known, or the node it was lost on (a dead actor stays dead)
            run = self.run_id if old is None else self._new_run(f"device {dev_id} rejoined")
            if old is not None:
                self.progress.device(dev_id).lost = None
            actor = self._actor.options(
                num_cpus=0, max_restarts=0, max_task_retries=0,
                resources={device_resource(profile.name, dev_id): 1},
            ).remote(profile, dev_id, self.cache_root, slowdown_for(dev_id))  # fmt: skip
            self.devices[dev_id] = _Device(
                dev_id, actor, node_ip=seen[dev_id].get("node_ip"),
                node_id=seen[dev_id].get("node_id"), run=run,
            )  # fmt: skip
            log.info(
                "fleet: device %s %s (%s)%s", dev_id, "joined" if old is None else "rejoined",
                seen[dev_id].get("node_ip"), "" if old is None else f"; its rows are run {run}",
            )  # fmt: skip

    def _new_run(self, why: str) -> int:
        """A run id for a device that rejoined mid-run: its new anchors are its own session."""
        known = [int(r) for r in self._state["runs"]] + [d.run for d in self.devices.values()]
        run = max([self.run_id, *known]) + 1
        self._state["runs"][str(run)] = {
            "started": _now(), "devices": {}, "within": self.run_id, "why": why,
        }  # fmt: skip
        self._my_runs.add(run)
        return run

    def _lose(self, dev: _Device, why: str) -> None:
        """Mark ``dev`` gone; its queued graphs go back to the queue, their artifacts re-sent."""
        if not dev.alive:
            return
        dev.alive, dev.lost, dev.anchors_left = False, why, 0
        self.progress.device(dev.id).lost = why
        log.warning("fleet: device %s lost (%s); its graphs go to the others", dev.id, why)
        self._lost_lines.append(f"device {dev.id} lost: {why}")
        for ref in list(dev.inflight):
            dev.inflight.discard(ref)
            entry = self._pending.pop(ref, None)
            if entry is not None and entry[2] == "work":
                self._requeue(dev, entry[1])
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=False)
        with contextlib.suppress(Exception):
            self._ray.kill(dev.actor, no_restart=True)
        self._sync_state()

    def _requeue(self, dev: _Device, w: GraphWork) -> None:
        # A new reference: the old one's only copy may have been on the dead node.
        self._artifacts.pop(w.key, None)
        self._queue.appendleft(w)
        self.progress.device(dev.id).requeued += 1

    def _wait_for_a_device(self, profile: Any, why: str) -> None:
        deadline = time.monotonic() + self.device_wait_s
        where = self.resolved or self.address
        log.warning(
            "fleet: %s; waiting up to %.0f s for a device of profile %r to join the Ray "
            "cluster at %s", why, self.device_wait_s, profile.name, where,
        )  # fmt: skip
        said = time.monotonic()
        while not any(d.alive for d in self.devices.values()):
            if time.monotonic() > deadline:
                raise FleetError(
                    f"no device of profile {profile.name!r} in the Ray cluster at {where!r} "
                    f"after {self.device_wait_s:.0f} s ({why}); results so far are stored; on "
                    f"each device host run: latbench-measure worker --device {profile.name} "
                    f"--address {where}, then rerun the same command"
                )
            if time.monotonic() - said > WAIT_LOG_S:
                said = time.monotonic()
                log.warning(
                    "fleet: still waiting for a device of profile %r (%.0f s left)",
                    profile.name, deadline - said,
                )  # fmt: skip
            time.sleep(1.0)
            self._discover(profile)

    # -- the executor seam ----------------------------------------------------------

    def run(self, profile: Any, work: Sequence[GraphWork], seed: int) -> Iterator[GraphResult]:
        from latbench.harness.artifacts import ArtifactCache, artifact_spec

        self._profile = profile
        if not work:  # a finished campaign rerun: nothing to start devices for
            return
        ray = self.connect()
        if self._build is None:  # one remote function and one actor class per campaign
            self._build = ray.remote(build_bytes).options(num_cpus=1, max_retries=3)
            self._actor = ray.remote(DeviceWorker)
        fmt, options = artifact_spec(profile)
        local = ArtifactCache(self.cache_root) if self.cache_root else ArtifactCache()
        device_built = fmt.startswith(DEVICE_BUILT)
        self._check_head()
        if not device_built and not ray.cluster_resources().get("CPU"):
            raise FleetError(
                "no node of the Ray cluster offers CPUs for artifact builds; start the head "
                "with CPUs (ray start --head --num-cpus N) or a worker with --build-cpus N"
            )
        t0 = time.perf_counter()
        self._state["runs"].setdefault(
            str(self.run_id),
            {"started": _now(), "devices": {}},
        )  # fmt: skip
        self._discover(profile)
        if not any(d.alive for d in self.devices.values()):
            self._wait_for_a_device(profile, "no device has joined yet")

        self._artifacts = artifacts = {}

        def artifact(w: GraphWork) -> Any:
            if device_built:
                return None
            ref = artifacts.get(w.key)
            if ref is None:
                hit = local.get(w.graph, fmt, seed, options)
                if hit is not None:
                    ref = ray.put(hit.read_bytes())
                else:
                    ref = self._build.remote(w.graph, fmt, seed, options, self.cache_root)
                artifacts[w.key] = ref
            return ref

        self._pending = pending = {}

        def submit(dev: _Device, w: GraphWork, kind: str) -> None:
            ref = dev.actor.time.remote(w, artifact(w), profile.protocol, seed, fmt, options)
            dev.inflight.add(ref)
            pending[ref] = (dev, w, kind)
            if kind == "work":
                self.progress.started(dev.id)

        anchors = anchor_work(self.anchor_archs)
        try:  # built before any device times them, so no build competes with an anchor
            ray.get([artifact(a) for a in anchors])
        except ray.exceptions.RayError as exc:
            self._check_head()
            raise FleetError(f"the anchor graphs do not build: {_first_line(exc)}") from None

        anchor_q: dict[Any, deque[tuple[_Device, GraphWork]]] = {}

        def start_anchors() -> None:
            # Devices that share a host (CPU, USB bus, thermals) take turns, one anchor
            # at a time and interleaved (a on d1, a on d2, b on d1, ...), so a change of
            # the host's load hits them alike; devices on different hosts run in parallel.
            # Nobody times while another device's runtime still loads (imports are heavy).
            for dev in self.devices.values():
                if dev.alive and not dev.info:
                    dev.info = {"pending": True}
                    info_ref = dev.actor.describe.remote()
                    pending[info_ref] = (dev, anchors[0], "describe")
                    dev.inflight.add(info_ref)
            if any(d.alive and d.info.get("pending") for d in self.devices.values()):
                return
            fresh = [d for d in self.devices.values() if d.alive and not d.anchored]
            for a in anchors:
                for dev in fresh:
                    anchor_q.setdefault(dev.machine, deque()).append((dev, a))
            for dev in fresh:
                dev.anchored, dev.anchors_left = True, len(anchors)
            busy = {
                dev.machine for dev, _, kind in pending.values() if kind == "anchor" and dev.alive
            }
            for host, q in anchor_q.items():
                while q and not q[0][0].alive:
                    q.popleft()
                if q and host not in busy:
                    dev, a = q.popleft()
                    submit(dev, a, "anchor")

        self._queue = queue = deque(work)
        failures: dict[str, list[tuple[str, str]]] = {}
        finished: set[str] = set()
        anchored_once = False
        last_poll = time.monotonic()
        start_anchors()
        window = lambda: self.depth * max(1, sum(d.alive for d in self.devices.values())) + 2  # noqa: E731

        while queue or pending:
            if self._watch is not None and self._watch.lost:
                self._check_head()
            if time.monotonic() - last_poll > 5.0:
                last_poll = time.monotonic()
                self._save_state()
                self._discover(profile)
            start_anchors()
            initial_done = all(d.ready or not d.alive for d in self.devices.values())
            if initial_done and not anchored_once and self.devices:
                anchored_once = True
                self._check_anchors()
                if not self.setup_s:
                    self.setup_s = time.perf_counter() - t0
            if anchored_once:
                for w in list(queue)[: window()]:
                    artifact(w)  # builds run ahead of the devices
                for dev in self.devices.values():
                    while dev.ready and len(dev.inflight) < self.depth and queue:
                        w = self._take(dev, failures)
                        if w is None:
                            break
                        submit(dev, w, "work")
                alive = {d.id for d in self.devices.values() if d.alive}
                for w in list(queue):  # every live device already failed it: give up
                    tried = {d for d, _ in failures.get(w.key, ())}
                    if alive and alive <= tried:
                        queue.remove(w)
                        finished.add(w.key)
                        self._yielded += 1
                        yield _failed(w, failures[w.key], self._run_of(failures[w.key]))
            if not pending:
                if queue and not any(d.alive for d in self.devices.values()):
                    self._wait_for_a_device(
                        profile, f"no device left with {len(queue)} graphs to go"
                    )
                    start_anchors()
                    continue
                if queue and anchored_once and not any(d.ready for d in self.devices.values()):
                    time.sleep(0.5)
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref not in pending:  # its device was lost meanwhile: already re-queued
                    continue
                dev, w, kind = pending.pop(ref)
                dev.inflight.discard(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:
                    result = self._on_error(exc, dev, w, kind)
                    if result is not None and w.key not in finished:
                        finished.add(w.key)
                        artifacts.pop(w.key, None)
                        self._yielded += 1
                        yield result
                    continue
                if kind == "describe":
                    dev.info = out
                    continue
                ok = out["status"] == "ok"
                inference = float(np.sum(out["raw_ns"])) / 1e9 if ok else 0.0
                if kind == "anchor":
                    dev.anchors_left -= 1
                    if ok:
                        dev.anchors_ms[w.key] = out["latency_ms"]
                        dev.anchor_spread.append(
                            relative_spread(out["raw_ns"], profile.protocol.group_size)
                        )
                    if dev.anchors_left == 0 and anchored_once:
                        self._check_anchors()  # a device that joined late
                    continue
                self.progress.done(dev.id, ok, out["call_s"], inference)
                if w.key in finished:
                    continue
                if ok:
                    finished.add(w.key)
                    artifacts.pop(w.key, None)
                    self.affinity.setdefault(w.key, dev.id)
                    self._yielded += 1
                    yield _result(out, dev.run)
                    continue
                failures.setdefault(w.key, []).append((dev.id, out["error"]))
                others = {d.id for d in self.devices.values() if d.alive} - {
                    d for d, _ in failures[w.key]
                }
                if len(failures[w.key]) >= MAX_ATTEMPTS or not others:
                    finished.add(w.key)
                    artifacts.pop(w.key, None)
                    self._yielded += 1
                    yield _failed(w, failures[w.key], self._run_of(failures[w.key]))
                else:
                    queue.appendleft(w)
        self._save_state()

    def _take(self, dev: _Device, failures: dict) -> GraphWork | None:
        """The first queued graph for ``dev`` (removed from the queue), or None.

        Skips graphs that failed on ``dev`` and graphs whose :attr:`affinity` names
        another device that is still alive.
        """
        alive = {d.id for d in self.devices.values() if d.alive}
        for i, w in enumerate(self._queue):
            if any(d == dev.id for d, _ in failures.get(w.key, ())):
                continue
            owner = self.affinity.get(w.key)
            if owner is not None and owner != dev.id and owner in alive:
                continue
            del self._queue[i]
            return w
        return None

    def _on_error(
        self, exc: Exception, dev: _Device, w: GraphWork, kind: str
    ) -> GraphResult | None:
        ray = self._ray
        build = self._artifacts.get(w.key)
        if isinstance(exc, ray.exceptions.RayTaskError) and build is not None:
            try:
                ray.get(build, timeout=0)
            except ray.exceptions.RayTaskError as bexc:  # the build failed, not the device
                cause = bexc.cause if getattr(bexc, "cause", None) is not None else bexc
                if kind == "anchor":
                    dev.anchors_left -= 1
                    return None
                msg = f"artifact build failed: {type(cause).__name__}: {cause}"
                return GraphResult(w.key, w.timed_arch_id, "failed", error=msg)
            except Exception:  # noqa: S110 - not a build failure; handled below
                pass
        # The actor, its worker process or its node died: the device is gone -- unless
        # it is the head that went, which ends the run.
        self._check_head()
        if kind == "work":
            self._requeue(dev, w)
        self._lose(dev, _first_line(exc))
        return None

    # -- anchors and metadata -------------------------------------------------------

    def _sessions(self) -> tuple[dict[Any, dict[str, float]], dict[Any, float]]:
        """Anchor timings and spreads of every (run, device) of the campaign."""
        self._sync_state()
        anchors, spreads = {}, {}
        for run, info in self._state["runs"].items():
            for dev, v in info.get("devices", {}).items():
                if v.get("anchors_ms"):
                    anchors[(int(run), dev)] = v["anchors_ms"]
                    if v.get("anchor_spread") is not None:
                        spreads[(int(run), dev)] = v["anchor_spread"]
        return anchors, spreads

    def _check_anchors(self) -> None:
        anchors, spreads = self._sessions()
        check = check_spread(anchors, spreads, limit=self.max_device_spread)
        self.check = check
        msgs = dict(zip(sorted(check.outliers, key=str), check.messages(), strict=True))
        moved = moved_ratios(check.ratios, check.noise_floor)
        for session, msg in msgs.items():
            if session not in self._spread_msgs:
                log.warning("fleet: %s", msg)
        for msg in moved:
            if msg not in self._spread_msgs.values():
                log.warning("fleet: %s", msg)
        self._spread_msgs = {**msgs, **{("moved", i): m for i, m in enumerate(moved)}}
        self._save_state()
        now = [s for s in check.outliers if s[0] in self._my_runs]
        if self.max_device_spread is not None and now:
            raise FleetError("; ".join(msgs[s] for s in sorted(now, key=str)))

    def _run_of(self, tried: list[tuple[str, str]]) -> int:
        dev = self.devices.get(tried[-1][0])
        return dev.run if dev is not None else self.run_id

    def _sync_state(self) -> None:
        """Copy this run's devices (info, anchors, loss) into the campaign state."""
        for d in self.devices.values():
            run = self._state["runs"].get(str(d.run))
            if run is None:
                continue
            if d.info and not d.info.get("pending"):
                self._state["devices"][d.id] = {k: v for k, v in d.info.items() if k != "device_id"}
            if not d.anchors_ms and not d.lost:
                continue
            spread = [s for s in d.anchor_spread if s == s]
            run["devices"][d.id] = {
                "anchors_ms": dict(d.anchors_ms),
                "anchor_spread": statistics.median(spread) if spread else None,
                **({"lost": d.lost} if d.lost else {}),
            }

    def _count_rows(self) -> dict[tuple[int | None, str], int]:
        """Stored results per (run, device), read from the parts (exact after a crash)."""
        import pyarrow.parquet as pq

        counts: dict[tuple[int | None, str], int] = {}
        for parts in self.parts_dirs:
            final: dict[str, tuple[str, str | None, int | None]] = {}
            for part in sorted(parts.glob("part-*.parquet")):
                try:
                    cols = pq.read_schema(part).names
                    if "device_id" not in cols:
                        continue
                    wanted = ["graph_key", "status", "device_id", "fleet_run"]
                    table = pq.read_table(part, columns=[c for c in wanted if c in cols])
                except Exception:  # noqa: S112 - the store warns about damaged parts
                    continue
                runs = table.column("fleet_run").to_pylist() if "fleet_run" in cols else None
                for i, (key, status, dev) in enumerate(
                    zip(*(table.column(c).to_pylist() for c in ("graph_key", "status", "device_id")),
                        strict=True)
                ):  # fmt: skip
                    prev = final.get(key)
                    if prev is None or (prev[0] != "ok" and status == "ok"):
                        final[key] = (status, dev, runs[i] if runs else None)
            for _status, dev, run in final.values():
                if dev is not None:
                    counts[(run, dev)] = counts.get((run, dev), 0) + 1
        return counts

    def _device_meta(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self._sync_state()
        counts = self._count_rows()
        ratios = self.check.ratios if self.check else {}
        runs: dict[str, Any] = {}
        for run, info in sorted(self._state["runs"].items(), key=lambda kv: int(kv[0])):
            if not info.get("devices"):  # a run that ended before any device joined
                continue
            devs = {}
            for dev, v in sorted(info.get("devices", {}).items()):
                devs[dev] = {
                    "anchors_ms": v.get("anchors_ms", {}),
                    "ratio": ratios.get((int(run), dev)),
                    "graphs_timed": counts.get((int(run), dev), 0),
                    **({"lost": v["lost"]} if v.get("lost") else {}),
                }
            runs[run] = {
                "started": info.get("started"),
                **{k: info[k] for k in ("within", "why") if k in info},
                "devices": devs,
            }
        devices: dict[str, Any] = {}
        for dev, info in sorted(self._state["devices"].items()):
            mine = [(int(r), v["devices"][dev]) for r, v in runs.items() if dev in v["devices"]]
            last = max(mine, key=lambda rv: rv[0])[1] if mine else {}
            devices[dev] = {
                **{k: v for k, v in info.items() if k not in ("graphs_timed", "lost")},
                "runs": [r for r, _ in sorted(mine, key=lambda rv: rv[0])],
                "anchors_ms": last.get("anchors_ms", info.get("anchors_ms", {})),
                "ratio_to_fleet_median": last.get("ratio", info.get("ratio_to_fleet_median")),
                "graphs_timed": sum(n for (_, d), n in counts.items() if d == dev),
                **({"lost": last["lost"]} if last.get("lost") else {}),
            }
        return devices, runs

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        from latbench.dataset import atomic_path

        self._sync_state()
        runs = {r: v for r, v in self._state["runs"].items() if v.get("devices")}
        with atomic_path(self.state_path) as tmp:
            tmp.write_text(json.dumps({**self._state, "runs": runs}, indent=1, default=str))

    @property
    def warnings(self) -> list[str]:
        """Devices lost, sessions beyond the noise floor, ratios that moved between runs."""
        return [*self._lost_lines, *self._spread_msgs.values()]

    def info(self) -> dict[str, Any]:
        described = [d.info for d in self.devices.values() if "runtime" in d.info]
        described += [d for d in self._state.get("devices", {}).values() if "runtime" in d]
        if described:  # this run's devices first, else those that timed earlier parts
            return dict(described[0]["runtime"])
        raise FleetError("no device of the fleet described its runtime")

    def metadata(self) -> dict[str, Any]:
        check = self.check
        devices, runs = self._device_meta()
        return {
            "fleet": {
                "devices": devices,
                "runs": runs,
                "run": self.run_id if str(self.run_id) in runs else None,
                "anchors": {
                    w.key: a
                    for w, a in zip(anchor_work(self.anchor_archs), self.anchor_archs, strict=True)
                },
                "reference_ms": check.reference_ms if check else None,
                "noise_floor": check.noise_floor if check else None,
                "spread": check.spread if check else None,
                "max_device_spread": self.max_device_spread,
                "warnings": self.warnings,
                "requeued": sum(s.requeued for s in self.progress.devices.values()),
            }
        }

    def report_lines(self) -> list[str]:
        """Per-device throughput and the anchor check, for the end of a run."""
        lines = [f"fleet: run {self.run_id}, setup and anchors {self.setup_s:.1f} s",
                 *self.progress.lines()]  # fmt: skip
        if self.check:
            ratios = ", ".join(
                f"{d} {r:.3f}"
                for (run, d), r in sorted(self.check.ratios.items())
                if run in self._my_runs
            )
            if ratios:
                lines.append(
                    f"  anchor ratios to the fleet reference: {ratios} "
                    f"(noise floor {self.check.noise_floor * 100:.1f} %)"
                )
        lines += [f"  warning: {w}" for w in self.warnings]
        return lines

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        if self._ray is None:
            return
        if str(self.run_id) in self._state["runs"]:
            with contextlib.suppress(OSError):  # a stopped run keeps what it knows
                self._save_state()
        if self._head_lost:  # every call to Ray would wait on the dead head
            if self._owns_ray:
                atexit.unregister(self._ray.shutdown)
            self.devices.clear()
            self._ray = None
            return
        alive = [d for d in self.devices.values() if d.alive]
        with contextlib.suppress(Exception):  # let each actor remove its artifact folder
            if alive:
                self._ray.wait(
                    [d.actor.close.remote() for d in alive], num_returns=len(alive), timeout=10
                )
        for d in alive:
            if d.alive:
                try:
                    self._ray.kill(d.actor, no_restart=True)
                except Exception as exc:  # a dead cluster must not hide the run's result
                    log.debug("fleet: could not stop %s: %s", d.id, exc)
        self.devices.clear()
        if self._owns_ray:
            self._ray.shutdown()
            self._ray, self._owns_ray = None, False


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _result(out: dict[str, Any], run: int) -> GraphResult:
    return GraphResult(
        out["graph_key"], out["timed_arch_id"], "ok", out["latency_ms"], out["latency_std_ms"],
        out["runs"], raw_ns=np.asarray(out["raw_ns"], np.int64), device_id=out["device_id"],
        fleet_run=run,
    )  # fmt: skip


def _failed(w: GraphWork, tried: list[tuple[str, str]], run: int) -> GraphResult:
    reasons = "; ".join(f"on {d}: {e}" for d, e in tried)
    n = len({d for d, _ in tried})
    msg = f"failed on {n} device{'s' if n > 1 else ''}: {reasons}"
    return GraphResult(
        w.key, w.timed_arch_id, "failed", error=msg, device_id=tried[-1][0], fleet_run=run
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
