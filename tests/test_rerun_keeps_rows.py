"""A rerun of a dataset with a smaller or other selection keeps every row earlier runs
measured: ``latbench-measure --limit 10`` then ``--limit 1`` (or ``--layers --limit 1``,
as the README's examples run, one after the other, on one default key) used to rewrite
the dataset and its raw file with the one row, and the nine measurements were gone for
good. Now the dataset is the union; ``--fresh`` still replaces it."""

from __future__ import annotations

import numpy as np
import pytest
from test_parts_resume_tmp import _Executor, _latency, _run

from latbench.dataset import read_dataset
from latbench.harness.plan import make_plan, select_archs
from latbench.raw import read_raw


def _ok(path):
    df = read_dataset(path)
    return df, df[df["status"] == "ok"]


def test_a_smaller_rerun_keeps_the_rows_and_raw_timings_of_the_larger_one(tmp_path, caplog):
    big, small = make_plan(select_archs(limit=8, seed=1)), make_plan(select_archs(limit=2, seed=5))
    first = _Executor(tmp_path / "out" / "k.parts")
    before, _ = _ok(_run(tmp_path, big, first).dataset)
    again = _Executor(tmp_path / "out" / "k.parts")
    with caplog.at_level("WARNING", logger="latbench.measure"):
        summary = _run(tmp_path, small, again)
    after, ok = _ok(summary.dataset)
    assert set(before["arch_id"]) <= set(after["arch_id"])
    assert set(after["arch_id"]) == set(before["arch_id"]) | set(small.arch_ids)
    kept = after.set_index("arch_id").loc[before["arch_id"], "latency_ms"].to_numpy()
    assert np.array_equal(kept, before["latency_ms"].to_numpy(), equal_nan=True)
    for row in ok.itertuples():
        assert row.latency_ms == pytest.approx(_latency(row.graph_key), abs=1e-6)
    # nothing stored was timed again, and the raw file still holds every graph's timings
    assert not set(again.asked) & set(first.asked)
    assert set(read_raw(summary.dataset.with_suffix("").with_suffix(".raw.h5"))["graph_key"]) == (
        set(ok["graph_key"])
    )
    assert any("keeping the" in r.message and "--fresh" in r.message for r in caplog.records)


def test_after_a_crash_a_smaller_rerun_keeps_what_was_measured_and_adds_no_work(tmp_path):
    big, small = make_plan(select_archs(limit=8, seed=1)), make_plan(select_archs(limit=2, seed=5))
    first = _Executor(tmp_path / "out" / "k.parts", stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, big, first)
    again = _Executor(tmp_path / "out" / "k.parts")
    df, ok = _ok(_run(tmp_path, small, again).dataset)
    measured = set(first.asked) | {w.key for w in small.work}
    assert set(ok["graph_key"]) == measured  # the three timed before the crash, and its own
    assert set(again.asked) == {w.key for w in small.work} - set(first.asked)
    unreached = {w.key for w in big.work} - measured
    assert not set(df["graph_key"]) & unreached  # a larger run's unreached graphs: not added


def test_fresh_still_replaces_the_dataset(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.profiles import load_profile
    from latbench.harness.session import measure

    big, small = make_plan(select_archs(limit=8, seed=1)), make_plan(select_archs(limit=2, seed=5))
    _run(tmp_path, big, _Executor(tmp_path / "out" / "k.parts"))
    prof = load_profile("cpu-onnxruntime").with_protocol(runs=4, group_size=2, warmup=0)
    summary = measure(prof, small, out_dir=tmp_path / "out", key="k", fresh=True,
                      cache=ArtifactCache(tmp_path / "cache"), progress=False,
                      executor=_Executor(tmp_path / "out" / "k.parts"))  # fmt: skip
    assert set(read_dataset(summary.dataset)["arch_id"]) == set(small.arch_ids)


def test_a_shard_rerun_with_another_selection_is_refused_not_grown(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.profiles import load_profile
    from latbench.harness.session import measure
    from latbench.harness.store import RunConfigMismatch

    prof = load_profile("cpu-onnxruntime").with_protocol(runs=4, group_size=2, warmup=0)

    def run(plan):
        return measure(prof, plan, out_dir=tmp_path / "out", key="k",
                       cache=ArtifactCache(tmp_path / "cache"), progress=False,
                       executor=_Executor(tmp_path / "out" / "k.shard1of2.parts"))  # fmt: skip

    first = run(make_plan(select_archs(limit=10, seed=1), (1, 2)))
    before = first.dataset.read_bytes()
    with pytest.raises(RunConfigMismatch, match="shards of a campaign must share one selection"):
        run(make_plan(select_archs(limit=4, seed=1), (1, 2)))
    assert first.dataset.read_bytes() == before  # nothing written
    again = run(make_plan(select_archs(limit=10, seed=1), (1, 2)))  # its own selection: fine
    assert (
        read_dataset(again.dataset)["arch_id"].tolist()
        == read_dataset(first.dataset)["arch_id"].tolist()
    )


def test_a_damaged_selection_record_adds_nothing(tmp_path):
    small = make_plan(select_archs(limit=2, seed=5))
    parts = tmp_path / "out" / "k.parts"
    parts.mkdir(parents=True)
    for junk in ('[true, 1e400, -1, 99999, "5", null, 3]', "[" * 100_000, "\xff\xfe", "{}"):
        (parts / "selection.json").write_text(junk, encoding="utf-8", errors="surrogateescape")
        summary = _run(tmp_path, small, _Executor(parts))
        assert set(read_dataset(summary.dataset)["arch_id"]) == set(small.arch_ids)
        summary.dataset.unlink()
        (tmp_path / "out" / "k.raw.h5").unlink(missing_ok=True)


def test_multi_pass_reruns_keep_rows_only_of_the_same_settings(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.passes import measure_passes
    from latbench.harness.profiles import load_profile
    from latbench.harness.session import measure

    big, small = make_plan(select_archs(limit=6, seed=1)), make_plan(select_archs(limit=2, seed=5))
    prof = load_profile("cpu-onnxruntime").with_protocol(runs=4, group_size=2, warmup=0)
    common = {"out_dir": tmp_path / "out", "key": "k", "progress": False,
              "cache": ArtifactCache(tmp_path / "cache")}  # fmt: skip

    def run(plan):
        return measure_passes(prof, plan, passes=2, executor=_Executor(tmp_path / "out"),
                              **common)  # fmt: skip

    # a one-pass dataset of other threads first: a two-pass rerun does not grow from it
    measure(prof.with_threads(2), big, executor=_Executor(tmp_path / "out"), **common)
    assert set(read_dataset(run(small).dataset)["arch_id"]) == set(small.arch_ids)
    # a finished two-pass dataset of the same settings: kept
    run(big)
    kept = run(small)
    assert set(read_dataset(kept.dataset)["arch_id"]) == set(big.arch_ids) | set(small.arch_ids)
    assert read_dataset(kept.dataset).attrs["metadata"]["kept_earlier_rows"] == len(
        set(big.arch_ids) - set(small.arch_ids)
    )


def test_the_selection_text_says_how_every_kept_row_was_chosen(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.passes import measure_passes
    from latbench.harness.profiles import load_profile

    prof = load_profile("cpu-onnxruntime").with_protocol(runs=4, group_size=2, warmup=0)
    plans = {s: make_plan(select_archs(limit=n, seed=s)) for s, n in ((1, 6), (5, 2), (9, 1))}

    def run(seed, passes=1):
        return measure_passes(prof, plans[seed], passes=passes, out_dir=tmp_path / "out",
                              key=f"k{passes}", progress=False,
                              cache=ArtifactCache(tmp_path / "cache"),
                              executor=_Executor(tmp_path / "out" / ("k1.parts", "")[passes - 1]),
                              extra_metadata={"selection": f"sample {seed}"})  # fmt: skip

    for passes in (1, 2):
        run(1, passes)
        meta = read_dataset(run(1, passes).dataset).attrs["metadata"]
        assert meta["selection"] == "sample 1" and "kept_earlier_rows" not in meta
        run(5, passes)
        meta = read_dataset(run(9, passes).dataset).attrs["metadata"]
        a1, a5, a9 = (set(plans[s].arch_ids) for s in (1, 5, 9))
        n5 = len((a1 | a5) - a9)
        assert meta["kept_earlier_rows"] == n5
        assert meta["selection"] == (
            f"sample 9; and {n5} architectures kept from earlier runs of this dataset:"
            " sample 5 and earlier ones"  # one level: the text does not grow with reruns
        )


def test_a_dataset_this_harness_did_not_measure_is_never_replaced(tmp_path):
    from latbench.dataset import skeleton_frame, write_dataset
    from latbench.harness.store import RunConfigMismatch

    out = tmp_path / "out"
    out.mkdir()
    df = skeleton_frame()  # an imported dataset: no run settings in its metadata
    df.loc[df["valid"], ["status", "latency_ms", "runs"]] = ["ok", 2.0, 1]
    path = write_dataset(df, out / "k.parquet", {"source": "HELP, HayeonLee/HELP"})
    before = path.read_bytes()
    with pytest.raises(RunConfigMismatch, match="this harness did not measure .*source: 'HELP"):
        _run(tmp_path, make_plan(select_archs(limit=2, seed=5)), _Executor(out / "k.parts"))
    assert path.read_bytes() == before


def test_a_measurement_is_never_filed_under_a_published_datasets_key(tmp_path):
    import subprocess
    import sys

    for key, named in (("help-fpga", "help-fpga"), ("etpu", "edgetpu-int8")):  # key, alias
        res = subprocess.run(
            [sys.executable, "-m", "latbench.harness.cli", "--device", "cpu-onnxruntime",
             "--limit", "2", "--key", key, "--quiet"],
            capture_output=True, text=True, env={**__import__("os").environ,
                                                "LATBENCH_HOME": str(tmp_path)},
        )  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert f"names the published dataset '{named}'" in res.stderr
        assert not list(tmp_path.glob("*.parquet"))


def test_a_bundled_key_into_the_data_home_is_measured_with_a_warning(tmp_path):
    import os
    import subprocess
    import sys

    # how the bundled sets were made (docs/datasets.md): allowed, but `load` would still
    # return the bundled file, which the run says
    res = subprocess.run(
        [sys.executable, "-m", "latbench.harness.cli", "--device", "cpu-onnxruntime",
         "--limit", "1", "--runs", "4", "--group-size", "2", "--key", "xeon2c-tf-fp32"],
        capture_output=True, text=True, env={**os.environ, "LATBENCH_HOME": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "is a bundled dataset's: latbench.load('xeon2c-tf-fp32') keeps" in res.stderr
    assert (tmp_path / "xeon2c-tf-fp32.parquet").is_file()
    # and it says how to read this one, not `load`, which returns the bundled file
    assert f"latbench.read_dataset('{tmp_path / 'xeon2c-tf-fp32.parquet'}')" in res.stdout
    assert "latbench.load(" not in res.stdout


def test_one_key_check_for_one_step_and_build_run_measurements(tmp_path, caplog):
    import inspect

    from latbench.harness import split_cli
    from latbench.harness.cli import measurement_key
    from latbench.keys import InvalidKeyError

    for key in ("edgetpu", "help-fpga", "d-gpu"):
        with pytest.raises(InvalidKeyError, match="names the published dataset"):
            measurement_key(key, "cpu-onnxruntime", tmp_path, into_home=False)
    assert measurement_key("mybox-ort", "cpu-onnxruntime", tmp_path, into_home=True) == "mybox-ort"
    with caplog.at_level("WARNING", logger="latbench.measure"):
        assert measurement_key("xeon2c-tf-fp32", "x", tmp_path, into_home=True) == "xeon2c-tf-fp32"
    assert any("bundled dataset's" in r.message for r in caplog.records)
    # `latbench-measure run` (build on one machine, run on another) uses the same check
    assert "measurement_key(" in inspect.getsource(split_cli)
