"""The rows a predictor learns from, and the random train/validation/test split.

Usable rows are valid architectures with ``status == "ok"`` and a positive latency.
Architectures that share a pruned graph (``graph_key``) are the same network, so a
dataset measured by this harness gives them identical latencies; imported datasets
that timed unpruned networks (HELP) may differ slightly. The paper splits *models*
(``unit="models"``, the default), so a test model can share its graph with a
training model; ``unit="graphs"`` keeps one row per distinct graph (lowest
``arch_id``) and splits those, so no test network was seen in training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latbench.predictors.base import PredictorError

__all__ = ["CELL_IMPORTERS", "UNITS", "Split", "split_rows", "timed_encoding", "usable_rows"]

UNITS = ("models", "graphs")
"""What a split draws: architectures (the paper) or distinct pruned graphs."""


def usable_rows(
    dataset: str | pd.DataFrame, data_home: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """Rows of ``dataset`` (a key or a loaded frame) that predictors can use.

    Columns ``arch_id`` (int64), ``arch_str``, ``graph_key``, ``latency_ms``, in
    ``arch_id`` order with a fresh index; ``attrs["dataset"]`` names the source and
    ``attrs["encoding"]`` is its :func:`timed_encoding`.
    Unknown keys raise :class:`~latbench.catalog.UnknownDatasetError`.
    """
    if isinstance(dataset, pd.DataFrame):
        df, name = dataset, str(dataset.attrs.get("path", "<frame>"))
    else:
        from latbench.loader import load

        df = load(dataset, data_home=data_home)
        # the dataset's own key, not the alias typed (E.GPU is jetson-nano-fp32)
        name = Path(str(df.attrs.get("path", dataset))).name.removesuffix(".parquet")
    need = {"arch_id", "latency_ms"}
    missing = need - set(df.columns)
    if missing:
        raise PredictorError(f"{name}: dataset lacks column(s) {', '.join(sorted(missing))}")
    keep = np.ones(len(df), dtype=bool)
    if "status" in df.columns:
        keep &= (df["status"] == "ok").to_numpy()
    if "valid" in df.columns:
        keep &= df["valid"].to_numpy(dtype=bool)
    lat = pd.to_numeric(df["latency_ms"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    keep &= np.isfinite(lat) & (lat > 0)
    out = pd.DataFrame(
        {
            "arch_id": df["arch_id"].to_numpy(dtype=np.int64)[keep],
            "latency_ms": lat[keep],
        }
    )
    from latbench.predictors.encoding import valid_mask

    out = out[valid_mask()[out["arch_id"].to_numpy()]]  # a frame without a `valid` column
    out = out.sort_values("arch_id", kind="stable").reset_index(drop=True)
    if out["arch_id"].duplicated().any():
        raise PredictorError(
            f"{name}: arch_id {out.arch_id[out.arch_id.duplicated()].iloc[0]} repeats"
        )
    from latbench.space import format_arch, from_id

    out.insert(1, "arch_str", [format_arch(from_id(int(i))) for i in out["arch_id"]])
    out.insert(2, "graph_key", _graph_keys(out["arch_id"].to_numpy()))
    out.attrs["dataset"] = name
    out.attrs["encoding"] = timed_encoding(df.attrs.get("metadata", {}))
    return out


CELL_IMPORTERS = ("help", "hwnasbench")
"""Importers of datasets that timed NAS-Bench-201's unpruned cells (HW-NAS-Bench's networks,
which HELP's data reuses for its shared devices)."""


def timed_encoding(metadata: dict) -> str:
    """GCN encoding of the network a dataset timed: ``cell`` for HELP and HW-NAS-Bench
    imports, else ``pruned``.

    They timed NAS-Bench-201's unpruned cells (zero ops and skips executed), so
    architectures that share a pruned graph differ in latency by ~12% (median) there,
    and a pruned-graph model cannot beat ~74% within +-10% even as an oracle.
    """
    imported = metadata.get("imported_from") if isinstance(metadata, dict) else None
    if isinstance(imported, dict) and imported.get("importer") in CELL_IMPORTERS:
        return "cell"
    return "pruned"


def _graph_keys(ids: np.ndarray) -> list[str]:
    from latbench.graph import prune
    from latbench.space import from_id

    return [prune(from_id(int(i))).key for i in ids]


@dataclass(frozen=True)
class Split:
    """Row positions (into :func:`usable_rows`' frame) of the three parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_rows(
    rows: pd.DataFrame,
    train: int,
    val: int,
    seed: int | np.random.SeedSequence,
    unit: str = "models",
) -> Split:
    """Random split: ``train`` and ``val`` rows (or graphs), every other one is test.

    Same ``rows`` and ``seed`` give the same split. Raises :class:`PredictorError`
    when ``train + val`` leaves no test data.
    """
    if unit not in UNITS:
        raise PredictorError(f"unknown split unit {unit!r}; choose one of {', '.join(UNITS)}")
    if train < 1 or val < 0:
        raise PredictorError(f"need train >= 1 and val >= 0, got train={train}, val={val}")
    if unit == "graphs":
        # One representative (lowest arch_id: rows are sorted) per distinct pruned graph.
        pool = np.flatnonzero(~rows["graph_key"].duplicated().to_numpy())
    else:
        pool = np.arange(len(rows))
    name = rows.attrs.get("dataset", "the dataset")
    if train + val >= len(pool):
        raise PredictorError(
            f"train ({train}) + val ({val}) = {train + val} leaves no test data: {name} has "
            f"{len(pool)} usable {unit} (valid architectures with status ok)"
        )
    perm = np.random.default_rng(seed).permutation(pool)
    return Split(
        np.sort(perm[:train]), np.sort(perm[train : train + val]), np.sort(perm[train + val :])
    )
