"""The direct LiteRT builder against the TFLite converter (the reference).

The converter costs ~2 s a model, so the tests compare a handful of graphs chosen to
cover every structure (CSE'd duplicate pools, 4-input adds, pool-only and conv-only
cells); ``benchmarks/bench_tflite_direct.py`` runs the same checks on 100 graphs and
the latency comparison on 200.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite")

from latbench.graph import prune  # noqa: E402
from latbench.harness.artifacts import ArtifactCache, tflite_builder, toolchain_versions  # noqa: E402
from latbench.harness.build.tflite_direct import (  # noqa: E402
    build_layer_tflite_direct,
    build_tflite_direct,
    describe_ops,
    network_ir,
)
from latbench.harness.build.tflite_quant import calibration_inputs  # noqa: E402
from latbench.network import distinct_layers  # noqa: E402

GRAPHS = [
    prune((3, 4, 0, 4, 2, 2)),  # two pools of the cell input: the converter merges them
    prune((1, 1, 2, 2, 3, 1)),  # skips into 3- and 4-input sums
    prune((3, 3, 3, 3, 3, 3)),  # every op a conv3x3 (the largest model)
    prune((4, 4, 4, 4, 4, 4)),  # pools only
    prune((0, 0, 0, 1, 0, 0)),  # the cell is the identity: stem, reductions, head
]


def _converter(target, quantize=False, io_dtype="int8") -> bytes:
    import keras

    from latbench.harness.build.keras_net import build_keras, build_layer_keras
    from latbench.harness.build.tflite_converter import convert_tflite
    from latbench.network import Layer

    build = build_layer_keras if isinstance(target, Layer) else build_keras
    try:
        return convert_tflite(build(target, 0), quantize=quantize, seed=0, io_dtype=io_dtype)
    finally:
        keras.backend.clear_session()


def _run(model: bytes, seed: int = 3) -> tuple[np.ndarray, dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    ins = sorted(interp.get_input_details(), key=lambda d: d["name"])
    for d in ins:
        if d["dtype"] == np.float32:
            x = rng.standard_normal(d["shape"]).astype(np.float32)
        else:
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, d["shape"], dtype=d["dtype"], endpoint=True)
        interp.set_tensor(d["index"], x)
    interp.invoke()
    out = interp.get_output_details()[0]
    return interp.get_tensor(out["index"]), ins[0], out


# The converter graphs: CSE'd pools, 3- and 4-input sums, the identity cell.
CONVERTER_GRAPHS = [GRAPHS[0], GRAPHS[1], GRAPHS[4]]


@pytest.fixture(scope="module")
def converted():
    return {g.key: _converter(g) for g in CONVERTER_GRAPHS}


@pytest.mark.slow
@pytest.mark.parametrize("graph", CONVERTER_GRAPHS, ids=lambda g: g.key)
def test_fp32_same_operators_and_outputs_as_converter(graph, converted):
    direct, ref = build_tflite_direct(graph, 0), converted[graph.key]
    assert Counter(describe_ops(direct)) == Counter(describe_ops(ref))
    y, d_in, d_out = _run(direct)
    y_ref, r_in, r_out = _run(ref)
    assert (d_in["name"], d_in["dtype"], tuple(d_out["shape"])) == ("serving_default_input:0",
                                                                     np.float32, (1, 10))  # fmt: skip
    assert tuple(r_in["shape"]) == tuple(d_in["shape"])
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-5)
    assert np.abs(y).max() > 1e-3  # a real signal, not all zeros


def test_fused_relu_and_cse_are_the_converters():
    ops = describe_ops(build_tflite_direct(GRAPHS[0], 0))
    names = Counter(name for name, *_ in ops)
    # per cell: 1 conv3x3 + 2 conv1x1, one pool (the duplicate merged), adds 4 -> 3 inputs
    assert names["AVERAGE_POOL_2D"] == 3 * 5 + 2 and names["CONV_2D"] == 1 + 15 * 3 + 2 * 3
    acts = Counter(dict(o)["FusedActivationFunction"] for n, o, *_ in ops if n == "CONV_2D")
    assert acts == {1: 1 + 15 * 3, 0: 2 * 3}  # RELU on stem and cells, none in reductions


@pytest.mark.slow
@pytest.mark.parametrize("signature", ["s3/add3", "reduction1", "head"])
def test_layers_match_converter(signature):
    layer = next(la for la in distinct_layers() if la.signature == signature)
    direct, ref = build_layer_tflite_direct(layer, 0), _converter(layer)
    assert Counter(describe_ops(direct)) == Counter(describe_ops(ref))
    np.testing.assert_allclose(_run(direct)[0], _run(ref)[0], rtol=0, atol=1e-5)


def test_deterministic_and_seeded():
    g = GRAPHS[1]
    assert build_tflite_direct(g, 0) == build_tflite_direct(g, 0)
    assert build_tflite_direct(g, 0) != build_tflite_direct(g, 1)
    with pytest.raises(ValueError, match="invalid"):
        build_tflite_direct(prune((0, 0, 0, 0, 0, 0)), 0)


def test_signature_and_metadata_load():
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=build_tflite_direct(GRAPHS[4], 0))
    runner = interp.get_signature_runner("serving_default")
    x = np.ones((1, 32, 32, 3), np.float32)
    assert runner(input=x)["output_0"].shape == (1, 10)


def test_direct_build_imports_no_tensorflow():
    code = (
        "import sys; from latbench.graph import prune; "
        "from latbench.harness.build.tflite_direct import build_tflite_direct; "
        "b = build_tflite_direct(prune((3, 2, 4, 1, 3, 2)), 0); "
        "assert b[4:8] == b'TFL3'; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_builder_is_in_the_cache_key(tmp_path):
    g = GRAPHS[4]
    cache = ArtifactCache(tmp_path)
    direct = cache.path_for(g, "tflite", 0)
    assert direct == cache.path_for(g, "tflite", 0, {"builder": "direct"})
    assert direct != cache.path_for(g, "tflite", 0, {"builder": "converter"})
    assert cache.path_for(g, "tflite-int8", 0) != cache.path_for(
        g, "tflite-int8", 0, {"builder": "converter"}
    )
    versions = toolchain_versions("tflite")
    assert versions["tflite_builder"].startswith("direct") and "tensorflow" not in versions
    assert toolchain_versions("tflite", {"builder": "converter"})["tflite_builder"] == "converter"
    assert tflite_builder("onnx") is None
    with pytest.raises(ValueError, match="unknown TFLite builder 'tflm'"):
        cache.path_for(g, "tflite", 0, {"builder": "tflm"})
    path = cache.build(g, "tflite", 0)
    assert path.read_bytes() == build_tflite_direct(g, 0)


# -- full int8 ---------------------------------------------------------------------


def test_calibration_inputs_are_the_converters():
    keras = pytest.importorskip("keras")
    from latbench.harness.build.keras_net import build_keras
    from latbench.harness.build.tflite_converter import representative_inputs

    g = GRAPHS[1]
    ref = representative_inputs(build_keras(g, 0), seed=5)
    keras.backend.clear_session()
    ours = calibration_inputs(network_ir(g, 0), seed=5)
    assert len(ours) == len(ref) == 24
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("graph", "io_dtype"),
    [(GRAPHS[0], "uint8"), (GRAPHS[1], "uint8"), (GRAPHS[2], "int8")],
    ids=lambda v: getattr(v, "key", v),
)
def test_int8_close_to_converter(graph, io_dtype):
    direct = build_tflite_direct(graph, 0, quantize=True, io_dtype=io_dtype)
    ref = _converter(graph, quantize=True, io_dtype=io_dtype)
    assert Counter(describe_ops(direct)) == Counter(describe_ops(ref))
    y, d_in, d_out = _run(direct)
    y_ref, r_in, r_out = _run(ref)
    assert d_in["dtype"] == d_out["dtype"] == np.dtype(io_dtype)
    assert d_in["quantization"] == pytest.approx(r_in["quantization"], rel=1e-6)
    s, _ = d_out["quantization"]
    assert s == pytest.approx(r_out["quantization"][0], rel=1e-5)
    steps = np.abs(y.astype(np.int64) - y_ref.astype(np.int64))
    assert (steps <= 1).mean() >= 0.95, steps


def test_int8_layer_and_bad_io_dtype():
    layer = next(la for la in distinct_layers() if la.signature == "s1/add3")
    model = build_layer_tflite_direct(layer, 0, quantize=True, io_dtype="uint8")
    y, d_in, d_out = _run(model)
    assert d_in["dtype"] == d_out["dtype"] == np.uint8 and y.shape == (1, 32, 32, 16)
    names = Counter(n for n, *_ in describe_ops(model))
    assert names == {"QUANTIZE": 4, "ADD": 2}
    with pytest.raises(ValueError, match="io_dtype"):
        build_tflite_direct(GRAPHS[4], 0, quantize=True, io_dtype="int16")
