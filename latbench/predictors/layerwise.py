"""Layer-wise latency predictor (Section 3.1, footnote 2; docs/design.md §9).

Prediction = scale x the sum, over every layer instance of the pruned network
(:func:`latbench.network.network_layers`), of that layer's latency measured alone
(the harness's ``<key>.layers.parquet``). ``scale`` is the one factor that best fits
the training set's end-to-end latencies in least squares: ``sum(s y) / sum(s s)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from latbench.predictors.base import Archs, Predictor, PredictorError, arch_ids, check_targets
from latbench.predictors.encoding import layer_count_matrix, valid_mask

__all__ = ["LayerwisePredictor", "layers_path", "read_layers"]


def layers_path(dataset: str, data_home: str | os.PathLike[str] | None = None) -> Path:
    """The per-layer table ``<key>.layers.parquet`` next to dataset ``dataset``.

    Raises :class:`PredictorError` naming the command that measures it when absent.
    """
    from latbench.loader import data_home as home
    from latbench.loader import dataset_path

    path = dataset_path(dataset, data_home)
    name = path.name[: -len(".parquet")] + ".layers.parquet"
    # Next to the dataset first; a bundled dataset's table may also be measured later
    # into the user data home.
    candidates = [path.with_name(name), home(data_home) / name]
    for layers in candidates:
        if layers.exists():
            return layers
    raise PredictorError(
        f"dataset {dataset!r} has no per-layer table ({name} not found in "
        f"{' or '.join(dict.fromkeys(str(c.parent) for c in candidates))}), so the "
        "layer-wise predictor cannot be used with it. Measure one on the same device with "
        "`latbench-measure --device PROFILE --layers --key KEY --out DIR`."
    )


def read_layers(table: pd.DataFrame | str | os.PathLike[str]) -> pd.Series:
    """Per-layer latency (ms) by signature from a layers table or its Parquet file.

    Only rows with ``status == "ok"`` count (no ``status`` column: all rows).
    """
    if not isinstance(table, pd.DataFrame):
        path = Path(table)
        if not path.exists():
            raise PredictorError(f"{path}: no such layers table")
        from latbench.integrity import read_table_file

        table = read_table_file(path)  # manifest, page checksums and digest verified
    missing = {"signature", "latency_ms"} - set(table.columns)
    if missing:
        raise PredictorError(f"layers table lacks column(s) {', '.join(sorted(missing))}")
    if table["signature"].duplicated().any():
        dup = table.loc[table["signature"].duplicated(), "signature"].iloc[0]
        raise PredictorError(f"layers table lists signature {dup!r} more than once")
    if "status" in table.columns:
        table = table[table["status"] == "ok"]
    lat = pd.to_numeric(table["latency_ms"], errors="coerce")
    lat.index = table["signature"].astype(str).to_numpy()
    lat = lat.dropna().astype("float64")
    if (lat < 0).any():
        raise PredictorError(f"layers table has negative latency for {lat[lat < 0].index[0]!r}")
    return lat


class LayerwisePredictor(Predictor):
    """Sum of per-layer latencies times one fitted scale factor.

    ``layers`` is a per-layer table (DataFrame with ``signature``, ``latency_ms`` and
    optionally ``status``) or the path of a ``<key>.layers.parquet`` file; see
    :meth:`from_dataset` to find it next to a dataset.
    """

    name: ClassVar[str] = "layerwise"

    def __init__(self, layers: pd.DataFrame | str | os.PathLike[str] | pd.Series) -> None:
        lat = layers if isinstance(layers, pd.Series) else read_layers(layers)
        sigs, counts = layer_count_matrix()
        self.layer_latency_ms = lat.reindex(list(sigs))
        """Per-layer latency by signature, in the order of the count matrix (NaN = missing)."""
        self.scale = float("nan")
        vec = self.layer_latency_ms.to_numpy(dtype=np.float64)
        known = ~np.isnan(vec)
        # Architectures that use a signature missing from the table cannot be summed.
        self._complete = ~np.any(counts[:, ~known] > 0, axis=1)
        self._raw = counts[:, known] @ vec[known]

    @classmethod
    def from_dataset(
        cls, dataset: str, data_home: str | os.PathLike[str] | None = None
    ) -> LayerwisePredictor:
        """Use the per-layer table ``<key>.layers.parquet`` stored next to ``dataset``."""
        return cls(layers_path(dataset, data_home))

    def layer_sum(self, archs: Archs = None) -> np.ndarray:
        """Unscaled sum of per-layer latencies (ms); ``NaN`` for invalid architectures.

        Raises :class:`PredictorError` when a valid architecture uses a layer that the
        table lacks (or that failed to measure).
        """
        ids = arch_ids(archs)
        valid = valid_mask()[ids]
        bad = ids[valid & ~self._complete[ids]]
        if bad.size:
            sigs, counts = layer_count_matrix()
            need = {
                sigs[j]
                for j in np.flatnonzero(counts[bad].sum(axis=0))
                if np.isnan(self.layer_latency_ms.iloc[j])
            }
            raise PredictorError(
                f"layers table has no ok latency for {', '.join(sorted(need))}, used by "
                f"{bad.size} of the requested architectures (e.g. arch_id {int(bad[0])})"
            )
        return np.where(valid, self._raw[ids], np.nan)

    def fit(
        self,
        archs: Archs,
        latency_ms: Sequence[float] | np.ndarray,
        *,
        val_archs: Archs = None,
        val_latency_ms: Sequence[float] | np.ndarray | None = None,
    ) -> LayerwisePredictor:
        """Fit the scale factor by least squares (validation data is unused)."""
        ids = arch_ids(archs)
        y = check_targets(ids, latency_ms)
        s = self.layer_sum(ids)
        denom = float(np.dot(s, s))
        if denom == 0:
            raise PredictorError("every training architecture has a zero layer sum")
        self.scale = float(np.dot(s, y)) / denom
        self._fitted = True
        return self

    def predict(self, archs: Archs = None) -> np.ndarray:
        """``scale * layer_sum``; ``NaN`` for invalid architectures."""
        self._check_fitted()
        return self.scale * self.layer_sum(archs)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        lat = self.layer_latency_ms.dropna()
        arrays = {
            "signatures": np.array(lat.index, dtype=str),
            "latency_ms": lat.to_numpy(dtype=np.float64),
        }
        return {"scale": self.scale}, arrays

    @classmethod
    def _from_state(
        cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> LayerwisePredictor:
        lat = pd.Series(arrays["latency_ms"], index=[str(s) for s in arrays["signatures"]])
        pred = cls(lat)
        pred.scale = float(config["scale"])
        return pred
