"""Runners for real: every CPU profile times tiny and NB201 models; GPU profiles say why not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latbench.harness.check import check_profile
from latbench.harness.profiles import list_profiles, load_profile
from latbench.harness.runners import RunnerUnavailable, make_runner, runner_class
from latbench.harness.timing import Protocol, time_runner

PROTO = Protocol(runs=20, group_size=10, warmup=2)
CPU = ["cpu-onnxruntime", "cpu-tflite", "cpu-tflite-int8", "cpu-tf"]
GPU = ["gpu-tf", "gpu-onnxruntime-cuda", "gpu-onnxruntime-trt"]
SMALLEST = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


def _gpu_here(name: str) -> bool:
    return not runner_class(load_profile(name).runtime).check(load_profile(name))


# --- tiny hand-built artifacts (independent of the NB201 builders) -------------------


def _onnx_models(d: Path) -> dict[str, Path]:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def save(name: str, graph) -> Path:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path = d / f"{name}.onnx"
        onnx.save(model, path)
        return path

    relu = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 3])],
    )
    add = helper.make_graph(  # two inputs, dynamic batch
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 16]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 16]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
    )
    return {"onnx": save("relu", relu), "onnx-multi": save("add", add)}


def _tf_models(d: Path) -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow")
    import keras

    rng = np.random.default_rng(0)
    seq = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same")])
    seq.save(d / "seq.keras")
    a, b = keras.Input((8,), name="a"), keras.Input((8,), name="b")
    multi = keras.Model([a, b], keras.layers.Add()([a, b]))
    multi.save(d / "multi.keras")

    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def conv(x):
        return tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))

    def convert(quantize: bool) -> bytes:
        c = tf.lite.TFLiteConverter.from_concrete_functions([conv.get_concrete_function()], conv)
        if quantize:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = lambda: (
                [rng.standard_normal((1, 8, 8, 3)).astype(np.float32)] for _ in range(4)
            )
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = c.inference_output_type = tf.int8
        return c.convert()

    (d / "conv.tflite").write_bytes(convert(False))
    (d / "conv-int8.tflite").write_bytes(convert(True))
    return {
        "keras": d / "seq.keras",
        "keras-multi": d / "multi.keras",
        "tflite": d / "conv.tflite",
        "tflite-int8": d / "conv-int8.tflite",
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny")
    return {**_onnx_models(d), **_tf_models(d)}


@pytest.fixture(scope="module")
def nb201(tmp_path_factory: pytest.TempPathFactory):
    """A builder of NB201 artifacts (the harness's own), cached for the module."""
    from latbench.graph import prune
    from latbench.harness.artifacts import ArtifactCache
    from latbench.space import parse_arch

    cache = ArtifactCache(tmp_path_factory.mktemp("artifacts"))
    return lambda arch, fmt: cache.build(prune(parse_arch(arch)), fmt, 0)


def _time(profile_name: str, artifact: Path, **overrides):
    profile = load_profile(profile_name)
    if overrides:
        profile = profile.with_threads(overrides["threads"])
    with make_runner(profile) as runner:
        runner.prepare(artifact, seed=3)
        t = time_runner(runner, PROTO)
        info = runner.info()
        inputs = dict(runner.inputs)
    return t, info, inputs


def _assert_sane(t) -> None:
    assert t.raw_ns.shape == (PROTO.runs,) and (t.raw_ns > 0).all()
    assert np.isfinite(t.latency_ms) and t.latency_ms > 0
    assert t.raw_ns.min() / 1e6 <= t.latency_ms <= t.raw_ns.max() / 1e6
    assert t.latency_std_ms >= 0


@pytest.mark.parametrize("name", CPU)
def test_cpu_profile_times_tiny_model(name: str, tiny: dict[str, Path]) -> None:
    fmt = load_profile(name).artifact_format
    t, info, inputs = _time(name, tiny[fmt])
    _assert_sane(t)
    assert info["name"] == load_profile(name).runtime and info["version"]
    assert "threads" in info and "settings" in info
    assert len(inputs) == 1
    (x,) = inputs.values()
    assert x.shape[0] == 1 and x.dtype == (np.int8 if fmt == "tflite-int8" else np.float32)


@pytest.mark.parametrize(("name", "fmt"), [("cpu-onnxruntime", "onnx"), ("cpu-tf", "keras")])
def test_multi_input_models_get_every_input(name: str, fmt: str, tiny: dict[str, Path]) -> None:
    t, _, inputs = _time(name, tiny[f"{fmt}-multi"])
    _assert_sane(t)
    assert len(inputs) == 2
    a, b = inputs.values()
    assert a.shape == b.shape and a.shape[0] == 1 and not np.array_equal(a, b)


def test_inputs_are_seeded(tiny: dict[str, Path]) -> None:
    runner = make_runner(load_profile("cpu-onnxruntime"))
    runner.prepare(tiny["onnx"], seed=1)
    first = runner.inputs["x"].copy()
    runner.prepare(tiny["onnx"], seed=1)
    np.testing.assert_array_equal(first, runner.inputs["x"])
    runner.prepare(tiny["onnx"], seed=2)
    assert not np.array_equal(first, runner.inputs["x"])
    runner.close()
    with pytest.raises(RuntimeError, match="prepare"):
        runner.timed_call()


def test_litert_records_threads_and_xnnpack(tiny: dict[str, Path]) -> None:
    _, info, _ = _time("cpu-tflite", tiny["tflite"], threads=1)
    assert info["threads"] == 1 and info["settings"]["num_threads"] == 1
    assert info["delegate"] == "xnnpack" and info["delegate_applied"] in (True, None)
    assert info["package"] in ("ai-edge-litert", "tflite-runtime", "tensorflow")


def test_litert_without_xnnpack(tiny: dict[str, Path]) -> None:
    import dataclasses

    profile = dataclasses.replace(load_profile("cpu-tflite"), options={"xnnpack": False})
    with make_runner(profile) as runner:
        runner.prepare(tiny["tflite"], seed=0)
        _assert_sane(time_runner(runner, PROTO))
        info = runner.info()
    assert info["delegate"] == "none" and info["delegate_applied"] in (False, None)


def test_litert_falls_back_to_tf_lite(tiny: dict[str, Path], monkeypatch) -> None:
    import sys

    pytest.importorskip("tensorflow")
    for mod in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    t, info, _ = _time("cpu-tflite-int8", tiny["tflite-int8"])
    _assert_sane(t)
    assert info["package"] == "tensorflow"


def test_runner_rejects_foreign_artifact_format() -> None:
    profile = load_profile("cpu-onnxruntime")
    bad = profile.__class__(**{**profile.__dict__, "artifact_format": "tflite"})
    with pytest.raises(RunnerUnavailable, match="loads onnx"):
        make_runner(bad)


# --- NB201 networks built by the harness's builders ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", CPU)
def test_cpu_profile_times_nb201_archs(name: str, nb201) -> None:
    fmt = load_profile(name).artifact_format
    times = {}
    for arch in (SMALLEST, MIXED):
        t, _, _ = _time(name, nb201(arch, fmt))
        _assert_sane(t)
        times[arch] = t.raw_ns.min()
    # 15 cells with two 3x3 and one 1x1 convolutions against 15 identity cells: the
    # mixed network does about 10x the work. The fastest run of each: other jobs on a
    # shared host only ever add time, and TensorFlow's per-call overhead (~6 ms here)
    # hides the difference in a filtered mean taken under load.
    assert times[MIXED] > times[SMALLEST]


# --- GPU profiles here --------------------------------------------------------------


@pytest.mark.parametrize("name", GPU)
def test_gpu_profiles_say_no_gpu(name: str, tiny: dict[str, Path]) -> None:
    profile = load_profile(name)
    if _gpu_here(name):
        pytest.skip(f"{name} can run here")
    problems = runner_class(profile.runtime).check(profile)
    assert problems
    text = " ".join(problems)
    assert "no GPU visible" in text or "ExecutionProvider" in text
    assert "install" in text or "machine with an NVIDIA GPU" in text
    with pytest.raises(RunnerUnavailable) as exc:
        make_runner(profile)
    assert problems[0] in str(exc.value)
    runner = runner_class(profile.runtime)(profile)  # bypassing make_runner
    with pytest.raises(RunnerUnavailable, match=name):
        runner.prepare(tiny[profile.artifact_format], seed=0)


def test_gpu_tf_message_names_tensorflow_gpu() -> None:
    profile = load_profile("gpu-tf")
    if _gpu_here("gpu-tf"):
        pytest.skip("a GPU is visible to TensorFlow here")
    (problem,) = runner_class("tensorflow").check(profile)
    assert "no GPU visible to TensorFlow" in problem and "tensorflow[and-cuda]" in problem


# --- check_profile ------------------------------------------------------------------


def test_check_cpu_profiles_with_given_artifact(tiny: dict[str, Path]) -> None:
    for name in CPU:
        profile = load_profile(name)
        report = check_profile(profile, artifact=tiny[profile.artifact_format])
        assert report.ok, report.lines
        assert report.problems == [] and report.latency_ms > 0
        assert report.lines[-1] == f"{name}: ready"


@pytest.mark.slow
def test_check_builds_its_own_tiny_model(tmp_path: Path) -> None:
    report = check_profile(load_profile("cpu-onnxruntime"), tmp_path)
    assert report.ok, report.lines
    assert list(tmp_path.glob("*.onnx")) and report.latency_ms > 0
    assert report.runner_info["name"] == "onnxruntime"


def test_check_reports_failures(tmp_path: Path) -> None:
    report = check_profile(load_profile("cpu-onnxruntime"), artifact=tmp_path / "none.onnx")
    assert not report.ok and report.latency_ms is None
    assert "FileNotFoundError" in report.problems[0]
    for name in GPU:
        if _gpu_here(name):
            continue
        report = check_profile(load_profile(name))
        assert not report.ok and report.problems
        assert any("FAILED" in line for line in report.lines)
        assert report.lines[-1] == f"{name}: not usable here"


def test_every_profile_has_a_runner() -> None:
    for profile in list_profiles():
        cls = runner_class(profile.runtime)
        assert profile.artifact_format in cls.formats
