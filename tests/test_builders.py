"""Graph -> artifact builders: Keras, ONNX and TFLite agree, costs match, cache works."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
keras = pytest.importorskip("keras")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from latbench.graph import prune  # noqa: E402
from latbench.harness.artifacts import ArtifactCache, toolchain_versions  # noqa: E402
from latbench.harness.build.keras_net import build_keras, build_layer_keras  # noqa: E402
from latbench.harness.build.onnx_net import OPSET, build_layer_onnx, build_onnx  # noqa: E402
from latbench.harness.build.weights import layer_weights, network_weights  # noqa: E402
from latbench.network import INPUT_SHAPE, Layer, costs, distinct_layers  # noqa: E402
from latbench.space import all_archs  # noqa: E402

N_ARCHS = 100
ALL_SKIP = prune((0, 0, 0, 1, 0, 0))  # the cell is the identity
FAN_IN_4 = prune((1, 1, 2, 2, 2, 1))  # the output sums 4 inputs
DEEP = prune((3, 3, 3, 3, 3, 3))  # every op a 3x3 conv: largest FLOPs
LAYERS = distinct_layers()


def _distinct_graphs(n: int, seed: int) -> list:
    by_key = {}
    for arch in all_archs():
        if arch.valid:
            by_key.setdefault(arch.graph.key, arch.graph)
    keys = sorted(by_key)
    picks = np.random.default_rng(seed).choice(len(keys), n - 3, replace=False)
    fixed = [ALL_SKIP, FAN_IN_4, DEEP]
    return fixed + [by_key[keys[i]] for i in picks if by_key[keys[i]] not in fixed][: n - 3]


def _np(tensor) -> np.ndarray:
    return tensor.numpy()  # keras.ops.convert_to_numpy warns under numpy 2


def _input(seed: int = 123, shape=INPUT_SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _ort(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4) -> bool:
    scale = float(np.max(np.abs(a)))
    return bool(np.max(np.abs(a - b)) <= 1e-5 + rtol * scale)


def _keras_macs(model) -> int:
    """MACs of every Conv2D and Dense layer, from kernel and output shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, ho, wo, _ = layer.output.shape
            total += ho * wo * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


@pytest.fixture(scope="module")
def graphs():
    gs = _distinct_graphs(N_ARCHS, seed=2020)
    assert len({g.key for g in gs}) == N_ARCHS
    return gs


@pytest.fixture(scope="module")
def built(graphs):
    """Per graph: Keras params, MACs and output, and the ONNX Runtime output."""
    x = _input()
    rows = []
    for g in graphs:
        model = build_keras(g, seed=0)
        rows.append(
            {
                "graph": g,
                "params": model.count_params(),
                "macs": _keras_macs(model),
                "keras": _np(model(x)),
                "onnx": _ort(build_onnx(g, seed=0)).run(None, {"input": x})[0],
            }
        )
        del model
        if len(rows) % 10 == 0:  # clearing costs ~0.3 s; the models are small
            keras.backend.clear_session()
    keras.backend.clear_session()
    return rows


def test_keras_and_onnx_agree_on_100_archs(built):
    bad = [r["graph"].key for r in built if not _close(r["keras"], r["onnx"])]
    assert not bad, f"Keras and ONNX outputs differ for {bad}"
    assert all(r["keras"].shape == (1, 10) for r in built)


def test_costs_match_keras_model(built):
    for r in built:
        c = costs(r["graph"])
        assert r["params"] == c.params, r["graph"].key
        assert r["macs"] == c.flops, r["graph"].key


def test_activations_stay_order_one(built):
    # Without rms normalisation, identity/pool paths let logits grow by 10^3+.
    rms = np.array([np.sqrt(np.mean(r["keras"] ** 2)) for r in built])
    assert np.all(rms > 1e-3) and np.all(rms < 10), (rms.min(), rms.max())
    # The outputs depend on the architecture, not on the bias alone.
    assert len({round(float(r["keras"][0, 0]), 6) for r in built}) > N_ARCHS // 2


def test_invalid_graph_rejected():
    invalid = prune((0, 0, 0, 0, 0, 0))
    for build in (build_keras, build_onnx, network_weights):
        with pytest.raises(ValueError, match="invalid"):
            build(invalid)


def test_onnx_model_is_pinned_and_checked():
    model = build_onnx(FAN_IN_4)
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain == ""] == [OPSET]
    assert [i.name for i in model.graph.input] == ["input"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(INPUT_SHAPE)


def test_same_seed_same_weights_and_bytes():
    a, b = network_weights(DEEP, 7), network_weights(DEEP, 7)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert build_onnx(DEEP, 7).SerializeToString() == build_onnx(DEEP, 7).SerializeToString()
    assert build_onnx(DEEP, 7).SerializeToString() != build_onnx(DEEP, 8).SerializeToString()
    x = _input()
    y1 = _np(build_keras(DEEP, 7)(x))
    y2 = _np(build_keras(DEEP, 7)(x))
    y3 = _np(build_keras(DEEP, 8)(x))
    keras.backend.clear_session()
    assert np.array_equal(y1, y2)
    assert not np.allclose(y1, y3)


def test_layer_weights_share_names_with_network():
    net = network_weights(DEEP, 3)
    stem = next(la for la in LAYERS if la.signature == "stem")
    assert np.array_equal(layer_weights(stem, 3)["stem"], net["stem"])
    head = next(la for la in LAYERS if la.signature == "head")
    assert np.array_equal(layer_weights(head, 3)["head/bias"], net["head/bias"])


@pytest.mark.parametrize("layer", LAYERS, ids=lambda la: la.signature)
def test_layer_builders_agree(layer):
    model = build_layer_keras(layer, seed=1)
    n_in = layer.n_inputs if layer.kind == "add" else 1
    xs = [_input(10 + i, (1, layer.h, layer.h, layer.cin)) for i in range(n_in)]
    y_keras = _np(model(xs if n_in > 1 else xs[0]))
    assert model.count_params() == layer.params
    assert _keras_macs(model) == layer.flops
    keras.backend.clear_session()

    sess = _ort(build_layer_onnx(layer, seed=1))
    feeds = {i.name: x.transpose(0, 3, 1, 2) for i, x in zip(sess.get_inputs(), xs, strict=True)}
    y_onnx = sess.run(None, feeds)[0]
    if y_onnx.ndim == 4:
        y_onnx = y_onnx.transpose(0, 2, 3, 1)
    assert y_onnx.shape == y_keras.shape
    assert _close(y_keras, y_onnx)


# -- TFLite (conversion costs ~1 s per model: a small sample) ----------------------


def _litert(content: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content)
    interp.allocate_tensors()
    return interp


def _run_tflite(content: bytes, xs: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    interp = _litert(content)
    ins = interp.get_input_details()
    assert len(ins) == len(xs)
    # Inputs keep the Keras input names; match on them, not on order.
    by_name = sorted(ins, key=lambda d: d["name"])
    for d, x in zip(by_name, xs, strict=True):
        scale, zero = d["quantization"]
        if d["dtype"] == np.int8:
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interp.set_tensor(d["index"], x)
    interp.invoke()
    out = interp.get_output_details()[0]
    y = interp.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y, {"in": ins[0]["dtype"], "out": out["dtype"]}


# The converter costs ~2 s a model: it gets the fixed structures and a few random graphs;
# the direct builder (the harness default) gets 40; Keras itself costs ~1 s a graph here.
# benchmarks/bench_tflite_direct.py compares the two builders on 100 graphs.
N_CONVERTER, N_DIRECT = 6, 40


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["converter", "direct"])
def test_tflite_fp32_matches_keras(graphs, builder):
    pytest.importorskip("ai_edge_litert")
    if builder == "direct":
        pytest.importorskip("tflite")
    from latbench.harness.build.tflite_converter import convert_tflite
    from latbench.harness.build.tflite_direct import build_tflite_direct

    x = _input()
    # the all-skip, 4-input-add and deep graphs come first in ``graphs``
    for g in graphs[: N_CONVERTER if builder == "converter" else N_DIRECT]:
        model = build_keras(g, seed=0)
        y_keras = _np(model(x))
        if builder == "converter":
            blob = convert_tflite(model, quantize=False, seed=0)
        else:
            blob = build_tflite_direct(g, 0)
        y_tfl, dtypes = _run_tflite(blob, [x])
        keras.backend.clear_session()
        assert dtypes == {"in": np.float32, "out": np.float32}
        assert _close(y_keras, y_tfl), g.key


@pytest.mark.slow
def test_tflite_int8_is_full_integer_and_close():
    pytest.importorskip("ai_edge_litert")
    from latbench.harness.build.tflite_converter import convert_tflite

    x = _input()
    for g in (FAN_IN_4, DEEP):
        model = build_keras(g, seed=0)
        y_keras = _np(model(x)).ravel()
        y_q, dtypes = _run_tflite(convert_tflite(model, quantize=True, seed=0), [x])
        keras.backend.clear_session()
        assert dtypes == {"in": np.int8, "out": np.int8}
        y_q = y_q.ravel()
        cos = float(y_q @ y_keras / (np.linalg.norm(y_q) * np.linalg.norm(y_keras)))
        assert cos > 0.9, (g.key, cos)


@pytest.mark.slow
def test_tflite_multi_input_add_layer():
    pytest.importorskip("ai_edge_litert")
    from latbench.harness.build.tflite_converter import convert_tflite

    layer = next(la for la in LAYERS if la.signature == "s3/add3")
    model = build_layer_keras(layer)
    xs = [_input(20 + i, (1, 8, 8, 64)) for i in range(3)]
    y_tfl, _ = _run_tflite(convert_tflite(model, quantize=False, seed=0), xs)
    keras.backend.clear_session()
    assert _close(sum(xs), y_tfl)


# -- cache ----------------------------------------------------------------------------


def test_cache_hit_does_not_rebuild(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert cache.get(DEEP, "onnx", 0) is None
    path = cache.build(DEEP, "onnx", 0)
    assert cache.get(DEEP, "onnx", 0) == path
    stamp = path.stat().st_mtime_ns
    assert cache.build(DEEP, "onnx", 0) == path
    assert path.stat().st_mtime_ns == stamp
    assert path.read_bytes() == build_onnx(DEEP, 0).SerializeToString()
    sidecar = path.with_suffix(".onnx.json").read_text()
    assert DEEP.key in sidecar and toolchain_versions("onnx")["onnx"] in sidecar


def test_cache_key_depends_on_seed_format_and_target(tmp_path):
    cache = ArtifactCache(tmp_path)
    layer = LAYERS[0]
    paths = {
        cache.path_for(DEEP, "onnx", 0),
        cache.path_for(DEEP, "onnx", 1),
        cache.path_for(DEEP, "tflite", 0),
        cache.path_for(DEEP, "tflite-int8", 0),
        cache.path_for(FAN_IN_4, "onnx", 0),
        cache.path_for(layer, "onnx", 0),
    }
    assert len(paths) == 6
    assert all(p.parent == tmp_path for p in paths)
    assert cache.path_for(prune((3, 3, 3, 3, 3, 3)), "onnx", 0) == cache.path_for(DEEP, "onnx", 0)
    with pytest.raises(ValueError, match="format"):
        cache.path_for(DEEP, "pb", 0)
    with pytest.raises(TypeError):
        cache.path_for("|nor_conv_3x3~0|", "onnx", 0)


def test_keras_artifact_loads(tmp_path):
    path = ArtifactCache(tmp_path).build(FAN_IN_4, "keras", 0)
    x = _input()
    loaded = keras.saving.load_model(path)
    y = _np(loaded(x))
    y_ref = _np(build_keras(FAN_IN_4, 0)(x))
    keras.backend.clear_session()
    assert np.allclose(y, y_ref, rtol=1e-5, atol=1e-7)


_HAMMER = """
import sys
from latbench.graph import prune
from latbench.harness.artifacts import ArtifactCache
cache = ArtifactCache(sys.argv[1])
for _ in range(15):
    cache.build(prune((3, 3, 3, 3, 3, 3)), "onnx", 0, force=True)
"""


def test_concurrent_writers_leave_one_valid_file(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _HAMMER, str(tmp_path)]) for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    path = ArtifactCache(tmp_path).get(DEEP, "onnx", 0)
    assert path is not None
    assert path.read_bytes() == build_onnx(DEEP, 0).SerializeToString()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".json"]


def test_build_many_reports_failures_and_keeps_going(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.build(ALL_SKIP, "onnx", 0)  # pre-built: must come back as an immediate hit
    bogus = Layer("bogus", "bogus", 1, 1, 1)  # passes the key, fails in the worker
    invalid = prune((0, 0, 0, 0, 0, 0))
    targets = [ALL_SKIP, DEEP, bogus, FAN_IN_4, invalid, DEEP]
    results: list = []

    # The harness consumes build_many from a background thread.
    thread = threading.Thread(
        target=lambda: results.extend(cache.build_many(targets, "onnx", 0, workers=2))
    )
    thread.start()
    thread.join()

    assert sorted(map(repr, targets)) == sorted(repr(t) for t, _ in results)
    assert results[0] == (ALL_SKIP, cache.get(ALL_SKIP, "onnx", 0))
    outcome = {}
    for t, res in results:
        outcome.setdefault(repr(t), []).append(res)
    assert isinstance(outcome[repr(bogus)][0], ValueError)
    assert isinstance(outcome[repr(invalid)][0], ValueError)
    for g in (DEEP, FAN_IN_4):
        for res in outcome[repr(g)]:
            assert res == cache.get(g, "onnx", 0)
            assert res.read_bytes() == build_onnx(g, 0).SerializeToString()
    assert len(outcome[repr(DEEP)]) == 2
