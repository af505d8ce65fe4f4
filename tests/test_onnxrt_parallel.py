"""ONNX Runtime's concurrent-branch mode: profile options checked, recorded, and run for real."""

from __future__ import annotations

import pytest

from latbench.harness.profiles import load_profile

pytest.importorskip("onnxruntime", reason="the ONNX Runtime runner needs onnxruntime")

from latbench.harness.runners.onnxrt import ONNXRuntimeRunner  # noqa: E402


def test_bundled_parallel_profile_records_its_mode() -> None:
    prof = load_profile("cpu-onnxruntime-parallel")
    assert ONNXRuntimeRunner.check(prof) == []
    runner = ONNXRuntimeRunner(prof)
    settings = runner.info()["settings"]
    assert settings["execution_mode"] == "ORT_PARALLEL"
    assert settings["inter_op_num_threads"] == 2
    seq = ONNXRuntimeRunner(load_profile("cpu-onnxruntime")).info()["settings"]
    assert seq["execution_mode"] == "ORT_SEQUENTIAL" and "inter_op_num_threads" not in seq


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"execution_mode": "concurrent"}, "execution_mode must be one of"),
        ({"execution_mode": "parallel", "inter_op_threads": -1}, "inter_op_threads"),
        ({"execution_mode": "parallel", "inter_op_threads": "2"}, "inter_op_threads"),
        ({"execution_mode": "parallel", "inter_op_threads": True}, "inter_op_threads"),
    ],
)
def test_bad_options_are_named(options: dict, needle: str) -> None:
    prof = load_profile("cpu-onnxruntime").with_options(**options)
    problems = ONNXRuntimeRunner.check(prof)
    assert len(problems) == 1 and needle in problems[0]


def test_parallel_run_records_its_mode_in_the_dataset(tmp_path) -> None:
    """A real run under ORT_PARALLEL says so in the dataset it writes."""
    from latbench.dataset import read_dataset
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.session import measure

    prof = load_profile("cpu-onnxruntime-parallel").with_protocol(runs=10, group_size=5, warmup=1)
    plan = make_plan(select_archs(limit=2, seed=3))
    s = measure(prof, plan, out_dir=tmp_path, key="par", progress=False,
                cache=ArtifactCache(tmp_path / "cache"))  # fmt: skip
    df = read_dataset(s.dataset)
    assert (df["status"] == "ok").all()
    settings = df.attrs["metadata"]["runtime"]["settings"]
    assert settings["execution_mode"] == "ORT_PARALLEL"
    assert settings["inter_op_num_threads"] == 2 and settings["intra_op_num_threads"] == 1


def _two_then_three(prof, tmp_path):
    """``measure``, its keywords and a plan of three models, after two of them were
    measured with ``prof`` (a run to resume)."""
    from latbench.harness.artifacts import ArtifactCache
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.session import measure

    kw = {"out_dir": tmp_path, "key": "k", "progress": False}
    kw["cache"] = ArtifactCache(tmp_path / "c")
    measure(prof, make_plan(select_archs(limit=2, seed=3)), **kw)
    return measure, kw, make_plan(select_archs(limit=3, seed=3))


def test_a_resume_with_another_execution_mode_is_refused(tmp_path) -> None:
    """Sequential and concurrent timings never mix in one dataset."""
    from latbench.harness.store import RunConfigMismatch

    prof = load_profile("cpu-onnxruntime-parallel").with_protocol(runs=10, group_size=5, warmup=1)
    measure, kw, more = _two_then_three(prof, tmp_path)
    sequential = prof.with_options(execution_mode="sequential")
    with pytest.raises(RunConfigMismatch, match="execution_mode"):
        measure(sequential, more, **kw)
    s = measure(prof, more, **kw)  # the same settings resume
    assert s.timed == len(more.work) - 2


def test_the_default_schedule_spelled_out_still_resumes(tmp_path) -> None:
    """``execution_mode = "sequential"`` (with an idle ``inter_op_threads``) is the
    default: a run stored without them resumes."""
    prof = load_profile("cpu-onnxruntime").with_protocol(runs=10, group_size=5, warmup=1)
    measure, kw, more = _two_then_three(prof, tmp_path)
    spelled = prof.with_options(execution_mode="sequential", inter_op_threads=4)
    assert measure(spelled, more, **kw).timed == len(more.work) - 2
