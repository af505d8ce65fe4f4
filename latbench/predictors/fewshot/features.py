"""Architecture features the few-shot adapter regresses on besides the device factors.

Eleven columns per ``arch_id``, all of the pruned network (docs/design.md §3-§4) or of the
cell's six op labels: log FLOPs, log params, the cell's count of each non-zero op
(skip, conv1x1, conv3x3, avgpool), the pruned graph's surviving conv1x1, conv3x3 and
avgpool nodes, its edges and its multi-input adds. They let the prior express what
the source devices' factors miss (per-op cost on a pruned-graph target). The nine
counts are also the terms of the additive cost model (latency, not its log, as a sum
of per-op costs), exact for simulated accelerators and close for many real targets.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["ADDITIVE_NAMES", "FEATURE_NAMES", "arch_features"]

FEATURE_NAMES = (
    "log_flops",
    "log_params",
    "cell_skip",
    "cell_conv1x1",
    "cell_conv3x3",
    "cell_avgpool",
    "pruned_conv1x1",
    "pruned_conv3x3",
    "pruned_avgpool",
    "pruned_edges",
    "pruned_adds",
)
ADDITIVE_COLUMNS = tuple(range(2, len(FEATURE_NAMES)))
"""Columns of :data:`FEATURE_NAMES` that are op counts: the additive cost model's terms."""
ADDITIVE_NAMES = tuple(FEATURE_NAMES[i] for i in ADDITIVE_COLUMNS)


@cache
def arch_features() -> np.ndarray:
    """``(15625, 11)`` float64 array of :data:`FEATURE_NAMES`, read-only (a few seconds once)."""
    from latbench.predictors.encoding import _graphs, cost_arrays
    from latbench.space import N_ARCHS, from_id

    flops, params = cost_arrays()
    vec = np.array([from_id(i) for i in range(N_ARCHS)])
    out = np.empty((N_ARCHS, len(FEATURE_NAMES)))
    out[:, 0] = np.log(flops)
    out[:, 1] = np.log(params)
    out[:, 2:6] = np.stack([(vec == op).sum(1) for op in (1, 2, 3, 4)], axis=1)
    for i, g in enumerate(_graphs()):
        labels = [g.labels[s] for s in g.op_nodes]
        out[i, 6] = labels.count("conv1x1")
        out[i, 7] = labels.count("conv3x3")
        out[i, 8] = labels.count("avgpool3x3")
        out[i, 9] = len(g.edges)
        out[i, 10] = sum(1 for s in (*g.op_nodes, 7) if len(g.preds(s)) > 1)
    out.setflags(write=False)
    return out
