"""How a prior sees sources that timed unpruned cells: the pruned view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hostile import with_header
from scipy.stats import spearmanr

from latbench.predictors import PredictorError
from latbench.predictors.encoding import pruned_graph_index, valid_mask
from latbench.predictors.fewshot import load_prior, pretrain, source_view
from latbench.predictors.fewshot.evaluate import evaluate_adapt
from latbench.space import N_ARCHS
from tests import refdata

CELL = {"imported_from": {"importer": "help"}}
PRUNED = {"harness_version": "x"}


def _matrix(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {f"cell{i}": rng.lognormal(0, 0.3, N_ARCHS) for i in range(3)}
    cols |= {f"pruned{i}": rng.lognormal(0, 0.3, N_ARCHS) for i in range(3)}
    m = pd.DataFrame(cols)
    m[~valid_mask()] = np.nan
    m.attrs["metadata"] = {k: CELL if k.startswith("cell") else PRUNED for k in cols}
    m.attrs["view"] = "timed"
    return m


def test_the_pruned_view_replaces_cell_sources_only_and_is_idempotent():
    m = _matrix()
    m.loc[7, "cell0"] = np.nan  # a hole: the graph's other cells still speak for it
    seen = source_view(m, "pruned")
    ok = valid_mask()
    graph = pruned_graph_index()
    assert seen.attrs["view"] == "pruned" and m.attrs["view"] == "timed"
    least = m["cell0"][ok].groupby(graph[ok]).min()  # the cell with the least dead work
    np.testing.assert_allclose(seen["cell0"].to_numpy()[ok], least.loc[graph[ok]].to_numpy())
    assert np.isnan(seen["cell0"].to_numpy()[~ok]).all()
    np.testing.assert_array_equal(seen["pruned0"].to_numpy(), m["pruned0"].to_numpy())
    # every cell source is now a function of the pruned graph
    by_graph = seen["cell1"][ok].groupby(pruned_graph_index()[ok]).nunique()
    assert by_graph.max() == 1
    assert source_view(seen, "pruned") is seen
    assert source_view(m, "timed") is m
    with pytest.raises(PredictorError, match="cannot be seen as timed"):
        source_view(seen, "timed")
    with pytest.raises(PredictorError, match="unknown view 'raw'"):
        source_view(m, "raw")


def test_a_prior_records_its_view_and_refuses_a_hostile_one(tmp_path):
    m = _matrix()
    prior = pretrain(source_view(m, "pruned"), rank=2)
    assert prior.view == "pruned"
    assert pretrain(m, rank=2).view == "timed"
    path = prior.save(tmp_path / "p.npz")
    assert load_prior(path).view == "pruned"
    hostile = with_header(path, tmp_path / "hdr.npz", view="sideways")
    with pytest.raises(PredictorError, match="header view 'sideways' is not pruned or timed"):
        load_prior(hostile)


def test_evaluation_gives_each_target_the_view_it_was_timed_in():
    m = _matrix()
    res = evaluate_adapt(m, ["cell0", "pruned0"], protocol="siblings", ns=(5,), repeats=1,
                         methods=("adapter",))  # fmt: skip
    views = res.set_index("target")["view"]
    assert views["cell0"] == "timed" and views["pruned0"] == "pruned"


@refdata.needs("help")
@refdata.needs("latbench-release")
def test_help_sources_in_the_pruned_view_track_a_release_device_better(tmp_path):
    """HELP's Jetson-class and desktop GPUs timed unpruned cells; seen as their pruned
    networks they rank the release's embedded GPU (which timed pruned graphs) closer."""
    from latbench.importers import import_path
    from latbench.predictors.fewshot import source_matrix

    import_path("eagle", refdata.ref_dir("latbench-release"), data_home=tmp_path,
                keys=["jetson-nano-fp32"])  # fmt: skip
    import_path("help", refdata.ref_dir("help"), data_home=tmp_path)
    keys = ["help-1080ti-1", "help-fpga", "jetson-nano-fp32"]
    timed = source_matrix(keys, tmp_path)
    seen = source_matrix(keys, tmp_path, view="pruned")
    target = timed["jetson-nano-fp32"].to_numpy()
    assert np.array_equal(seen["jetson-nano-fp32"].to_numpy(), target, equal_nan=True)
    for key in keys[:2]:
        ok = np.isfinite(target) & np.isfinite(timed[key].to_numpy())
        before = spearmanr(timed[key].to_numpy()[ok], target[ok])[0]
        after = spearmanr(seen[key].to_numpy()[ok], target[ok])[0]
        assert after > before + 0.1, key
