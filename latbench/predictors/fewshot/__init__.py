"""Few-shot adaptation: a new device's latency for all 15,625 architectures from N measured.

>>> from latbench.predictors.fewshot import FewShotAdapter, load_prior, select_archs
>>> prior = load_prior()                         # shipped; or pretrain(source_matrix(keys))
>>> ids = select_archs(prior, 10)                # the 10 architectures to measure
>>> adapted = FewShotAdapter(prior).fit(ids, latency_ms)   # doctest: +SKIP
>>> adapted.predict_frame()                      # arch_id, latency_pred_ms, lo, hi  # doctest: +SKIP

Modules: :mod:`.prior` (source factors and the prior over device weights),
:mod:`.encoder` (a learned architecture embedding, trained over every source; numpy
inference),
:mod:`.selection` (which architectures to measure), :mod:`.sequential` (a second
round aimed where the models disagree), :mod:`.nasaware` (measurements spent where
hardware-aware NAS misses accuracy, given the accuracy table), :mod:`.adapter` (Bayesian linear
regression), :mod:`.siblings` (which datasets are the same hardware, device classes),
:mod:`.evaluate` (leave-one-device/class-out and shipped-prior protocols with baselines). See
docs/predictors.md, "Few-shot adaptation".
"""

from latbench.predictors.fewshot.adapter import AdaptedDevice, FewShotAdapter
from latbench.predictors.fewshot.features import FEATURE_NAMES, arch_features
from latbench.predictors.fewshot.nasaware import NASAdapted, adapt_for_nas, nas_picks
from latbench.predictors.fewshot.prior import (
    ADAPTER_VERSION,
    VIEWS,
    DevicePrior,
    default_prior_path,
    load_prior,
    pretrain,
    source_matrix,
    source_view,
)
from latbench.predictors.fewshot.selection import distinct_graph_archs, select_archs
from latbench.predictors.fewshot.sequential import select_more
from latbench.predictors.fewshot.siblings import hardware_ids, siblings, sources_for

__all__ = [
    "ADAPTER_VERSION",
    "FEATURE_NAMES",
    "AdaptedDevice",
    "DevicePrior",
    "FewShotAdapter",
    "NASAdapted",
    "VIEWS",
    "adapt_for_nas",
    "arch_features",
    "default_prior_path",
    "distinct_graph_archs",
    "hardware_ids",
    "load_prior",
    "nas_picks",
    "pretrain",
    "select_archs",
    "select_more",
    "siblings",
    "source_matrix",
    "source_view",
    "sources_for",
]
