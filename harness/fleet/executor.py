"""The driver side of a fleet run: :class:`FleetExecutor`, the Ray executor of the seam.

It plugs into :func:`latbench.harness.session.measure` like the local executor: the
session plans what is left, this class builds and times, the session records every
result in the one crash-safe store as it streams back. Scheduling follows the TVM RPC
tracker: devices register (a worker node's custom resources), each has a short queue
(``depth`` calls in flight, so a device never waits for the driver), and the graphs
of a device that drops out are re-queued on the others. Builds are Ray tasks with
retries (a build lost with its node is re-run elsewhere; its bytes travel through the
object store); a timing is bound to a device, so it is re-queued by the driver. A
graph that fails on one device is tried on another; on two, it is recorded as failed
with both reasons.
"""

from __future__ import annotations

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
from latbench.harness.fleet.anchors import ANCHOR_ARCHS, SpreadCheck, anchor_work, check_spread
from latbench.harness.fleet.device import DEVICE_BUILT, DeviceWorker, build_bytes, slowdown_for
from latbench.harness.fleet.progress import FleetProgress
from latbench.harness.fleet.resources import device_resource, devices_in
from latbench.harness.plan import GraphWork
from latbench.harness.store import GraphResult

__all__ = ["FleetExecutor"]

log = logging.getLogger("latbench.measure")

MAX_ATTEMPTS = 2
"""Devices a failing graph is tried on before it is recorded as failed."""


@dataclass
class _Device:
    id: str
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    inflight: set[Any] = field(default_factory=set)
    anchors_ms: dict[str, float] = field(default_factory=dict)
    anchor_spread: list[float] = field(default_factory=list)
    node_ip: str | None = None
    anchors_left: int = 0
    anchored: bool = False
    alive: bool = True
    lost: str | None = None

    @property
    def ready(self) -> bool:
        return self.alive and self.anchored and self.anchors_left == 0


class FleetExecutor:
    """Builds on any node and times on every device of ``profile`` in a Ray cluster.

    ``address`` is a Ray address (``host:6379``, ``ray://...``) or ``auto`` (the cluster
    this machine is part of). ``state_path`` (a JSON file beside the store's parts)
    keeps the devices that timed earlier parts, so a resumed run still lists them.
    ``max_device_spread`` turns the anchor check's warning into a :class:`FleetError`.
    A process already connected to Ray (``ray.init`` done) keeps that connection.
    """

    def __init__(
        self,
        address: str,
        *,
        cache_root: str | Path | None = None,
        state_path: str | Path | None = None,
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
        self.warnings: list[str] = []
        self._ray: Any = None
        self._owns_ray = False
        self._profile: Any = None
        self._state: dict[str, Any] = {"devices": {}}
        if self.state_path is not None and self.state_path.exists() and not fresh:
            try:
                self._state = json.loads(self.state_path.read_text())
            except (OSError, ValueError):
                log.warning("ignoring unreadable fleet state %s", self.state_path)
        elif fresh and self.state_path is not None:
            self.state_path.unlink(missing_ok=True)
        # graphs each device timed in earlier (crashed or finished) runs of this store
        self._base = {d: int(v.get("graphs_timed", 0)) for d, v in self._state["devices"].items()}

    # -- cluster --------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = require_ray()
        if not ray.is_initialized():
            _probe(self.address)
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
        return ray

    def _discover(self, profile: Any) -> None:
        """Start an actor on every device of ``profile`` not yet known; drop vanished ones."""
        ray = self._ray
        seen = devices_in(ray.nodes(), profile.name)
        for dev_id, dev in self.devices.items():
            if dev.alive and dev_id not in seen:
                self._lose(dev, "its node left the cluster")
        for dev_id in sorted(seen):
            if dev_id in self.devices:
                continue
            actor = (
                ray.remote(DeviceWorker)
                .options(
                    num_cpus=0,
                    max_restarts=0,
                    max_task_retries=0,
                    resources={device_resource(profile.name, dev_id): 1},
                )  # fmt: skip
                .remote(profile, dev_id, self.cache_root, slowdown_for(dev_id))
            )
            self.devices[dev_id] = _Device(dev_id, actor, node_ip=seen[dev_id].get("node_ip"))
            log.info("fleet: device %s joined (%s)", dev_id, seen[dev_id].get("node_ip"))

    def _lose(self, dev: _Device, why: str) -> None:
        if not dev.alive:
            return
        dev.alive, dev.lost = False, why
        log.warning("fleet: device %s lost (%s); its graphs go to the others", dev.id, why)
        self.warnings.append(f"device {dev.id} lost: {why}")
        for ref in list(dev.inflight):
            self._ray.cancel(ref, force=False)
        self._ray.kill(dev.actor, no_restart=True)

    # -- the executor seam ----------------------------------------------------------

    def run(self, profile: Any, work: Sequence[GraphWork], seed: int) -> Iterator[GraphResult]:
        from latbench.harness.artifacts import ArtifactCache, artifact_spec

        self._profile = profile
        if not work:  # a finished campaign rerun: nothing to start devices for
            return
        ray = self._connect()
        fmt, options = artifact_spec(profile)
        local = ArtifactCache(self.cache_root) if self.cache_root else ArtifactCache()
        device_built = fmt.startswith(DEVICE_BUILT)
        if not device_built and not ray.cluster_resources().get("CPU"):
            raise FleetError(
                "no node of the Ray cluster offers CPUs for artifact builds; start the head "
                "with CPUs (ray start --head --num-cpus N) or a worker with --build-cpus N"
            )
        t0 = time.perf_counter()
        self._discover(profile)
        deadline = time.monotonic() + self.device_wait_s
        while not any(d.alive for d in self.devices.values()):
            if time.monotonic() > deadline:
                raise FleetError(
                    f"no device advertises profile {profile.name!r} in the Ray cluster at "
                    f"{self.address!r}; on each device host run: latbench-measure worker "
                    f"--device {profile.name} --address HEAD_IP:6379"
                )
            time.sleep(1.0)
            self._discover(profile)

        artifacts: dict[str, Any] = {}

        def artifact(w: GraphWork) -> Any:
            if device_built:
                return None
            ref = artifacts.get(w.key)
            if ref is None:
                hit = local.get(w.graph, fmt, seed, options)
                if hit is not None:
                    ref = ray.put(hit.read_bytes())
                else:
                    ref = (
                        ray.remote(build_bytes)
                        .options(num_cpus=1, max_retries=3)
                        .remote(w.graph, fmt, seed, options, self.cache_root)
                    )
                artifacts[w.key] = ref
            return ref

        pending: dict[Any, tuple[_Device, GraphWork, str]] = {}

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
                    anchor_q.setdefault(dev.node_ip, deque()).append((dev, a))
            for dev in fresh:
                dev.anchored, dev.anchors_left = True, len(anchors)
            busy = {
                dev.node_ip for dev, _, kind in pending.values() if kind == "anchor" and dev.alive
            }
            for host, q in anchor_q.items():
                while q and not q[0][0].alive:
                    q.popleft()
                if q and host not in busy:
                    dev, a = q.popleft()
                    submit(dev, a, "anchor")

        queue: deque[GraphWork] = deque(work)
        failures: dict[str, list[tuple[str, str]]] = {}
        finished: set[str] = set()
        anchored_once = False
        last_poll = time.monotonic()
        start_anchors()
        window = lambda: self.depth * max(1, sum(d.alive for d in self.devices.values())) + 2  # noqa: E731

        while queue or pending:
            if time.monotonic() - last_poll > 5.0:
                last_poll = time.monotonic()
                self._save_state()
                self._discover(profile)
                start_anchors()
                for ref, (dev, _w, kind) in list(pending.items()):
                    if not dev.alive:  # cancelled with its device: put the graph back
                        self._requeue(pending, ref, queue, kind)
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
                        w = _take(queue, failures, dev.id)
                        if w is None:
                            break
                        submit(dev, w, "work")
                alive = {d.id for d in self.devices.values() if d.alive}
                for w in list(queue):  # every live device already failed it: give up
                    tried = {d for d, _ in failures.get(w.key, ())}
                    if alive and alive <= tried:
                        queue.remove(w)
                        finished.add(w.key)
                        yield _failed(w, failures[w.key])
            if not pending:
                if queue and not any(d.alive for d in self.devices.values()):
                    self._wait_for_devices(profile, queue)
                    start_anchors()
                    continue
                if queue and anchored_once and not any(d.ready for d in self.devices.values()):
                    time.sleep(0.5)
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                dev, w, kind = pending.pop(ref)
                dev.inflight.discard(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:
                    result = self._on_error(exc, dev, w, kind, artifacts, queue)
                    if result is not None and w.key not in finished:
                        finished.add(w.key)
                        artifacts.pop(w.key, None)
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
                        dev.anchor_spread.append(out["latency_std_ms"] / out["latency_ms"])
                    if dev.anchors_left == 0 and anchored_once:
                        self._check_anchors()  # a device that joined late
                    continue
                self.progress.done(dev.id, ok, out["call_s"], inference)
                if w.key in finished:
                    continue
                if ok:
                    finished.add(w.key)
                    artifacts.pop(w.key, None)
                    yield _result(out)
                    continue
                failures.setdefault(w.key, []).append((dev.id, out["error"]))
                others = {d.id for d in self.devices.values() if d.alive} - {
                    d for d, _ in failures[w.key]
                }
                if len(failures[w.key]) >= MAX_ATTEMPTS or not others:
                    finished.add(w.key)
                    artifacts.pop(w.key, None)
                    yield _failed(w, failures[w.key])
                else:
                    queue.appendleft(w)
        self._save_state()

    def _requeue(self, pending: dict, ref: Any, queue: deque, kind: str) -> None:
        dev, w, kind = pending.pop(ref)
        dev.inflight.discard(ref)
        if kind == "work":
            queue.appendleft(w)
            self.progress.device(dev.id).requeued += 1

    def _on_error(
        self, exc: Exception, dev: _Device, w: GraphWork, kind: str, artifacts: dict,
        queue: deque,
    ) -> GraphResult | None:  # fmt: skip
        ray = self._ray
        build = artifacts.get(w.key)
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
        # The actor, its worker process or its node died: the device is gone.
        self._lose(dev, _first_line(exc))
        if kind == "anchor":
            dev.anchors_left = 0
        elif kind == "work":
            queue.appendleft(w)
            self.progress.device(dev.id).requeued += 1
        return None

    def _wait_for_devices(self, profile: Any, queue: deque) -> None:
        deadline = time.monotonic() + self.device_wait_s
        log.warning(
            "fleet: no device left with %d graphs to go; waiting %.0f s for one to join",
            len(queue), self.device_wait_s,
        )  # fmt: skip
        while time.monotonic() < deadline:
            time.sleep(1.0)
            self._discover(profile)
            if any(d.alive for d in self.devices.values()):
                return
        raise FleetError(
            f"every device of the fleet is gone with {len(queue)} graphs untimed; results "
            "so far are stored: start workers again and rerun the same command to resume"
        )

    # -- anchors and metadata -------------------------------------------------------

    def _check_anchors(self) -> None:
        anchors = {d.id: d.anchors_ms for d in self.devices.values() if d.anchors_ms}
        spreads = {
            d.id: statistics.median(d.anchor_spread)
            for d in self.devices.values()
            if d.anchor_spread
        }
        check = check_spread(anchors, spreads, limit=self.max_device_spread)
        self.check = check
        new = [m for m in check.messages() if m not in self.warnings]
        for msg in new:
            log.warning("fleet: %s", msg)
        self.warnings.extend(new)
        self._save_state()
        if self.max_device_spread is not None and check.outliers:
            raise FleetError("; ".join(check.messages()))

    def _device_meta(self) -> dict[str, Any]:
        ratios = self.check.ratios if self.check else {}
        out = dict(self._state.get("devices", {}))
        for d in self.devices.values():
            if not d.info or d.info.get("pending"):
                continue
            stats = self.progress.devices.get(d.id)
            out[d.id] = {
                **{k: v for k, v in d.info.items() if k != "device_id"},
                "anchors_ms": d.anchors_ms,
                "ratio_to_fleet_median": ratios.get(d.id),
                "graphs_timed": self._base.get(d.id, 0) + (stats.graphs if stats else 0),
                **({"lost": d.lost} if d.lost else {}),
            }
        return out

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        from latbench.dataset import atomic_path

        state = {"devices": self._device_meta()}
        with atomic_path(self.state_path) as tmp:
            tmp.write_text(json.dumps(state, indent=1, default=str))

    def info(self) -> dict[str, Any]:
        described = [d.info for d in self.devices.values() if "runtime" in d.info]
        described += [d for d in self._state.get("devices", {}).values() if "runtime" in d]
        if described:  # this run's devices first, else those that timed earlier parts
            return dict(described[0]["runtime"])
        raise FleetError("no device of the fleet described its runtime")

    def metadata(self) -> dict[str, Any]:
        check = self.check
        return {
            "fleet": {
                "devices": self._device_meta(),
                "anchors": {
                    w.key: a
                    for w, a in zip(anchor_work(self.anchor_archs), self.anchor_archs, strict=True)
                },
                "noise_floor": check.noise_floor if check else None,
                "spread": check.spread if check else None,
                "max_device_spread": self.max_device_spread,
                "warnings": list(self.warnings),
                "requeued": sum(s.requeued for s in self.progress.devices.values()),
            }
        }

    def report_lines(self) -> list[str]:
        """Per-device throughput and the anchor check, for the end of a run."""
        lines = [f"fleet: setup and anchors {self.setup_s:.1f} s", *self.progress.lines()]
        if self.check:
            ratios = ", ".join(f"{d} {r:.3f}" for d, r in sorted(self.check.ratios.items()))
            lines.append(
                f"  anchor ratios to the fleet median: {ratios} "
                f"(noise floor {self.check.noise_floor * 100:.1f} %)"
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        return lines

    def close(self) -> None:
        if self._ray is None:
            return
        for d in self.devices.values():
            if d.alive:
                try:
                    self._ray.kill(d.actor, no_restart=True)
                except Exception as exc:  # a dead cluster must not hide the run's result
                    log.debug("fleet: could not stop %s: %s", d.id, exc)
        self.devices.clear()
        if self._owns_ray:
            self._ray.shutdown()
            self._ray, self._owns_ray = None, False


def _take(queue: deque, failures: dict, device_id: str) -> GraphWork | None:
    """The first queued graph that has not failed on ``device_id`` (removed from the queue)."""
    for i, w in enumerate(queue):
        if all(d != device_id for d, _ in failures.get(w.key, ())):
            del queue[i]
            return w
    return None


def _result(out: dict[str, Any]) -> GraphResult:
    return GraphResult(
        out["graph_key"], out["timed_arch_id"], "ok", out["latency_ms"], out["latency_std_ms"],
        out["runs"], raw_ns=np.asarray(out["raw_ns"], np.int64), device_id=out["device_id"],
    )  # fmt: skip


def _failed(w: GraphWork, tried: list[tuple[str, str]]) -> GraphResult:
    reasons = "; ".join(f"on {d}: {e}" for d, e in tried)
    n = len({d for d, _ in tried})
    msg = f"failed on {n} device{'s' if n > 1 else ''}: {reasons}"
    return GraphResult(w.key, w.timed_arch_id, "failed", error=msg, device_id=tried[-1][0])


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise FleetError(
            f"cannot join the Ray cluster at {address!r} (nothing answers: {exc.strerror or exc}); "
            "start its head with 'ray start --head --port 6379' and pass --fleet HEAD_IP:6379"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
