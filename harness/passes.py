"""Interleaved passes: spread each graph's runs over the whole campaign.

A shared machine's speed drifts over tens of minutes (docs/datasets.md measured up to
~15 % on a cloud VM), so a graph timed early and one timed late are compared under
different conditions. With ``passes = P`` the plan is timed P times in a row, each
pass giving every graph ``R / P`` runs; the raw timings of all passes are then joined
per graph (pass order) and go through the two-stage filter together. Passes alternate
direction (serpentine: even passes time the plan in reverse), so a graph timed early
in one pass is timed late in the next; with P = 2 a linear drift cancels exactly, and
every graph samples every part of the campaign. Each pass is an
ordinary resumable run (``<key>.passes/<key>.pass<p>of<P>``), so a crash resumes too.

On a fleet (an ``executor`` with an ``affinity`` map, :mod:`latbench.harness.fleet`)
one executor serves every pass, so a run anchors its devices once, and each graph goes
to the device that timed it in the earlier passes while that device is alive: its
runs of all passes come from one device. The combined rows keep the device and run of
the first pass; graphs whose passes were timed on different devices are counted in
the metadata (``fleet.passes_on_other_devices``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench.dataset import read_metadata
from latbench.harness.lock import one_writer, run_stem
from latbench.harness.plan import Plan
from latbench.harness.session import (
    RunSummary,
    _run_config,
    _with_kept,
    dataset_metadata,
    keep_earlier,
    measure,
)
from latbench.harness.store import GraphResult, RunStore, finished_rows
from latbench.harness.timing import two_stage_filter

__all__ = ["measure_passes"]


@one_writer  # one run per key at a time; --fresh clears the key's files
def measure_passes(
    profile: Any, plan: Plan, *, passes: int, out_dir: Path, key: str, seed: int = 0,
    extra_metadata: dict[str, Any] | None = None, **kwargs: Any,
) -> RunSummary:  # fmt: skip
    """Time ``plan`` in ``passes`` interleaved passes and write ``<key>.parquet``.

    ``R`` must be a multiple of ``passes x g``. Even passes time the plan's graphs in
    reverse order. Other keyword arguments go to
    :func:`~latbench.harness.session.measure` for every pass.
    """
    if passes == 1:
        return measure(profile, plan, out_dir=out_dir, key=key, seed=seed,
                       extra_metadata=extra_metadata, **kwargs)  # fmt: skip
    proto = profile.protocol
    if passes < 1 or proto.runs % (passes * proto.group_size):
        raise ValueError(
            f"--passes {passes}: R = {proto.runs} must be a multiple of passes x g "
            f"= {passes} x {proto.group_size}"
        )
    t0 = time.perf_counter()
    n_asked = plan.n_archs
    stem = run_stem(key, plan.shard)
    config = {**_run_config(profile, seed), "passes": passes}
    earlier: str | None = None
    if not kwargs.get("fresh"):  # the rows of a finished dataset of these settings stay
        rows, earlier = finished_rows(out_dir, stem, config)
        plan = keep_earlier(plan, rows, stem)
    kept = plan.n_archs - n_asked
    part = profile.with_protocol(runs=proto.runs // passes)
    work_dir = Path(out_dir) / f"{key}.passes"
    summaries: list[RunSummary] = []
    per_pass: list[dict[str, GraphResult]] = []  # each pass's results, read once it is done
    reverse = dataclasses.replace(plan, work=plan.work[::-1])
    executor = kwargs.pop("executor", None)
    affinity = getattr(executor, "affinity", None)
    try:
        for p in range(1, passes + 1):
            pkey = f"{key}.pass{p}of{passes}"
            order = plan if p % 2 else reverse
            if affinity is not None and per_pass:  # the devices of the previous pass
                for k, r in per_pass[-1].items():
                    if r.device_id is not None:
                        affinity.setdefault(k, r.device_id)
            extra = {} if executor is None else {"executor": _Held(executor)}
            summaries.append(
                measure(part, order, out_dir=work_dir, key=pkey, seed=seed, **kwargs, **extra)
            )
            per_pass.append(RunStore(work_dir, summaries[-1].key, _run_config(part, seed)).open())
        fleet_meta = executor.metadata() if executor is not None else {}
    finally:
        if executor is not None:
            executor.close()

    final = RunStore(out_dir, stem, config)
    final.open(fresh=True)  # derived wholly from the passes: rebuilt every time
    summary = RunSummary(key=stem, dataset=None, n_archs=plan.n_archs, invalid=len(plan.invalid),
                         passes=passes)  # fmt: skip
    split = 0
    for w in plan.work:
        got = [res.get(w.key) for res in per_pass]
        if all(r is not None and r.status == "ok" and r.raw_ns is not None for r in got):
            raw = np.concatenate([r.raw_ns for r in got])
            lat, std = two_stage_filter(raw / 1e6, proto.group_size)
            first = got[0]
            split += len({r.device_id for r in got}) > 1
            final.add(GraphResult(w.key, w.timed_arch_id, "ok", lat, std, len(raw), raw_ns=raw,
                                  device_id=first.device_id, fleet_run=first.fleet_run))  # fmt: skip
            summary.latencies_ms.append(lat)
        else:
            errors = sorted(
                {r.error or r.status for r in got if r is not None and r.status != "ok"}
            )
            msg = "; ".join(errors) or "not timed in every pass"
            final.add(GraphResult(w.key, w.timed_arch_id, "failed", error=msg))
            summary.failed += 1
            summary.failures.append(f"{w.key}: {msg}")
    runtime = read_metadata(summaries[0].dataset).get("runtime", {})
    extra = {
        "passes": passes,
        "shard": f"{plan.shard[0]}/{plan.shard[1]}",
        "selection_digest": plan.selection_digest,
        "artifact_format": profile.artifact_format,
        **_with_kept(extra_metadata, kept, earlier),
    }
    if "fleet" in fleet_meta:
        extra["fleet"] = {**fleet_meta["fleet"], "passes_on_other_devices": split}
    meta = dataset_metadata(profile, runtime, key, seed, extra)
    meta["protocol"] = {**meta.get("protocol", {}), "passes": passes, "pass_order": "serpentine"}
    summary.dataset = final.finalize(plan, meta)
    summary.files = [summary.dataset] + ([final.raw_path] if final.raw_path.exists() else [])
    summary.timed = sum(s.timed for s in summaries)
    summary.reused = sum(s.reused for s in summaries)
    summary.build_s = sum(s.build_s for s in summaries)
    summary.inference_s = sum(s.inference_s for s in summaries)
    summary.wall_s = time.perf_counter() - t0
    return summary


class _Held:
    """An executor shared by the passes: each pass's :func:`measure` may not close it."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)

    def close(self) -> None:
        """Kept open for the next pass; :func:`measure_passes` closes it at the end."""
