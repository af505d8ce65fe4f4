"""``latbench-measure --adapt N``: measure N designed architectures, predict the rest.

1. :func:`plan_adapt` loads the prior (the shipped one unless ``--prior``) and picks N
   architectures by :func:`~latbench.predictors.fewshot.select_archs` (deterministic
   for a prior and seed, so rerunning the same command resumes the same measurement).
2. The harness measures them with the normal protocol into ``<key>.parquet``.
3. :meth:`AdaptPlan.finish` reads that dataset back, fits the adapter on the rows
   with ``status == "ok"`` and writes ``<key>.predicted.parquet`` atomically; the
   measured dataset is never touched, so predictions never mix with measurements.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latbench.space import Arch

__all__ = ["AdaptPlan", "plan_adapt"]

MIN_MEASURED = 3
"""Fewest successful measurements the fit accepts."""


@dataclass(frozen=True)
class AdaptPlan:
    """The prior, the chosen architectures and how they were chosen."""

    prior: Any
    prior_path: Path
    arch_ids: tuple[int, ...]
    seed: int
    criterion: str = "d"
    """The selection criterion actually used (``auto`` resolved)."""

    @property
    def archs(self) -> list[Arch]:
        """The chosen architectures, for the harness selection."""
        return [Arch.from_id(i) for i in self.arch_ids]

    def describe(self) -> dict[str, Any]:
        """Selection metadata recorded in the measured dataset."""
        from latbench.predictors.fewshot.selection import CRITERION_LABELS

        return {
            "method": f"few-shot design ({CRITERION_LABELS[self.criterion]})",
            "criterion": self.criterion,
            "n": len(self.arch_ids),
            "seed": self.seed,
            "prior": str(self.prior_path),
            "prior_sha256": self.prior.meta.get("sha256"),
        }

    def finish(self, out_dir: str | os.PathLike[str], key: str, level: float = 0.9) -> Path:
        """Fit on ``<key>.parquet``'s measured rows; write ``<key>.predicted.parquet``."""
        from latbench.dataset import read_dataset
        from latbench.predicted import predicted_path, write_predicted
        from latbench.predictors.fewshot import FewShotAdapter

        t0 = time.perf_counter()
        measured_path = Path(out_dir) / f"{key}.parquet"
        df = read_dataset(measured_path)
        ok = df[(df["status"] == "ok") & df["arch_id"].isin(self.arch_ids)]
        if len(ok) < MIN_MEASURED:
            raise RuntimeError(
                f"{measured_path}: only {len(ok)} of the {len(self.arch_ids)} chosen "
                f"architectures were measured successfully; need {MIN_MEASURED} to adapt"
            )
        ids = ok["arch_id"].to_numpy(np.int64)
        adapted = FewShotAdapter(self.prior).fit(ids, ok["latency_ms"].to_numpy(np.float64))
        frame = adapted.predict_frame(level)
        meta = {
            **adapted.describe(),
            "key": key,
            "band_level": level,
            "measured_dataset": measured_path.name,
            "selection": self.describe(),
            "failed_arch_ids": sorted(set(self.arch_ids) - {int(i) for i in ids}),
            "prior_citations": self.prior.meta.get("citations", []),
            "units": "ms",
            "note": "predicted, not measured; latbench.load() never returns these rows",
            "fit_seconds": round(time.perf_counter() - t0, 3),
        }
        return write_predicted(frame, predicted_path(out_dir, key), meta)


def plan_adapt(n: int, prior: str | os.PathLike[str] | None = None, seed: int = 0) -> AdaptPlan:
    """Load the prior and choose ``n`` architectures (raises ``ValueError`` on bad input)."""
    from latbench.predictors.fewshot import default_prior_path, load_prior, select_archs
    from latbench.predictors.fewshot.selection import resolve_criterion

    if n < MIN_MEASURED:
        raise ValueError(f"--adapt needs at least {MIN_MEASURED} architectures, got {n}")
    path = Path(prior) if prior is not None else default_prior_path()
    loaded = load_prior(path)  # PredictorError is a ValueError: one line, exit 2
    if loaded.view != "pruned":  # sources as timed: HELP's run their cells' dead branches
        import warnings

        warnings.warn(
            f"--prior {path} sees its sources as they were timed ({loaded.view} view), not"
            " as pruned networks, which is what this harness times: its predictions are"
            " worse here (`latbench-predict pretrain`, default --view pruned, makes one)",
            stacklevel=2,
        )
    criterion = resolve_criterion()
    ids = select_archs(loaded, n, seed=seed, criterion=criterion)
    return AdaptPlan(loaded, path, tuple(int(i) for i in ids), seed, criterion)


def summary_line(meta: dict) -> str:
    """What a user should see of a fit: the model chosen, the nearest source and its
    distance, and a warning when the device is unlike every source."""
    line = f"few-shot fit: model {meta.get('model')}"
    nearest = meta.get("nearest_source")
    if nearest:
        d = meta.get("source_distance", {}).get(nearest, {})
        line += (f"; nearest source {nearest} (RMS log error {d.get('rmse_log')},"
                 f" Spearman {d.get('spearman')})")  # fmt: skip
    if meta.get("unlike_sources"):
        line += "; this device is unlike every source of the prior: treat the bands with care"
    return line
