"""Crash-safe storage of a run's results, and the final dataset file.

While a run goes on, each timed graph's result (figure, spread, raw timings or the
failure reason) is appended to ``<stem>.parts/`` in small Parquet *parts*, each
written to a temporary file and renamed into place, so a ``kill -9`` loses at most
the unflushed graphs and never leaves a half-written part. Rerunning reads the parts
and times only what is not done. :meth:`RunStore.finalize` expands graph results to
architecture rows (docs/design.md §6) and writes ``<stem>.parquet`` and ``<stem>.raw.h5``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from latbench.dataset import (
    COLUMNS,
    atomic_path,
    atomic_temp_re,
    skeleton_frame,
    to_table,
    warn_removed_temps,
    write_dataset,
)
from latbench.harness.plan import Plan
from latbench.integrity import UnverifiedFileWarning, read_verified, write_verified
from latbench.safepickle import short_repr
from latbench.space import N_ARCHS, Arch
from latbench.terminal import safe

__all__ = ["GraphResult", "RunConfigMismatch", "RunStore"]

log = logging.getLogger(__name__)

_PART_TEMP = atomic_temp_re(r"part-[A-Za-z0-9_.-]+\.parquet|run\.json")
"""What :func:`~latbench.dataset.atomic_path` names its temporary of a part or ``run.json``."""

PART_SCHEMA = pa.schema(
    [
        pa.field("graph_key", pa.string(), nullable=False),
        pa.field("timed_arch_id", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("latency_ms", pa.float64()),
        pa.field("latency_std_ms", pa.float64()),
        pa.field("runs", pa.int32(), nullable=False),
        pa.field("raw_ns", pa.list_(pa.int64())),
        pa.field("device_id", pa.string()),  # fleet runs: the device that timed it
        pa.field("fleet_run", pa.int32()),  # ... and in which run (its anchor ratio)
    ]
)


class RunConfigMismatch(ValueError):
    """The output folder holds what this run must neither continue nor replace: parts or
    a dataset measured with other settings, or a dataset it cannot read."""


@dataclass(frozen=True)
class GraphResult:
    """The outcome of timing one pruned graph."""

    graph_key: str
    timed_arch_id: int
    status: str  # "ok" or "failed"
    latency_ms: float | None = None
    latency_std_ms: float | None = None
    runs: int = 0
    error: str | None = None
    raw_ns: np.ndarray | None = None
    device_id: str | None = None
    fleet_run: int | None = None


def _read_config(path: Path) -> dict[str, Any]:
    """A run's stored settings; one line naming ``path`` when it is damaged."""
    from latbench.files import FileTooLarge, read_capped

    too_big = False
    try:
        stored = json.loads(read_capped(path, 1 << 20))  # a run's settings take a few KB
    except FileTooLarge:
        too_big, stored = True, None
    except (ValueError, RecursionError) as exc:
        what = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise RunConfigMismatch(
            f"{path} is damaged ({what}); rerun with --fresh to discard the stored parts"
        ) from None
    if not isinstance(stored, dict):
        kind = "over 1 MiB" if too_big else f"JSON {json.dumps(stored)[:20]}"
        raise RunConfigMismatch(
            f"{path} is damaged ({kind}, not the run's settings); rerun with --fresh to"
            " discard the stored parts"
        )
    return stored


def _config_diff(stored: dict[str, Any], now: dict[str, Any]) -> str:
    """The settings that differ, shortened for one line; empty when none do."""
    diff = sorted((k for k in {*stored, *now} if stored.get(k) != now.get(k)), key=str)
    return "; ".join(
        f"{short_repr(k, 40)}: stored {short_repr(stored.get(k))}, now {short_repr(now.get(k))}"
        for k in diff[:8]
    )


class RunStore:
    """Durable results of one run in ``out_dir`` under file stem ``stem``.

    ``config`` (profile, protocol, seed, artifact format) is stored with the parts;
    reopening with a different config raises :class:`RunConfigMismatch` so figures
    from different protocols are never mixed.
    """

    def __init__(self, out_dir: str | os.PathLike[str], stem: str, config: dict[str, Any]):
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.config = json.loads(json.dumps(config, default=str))
        self.parts_dir = self.out_dir / f"{stem}.parts"
        self._buffer: list[GraphResult] = []
        self._results: dict[str, GraphResult] = {}
        self._dataset_rows: set[int] = set()  # of the finished dataset resumed from
        self.earlier_selection: str | None = None  # that dataset's ``selection`` text
        self._chosen: set[int] = set()  # what the runs of these parts selected

    @property
    def dataset_path(self) -> Path:
        return self.out_dir / f"{self.stem}.parquet"

    @property
    def raw_path(self) -> Path:
        return self.out_dir / f"{self.stem}.raw.h5"

    def open(self, fresh: bool = False) -> dict[str, GraphResult]:
        """Create or reopen the parts folder; returns results already stored, by graph key.

        Without parts (a finished run removes them, :meth:`discard_parts`) the results
        come from the dataset and raw timings this store wrote, when their recorded run
        settings are this run's; so a rerun still times only what is not done.
        """
        cfg_path = self.parts_dir / "run.json"
        if not fresh and (self.dataset_path.exists() or self.dataset_path.is_symlink()):
            from latbench.files import NotRegularFile, require_regular

            try:  # a folder or FIFO there would stop the run only at its end
                require_regular(self.dataset_path)
            except (NotRegularFile, OSError) as exc:
                raise RunConfigMismatch(
                    f"{self.dataset_path}: {exc}; the run would end by writing its dataset"
                    " there, so it stops now and writes nothing"
                ) from None
        if fresh and self.parts_dir.exists():
            for p in [*self.parts_dir.glob("part-*.parquet"), cfg_path, self.selection_path]:
                p.unlink(missing_ok=True)
        seeded = {} if fresh or cfg_path.exists() else self._from_dataset()
        if not seeded:
            self._dataset_rows = set()
        self.earlier_selection = None if fresh else self._finished_selection()
        self._chosen = set() if fresh else _read_selection(self.selection_path)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._remove_killed_part_temps()
        if seeded:
            self._buffer = list(seeded.values())
            self.flush()  # durable again as a part, before anything new is timed
        if cfg_path.exists():
            details = _config_diff(_read_config(cfg_path), self.config)
            if details:
                raise RunConfigMismatch(
                    f"{self.parts_dir} holds a run with different settings ({details}). "
                    "Use another --out or --key, or --fresh to discard the stored parts."
                )
        else:
            with atomic_path(cfg_path) as tmp:
                tmp.write_text(json.dumps(self.config, indent=2, sort_keys=True))
        self._results = self._read_parts()
        return dict(self._results)

    def _finished_selection(self) -> str | None:
        """The ``selection`` text of this store's finished dataset if it was written with
        this run's settings (whose rows a rerun keeps), read from its footer alone."""
        from latbench.dataset import read_metadata

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                meta = read_metadata(self.dataset_path)
        except Exception:  # absent or unreadable: the run says so where it reads rows
            return None
        return _selection_text(meta) if _same_settings(meta, self.config) else None

    def _from_dataset(self) -> dict[str, GraphResult]:
        """Results of graphs in this store's finished dataset, if it was written with
        this run's settings and its raw timings are all there; else nothing."""
        from latbench.dataset import DatasetError, read_dataset

        if not self.dataset_path.is_file():
            return {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnverifiedFileWarning)
                df = read_dataset(self.dataset_path)
        except (DatasetError, OSError) as exc:
            # the run would replace it at the end: an unreadable file may still be the
            # user's only copy of something (a damaged dataset, a misplaced prediction)
            raise RunConfigMismatch(
                f"{exc}; {self.dataset_path.name} would be replaced by this run, so it"
                " stops here and writes nothing. Move the file away, use another --out or"
                " --key, or pass --fresh to measure again and replace it."
            ) from None
        stored = df.attrs["metadata"].get("run_config")
        if stored is None:  # not this harness's run: an import, a copy, an old version's
            raise RunConfigMismatch(
                f"{self.dataset_path} holds {len(df)} rows this harness did not measure"
                f" ({_made_by(df.attrs['metadata'])}, no run settings recorded): a run would"
                " replace it. Use another --key or --out, or --fresh to replace it."
            )
        details = _config_diff(stored if isinstance(stored, dict) else {"?": stored}, self.config)
        if details:
            raise RunConfigMismatch(
                f"{self.dataset_path} was measured with different settings ({details}). "
                "Use another --out or --key, or --fresh to measure it again."
            )
        raw = self._raw_rows()
        self._dataset_rows = {int(x) for x in df["arch_id"]}
        rows = df[df["valid"] & df["status"].isin(["ok", "failed"])].drop_duplicates("graph_key")
        out: dict[str, GraphResult] = {}
        for r in rows.itertuples(index=False):
            ok = r.status == "ok"
            if ok and r.graph_key not in raw:
                return {}  # raw timings lost: never write a raw file without them
            dev, run = getattr(r, "device_id", None), getattr(r, "fleet_run", None)
            out[r.graph_key] = GraphResult(
                r.graph_key, int(r.arch_id if pd.isna(r.timed_arch_id) else r.timed_arch_id), r.status,
                float(r.latency_ms) if ok else None, float(r.latency_std_ms) if ok else None,
                int(r.runs), None if ok else str(r.error), raw.get(r.graph_key) if ok else None,
                None if dev is None or pd.isna(dev) else str(dev),
                None if run is None or pd.isna(run) else int(run),
            )  # fmt: skip
        return out

    def _raw_rows(self) -> dict[str, np.ndarray]:
        if not self.raw_path.is_file():
            return {}
        from latbench.raw import RawFormatError, read_raw

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnverifiedFileWarning)
                raw = read_raw(self.raw_path)
        except (RawFormatError, OSError, ImportError) as exc:
            log.warning("not resuming from %s (%s)", self.raw_path, exc)
            return {}
        return {
            str(k): row[row >= 0]  # rows are padded with -1 to the widest
            for k, row in zip(raw["graph_key"], raw["timings_ns"], strict=True)
        }

    @property
    def selection_path(self) -> Path:
        return self.parts_dir / SELECTION_FILE

    def earlier_rows(self) -> set[int]:
        """The architectures a rerun keeps (:func:`~latbench.harness.plan.with_earlier`),
        after :meth:`open`: every row of the finished dataset it resumed from, and of what
        the runs of its parts selected, those whose graph was timed (a crashed larger
        run's unreached ones are not added)."""
        timed = {a for a in self._chosen - self._dataset_rows if _graph_of(a) in self._results}
        return self._dataset_rows | timed

    def remember(self, arch_ids: Iterable[int]) -> None:
        """Record durably, before any timing, that this run selected ``arch_ids``, so a
        rerun with a smaller selection after a crash still keeps their rows."""
        self._chosen |= {int(x) for x in arch_ids}
        with atomic_path(self.selection_path) as tmp:
            tmp.write_text(json.dumps(sorted(self._chosen)))

    def discard_parts(self) -> bool:
        """Remove the parts of a finished run (the dataset and raw file hold it all).

        Only parts, ``run.json`` and the temporaries of their killed writes go (the
        run is over and its writer holds the lock: no write of them is in progress); a
        folder holding anything else (a fleet's state, a damaged part kept for
        inspection) stays. Returns whether it went.
        """
        if not self.parts_dir.is_dir():
            return False
        temps = self._killed_part_temps()
        parts = [*self.parts_dir.glob("part-*.parquet"), self.parts_dir / "run.json"]
        for p in [*parts, self.selection_path, *temps]:
            p.unlink(missing_ok=True)
        try:
            self.parts_dir.rmdir()
        except OSError:
            return False
        return True

    def _killed_part_temps(self) -> list[Path]:
        """Temporaries of part and ``run.json`` writes in the parts folder (regular files)."""
        out = []
        with contextlib.suppress(OSError), os.scandir(self.parts_dir) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if _PART_TEMP.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        out.append(Path(entry.path))
        return out

    def _remove_killed_part_temps(self) -> None:
        """Remove what killed writes of parts left, when this process holds the dataset's
        write lock (a resumed run: no other writer of these parts is alive), with one
        :class:`~latbench.dataset.StaleTempWarning`.

        Unlike a dataset file's, a part's name is new on every flush, so no later write
        of the same name would ever sweep a killed flush's temporary; nor does the
        writer's age rule apply: only the lock holder writes parts.
        """
        from latbench.lock import holds

        if not holds(self.dataset_path):
            return
        removed: list[tuple[str, int]] = []
        for path in self._killed_part_temps():
            try:
                size = path.lstat().st_size
                path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: left as it is
                continue
            removed.append((path.name, size))
        if removed:
            warn_removed_temps(removed, f"interrupted writes in {safe(self.parts_dir)}", 4)

    def _read_parts(self) -> dict[str, GraphResult]:
        results: dict[str, GraphResult] = {}
        for part in sorted(self.parts_dir.glob("part-*.parquet")):
            try:
                with warnings.catch_warnings():  # parts of older versions: no checksums
                    warnings.simplefilter("ignore", UnverifiedFileWarning)
                    table = read_verified(part)
                for f in PART_SCHEMA:  # columns added later: parts written before lack them
                    if f.nullable and f.name not in table.column_names:
                        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
                table = table.select(PART_SCHEMA.names).cast(PART_SCHEMA)
            except (pa.ArrowException, KeyError, ValueError, OSError) as exc:
                # Parts are renamed into place whole, so this is outside damage:
                # keep the file for inspection and time its graphs again.
                log.warning(
                    "ignoring unreadable part %s (%s); its graphs will be re-timed", part, exc
                )
                continue
            for row in table.to_pylist():
                raw = row.pop("raw_ns")
                res = GraphResult(**row, raw_ns=None if raw is None else np.asarray(raw, np.int64))
                if res.status == "ok" and not _plausible(res.latency_ms):
                    # stored by a version that took a tool's figure as it came: counted as
                    # done it would block the dataset on every rerun, so time it again
                    log.warning(
                        "ignoring %s's latency %s ms in %s (outside the plausible range);"
                        " it will be re-timed", res.graph_key, res.latency_ms, part.name
                    )  # fmt: skip
                    continue
                prev = results.get(res.graph_key)
                if prev is None or (prev.status != "ok" and res.status == "ok"):
                    results[res.graph_key] = res
        return results

    def add(self, result: GraphResult) -> None:
        """Buffer one graph's result; call :meth:`flush` to make it durable."""
        self._buffer.append(result)
        prev = self._results.get(result.graph_key)
        if prev is None or prev.status != "ok":
            self._results[result.graph_key] = result

    @property
    def pending(self) -> int:
        """Results added but not yet flushed."""
        return len(self._buffer)

    def flush(self) -> Path | None:
        """Write buffered results as one new part (atomic); returns its path."""
        if not self._buffer:
            return None
        rows = [
            {
                "graph_key": r.graph_key,
                "timed_arch_id": int(r.timed_arch_id),
                "status": r.status,
                "error": r.error,
                "latency_ms": r.latency_ms,
                "latency_std_ms": r.latency_std_ms,
                "runs": int(r.runs),
                "raw_ns": None if r.raw_ns is None else np.asarray(r.raw_ns, np.int64).tolist(),
                "device_id": r.device_id,
                "fleet_run": r.fleet_run,
            }
            for r in self._buffer
        ]
        table = pa.Table.from_pylist(rows, schema=PART_SCHEMA)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        path = self.parts_dir / name
        with atomic_path(path) as tmp:
            write_verified(table, tmp)
        self._buffer.clear()
        return path

    @property
    def results(self) -> dict[str, GraphResult]:
        return dict(self._results)

    def frame(self, plan: Plan) -> pd.DataFrame:
        """Architecture rows (docs/design.md §6) of ``plan`` filled from the stored results."""
        df = skeleton_frame(sorted(plan.arch_ids))
        res = pd.DataFrame(
            [
                {
                    "graph_key": r.graph_key,
                    "_status": r.status,
                    "_error": r.error,
                    "_lat": r.latency_ms,
                    "_std": r.latency_std_ms,
                    "_runs": r.runs,
                    "_timed": r.timed_arch_id,
                    "_dev": r.device_id,
                    "_run": r.fleet_run,
                }
                for r in self._results.values()
            ],
            columns=[
                "graph_key",
                "_status",
                "_error",
                "_lat",
                "_std",
                "_runs",
                "_timed",
                "_dev",
                "_run",
            ],  # fmt: skip
        )
        df = df.merge(res, on="graph_key", how="left")
        hit = df["valid"] & df["_status"].notna()
        df.loc[hit, "status"] = df.loc[hit, "_status"]
        df.loc[hit, "error"] = df.loc[hit, "_error"]
        df.loc[hit, "latency_ms"] = df.loc[hit, "_lat"].astype("float64")
        df.loc[hit, "latency_std_ms"] = df.loc[hit, "_std"].astype("float64")
        df.loc[hit, "runs"] = df.loc[hit, "_runs"].astype("int32")
        df.loc[hit, "timed_arch_id"] = df.loc[hit, "_timed"].astype("Int32")
        if res["_dev"].notna().any():  # rows timed by a fleet say which device timed them
            df["device_id"] = df["_dev"].where(hit, None).astype("string")
            if res["_run"].notna().any():
                df["fleet_run"] = df["_run"].where(hit, None).astype("Int32")
                return df[[*COLUMNS, "device_id", "fleet_run"]]
            return df[[*COLUMNS, "device_id"]]
        return df[list(COLUMNS)]

    def finalize(self, plan: Plan, metadata: dict[str, Any]) -> Path:
        """Flush, then write the dataset and its raw timings; returns the dataset path."""
        self.flush()
        df = self.frame(plan)
        # the settings a rerun must match to resume from this file once parts are gone
        meta = {**metadata, "run_config": self.config}
        to_table(df, meta)  # a dataset it would refuse must not leave a raw file beside it
        self._write_raw(plan, metadata.get("protocol", {}))
        return write_dataset(df, self.dataset_path, meta)

    def _write_raw(self, plan: Plan, protocol: dict[str, Any]) -> None:
        from latbench.raw import write_raw

        keys = {w.key for w in plan.work}
        rows = [r for k, r in sorted(self._results.items()) if k in keys and r.raw_ns is not None]
        if rows:
            write_raw(
                self.raw_path,
                [r.graph_key for r in rows],
                [r.timed_arch_id for r in rows],
                [r.raw_ns for r in rows],
                protocol,
            )
        else:  # an earlier run's raw file must not pass for this dataset's
            self.raw_path.unlink(missing_ok=True)


def _graph_of(arch_id: int) -> str | None:
    """The key of ``arch_id``'s pruned graph, or ``None`` for an invalid one."""
    arch = Arch.from_id(arch_id)
    return arch.graph.key if arch.valid else None


SELECTION_FILE = "selection.json"
"""File in a run's parts folder: the architectures its runs selected (a JSON list)."""


def _read_selection(path: Path) -> set[int]:
    """The architectures a parts folder's runs selected; a damaged file counts as none."""
    from latbench.files import read_capped

    try:
        stored = json.loads(read_capped(path, 1 << 20))
    except Exception:  # absent, damaged, nested past recursion: the runs chose nothing more
        return set()
    if not isinstance(stored, list):
        return set()
    return {x for x in stored if type(x) is int and 0 <= x < N_ARCHS}


def finished_rows(
    out_dir: str | os.PathLike[str], stem: str, config: dict[str, Any]
) -> tuple[set[int], str | None]:
    """The architectures of the finished dataset ``stem`` in ``out_dir`` and its
    ``selection`` text if it was written with run settings ``config``, else none (what it
    cannot read, too)."""
    from latbench.dataset import read_dataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = read_dataset(Path(out_dir) / f"{stem}.parquet")
    except Exception:
        return set(), None
    if not _same_settings(df.attrs["metadata"], config):
        return set(), None
    return {int(x) for x in df["arch_id"]}, _selection_text(df.attrs["metadata"])


def _made_by(metadata: dict[str, Any]) -> str:
    """What made a dataset, as its metadata says, in a few words."""
    source = metadata.get("source")
    return f"source: {short_repr(source, 60)}" if isinstance(source, str) else "an import or copy"


def _same_settings(metadata: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a dataset's metadata records run settings ``config`` (as JSON holds them)."""
    stored = metadata.get("run_config")
    now = json.loads(json.dumps(config, default=str))
    return isinstance(stored, dict) and not _config_diff(stored, now)


def _selection_text(metadata: dict[str, Any]) -> str | None:
    text = metadata.get("selection")
    return text if isinstance(text, str) and text else None


def describe_kept(selection: str, kept: int, earlier: str | None) -> str:
    """``selection`` (this command's) extended by the ``kept`` rows of earlier runs a
    rerun keeps, and the earlier dataset's own ``selection`` text where it is known, so
    the dataset says how every row it holds was chosen."""
    if not kept:
        return selection
    was = ""
    if earlier:  # the last run's own selection: the text must not grow with every rerun
        own, sep, _ = earlier.partition(_KEPT)
        was = f": {own}" + (" and earlier ones" if sep else "")
    return f"{selection}{_KEPT}{kept} architectures kept from earlier runs of this dataset{was}"


_KEPT = "; and "


def _plausible(latency_ms: float | None) -> bool:
    """Whether a stored figure is one a dataset accepts (:data:`LATENCY_RANGE_MS`)."""
    from latbench.dataset import LATENCY_RANGE_MS

    lo, hi = LATENCY_RANGE_MS
    return latency_ms is not None and lo <= latency_ms <= hi
