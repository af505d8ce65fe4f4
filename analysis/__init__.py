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

from latbench.analysis.correlation import (
    METHODS,
    correlation_figure,
    correlation_matrix,
    correlation_pairs,
    pair_correlation,
)
from latbench.analysis.data import (
    Datasets,
    NoDatasetsError,
    available_keys,
    from_frames,
    load_datasets,
)
from latbench.analysis.pairs import pairs_figure, select_devices
from latbench.analysis.pipeline import RESULTS, run
from latbench.analysis.proxies import proxies_figure, proxy_correlations
from latbench.analysis.style import save_png

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
