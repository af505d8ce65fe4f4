"""The BRP-NAS paper's LatBench results from any datasets (``latbench[analysis]``).

>>> from latbench.analysis import load_datasets, correlation_pairs, correlation_matrix
>>> data = load_datasets()                      # every dataset available here
>>> pairs = correlation_pairs(data.latency())   # Spearman, Pearson, Kendall per pair
>>> correlation_matrix(pairs, "spearman")       # Table S4  # doctest: +SKIP
>>> run("all", out="results")                   # everything + results/README.md  # doctest: +SKIP

Modules, one job each: ``data`` (which datasets, provenance), ``correlation``
(Table S4), ``proxies`` (Figure S12), ``pairs`` (Figure S13), ``predictors``
(Figure 1, Tables 1/S2, via :mod:`latbench.predictors`), ``paper`` (the paper's
numbers), ``report`` (files and README.md), ``pipeline`` and ``cli``
(``latbench-analysis``), ``style``/``scales``/``tables`` (shared output helpers).
"""

from __future__ import annotations

import importlib
from typing import Any

# Names load on first use, so `latbench-analysis` (latbench.analysis.cli) starts, and
# says which extra to install, even where matplotlib or SciPy are missing.
_HOME = {
    "METHODS": "correlation", "correlation_figure": "correlation",
    "correlation_matrix": "correlation", "correlation_pairs": "correlation",
    "pair_correlation": "correlation", "Datasets": "data", "NoDatasetsError": "data",
    "available_keys": "data", "from_frames": "data", "load_datasets": "data",
    "pairs_figure": "pairs", "select_devices": "pairs", "RESULTS": "pipeline", "run": "pipeline",
    "proxies_figure": "proxies", "proxy_correlations": "proxies", "save_png": "style",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"latbench.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'latbench.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "METHODS",
    "RESULTS",
    "Datasets",
    "NoDatasetsError",
    "available_keys",
    "correlation_figure",
    "correlation_matrix",
    "correlation_pairs",
    "from_frames",
    "load_datasets",
    "pair_correlation",
    "pairs_figure",
    "proxies_figure",
    "proxy_correlations",
    "run",
    "save_png",
    "select_devices",
]
