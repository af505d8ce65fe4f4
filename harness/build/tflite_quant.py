"""Full-integer quantization of a direct-built :class:`~latbench.harness.build.tflite_direct.Net`.

The rules are the TFLite converter's post-training full-int8 quantization, checked
against its output for this network (``tests/test_tflite_direct.py``):

- activations: asymmetric int8 from the min/max (widened to include 0) over the
  calibration batch, zero point nudged as ``GetAsymmetricQuantizationParams`` does;
  an ADD input computed over in place also covers the ADD's output range (an
  artefact of the converter's calibrator, reproduced: :func:`_inplace_ranges`);
- AVERAGE_POOL_2D outputs reuse their input's parameters (the kernel requires it);
- conv and dense kernels: per-output-channel symmetric int8, scale ``max|w| / 127``;
- biases: int32 at ``input_scale * weight_scale`` per channel (bias-free convs get
  their own zero bias, as the converter writes them);
- ``io_dtype = "uint8"``: a QUANTIZE op turns the uint8 input into int8 (same scale,
  zero point + 128) and another the int8 logits back into uint8, as for the Edge TPU.

Calibration runs the float model once, batched, in the LiteRT interpreter (reference
kernels, every intermediate tensor kept) on the same seeded standard-normal inputs
that :func:`latbench.harness.build.tflite_converter.representative_inputs` gives the converter.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from latbench.harness.build.tflite_direct import (
    _BO,
    INT8,
    INT32,
    UINT8,
    Net,
    Op,
    Tensor,
    serialize,
)

__all__ = ["CALIBRATION_SAMPLES", "activation_ranges", "calibration_inputs", "quantize_net"]

CALIBRATION_SAMPLES = 24
"""Calibration inputs per model (the converter path's ``CALIBRATION_SAMPLES``)."""

_QMIN, _QMAX = -128, 127


def calibration_inputs(net: Net, seed: int, n: int = CALIBRATION_SAMPLES) -> list[list[np.ndarray]]:
    """``n`` seeded standard-normal samples, one array per model input.

    The same draws as ``build_tflite.representative_inputs`` (which needs a Keras model).
    """
    rng = np.random.default_rng([int(seed), 0x1A7B])
    shapes = [net.tensors[i].shape for i in net.inputs]
    return [[rng.standard_normal(s, dtype=np.float32) for s in shapes] for _ in range(n)]


def activation_ranges(net: Net, samples: list[list[np.ndarray]]) -> dict[int, tuple[float, float]]:
    """``(min, max)`` of every activation tensor of the float ``net`` over ``samples``."""
    from latbench.harness.runners.litert import load_interpreter_module

    module, _, _ = load_interpreter_module()
    resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
    interp = module.Interpreter(
        model_content=serialize(net),
        experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    n = len(samples)
    for i in net.inputs:
        interp.resize_tensor_input(i, [n, *net.tensors[i].shape[1:]])
    interp.allocate_tensors()
    for k, i in enumerate(net.inputs):
        interp.set_tensor(i, np.concatenate([s[k] for s in samples]))
    interp.invoke()
    out = {}
    for i, t in enumerate(net.tensors):
        if t.data is None:
            a = interp.get_tensor(i)
            out[i] = (float(a.min()), float(a.max()))
    return out


def _inplace_ranges(
    net: Net, ranges: dict[int, tuple[float, float]]
) -> dict[int, tuple[float, float]]:
    """The ranges the converter's calibrator records: an ADD input the interpreter
    overwrites in place is logged again after the ADD ran, holding the sum.

    The calibrator logs an op's inputs after invoking it, and LiteRT's arena planner
    computes ADD in place into its first input that no other op reads (same size,
    neither a graph input nor feeding a graph output). That input's range becomes the
    union of its own and the ADD output's -- reproduced here so that the scales match.
    """
    consumers: dict[int, int] = {}
    for op in net.ops:
        for i in op.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for i in net.outputs:
        consumers[i] = consumers.get(i, 0) + 1
    out = dict(ranges)
    for op in net.ops:
        if op.code != _BO.ADD or op.outputs[0] in net.outputs:
            continue
        for i in op.inputs:
            if consumers[i] == 1 and i not in net.inputs and i in ranges:
                lo, hi = ranges[op.outputs[0]]
                out[i] = (min(out[i][0], lo), max(out[i][1], hi))
                break
    return out


def _asymmetric(lo: float, hi: float) -> tuple[float, int]:
    # tensorflow/lite/tools/optimize/quantization_utils.cc GetAsymmetricQuantizationParams
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, 0  # an all-zero tensor: any scale represents it
    scale = (hi - lo) / (_QMAX - _QMIN)
    zp_min, zp_max = _QMIN - lo / scale, _QMAX - hi / scale
    err_min, err_max = abs(_QMIN) + abs(lo / scale), abs(_QMAX) + abs(hi / scale)
    zp = zp_min if err_min < err_max else zp_max
    return float(np.float32(scale)), int(np.clip(_round(zp), _QMIN, _QMAX))


def _round(x):
    # std::round: half away from zero (numpy rounds half to even).
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    scale = np.abs(flat).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(_round(flat / scale[:, None].astype(np.float64)), -127, 127)
    return q.astype(np.int8).reshape(w.shape), scale


def quantize_net(net: Net, seed: int = 0, io_dtype: str = "int8") -> Net:
    """A full-int8 copy of the float ``net``; I/O tensors are ``io_dtype`` (int8, uint8).

    Raises ``ValueError`` for another ``io_dtype``.
    """
    if io_dtype not in ("int8", "uint8"):
        raise ValueError(f"io_dtype must be 'int8' or 'uint8', not {io_dtype!r}")
    ranges = _inplace_ranges(net, activation_ranges(net, calibration_inputs(net, seed)))
    q = Net(input_names=list(net.input_names))
    q.tensors = [dataclasses.replace(t) for t in net.tensors]

    def set_params(i: int, scale: float, zp: int) -> None:
        t = q.tensors[i]
        t.dtype, t.scale, t.zero_point = INT8, np.array([scale], np.float32), np.array([zp])

    for i in ranges:
        if i in net.inputs:
            set_params(i, *_asymmetric(*ranges[i]))
    for op in net.ops:
        out = op.outputs[0]
        inputs = list(op.inputs)
        if op.code == _BO.AVERAGE_POOL_2D:
            src = q.tensors[op.inputs[0]]
            set_params(out, float(src.scale[0]), int(src.zero_point[0]))
        else:
            set_params(out, *_asymmetric(*ranges[out]))
        if op.code in (_BO.CONV_2D, _BO.FULLY_CONNECTED):
            x, w, b = op.inputs
            wq, w_scale = _per_channel(net.tensors[w].data)
            q.tensors[w] = dataclasses.replace(
                net.tensors[w], dtype=INT8, data=wq, scale=w_scale,
                zero_point=np.zeros(len(w_scale), np.int64),
            )  # fmt: skip
            b_scale = (w_scale.astype(np.float64) * float(q.tensors[x].scale[0])).astype(np.float32)
            bias = net.tensors[b].data.astype(np.float64)
            bq = np.clip(_round(bias / b_scale), -(2**31), 2**31 - 1).astype(np.int32)
            q.tensors.append(
                Tensor(f"{net.tensors[out].name}/bias", net.tensors[b].shape, INT32, bq,
                       b_scale, np.zeros(len(b_scale), np.int64))
            )  # fmt: skip
            inputs[2] = len(q.tensors) - 1
        q.ops.append(Op(op.code, inputs, list(op.outputs), dict(op.options), op.role))
    q.inputs, q.outputs = list(net.inputs), list(net.outputs)
    if io_dtype == "uint8":
        q.inputs = [_requantize(q, i, into=False) for i in net.inputs]
        q.outputs = [_requantize(q, i, into=True) for i in net.outputs]
    # Bias-free convs point at the shared float zero bias no longer; drop unused tensors.
    return _compact(q)


def _requantize(q: Net, i: int, into: bool) -> int:
    """Add a uint8 twin of int8 tensor ``i`` and the QUANTIZE op between them."""
    t = q.tensors[i]
    twin = Tensor(t.name if not into else f"{t.name}/uint8", t.shape, UINT8, None,
                  t.scale.copy(), t.zero_point + 128)  # fmt: skip
    if not into:
        t.name = f"{t.name}/int8"
    q.tensors.append(twin)
    j = len(q.tensors) - 1
    if into:
        q.ops.append(Op(_BO.QUANTIZE, [i], [j], {}, "quantize"))
    else:
        q.ops.insert(0, Op(_BO.QUANTIZE, [j], [i], {}, "quantize"))
    return j


def _compact(q: Net) -> Net:
    used = sorted({i for op in q.ops for i in (*op.inputs, *op.outputs)} | set(q.inputs))
    remap = {old: new for new, old in enumerate(used)}
    q.tensors = [q.tensors[i] for i in used]
    for op in q.ops:
        op.inputs = [remap[i] for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]
    q.inputs = [remap[i] for i in q.inputs]
    q.outputs = [remap[i] for i in q.outputs]
    return q
