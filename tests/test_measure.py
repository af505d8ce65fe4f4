"""End-to-end measurement runs on this CPU: CLI, resume after SIGKILL, shards + merge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import latbench
from latbench.dataset import read_dataset, read_metadata
from latbench.harness.merge import HostMismatchWarning, MergeError, merge_datasets
from latbench.harness.plan import make_plan, select_archs
from latbench.harness.profiles import list_profiles, load_profile
from latbench.harness.runners import RunnerUnavailable, make_runner
from latbench.harness.session import measure

SHARED_ARGS = ["--runs", "20", "--group-size", "10", "--warmup", "2", "--quiet"]
INVALID = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture
def arch_file(tmp_path):
    archs = select_archs(limit=12, seed=5)
    # include a graph shared by two architectures and one invalid architecture
    extra = [
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|",
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|nor_conv_1x1~1|none~2|",
        INVALID,
    ]
    path = tmp_path / "archs.txt"
    path.write_text("\n".join([a.str for a in archs] + extra) + "\n")
    return path


def _cli(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "latbench.harness.cli", *args],
        capture_output=True, text=True, env=env, **kw,
    )  # fmt: skip


def _env(tmp_path):
    return {**os.environ, "LATBENCH_HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _rows(df):
    cols = [
        "arch_id",
        "arch_str",
        "graph_key",
        "valid",
        "status",
        "timed_arch_id",
        "flops",
        "params",
        "runs",
    ]
    return df[cols].sort_values("arch_id").reset_index(drop=True)


def test_cli_measures_and_load_finds_it(tmp_path, arch_file):
    env = _env(tmp_path)
    res = _cli("--device", "cpu-onnxruntime", "--archs", str(arch_file), "--key", "t-ort",
               "--cache", str(tmp_path / "cache"), *SHARED_ARGS, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "median latency" in res.stdout and "wrote" in res.stdout
    df = latbench.load("t-ort", data_home=tmp_path / "home")
    assert len(df) == 15 and not df["arch_id"].duplicated().any()
    ok = df[df.status == "ok"]
    assert len(ok) == 14 and (ok["latency_ms"] > 0).all() and (ok["runs"] == 20).all()
    assert (df.loc[df.arch_str == INVALID, "status"] == "invalid").all()
    shared = df[df.graph_key == latbench.Arch.from_str(
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|").graph.key]  # fmt: skip
    assert len(shared) == 2 and shared["latency_ms"].nunique() == 1
    assert (shared["timed_arch_id"] == shared["arch_id"].min()).all()
    meta = df.attrs["metadata"]
    assert meta["protocol"]["runs"] == 20 and meta["runtime"]["name"]
    assert meta["host"]["cpu_model"] and meta["device"]["profile"] == "cpu-onnxruntime"
    # a rerun with the same arguments is idempotent: nothing is timed again
    res2 = _cli("--device", "cpu-onnxruntime", "--archs", str(arch_file), "--key", "t-ort",
                "--cache", str(tmp_path / "cache"), *SHARED_ARGS, env=env)  # fmt: skip
    assert res2.returncode == 0, res2.stderr
    assert "0 graphs timed now" in res2.stdout
    again = latbench.load("t-ort", data_home=tmp_path / "home")
    np.testing.assert_array_equal(again["latency_ms"].to_numpy(), df["latency_ms"].to_numpy())


def test_cli_errors_are_one_clear_line(tmp_path):
    env = _env(tmp_path)
    res = _cli("--device", "cpu-onnxruntme", "--limit", "2", env=env)
    assert res.returncode == 2 and "cpu-onnxruntime" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    res = _cli("--device", "cpu-onnxruntime", "--archs", str(bad), env=env)
    assert res.returncode == 2 and "bad.txt:1" in res.stderr and "input index" in res.stderr
    home = tmp_path / "home"
    home.write_text("a file where the data home should be")
    for extra in ([], ["--out", str(home)]):
        res = _cli("--device", "cpu-onnxruntime", "--limit", "2", *extra, env=env)
        assert res.returncode == 2 and res.stderr.count("\n") == 1
        assert "is not a folder but a file, no place for the data home" in res.stderr
        assert "Errno" not in res.stderr
    assert home.read_text() == "a file where the data home should be"


def test_list_devices_names_every_profile():
    res = _cli("--list-devices")
    assert res.returncode == 0
    for prof in list_profiles():
        assert prof.name in res.stdout


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    archs = select_archs(limit=30, seed=11)
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(a.str for a in archs) + f"\n{INVALID}\n")
    env = _env(tmp_path)
    common = ["--device", "cpu-onnxruntime", "--archs", str(path), "--cache", str(tmp_path / "cache"),
              "--runs", "300", "--group-size", "10", "--warmup", "2", "--flush-every", "1", "--quiet"]  # fmt: skip
    # fill the artifact cache first so the killed run spends its time timing
    ref = _cli(*common, "--out", str(tmp_path / "ref"), "--key", "k", env=env)
    assert ref.returncode == 0, ref.stderr
    n_graphs = len(make_plan([*archs]).work)

    proc = subprocess.Popen(
        [sys.executable, "-m", "latbench.harness.cli", *common, "--out", str(tmp_path / "run"), "--key", "k"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    parts = tmp_path / "run" / "k.parts"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_parts = len(list(parts.glob("part-*.parquet")))
    assert 3 <= n_parts < n_graphs, "kill did not land mid-way"
    assert not (tmp_path / "run" / "k.parquet").exists()

    res = _cli(*common, "--out", str(tmp_path / "run"), "--key", "k", env=env)
    assert res.returncode == 0, res.stderr
    resumed = read_dataset(tmp_path / "run" / "k.parquet")
    reference = read_dataset(tmp_path / "ref" / "k.parquet")
    assert not resumed["arch_id"].duplicated().any()
    assert (resumed["status"] != "failed").all()
    assert _rows(resumed).equals(_rows(reference))
    assert resumed["latency_ms"].notna().sum() == reference["latency_ms"].notna().sum()


def test_shards_then_merge_equal_unsharded(tmp_path, arch_file):
    env = _env(tmp_path)
    common = ["--device", "cpu-onnxruntime", "--archs", str(arch_file), "--cache", str(tmp_path / "cache"),
              "--out", str(tmp_path / "out"), "--key", "s", *SHARED_ARGS]  # fmt: skip
    assert _cli(*common, env=env).returncode == 0
    shards = []
    for i in (1, 2, 3):
        res = _cli(*common, "--shard", f"{i}/3", env=env)
        assert res.returncode == 0, res.stderr
        shards.append(str(tmp_path / "out" / f"s.shard{i}of3.parquet"))
    res = _cli("merge", *shards, "-o", str(tmp_path / "merged.parquet"), env=env)
    assert res.returncode == 0, res.stderr
    merged = read_dataset(tmp_path / "merged.parquet")
    full = read_dataset(tmp_path / "out" / "s.parquet")
    assert _rows(merged).equals(_rows(full))
    assert read_metadata(tmp_path / "merged.parquet")["shard"] == "merged"
    from latbench.raw import read_raw

    raw_merged = read_raw(tmp_path / "merged.raw.h5")
    raw_full = read_raw(tmp_path / "out" / "s.raw.h5")
    assert sorted(raw_merged["graph_key"]) == sorted(raw_full["graph_key"])
    assert raw_merged["timings_ns"].shape == raw_full["timings_ns"].shape


def test_merge_refuses_mixed_protocols_and_warns_on_hosts(tmp_path):
    plan = make_plan(select_archs(limit=3, seed=1))
    prof = load_profile("cpu-onnxruntime")
    kw = {"out_dir": tmp_path, "progress": False, "cache": None}
    a = measure(prof.with_protocol(runs=20, group_size=10), plan, key="a", **kw).dataset
    b = measure(prof.with_protocol(runs=30, group_size=10), plan, key="b", **kw).dataset
    with pytest.raises(MergeError, match="protocol differs"):
        merge_datasets([a, b], tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    # same protocol, but pretend the second shard came from another machine
    df = read_dataset(a)
    meta = dict(df.attrs["metadata"])
    meta["host"] = {**meta["host"], "cpu_model": "Some Other CPU"}
    df = df.iloc[:1]  # an identical row; a dataset of no rows is refused (issue 27)
    latbench.write_dataset(
        df, tmp_path / "c.parquet", {k: v for k, v in meta.items() if k != "schema_version"}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # both files say shard 1/1: a repeated shard needs allow_partial
        merge_datasets([a, tmp_path / "c.parquet"], tmp_path / "m.parquet", allow_partial=True)
    assert any(issubclass(w.category, HostMismatchWarning) for w in caught)


@pytest.mark.parametrize("name", [p.name for p in list_profiles() if p.target == "gpu"])
def test_gpu_profiles_report_no_gpu(name):
    from latbench.harness.runners import runner_class

    prof = load_profile(name)
    if not runner_class(prof.runtime).check(prof):
        pytest.skip(f"{name} can run on this machine (a GPU is present)")
    with pytest.raises(RunnerUnavailable, match="(?i)gpu|cuda|tensorrt"):
        make_runner(prof)
    res = _cli("--device", name, "--check")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "gpu" in res.stdout.lower() or "cuda" in res.stdout.lower()


def test_layers_table_covers_every_distinct_layer(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.session import measure_layers
    from latbench.network import distinct_layers

    prof = load_profile("cpu-onnxruntime").with_protocol(runs=10, group_size=5, warmup=1)
    path = measure_layers(prof, out_dir=tmp_path, key="lay", progress=False,
                          cache=ArtifactCache(tmp_path / "cache"))  # fmt: skip
    assert path.name == "lay.layers.parquet"
    import pandas as pd

    df = pd.read_parquet(path)
    assert list(df["signature"]) == [layer.signature for layer in distinct_layers()]
    assert (df["status"] == "ok").all() and (df["latency_ms"] > 0).all()
    # a 3x3 conv at stage 1 does far more work than a 2-input add at stage 1
    lat = df.set_index("signature")["latency_ms"]
    assert lat["s1/conv3x3"] > lat["s1/add2"]


@pytest.mark.parametrize(
    "name",
    [p.name for p in list_profiles() if p.target == "cpu" and p.device_class == "desktop-cpu"],
)
def test_every_cpu_profile_measures_a_few_archs(tmp_path, name):
    from latbench.harness.artifacts import ArtifactCache

    prof = load_profile(name).with_protocol(runs=10, group_size=5, warmup=2)
    plan = make_plan(select_archs(limit=3, seed=7))
    s = measure(prof, plan, out_dir=tmp_path, key=name, progress=False,
                cache=ArtifactCache(tmp_path / "cache"))  # fmt: skip
    assert s.failed == 0 and s.timed == len(plan.work)
    df = read_dataset(s.dataset)
    assert (df["status"] == "ok").all() and (df["latency_ms"] > 0).all()
    assert np.isfinite(df["latency_std_ms"]).all()
    meta = df.attrs["metadata"]
    assert meta["device"]["profile"] == name and meta["precision"] == prof.precision
    assert meta["runtime"]["version"]


def test_interleaved_passes_join_raw_timings_and_resume(tmp_path, arch_file):
    from latbench.harness.timing import two_stage_filter
    from latbench.raw import read_raw

    env = _env(tmp_path)
    common = ["--device", "cpu-onnxruntime", "--archs", str(arch_file), "--cache", str(tmp_path / "cache"),
              "--out", str(tmp_path / "out"), "--key", "p", "--runs", "40", "--group-size", "10",
              "--warmup", "2", "--passes", "2", "--quiet"]  # fmt: skip
    res = _cli(*common, env=env)
    assert res.returncode == 0, res.stderr
    df = read_dataset(tmp_path / "out" / "p.parquet")
    assert df.attrs["metadata"]["protocol"]["passes"] == 2
    ok = df[df["status"] == "ok"]
    assert (ok["runs"] == 40).all() and len(ok) == 14
    raw = read_raw(tmp_path / "out" / "p.raw.h5")
    passes = [read_raw(tmp_path / "out" / "p.passes" / f"p.pass{i}of2.raw.h5") for i in (1, 2)]
    first = {k: r for k, r in zip(passes[0]["graph_key"], passes[0]["timings_ns"], strict=True)}
    second = {k: r for k, r in zip(passes[1]["graph_key"], passes[1]["timings_ns"], strict=True)}
    by_key = ok.drop_duplicates("graph_key").set_index("graph_key")["latency_ms"]
    for key, row in zip(raw["graph_key"], raw["timings_ns"], strict=True):
        # the joined row is pass 1's runs then pass 2's, filtered together
        np.testing.assert_array_equal(row, np.concatenate([first[key], second[key]]))
        assert by_key[key] == pytest.approx(two_stage_filter(row / 1e6, 10)[0], rel=1e-12)
    again = _cli(*common, env=env)  # every pass is stored: nothing is timed again
    assert again.returncode == 0 and "0 graph-passes (2 passes) timed now" in again.stdout
    res = _cli(*common[:-3], "--passes", "3", "--quiet", env=env)
    assert res.returncode == 2 and "multiple of passes x g" in res.stderr


def test_passes_alternate_direction_so_drift_cancels(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.passes import measure_passes

    plan = make_plan(select_archs(limit=5, seed=2))
    prof = load_profile("cpu-onnxruntime").with_protocol(runs=30, group_size=10, warmup=1)
    order: list[str] = []
    s = measure_passes(prof, plan, passes=3, out_dir=tmp_path, key="s", progress=False,
                       cache=ArtifactCache(tmp_path / "cache"),
                       on_result=lambda r: order.append(r.graph_key))  # fmt: skip
    keys = [w.key for w in plan.work]
    assert len(keys) == 5 and order == keys + keys[::-1] + keys
    meta = read_dataset(s.dataset).attrs["metadata"]["protocol"]
    assert meta["passes"] == 3 and meta["pass_order"] == "serpentine"
