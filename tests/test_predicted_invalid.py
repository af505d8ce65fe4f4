"""Predicted files hold no latency for invalid architectures (issue 24, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

import latbench
from latbench.dataset import METADATA_KEY, atomic_path
from latbench.integrity import write_verified
from latbench.predicted import predicted_path, write_predicted
from latbench.space import N_ARCHS


def _frame() -> pd.DataFrame:
    valid = latbench.dataset.arch_table()["valid"].to_numpy()
    x = np.linspace(0.4, 2.0, N_ARCHS)
    return pd.DataFrame({"arch_id": np.arange(N_ARCHS, dtype=np.int32), "valid": valid,
                         "latency_pred_ms": x, "latency_lo_ms": 0.9 * x,
                         "latency_hi_ms": 1.1 * x, "measured": np.zeros(N_ARCHS, bool)})  # fmt: skip


def _check(pred: pd.DataFrame) -> None:
    invalid = ~pred["valid"].to_numpy()
    assert invalid.sum() == 341  # NAS-Bench-201's invalid cells
    assert not pred.loc[0, "valid"]  # arch 0: every edge is none
    for col in ("latency_pred_ms", "latency_lo_ms", "latency_hi_ms"):
        assert pred.loc[invalid, col].isna().all(), col
        assert pred.loc[~invalid, col].notna().all(), col


def test_written_prediction_has_nan_for_invalid_architectures(tmp_path):
    write_predicted(_frame(), predicted_path(tmp_path, "mybox"), {"adapter_version": "t"})
    _check(latbench.load_predicted("mybox", data_home=tmp_path))


def test_older_file_with_invalid_figures_loads_with_nan(tmp_path):
    # a file written before the fix: numbers on invalid rows, digests intact
    table = pa.Table.from_pandas(_frame(), preserve_index=False).replace_schema_metadata(
        {METADATA_KEY: json.dumps({"kind": "latbench-predicted"})}
    )
    with atomic_path(predicted_path(tmp_path, "old")) as tmp:
        write_verified(table, tmp)
    _check(latbench.load_predicted("old", data_home=tmp_path))
