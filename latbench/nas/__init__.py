"""Hardware-aware NAS tools over NAS-Bench-201: what a latency estimate's error costs.

Pure numpy, on arrays indexed alike (one entry per candidate architecture):

- :mod:`.pareto`: Pareto fronts of accuracy vs latency and how much of the measured
  front a predicted front recovers (the paper's Figure 3);
- :mod:`.oracle`: oracle NAS over latency thresholds exactly as the paper's
  Supplementary S1.3 defines it (Figure S3, Figure 2 left);
- :mod:`.evolution`: Aging Evolution (Real et al., AAAI 2019) under a latency limit
  (Figure 2 right);
- :mod:`.remeasure`: the device's own re-measurement of each computation (isomorphic
  graphs timed apart), the noise floor of those metrics.

>>> from latbench.nas import oracle_nas, pareto_front, threshold_grid  # doctest: +SKIP
>>> res = oracle_nas(acc, measured_ms, predicted_ms, threshold_grid(measured_ms))  # doctest: +SKIP
"""

from latbench.nas.evolution import (
    EvolutionResult,
    InfeasibleLimit,
    aging_evolution,
    iqr_curves,
    mutate,
)
from latbench.nas.oracle import ORACLE_FIELDS, OracleResult, oracle_nas, threshold_grid
from latbench.nas.pareto import front_recovery, pareto_front
from latbench.nas.remeasure import denoised_latency, isomorphism_classes, remeasured_latency

__all__ = [
    "ORACLE_FIELDS",
    "EvolutionResult",
    "InfeasibleLimit",
    "OracleResult",
    "aging_evolution",
    "denoised_latency",
    "front_recovery",
    "iqr_curves",
    "isomorphism_classes",
    "mutate",
    "oracle_nas",
    "pareto_front",
    "remeasured_latency",
    "threshold_grid",
]
