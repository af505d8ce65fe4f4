"""Architecture features the few-shot adapter regresses on besides the device factors.

Fifteen columns per ``arch_id``, all of the pruned network (docs/design.md §3-§4) or of
the cell's six op labels: log FLOPs, log params, the cell's count of each non-zero op
(skip, conv1x1, conv3x3, avgpool), the pruned graph's surviving conv1x1, conv3x3 and
avgpool nodes, its edges and its multi-input adds, and its path features: the most
conv1x1, conv3x3 and avgpool nodes on any one input-to-output path, and the most op
nodes on one (the depth). They let the prior express what the source devices' factors
miss: per-op cost on a pruned-graph target, and, where a runtime runs the cell's
branches concurrently, the cost of the longest branch rather than of all of them
(adapter version 7). The op and path counts are also the terms of the additive cost
model (latency, not its log, as a sum of per-op costs), exact for simulated
accelerators and close for many real targets.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "ADDITIVE_NAMES",
    "FEATURE_NAMES",
    "LEGACY_ADDITIVE_NAMES",
    "arch_features",
    "feature_names",
]

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
    "path_conv1x1",
    "path_conv3x3",
    "path_avgpool",
    "path_depth",
)
ADDITIVE_NAMES = FEATURE_NAMES[2:]
"""Features that are op counts: the additive cost model's terms."""
LEGACY_ADDITIVE_NAMES = FEATURE_NAMES[2:11]
"""The additive terms of priors made before adapter version 7 (they record none)."""
_OPS = ("conv1x1", "conv3x3", "avgpool3x3")


def feature_names(view: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The features and additive terms of a prior whose sources are seen in ``view``.

    The path features describe the pruned graph's branches; a source that timed the
    unpruned cell (view ``timed``) ran every edge, so its prior goes without them.
    """
    if view == "pruned":
        return FEATURE_NAMES, ADDITIVE_NAMES
    return FEATURE_NAMES[:11], LEGACY_ADDITIVE_NAMES


@cache
def arch_features() -> np.ndarray:
    """``(15625, 15)`` float64 array of :data:`FEATURE_NAMES`, read-only (a few seconds once)."""
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
        out[i, 11:15] = _path_counts(g)
    out.setflags(write=False)
    return out


def _path_counts(g) -> list[int]:
    """Most conv1x1, conv3x3, avgpool and op nodes on one input-to-output path of ``g``."""
    if not g.valid:
        return [0, 0, 0, 0]
    out = []
    for op in (*_OPS, None):
        most = {0: 0}  # slot order is topological: one pass finds the longest path
        for s in range(1, 8):
            ins = [most[p] for p in g.preds(s) if p in most]
            if ins:
                lab = g.labels[s] if s < 7 else None
                most[s] = max(ins) + int(lab is not None and op in (None, lab))
        out.append(most[7])
    return out
