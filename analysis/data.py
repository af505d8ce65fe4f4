"""The datasets an analysis runs on: which keys, their frames, latency table, provenance.

Keys go through :func:`latbench.load`, so an unknown key raises the loader's
:class:`~latbench.UnknownDatasetError` (with close matches) and an absent one its
:class:`~latbench.DatasetNotFoundError` (with the import command).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import latbench
from latbench.catalog import resolve
from latbench.dataset import DatasetError
from latbench.loader import bundled_dir

__all__ = ["Datasets", "NoDatasetsError", "available_keys", "from_frames", "load_datasets"]


class NoDatasetsError(LookupError):
    """No dataset is available to analyse."""


def available_keys(
    data_home: str | os.PathLike[str] | None = None, *, bundled_only: bool = False
) -> list[str]:
    """Keys of every dataset present here (bundled + data home), in catalog order.

    ``bundled_only`` keeps the datasets shipped inside the package.
    """
    table = latbench.devices(data_home=data_home)
    table = table[table["available"]]
    if bundled_only:
        bundled = bundled_dir().resolve()
        table = table[[Path(p).resolve().parent == bundled for p in table["path"]]]
    return [str(k) for k in table["key"]]


@dataclass(frozen=True)
class Datasets:
    """Loaded datasets, keyed and ordered as the analysis reports them."""

    frames: Mapping[str, pd.DataFrame]
    """key -> dataset frame (docs/design.md §6 columns, metadata in ``attrs``)."""
    origins: Mapping[str, str] = field(default_factory=dict)
    """key -> where the file came from (``bundled`` or ``data home``), for the report."""

    @property
    def keys(self) -> list[str]:
        """Dataset keys in report order."""
        return list(self.frames)

    def latency(self) -> pd.DataFrame:
        """``arch_id`` x key table of latency (ms); NaN where ``status != "ok"``."""
        return self.column("latency_ms")

    def column(self, value: str) -> pd.DataFrame:
        """``arch_id`` x key table of ``value``; NaN where ``status != "ok"``."""
        cols = {}
        for key, df in self.frames.items():
            s = pd.Series(
                df[value].where(df["status"] == "ok").astype("float64").to_numpy(),
                index=df["arch_id"].to_numpy(dtype=np.int64),
            )
            cols[key] = s
        wide = pd.DataFrame(cols).sort_index()
        wide.index.name = "arch_id"
        return wide

    def provenance(self) -> pd.DataFrame:
        """One row per dataset: device, runtime, precision, protocol, host, source, counts."""
        return pd.DataFrame(
            [_provenance_row(k, df, self.origins.get(k, "")) for k, df in self.frames.items()]
        )


def _text(d: object, *names: str) -> str:
    out = []
    for n in names:
        v = d.get(n) if isinstance(d, Mapping) else None
        if v not in (None, "", [], {}):
            out.append(str(v))
    return " ".join(out)


def _provenance_row(key: str, df: pd.DataFrame, origin: str) -> dict[str, object]:
    meta = df.attrs.get("metadata", {}) or {}
    dev = meta.get("device", {}) or {}
    rt = meta.get("runtime", {}) or {}
    proto = meta.get("protocol", {}) or {}
    host = meta.get("host", {}) or {}
    runtime = _text(rt, "name", "version")
    if isinstance(rt, Mapping) and rt.get("threads"):
        runtime += f", {rt['threads']} thread(s)"
    if isinstance(proto, Mapping) and proto.get("runs"):
        protocol = f"R={proto['runs']}"
        if proto.get("groups") and proto.get("group_size"):
            protocol += f" ({proto['groups']}x{proto['group_size']})"
        if proto.get("warmup") is not None:
            protocol += f", warm-up {proto['warmup']}"
    else:
        protocol = str(proto.get("note", "")) if isinstance(proto, Mapping) else ""
    status = df["status"].value_counts()
    return {
        "key": key,
        "name": str(dev.get("name", key)),
        "class": str(dev.get("class", "")),
        "hardware": str(dev.get("hardware", "")),
        "runtime": runtime,
        "precision": str(meta.get("precision", "")),
        "batch": meta.get("batch", ""),
        "protocol": protocol,
        "host": _text(host, "cpu_model", "os"),
        "created": str(meta.get("created", "")),
        "source": str(meta.get("source", "")),
        "origin": origin,
        "rows": len(df),
        "ok": int(status.get("ok", 0)),
        "citation": str(meta.get("citation", "")),
        "license": str(meta.get("license", "")),
    }


def _canonical(key: str) -> str:
    return resolve(key) or key


def load_datasets(
    keys: Iterable[str] | None = None,
    *,
    data_home: str | os.PathLike[str] | None = None,
    bundled_only: bool = False,
) -> Datasets:
    """Load ``keys`` (default: every dataset available here, or only the bundled ones
    with ``bundled_only``) for analysis.

    Aliases are accepted and reported under their canonical key; duplicates are
    dropped. A default dataset whose file is damaged is left out with a warning. Raises the loader's errors for unknown or absent keys and
    :class:`NoDatasetsError` when nothing is left to analyse.
    """
    if keys is None:
        wanted = available_keys(data_home, bundled_only=bundled_only)
    else:
        wanted = [str(k) for k in keys]
    frames: dict[str, pd.DataFrame] = {}
    origins: dict[str, str] = {}
    bundled = bundled_dir().resolve()
    for key in wanted:
        try:
            df = latbench.load(key, data_home=data_home)
        except DatasetError as exc:
            if keys is not None:  # asked for by name: its error is the run's
                raise
            # one damaged file among the defaults must not stop the analysis of the others
            warnings.warn(
                f"left out {key}: {exc} (`latbench check` tells more; import or measure it"
                " again to include it)",
                stacklevel=2,
            )
            continue
        name = _canonical(key)
        if name in frames:
            continue
        frames[name] = df
        path = Path(df.attrs.get("path", ""))
        origins[name] = "bundled" if path.resolve().parent == bundled else "data home"
    if not frames:
        raise NoDatasetsError(
            "no LatBench dataset to analyse: import one (`latbench import help PATH`) "
            "or measure one (`latbench-measure --device cpu-onnxruntime --limit 20`)"
        )
    return Datasets(frames=frames, origins=origins)


def from_frames(frames: Mapping[str, pd.DataFrame]) -> Datasets:
    """Wrap in-memory dataset frames (e.g. synthetic ones in tests) for analysis."""
    if not frames:
        raise NoDatasetsError("no dataset frames given")
    return Datasets(frames=dict(frames), origins={k: "in memory" for k in frames})
