"""The path features (adapter version 7): the longest branch of the pruned graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hostile import with_header

from latbench.graph import prune
from latbench.predictors import PredictorError
from latbench.predictors.encoding import valid_mask
from latbench.predictors.fewshot import features as F
from latbench.predictors.fewshot import load_prior, pretrain, source_view
from latbench.space import N_ARCHS, from_id
from tests import refdata

PATH_NAMES = ("path_conv1x1", "path_conv3x3", "path_avgpool", "path_depth")


def _all_paths(g) -> list[list[int]]:
    """Every input-to-output path of ``g`` as its slots, by depth-first search."""
    out, stack = [], [[0]]
    while stack:
        p = stack.pop()
        if p[-1] == 7:
            out.append(p)
        stack += [[*p, v] for u, v in g.edges if u == p[-1]]
    return out


def test_path_features_are_the_most_ops_on_any_one_path():
    x = F.arch_features()
    cols = [F.FEATURE_NAMES.index(n) for n in PATH_NAMES]
    ops = ("conv1x1", "conv3x3", "avgpool3x3", None)
    for i in range(0, N_ARCHS, 7):  # brute force on every 7th cell (2,233 cells)
        g = prune(from_id(i))
        paths = _all_paths(g) if g.valid else []
        want = [
            max(
                (
                    sum(g.labels[s] is not None and op in (None, g.labels[s]) for s in p[1:-1])
                    for p in paths
                ),
                default=0,
            )  # fmt: skip
            for op in ops
        ]
        assert list(x[i, cols]) == want, (i, from_id(i))


def test_path_features_on_named_cells():
    x = F.arch_features()
    cols = [F.FEATURE_NAMES.index(n) for n in PATH_NAMES]
    ids = {tuple(from_id(i)): i for i in range(N_ARCHS)}
    # three 3x3 convolutions in a chain (edges 0>1, 1>2, 2>3), plus parallel 1x1s
    assert list(x[ids[(3, 2, 3, 2, 2, 3)], cols]) == [1, 3, 0, 3]
    # one branch each: a 3x3, a 1x1 and a pool straight from input to output
    assert list(x[ids[(0, 0, 0, 3, 0, 0)], cols]) == [0, 1, 0, 1]
    # all skips: nothing is timed on any path; all none: invalid
    assert list(x[ids[(1,) * 6], cols]) == [0, 0, 0, 0]
    assert list(x[ids[(0,) * 6], cols]) == [0, 0, 0, 0]


def _matrix(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    m = pd.DataFrame({f"s{i}": rng.lognormal(0, 0.3, N_ARCHS) for i in range(4)})
    m[~valid_mask()] = np.nan
    m.attrs["metadata"] = {k: {"harness_version": "x"} for k in m.columns}
    m.attrs["view"] = "timed"
    return m


def test_only_a_pruned_view_prior_has_the_path_features(tmp_path):
    m = _matrix()
    pruned = pretrain(source_view(m, "pruned"), rank=2)
    timed = pretrain(m, rank=2)
    assert pruned.meta["features"] == list(F.FEATURE_NAMES)
    assert pruned.meta["additive_features"] == list(F.ADDITIVE_NAMES)
    assert pruned.features.shape[1] == 15 and len(pruned.additive_mean) == 14
    assert timed.meta["features"] == list(F.FEATURE_NAMES[:11])
    assert timed.features.shape[1] == 11 and len(timed.additive_mean) == 10
    # the additive design is the raw op counts, in the prior's own order
    add = [F.FEATURE_NAMES.index(n) for n in F.ADDITIVE_NAMES]
    np.testing.assert_array_equal(pruned.additive_design[:, 1:], F.arch_features()[:, add])
    back = load_prior(pruned.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.additive_design, pruned.additive_design)


def test_a_prior_from_before_version_7_loads_with_its_own_terms(tmp_path):
    """Priors of versions 3-6 recorded 11 features and no additive terms."""
    path = pretrain(_matrix(), rank=2).save(tmp_path / "old.npz")
    import json

    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))
    del meta["additive_features"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v6.npz", **arrays)
    old = load_prior(tmp_path / "v6.npz")
    assert old.additive_names == F.LEGACY_ADDITIVE_NAMES
    assert old.additive_design.shape == (N_ARCHS, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"additive_features": ["cell_skip", "warp_drive"]}, "does not describe the feature"),
        ({"additive_features": ["cell_skip", "cell_skip"]}, "does not describe the feature"),
        ({"additive_features": "cell_skip"}, "does not describe the feature"),
        ({"features": ["log_flops"]}, "does not describe the feature"),
        ({"features": [1] * 15}, "does not describe the feature"),
        ({"additive_features": list(F.ADDITIVE_NAMES[:3])}, "does not describe the feature"),
        ({"additive_features": list(F.ADDITIVE_NAMES[::-1])}, "does not describe the feature"),
        ({"features": ["cell_skip", *F.FEATURE_NAMES[1:]]}, "does not describe the feature"),
        (
            {"features": [*F.FEATURE_NAMES[:6], *F.FEATURE_NAMES[7:5:-1], *F.FEATURE_NAMES[8:]]},
            "does not describe the feature",
        ),  # fmt: skip
        ({"view": "timed"}, "does not describe the feature"),
    ],
)
def test_a_hostile_feature_header_is_refused(tmp_path, change, message):
    path = pretrain(source_view(_matrix(), "pruned"), rank=2).save(tmp_path / "p.npz")
    with pytest.raises(PredictorError, match=message):
        load_prior(with_header(path, tmp_path / "bad.npz", **change))


@refdata.needs("help")
@refdata.needs("latbench-release")
def test_path_features_fit_a_desktop_that_runs_branches_concurrently(tmp_path, monkeypatch):
    """The release's desktop GPU times a cell about as its longest branch, which no
    source shows; with the path features 20 measurements rank it far better."""
    from latbench.importers import import_path
    from latbench.loader import devices
    from latbench.predictors.fewshot import FewShotAdapter, select_archs, source_matrix

    target = "desktop-gpu-gtx-1080-ti-fp32"
    import_path("eagle", refdata.ref_dir("latbench-release"), data_home=tmp_path, keys=[target])
    import_path("help", refdata.ref_dir("help"), data_home=tmp_path)
    d = devices(tmp_path)
    keys = [k for k in d.loc[d["available"], "key"] if k.startswith(("help-", "xeon2c-"))]
    assert len(keys) == 30
    seen = source_matrix(keys, tmp_path, view="pruned")
    y = source_matrix([target], tmp_path)[target].to_numpy()
    rho = {}
    for name in ("paths", "legacy"):
        if name == "legacy":
            monkeypatch.setattr(
                F, "feature_names", lambda view: (F.FEATURE_NAMES[:11], F.LEGACY_ADDITIVE_NAMES)
            )
        prior = pretrain(seen)
        assert (prior.features.shape[1] == 15) == (name == "paths")
        ids = select_archs(prior, 20, seed=0)
        fit = FewShotAdapter(prior).fit(ids, y[ids])
        ok = np.isfinite(y)
        rho[name] = pd.Series(fit.predict()[ok]).corr(pd.Series(y[ok]), method="spearman")
    assert rho["paths"] > rho["legacy"] + 0.02, rho


def test_feature_scalings_that_do_not_fit_the_columns_are_refused(tmp_path):
    """A rewritten file with a recomputed checksum still has to fit together."""
    from dataclasses import replace

    prior = pretrain(source_view(_matrix(), "pruned"), rank=2)
    bad = replace(prior, feature_mean=prior.feature_mean[:11], feature_std=prior.feature_std[:11])
    with pytest.raises(PredictorError, match="array shapes do not fit together"):
        load_prior(bad.save(tmp_path / "short.npz"))
