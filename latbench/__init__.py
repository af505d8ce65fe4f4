"""LatBench: latency of the 15,625 NAS-Bench-201 architectures on many devices.

>>> import latbench
>>> df = latbench.load("jetson_nano")          # doctest: +SKIP
>>> latbench.devices()                          # doctest: +SKIP

Importing this package needs only numpy, pandas and pyarrow; the measurement harness
(``latbench.harness``) and the analyses (``latbench.analysis``) load their heavier
dependencies on first use.
"""

from latbench.accuracy_table import accuracy
from latbench.catalog import CATALOG, UnknownDatasetError
from latbench.dataset import DatasetError, read_dataset, write_dataset
from latbench.graph import PrunedGraph, prune
from latbench.loader import (
    DatasetNotFoundError,
    data_home,
    devices,
    load,
    load_predicted,
    load_wide,
)
from latbench.network import costs
from latbench.space import OPS, Arch, ArchError, all_archs, nb201_index

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "OPS",
    "Arch",
    "ArchError",
    "DatasetError",
    "DatasetNotFoundError",
    "PrunedGraph",
    "UnknownDatasetError",
    "__version__",
    "accuracy",
    "all_archs",
    "costs",
    "data_home",
    "devices",
    "load",
    "load_predicted",
    "load_wide",
    "nb201_index",
    "prune",
    "read_dataset",
    "write_dataset",
]
