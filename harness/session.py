"""One measurement run: build artifacts, time them, store results, write the dataset.

The system under test (a :class:`~latbench.harness.runners.base.Runner`) is kept apart
from scheduling (this module) and statistics (:mod:`latbench.harness.timing`), as in
MLPerf LoadGen. Artifacts come from a process pool; on a host-CPU profile they are all
built *before* timing starts so that converter processes do not steal cycles from the
model being timed, while profiles that time on another device overlap the two.
"""

from __future__ import annotations

import datetime as _dt
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from latbench.harness.host import host_fingerprint
from latbench.harness.lock import one_writer, run_stem
from latbench.harness.plan import GraphWork, Plan, with_earlier
from latbench.harness.store import GraphResult, RunStore
from latbench.terminal import safe_line

__all__ = [
    "Executor",
    "LocalExecutor",
    "RunSummary",
    "dataset_metadata",
    "measure",
    "measure_layers",
]

log = logging.getLogger("latbench.measure")

SOFTWARE_CITATION = (
    "LatBench: latency datasets and measurement harness for NAS-Bench-201 (software)."
)
PAPER_CITATION = (
    "Dudziak, L., Chau, T., Abdelfattah, M. S., Lee, R., Kim, H., Lane, N. D. "
    "BRP-NAS: Prediction-based NAS using GCNs. NeurIPS 2020."
)


@dataclass
class RunSummary:
    """What a run did, for the final report."""

    key: str
    dataset: Path | None
    timed: int = 0
    reused: int = 0
    failed: int = 0
    invalid: int = 0
    n_archs: int = 0
    wall_s: float = 0.0
    build_s: float = 0.0
    inference_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    passes: int = 1

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        med = f"{self.median_ms:.3f} ms" if self.median_ms is not None else "n/a"
        # with passes, timed/reused count (graph, pass) pairs: say so
        unit = "graphs" if self.passes == 1 else f"graph-passes ({self.passes} passes)"
        out = [
            f"dataset {self.key}: {self.n_archs} architectures "
            f"({self.invalid} invalid), {self.timed} {unit} timed now, "
            f"{self.reused} reused from earlier parts, {self.failed} failed",
            f"median latency {med}; wall time {self.wall_s:.1f} s "
            f"(artifact builds {self.build_s:.1f} s, timed inference {self.inference_s:.1f} s)",
        ]
        # reasons quote tool output: escaped, so an ESC or newline cannot forge lines
        out += [f"  failed: {safe_line(f, 1000)}" for f in self.failures[:10]]
        out += [f"wrote {p}" for p in self.files]
        return out


def dataset_metadata(
    profile: Any, runner_info: dict[str, Any], key: str, seed: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """File-level metadata (docs/design.md §6) for a dataset this harness measured."""
    import latbench

    host = host_fingerprint()
    prof = profile.to_metadata()
    dev = dict(prof.get("device", {}))
    if dev.get("hardware") in (None, "", "auto"):
        dev["hardware"] = host["cpu_model"] if profile.target == "cpu" else dev.get("hardware")
    if dev.get("name") in (None, "", profile.name):  # a profile name says little to a reader
        dev["name"] = f"{dev.get('hardware') or 'unknown hardware'} - {profile.description}"
    return {
        "device": {"key": key, "profile": profile.name, **dev},
        "runtime": runner_info,
        "precision": profile.precision,
        "batch": 1,
        "input_shape": [1, 32, 32, 3],
        "input_layout": "NHWC",
        "protocol": prof.get("protocol", {}),
        "harness_version": latbench.__version__,
        "host": host,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": f"measured with latbench-measure --device {profile.name}",
        "command": " ".join(sys.argv),
        "seed": seed,
        "citation": f"{SOFTWARE_CITATION} {PAPER_CITATION}",
        "license": "CC-BY-4.0",
        **extra,
    }


def _run_config(profile: Any, seed: int) -> dict[str, Any]:
    """The settings a resumed run must share with the stored parts. Of ``[options]`` only
    the scheduling ones count (``execution_mode``, and ``inter_op_threads`` when it is
    ``"parallel"``): they change the latencies, while a tool's timeout or a device's
    serial may change between attempts."""
    prof = profile.to_metadata()
    config = {
        "profile": profile.name,
        "runtime": profile.runtime,
        "artifact_format": profile.artifact_format,
        "precision": profile.precision,
        "protocol": prof.get("protocol"),
        "threads": prof.get("runtime", {}).get("threads"),
        "seed": seed,
    }
    mode = profile.options.get("execution_mode", "sequential")
    if mode != "sequential":  # the default stays unrecorded: runs stored before resume
        config["scheduling"] = {
            "execution_mode": mode,
            "inter_op_threads": profile.options.get("inter_op_threads", 0),
        }
    return config


class _Progress:
    """tqdm bar on a terminal, a log line every ~5% otherwise."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.n = total, desc, 0
        self.t0 = time.perf_counter()
        self.bar = None
        from latbench.progress import progress_enabled

        enabled = progress_enabled(enabled)  # LATBENCH_PROGRESS=0 silences these lines too
        if enabled and total and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="model", dynamic_ncols=True)
        self.enabled = enabled
        self.step = max(1, total // 20)

    def update(self, note: str = "") -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update()
        elif self.enabled and (self.n % self.step == 0 or self.n == self.total):
            dt = time.perf_counter() - self.t0
            rate = self.n / dt if dt > 0 else 0.0
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            log.info(
                "%s %d/%d (%.2f/s, ETA %.0f s) %s", self.desc, self.n, self.total, rate, eta, note
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _builds(
    cache: Any, work: list[GraphWork], fmt: str, seed: int, workers: int | None, prebuild: bool,
    progress: bool, options: dict[str, Any],
) -> Iterator[tuple[Any, Any]]:  # fmt: skip
    stream = cache.build_many([w.graph for w in work], fmt, seed, workers=workers, options=options)
    if not prebuild:
        yield from stream
        return
    bar = _Progress(len(work), "building", progress)
    done = []
    for item in stream:
        done.append(item)
        bar.update()
    bar.close()
    order = {w.key: i for i, w in enumerate(work)}
    yield from sorted(done, key=lambda it: order[it[0].key])


class Executor(Protocol):
    """The seam between recording (:func:`measure`) and building + timing.

    :meth:`run` turns graphs into results in any order, one result per graph; the
    caller stores each as it arrives. :class:`LocalExecutor` builds in a process pool
    and times here; :class:`latbench.harness.fleet.FleetExecutor` builds and times on
    a Ray cluster.
    """

    build_s: float
    """Seconds spent before the first result could be timed (artifact builds)."""

    def run(self, profile: Any, work: Sequence[GraphWork], seed: int) -> Iterator[GraphResult]:
        """Build and time ``work``; yield one :class:`GraphResult` per graph."""
        ...

    def info(self) -> dict[str, Any]:
        """Runtime description for the dataset metadata."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Extra dataset metadata (e.g. the fleet's devices); may be empty."""
        ...

    def close(self) -> None:
        """Release runners, pools or cluster connections."""
        ...


class LocalExecutor:
    """Builds in a local process pool and times on this host's runner."""

    def __init__(
        self, cache: Any, *, build_workers: int | None = None, prebuild: bool | None = None,
        progress: bool = True,
    ) -> None:  # fmt: skip
        self.cache, self.build_workers, self.prebuild = cache, build_workers, prebuild
        self.progress = progress
        self.build_s = 0.0
        self._runner: Any = None
        self._profile: Any = None

    def _runner_for(self, profile: Any) -> Any:
        from latbench.harness.runners import make_runner

        if self._runner is None or self._profile is not profile:
            self.close()
            self._runner, self._profile = make_runner(profile), profile
        return self._runner

    def run(self, profile: Any, work: Sequence[GraphWork], seed: int) -> Iterator[GraphResult]:
        from latbench.harness.artifacts import artifact_spec

        fmt, options = artifact_spec(profile)
        runner = self._runner_for(profile)
        prebuild = self.prebuild
        if prebuild is None:
            # Runners that share this host with the builders (host CPU, a USB TPU, a
            # Jetson that also builds its engines) must not time while converters run.
            prebuild = getattr(runner, "host_bound", getattr(profile, "target", "cpu") == "cpu")
        by_key = {w.key: w for w in work}
        t_build = time.perf_counter()
        stream = _builds(
            self.cache, list(work), fmt, seed, self.build_workers, prebuild, self.progress, options
        )
        for n, (graph, artifact) in enumerate(stream):
            if n == 0:
                self.build_s = time.perf_counter() - t_build
            yield _time_one(runner, by_key[graph.key], artifact, profile, seed)

    def info(self) -> dict[str, Any]:
        if self._runner is None:
            raise RuntimeError("LocalExecutor.info() before run()")
        return self._runner.info()

    def metadata(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._runner = None


def _record(summary: RunSummary, result: GraphResult) -> None:
    if result.status == "ok":
        summary.timed += 1
        if result.raw_ns is not None:
            summary.inference_s += float(np.sum(result.raw_ns)) / 1e9
    else:
        summary.failed += 1
        summary.failures.append(f"{result.graph_key}: {result.error}")


def _with_kept(extra: dict[str, Any] | None, kept: int, earlier: str | None) -> dict[str, Any]:
    """``extra`` metadata with the rows a rerun kept from earlier runs counted
    (``kept_earlier_rows``) and described in its ``selection`` text."""
    from latbench.harness.store import describe_kept

    out = dict(extra or {})
    if kept:
        out["kept_earlier_rows"] = kept
        if isinstance(out.get("selection"), str):
            out["selection"] = describe_kept(out["selection"], kept, earlier)
    return out


def keep_earlier(plan: Plan, earlier: set[int], stem: str) -> Plan:
    """``plan`` grown by the architectures earlier runs of dataset ``stem`` selected
    (:func:`~latbench.harness.plan.with_earlier`), saying so when it grows; a shard's is
    refused instead (:class:`~latbench.harness.store.RunConfigMismatch`): its rows would
    fall to other shards under the new selection, and merge checks one selection."""
    grown = with_earlier(plan, earlier)
    if grown is not plan and plan.shard != (1, 1):
        from latbench.harness.store import RunConfigMismatch

        raise RunConfigMismatch(
            f"{stem} holds {grown.n_archs - plan.n_archs} architectures outside this"
            " selection, and the shards of a campaign must share one selection (merge"
            " checks it): rerun this shard with the selection it was made with, or --fresh"
            " to replace it"
        )
    if grown is not plan:
        log.warning(
            "%s: keeping the %d architectures earlier runs of this dataset measured outside"
            " this selection (--fresh replaces the dataset)",
            stem, grown.n_archs - plan.n_archs,
        )  # fmt: skip
    return grown


@one_writer  # one run per key at a time; --fresh clears the key's files
def measure(
    profile: Any,
    plan: Plan,
    *,
    out_dir: Path,
    key: str,
    seed: int = 0,
    cache: Any = None,
    build_workers: int | None = None,
    prebuild: bool | None = None,
    fresh: bool = False,
    progress: bool = True,
    flush_every: int = 8,
    flush_seconds: float = 10.0,
    extra_metadata: dict[str, Any] | None = None,
    on_result: Callable[[GraphResult], None] | None = None,
    executor: Executor | None = None,
) -> RunSummary:
    """Time every graph of ``plan`` not already stored and write ``<key>.parquet``.

    Results are made durable every ``flush_every`` graphs or ``flush_seconds``;
    rerunning with the same arguments resumes. Failures of single models are recorded
    as ``status="failed"`` with the reason and the run goes on. ``executor`` builds and
    times (default: a :class:`LocalExecutor` on this host); this function plans what is
    left to do and records what comes back.
    """
    from latbench.harness.artifacts import ArtifactCache, artifact_spec

    t_start = time.perf_counter()
    fmt, build_options = artifact_spec(profile)
    stem = run_stem(key, plan.shard)
    cache = cache if cache is not None else ArtifactCache()
    local = executor is None
    if executor is None:
        executor = LocalExecutor(
            cache, build_workers=build_workers, prebuild=prebuild, progress=progress
        )
        # A missing runtime or device stops the run before the store writes its settings:
        # else a rerun with other settings is refused over a run that timed nothing.
        executor._runner_for(profile)
    store = RunStore(out_dir, stem, _run_config(profile, seed))
    try:
        done = store.open(fresh=fresh)
    except BaseException:
        if local:
            executor.close()
        raise
    n_asked = plan.n_archs
    plan = keep_earlier(plan, store.earlier_rows(), stem)
    kept = plan.n_archs - n_asked
    store.remember(plan.arch_ids)
    todo = [w for w in plan.work if not (w.key in done and done[w.key].status == "ok")]
    summary = RunSummary(key=stem, dataset=None, n_archs=plan.n_archs, invalid=len(plan.invalid))
    summary.reused = len(plan.work) - len(todo)
    if todo:
        log.info(
            "%s: %d graphs to time (%d architectures, %d already stored)",
            profile.name, len(todo), plan.n_archs, summary.reused,
        )  # fmt: skip
    bar = _Progress(len(todo), f"timing {profile.name}", progress)
    last_flush = time.perf_counter()
    try:
        for result in executor.run(profile, todo, seed):
            _record(summary, result)
            store.add(result)
            if on_result is not None:
                on_result(result)
            bar.update(f"{result.latency_ms:.3f} ms" if result.latency_ms else result.status)
            if store.pending and (
                store.pending >= flush_every or time.perf_counter() - last_flush > flush_seconds
            ):
                store.flush()
                last_flush = time.perf_counter()
        store.flush()
        info = executor.info()
        summary.build_s = executor.build_s
        fleet_meta = executor.metadata()
    finally:
        bar.close()
        store.flush()
        executor.close()
    meta = dataset_metadata(
        profile,
        info,
        key,
        seed,
        {
            "shard": f"{plan.shard[0]}/{plan.shard[1]}",
            "selection_digest": plan.selection_digest,
            "artifact_format": profile.artifact_format,
            **_artifact_reports(cache, plan, fmt, seed, build_options),
            **fleet_meta,
            **_with_kept(extra_metadata, kept, store.earlier_selection),
        },
    )
    summary.dataset = store.finalize(plan, meta)
    summary.files = [summary.dataset] + ([store.raw_path] if store.raw_path.exists() else [])
    final = store.results
    summary.latencies_ms = [
        final[w.key].latency_ms for w in plan.work if w.key in final and final[w.key].status == "ok"
    ]
    summary.wall_s = time.perf_counter() - t_start
    return summary


def _artifact_reports(
    cache: Any, plan: Plan, fmt: str, seed: int, options: dict[str, Any]
) -> dict[str, Any]:
    # Edge builders report per model (e.g. Edge TPU ops mapped vs on the CPU); keep
    # their scalar fields per graph key. Host formats have none: no key at all.
    from latbench.harness.build.edge import EDGE_FORMATS

    if fmt not in EDGE_FORMATS or not hasattr(cache, "report"):
        return {}
    out = {}
    for w in plan.work:
        try:
            report = cache.report(w.graph, fmt, seed, options)
        except (TypeError, ValueError):
            continue
        flat = {}
        for section, value in (report or {}).items():
            items = value.items() if isinstance(value, dict) else [(section, value)]
            flat |= {k: v for k, v in items if isinstance(v, str | int | float | bool)}
        if flat:
            out[w.key] = flat
    return {"artifact_reports": out} if out else {}


def _time_one(runner: Any, w: GraphWork, artifact: Any, profile: Any, seed: int) -> GraphResult:
    from latbench.harness.timing import time_runner

    if isinstance(artifact, BaseException):
        msg = f"artifact build failed: {type(artifact).__name__}: {artifact}"
        return GraphResult(w.key, w.timed_arch_id, "failed", error=msg)
    try:
        runner.prepare(Path(artifact), seed)
        t = time_runner(runner, profile.protocol)
    except Exception as exc:  # one model failing must not stop the campaign
        msg = f"timing failed: {type(exc).__name__}: {exc}"
        log.warning("%s (arch %d): %s", w.key, w.timed_arch_id, safe_line(msg, 1000))
        return GraphResult(w.key, w.timed_arch_id, "failed", error=msg)
    return GraphResult(
        w.key, w.timed_arch_id, "ok", float(t.latency_ms), float(t.latency_std_ms),
        int(t.runs), raw_ns=np.asarray(t.raw_ns, np.int64),
    )  # fmt: skip


def measure_layers(
    profile: Any,
    *,
    out_dir: Path,
    key: str,
    seed: int = 0,
    cache: Any = None,
    build_workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Time every distinct layer alone (same protocol); write ``<key>.layers.parquet``."""
    import pandas as pd
    import pyarrow as pa

    from latbench.dataset import atomic_path
    from latbench.harness.artifacts import ArtifactCache, artifact_spec
    from latbench.harness.runners import make_runner
    from latbench.harness.timing import time_runner
    from latbench.integrity import write_verified
    from latbench.network import distinct_layers

    layers = distinct_layers()
    fmt, build_options = artifact_spec(profile)
    cache = cache if cache is not None else ArtifactCache()
    runner = make_runner(profile)
    rows = []
    bar = _Progress(len(layers), f"layers {profile.name}", progress)
    built = dict(
        (layer.signature, art)
        for layer, art in cache.build_many(
            layers, fmt, seed, workers=build_workers, options=build_options
        )
    )
    try:
        for layer in layers:
            art = built[layer.signature]
            row = {
                "signature": layer.signature, "kind": layer.kind, "cin": layer.cin,
                "cout": layer.cout, "h": layer.h, "kernel": layer.kernel, "stride": layer.stride,
                "n_inputs": layer.n_inputs, "flops": layer.flops, "params": layer.params,
                "status": "ok", "error": None, "latency_ms": None, "latency_std_ms": None, "runs": 0,
            }  # fmt: skip
            try:
                if isinstance(art, BaseException):
                    raise art
                runner.prepare(Path(art), seed)
                t = time_runner(runner, profile.protocol)
                row.update(latency_ms=t.latency_ms, latency_std_ms=t.latency_std_ms, runs=t.runs)
            except Exception as exc:  # record and go on
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            rows.append(row)
            bar.update(layer.signature)
        info = runner.info()
    finally:
        bar.close()
        runner.close()
    meta = dataset_metadata(profile, info, key, seed, {"table": "layers"})
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    import json

    table = table.replace_schema_metadata({b"latbench": json.dumps(meta, default=str).encode()})
    path = Path(out_dir) / f"{key}.layers.parquet"
    with atomic_path(path) as tmp:
        write_verified(table, tmp)  # page checksums and digests, as every LatBench table
    return path
