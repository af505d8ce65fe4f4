"""Pruned graph (or one layer) -> ``.tflite`` written directly with the LiteRT schema.

The timed network (docs/design.md §4) uses five operators: CONV_2D, AVERAGE_POOL_2D, ADD,
MEAN and FULLY_CONNECTED. This module writes them as the TFLite converter does --
same operators, options, tensor shapes and weight layout -- with the ``flatbuffers``
runtime and the generated schema bindings of the ``tflite`` package, in milliseconds
instead of the converter's seconds (``docs/benchmarks.md``). What the converter does
and this module reproduces:

- ReLU is fused into its convolution (``fused_activation_function = RELU``);
- kernels are stored OHWI (``(cout, kh, kw, cin)``), the dense kernel ``(out, in)``;
- bias-free convolutions get an all-zero bias, one tensor shared per channel count;
- a sum of k inputs is k - 1 chained two-input ADDs in predecessor order;
- identical weightless operators (two pools of one tensor, two sums of the same
  operands) are computed once (the converter's common-subexpression elimination);
- global average pooling is MEAN over axes (1, 2), ``keep_dims = false``;
- the model has one ``serving_default`` signature (input ``input``, output ``output_0``).

Operator *order* can differ: the converter's scheduler interleaves independent
branches, this module emits them in cell-slot order (any topological order computes
the same values).

Full int8 (``quantize=True``) follows the converter's post-training quantization:
per-channel symmetric int8 conv kernels, per-tensor symmetric int8 dense kernel,
int32 biases at ``input_scale * weight_scale``, asymmetric int8 activations whose
ranges come from the float model run on the same seeded calibration inputs the
converter gets (:func:`latbench.harness.build.tflite_converter.representative_inputs`), pools
sharing their input's parameters, and QUANTIZE ops to and from ``io_dtype``
(``uint8`` for the Edge TPU) at the ends. Where it differs from the converter is in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np

from latbench.graph import INPUT, OUTPUT, PrunedGraph
from latbench.harness.build.weights import cell_weight_name, layer_weights, network_weights
from latbench.network import CELLS_PER_STAGE, INPUT_SHAPE, N_CLASSES, Layer

__all__ = [
    "DIRECT_BUILDER_VERSION",
    "SCHEMA_VERSION",
    "build_layer_tflite_direct",
    "build_tflite_direct",
    "network_ir",
    "layer_ir",
]

DIRECT_BUILDER_VERSION = 1
"""Bump when this module's output changes for the same inputs (part of the cache key)."""
SCHEMA_VERSION = 3
"""TFLite schema version the models declare (the converter's)."""

_ALIGN = 16  # the converter aligns constant buffers to 16 bytes; XNNPACK reads them in place


def _schema(name: str) -> Any:
    # ``tflite.<Name>`` is the class; the module of the same name holds the builder functions.
    return importlib.import_module(f"tflite.{name}")


_BO = importlib.import_module("tflite.BuiltinOperator").BuiltinOperator
_BOPT = importlib.import_module("tflite.BuiltinOptions").BuiltinOptions
_TT = importlib.import_module("tflite.TensorType").TensorType
_ACT = importlib.import_module("tflite.ActivationFunctionType").ActivationFunctionType
_PAD = importlib.import_module("tflite.Padding").Padding

FLOAT32, INT32, INT8, UINT8 = _TT.FLOAT32, _TT.INT32, _TT.INT8, _TT.UINT8
_NP_TYPES = {FLOAT32: np.float32, INT32: np.int32, INT8: np.int8, UINT8: np.uint8}
_IO_TYPES = {"int8": INT8, "uint8": UINT8}


# --------------------------------------------------------------------------- the IR


@dataclass
class Tensor:
    """One tensor of the model: an activation (``data is None``) or a constant."""

    name: str
    shape: tuple[int, ...]
    dtype: int = FLOAT32
    data: np.ndarray | None = None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class Op:
    """One operator: builtin code, input/output tensor indices, options."""

    code: int
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    role: str = ""
    """For quantization: ``conv``, ``pool`` (output shares the input's parameters), ``add``..."""


@dataclass
class Net:
    """A model before serialization: tensors, operators, graph inputs and outputs."""

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    _zero_bias: dict[int, int] = field(default_factory=dict)
    _cse: dict[tuple, int] = field(default_factory=dict)

    def tensor(self, name: str, shape: Sequence[int], data: np.ndarray | None = None,
               dtype: int = FLOAT32) -> int:  # fmt: skip
        self.tensors.append(Tensor(name, tuple(int(d) for d in shape), dtype, data))
        return len(self.tensors) - 1

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def op(self, code: int, inputs: list[int], out_name: str, out_shape: Sequence[int],
           role: str, **options: Any) -> int:  # fmt: skip
        # The converter merges identical weightless ops (common subexpression
        # elimination: two pools of one tensor, two adds of the same operands).
        weightless = all(self.tensors[i].data is None for i in inputs)
        key = (code, tuple(inputs), tuple(sorted(options.items())))
        if weightless and key in self._cse:
            return self._cse[key]
        out = self.tensor(out_name, out_shape)
        self.ops.append(Op(code, inputs, [out], options, role))
        if weightless:
            self._cse[key] = out
        return out

    def input(self, name: str, shape: Sequence[int]) -> int:
        t = self.tensor(f"serving_default_{name}:0", shape)
        self.inputs.append(t)
        self.input_names.append(name)
        return t

    def zero_bias(self, channels: int) -> int:
        # The converter folds every bias-free conv's zero bias into one constant per size.
        if channels not in self._zero_bias:
            self._zero_bias[channels] = self.tensor(
                f"zero_bias_{channels}", (channels,), np.zeros(channels, np.float32)
            )
        return self._zero_bias[channels]

    # layers ------------------------------------------------------------------------

    def conv(self, x: int, name: str, w_hwio: np.ndarray, stride: int = 1,
             relu: bool = True) -> int:  # fmt: skip
        k, _, _, cout = w_hwio.shape
        _, h, _, _ = self.shape(x)
        ho = -(-h // stride)
        w = self.tensor(f"{name}/kernel", (cout, k, k, w_hwio.shape[2]),
                        np.ascontiguousarray(w_hwio.transpose(3, 0, 1, 2)))  # fmt: skip
        return self.op(
            _BO.CONV_2D, [x, w, self.zero_bias(cout)], f"{name}/conv", (1, ho, ho, cout), "conv",
            padding=_PAD.SAME, stride=stride, act=_ACT.RELU if relu else _ACT.NONE,
        )  # fmt: skip

    def avgpool(self, x: int, name: str, k: int = 3, stride: int = 1, same: bool = True) -> int:
        n, h, _, c = self.shape(x)
        ho = -(-h // stride) if same else (h - k) // stride + 1
        return self.op(
            _BO.AVERAGE_POOL_2D, [x], f"{name}/avgpool", (n, ho, ho, c), "pool",
            padding=_PAD.SAME if same else _PAD.VALID, stride=stride, filter=k,
        )  # fmt: skip

    def sum(self, xs: list[int], name: str) -> int:
        acc = xs[0]
        for i, x in enumerate(xs[1:]):
            acc = self.op(_BO.ADD, [acc, x], f"{name}/add_{i}", self.shape(acc), "add")
        return acc

    def cell(self, x: int, graph: PrunedGraph, stage: int, cell: int, w: dict) -> int:
        node = {INPUT: x}
        for slot in (*graph.op_nodes, OUTPUT):
            name = cell_weight_name(stage, cell, slot)
            v = self.sum([node[p] for p in graph.preds(slot)], name)
            label = graph.labels[slot]
            if label in ("conv1x1", "conv3x3"):
                v = self.conv(v, name, w[name])
            elif label == "avgpool3x3":
                v = self.avgpool(v, name)
            node[slot] = v
        return node[OUTPUT]

    def reduction(self, x: int, i: int, w: dict) -> int:
        p = f"reduction{i}"
        main = self.conv(x, f"{p}/main_a", w[f"{p}/main_a"], stride=2, relu=False)
        main = self.conv(main, f"{p}/main_b", w[f"{p}/main_b"], relu=False)
        short = self.avgpool(x, f"{p}/pool", k=2, stride=2, same=False)
        short = self.conv(short, f"{p}/shortcut", w[f"{p}/shortcut"], relu=False)
        return self.sum([main, short], p)

    def head(self, x: int, w: dict) -> int:
        axes = self.tensor("head/mean_axes", (2,), np.array([1, 2], np.int32), INT32)
        c = self.shape(x)[-1]
        x = self.op(_BO.MEAN, [x, axes], "head/mean", (1, c), "mean", keep_dims=False)
        kernel = self.tensor("head/kernel", (N_CLASSES, c),
                             np.ascontiguousarray(w["head/kernel"].T))  # fmt: skip
        bias = self.tensor("head/bias", (N_CLASSES,), w["head/bias"])
        return self.op(_BO.FULLY_CONNECTED, [x, kernel, bias], "head/dense", (1, N_CLASSES), "fc")


def network_ir(graph: PrunedGraph, seed: int = 0) -> Net:
    """The docs/design.md §4 network of ``graph`` as an fp32 :class:`Net` (same seeded weights).

    Raises ``ValueError`` when ``graph`` is invalid.
    """
    w = network_weights(graph, seed)
    net = Net()
    x = net.conv(net.input("input", INPUT_SHAPE), "stem", w["stem"])
    for stage in (1, 2, 3):
        if stage > 1:
            x = net.reduction(x, stage - 1, w)
        for cell in range(CELLS_PER_STAGE):
            x = net.cell(x, graph, stage, cell, w)
    net.outputs = [net.head(x, w)]
    return net


def layer_ir(layer: Layer, seed: int = 0) -> Net:
    """``layer`` alone as an fp32 :class:`Net`, like ``build_layer_keras``.

    Inputs are NHWC ``(1, h, h, cin)``, named ``input``, ``input_1``... Raises
    ``ValueError`` for an unknown layer kind.
    """
    w = layer_weights(layer, seed)
    net = Net()
    shape = (1, layer.h, layer.h, layer.cin)
    if layer.kind == "add":
        xs = [net.input("input" if i == 0 else f"input_{i}", shape) for i in range(layer.n_inputs)]
        out = net.sum(xs, "output")
    else:
        x = net.input("input", shape)
        if layer.kind == "conv":
            out = net.conv(x, "output", w[layer.signature], stride=layer.stride)
        elif layer.kind == "avgpool":
            out = net.avgpool(x, "output")
        elif layer.kind == "reduction":
            out = net.reduction(x, int(layer.signature.removeprefix("reduction")), w)
        elif layer.kind == "head":
            out = net.head(x, w)
        else:
            raise ValueError(f"unknown layer kind {layer.kind!r} for {layer.signature!r}")
    net.outputs = [out]
    return net


# ------------------------------------------------------------------ serialization

# (builtin options union type, operator version) per builtin, fp32 and int8.
_OP_VERSION = {
    _BO.CONV_2D: (1, 3),
    _BO.AVERAGE_POOL_2D: (1, 2),
    _BO.ADD: (1, 2),
    _BO.MEAN: (1, 2),
    _BO.FULLY_CONNECTED: (1, 4),
    _BO.QUANTIZE: (1, 1),
}


def _bytes_vector(b: flatbuffers.Builder, data: bytes) -> int:
    # Builder.CreateNumpyVector with the converter's 16-byte alignment.
    b.StartVector(1, len(data), _ALIGN)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    b.vectorNumElems = len(data)
    return b.EndVector()


def _vec(b: flatbuffers.Builder, values: Sequence[Any], dtype: Any) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _table_vec(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _spatial_options(b: flatbuffers.Builder, table: str, o: dict) -> Any:
    """Start a Conv2D/Pool2D options table with its padding and (square) stride."""
    m = _schema(table)
    m.Start(b)
    m.AddPadding(b, o["padding"])
    m.AddStrideW(b, o["stride"])
    m.AddStrideH(b, o["stride"])
    return m


def _options(b: flatbuffers.Builder, op: Op) -> tuple[int, int]:
    o = op.options
    if op.code == _BO.CONV_2D:
        m = _spatial_options(b, "Conv2DOptions", o)
        m.AddFusedActivationFunction(b, o["act"])
        m.AddDilationWFactor(b, 1)
        m.AddDilationHFactor(b, 1)
        return _BOPT.Conv2DOptions, m.End(b)
    if op.code == _BO.AVERAGE_POOL_2D:
        m = _spatial_options(b, "Pool2DOptions", o)
        m.AddFilterWidth(b, o["filter"])
        m.AddFilterHeight(b, o["filter"])
        m.AddFusedActivationFunction(b, _ACT.NONE)
        return _BOPT.Pool2DOptions, m.End(b)
    if op.code == _BO.ADD:
        m = _schema("AddOptions")
        m.Start(b)
        m.AddFusedActivationFunction(b, _ACT.NONE)
        m.AddPotScaleInt16(b, True)
        return _BOPT.AddOptions, m.End(b)
    if op.code == _BO.MEAN:
        m = _schema("ReducerOptions")
        m.Start(b)
        m.AddKeepDims(b, bool(o["keep_dims"]))
        return _BOPT.ReducerOptions, m.End(b)
    if op.code == _BO.FULLY_CONNECTED:
        m = _schema("FullyConnectedOptions")
        m.Start(b)
        m.AddFusedActivationFunction(b, _ACT.NONE)
        m.AddKeepNumDims(b, False)
        return _BOPT.FullyConnectedOptions, m.End(b)
    return _BOPT.NONE, 0  # QUANTIZE: no options, as the converter writes it


def _quantization(b: flatbuffers.Builder, t: Tensor) -> int:
    m = _schema("QuantizationParameters")
    scale = _vec(b, t.scale, np.float32)
    zero = _vec(b, t.zero_point, np.int64)
    m.Start(b)
    m.AddScale(b, scale)
    m.AddZeroPoint(b, zero)
    m.AddQuantizedDimension(b, t.quantized_dimension)
    return m.End(b)


def serialize(net: Net, quantized: bool = False) -> bytes:
    """The ``.tflite`` flatbuffer of ``net`` (schema version 3, one subgraph)."""
    size = sum(t.data.nbytes for t in net.tensors if t.data is not None)
    b = flatbuffers.Builder(size + 64 * 1024)
    # Buffer 0 is the schema's empty sentinel; activations share it, constants get one each.
    buffer_data: list[bytes | None] = [None]
    tensor_buffer: list[int] = []
    for t in net.tensors:
        if t.data is None:
            tensor_buffer.append(0)
        else:
            buffer_data.append(np.ascontiguousarray(t.data, _NP_TYPES[t.dtype]).tobytes())
            tensor_buffer.append(len(buffer_data) - 1)
    min_runtime = b"1.14.0" if quantized else b"1.6.0"
    buffer_data.append(min_runtime.ljust(16, b"\0"))
    meta_buffer = len(buffer_data) - 1

    m_buf = _schema("Buffer")
    buffers = []
    for data in buffer_data:
        vec = _bytes_vector(b, data) if data else None
        m_buf.Start(b)
        if vec is not None:
            m_buf.AddData(b, vec)
        buffers.append(m_buf.End(b))

    m_t = _schema("Tensor")
    tensors = []
    for t, buf in zip(net.tensors, tensor_buffer, strict=True):
        name = b.CreateString(t.name)
        shape = _vec(b, t.shape, np.int32)
        quant = _quantization(b, t) if t.scale is not None else None
        m_t.Start(b)
        m_t.AddShape(b, shape)
        m_t.AddType(b, t.dtype)
        m_t.AddBuffer(b, buf)
        m_t.AddName(b, name)
        if quant is not None:
            m_t.AddQuantization(b, quant)
        tensors.append(m_t.End(b))

    codes = sorted({op.code for op in net.ops}, key=[op.code for op in net.ops].index)
    m_oc = _schema("OperatorCode")
    opcodes = []
    for code in codes:
        m_oc.Start(b)
        m_oc.AddDeprecatedBuiltinCode(b, min(code, 127))
        m_oc.AddBuiltinCode(b, code)
        m_oc.AddVersion(b, _OP_VERSION[code][1 if quantized else 0])
        opcodes.append(m_oc.End(b))

    m_op = _schema("Operator")
    ops = []
    for op in net.ops:
        inputs = _vec(b, op.inputs, np.int32)
        outputs = _vec(b, op.outputs, np.int32)
        opt_type, opt = _options(b, op)
        m_op.Start(b)
        m_op.AddOpcodeIndex(b, codes.index(op.code))
        m_op.AddInputs(b, inputs)
        m_op.AddOutputs(b, outputs)
        if opt_type:
            m_op.AddBuiltinOptionsType(b, opt_type)
            m_op.AddBuiltinOptions(b, opt)
        ops.append(m_op.End(b))

    m_sg = _schema("SubGraph")
    sg_tensors, sg_ops = _table_vec(b, tensors), _table_vec(b, ops)
    sg_in, sg_out = _vec(b, net.inputs, np.int32), _vec(b, net.outputs, np.int32)
    sg_name = b.CreateString("main")
    m_sg.Start(b)
    m_sg.AddTensors(b, sg_tensors)
    m_sg.AddInputs(b, sg_in)
    m_sg.AddOutputs(b, sg_out)
    m_sg.AddOperators(b, sg_ops)
    m_sg.AddName(b, sg_name)
    subgraph = m_sg.End(b)

    m_map = _schema("TensorMap")

    def tensor_maps(names: list[str], indices: list[int]) -> int:
        maps = []
        for name, index in zip(names, indices, strict=True):
            s = b.CreateString(name)
            m_map.Start(b)
            m_map.AddName(b, s)
            m_map.AddTensorIndex(b, index)
            maps.append(m_map.End(b))
        return _table_vec(b, maps)

    sig_in = tensor_maps(net.input_names, net.inputs)
    sig_out = tensor_maps([f"output_{i}" for i in range(len(net.outputs))], net.outputs)
    sig_key = b.CreateString("serving_default")
    m_sd = _schema("SignatureDef")
    m_sd.Start(b)
    m_sd.AddInputs(b, sig_in)
    m_sd.AddOutputs(b, sig_out)
    m_sd.AddSignatureKey(b, sig_key)
    m_sd.AddSubgraphIndex(b, 0)
    signature = m_sd.End(b)

    m_md = _schema("Metadata")
    md_name = b.CreateString("min_runtime_version")
    m_md.Start(b)
    m_md.AddName(b, md_name)
    m_md.AddBuffer(b, meta_buffer)
    metadata = m_md.End(b)

    m_model = _schema("Model")
    v_codes, v_sg = _table_vec(b, opcodes), _table_vec(b, [subgraph])
    v_buf, v_md, v_sd = (
        _table_vec(b, buffers),
        _table_vec(b, [metadata]),
        _table_vec(b, [signature]),
    )
    desc = b.CreateString("LatBench direct builder")
    m_model.Start(b)
    m_model.AddVersion(b, SCHEMA_VERSION)
    m_model.AddOperatorCodes(b, v_codes)
    m_model.AddSubgraphs(b, v_sg)
    m_model.AddDescription(b, desc)
    m_model.AddBuffers(b, v_buf)
    m_model.AddMetadata(b, v_md)
    m_model.AddSignatureDefs(b, v_sd)
    b.Finish(m_model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ------------------------------------------------------------------------ public


def build_tflite_direct(
    graph: PrunedGraph, seed: int = 0, quantize: bool = False, io_dtype: str = "int8"
) -> bytes:
    """``.tflite`` bytes of ``graph``'s network, fp32 or (``quantize``) full int8.

    A quantized model's input and output tensors are ``io_dtype`` (``int8`` or
    ``uint8``). Raises ``ValueError`` for an invalid graph or an unknown ``io_dtype``.
    """
    net = network_ir(graph, seed)
    if not quantize:
        return serialize(net)
    from latbench.harness.build.tflite_quant import quantize_net

    return serialize(quantize_net(net, seed, io_dtype), quantized=True)


def build_layer_tflite_direct(
    layer: Layer, seed: int = 0, quantize: bool = False, io_dtype: str = "int8"
) -> bytes:
    """``.tflite`` bytes of ``layer`` alone (see :func:`layer_ir`), fp32 or full int8."""
    net = layer_ir(layer, seed)
    if not quantize:
        return serialize(net)
    from latbench.harness.build.tflite_quant import quantize_net

    return serialize(quantize_net(net, seed, io_dtype), quantized=True)


# ------------------------------------------------------------------ inspection

_OP_NAMES = {v: k for k, v in vars(_BO).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(_TT).items() if not k.startswith("_")}
_OPTION_FIELDS = {
    "Conv2DOptions": ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
                      "DilationWFactor", "DilationHFactor"),
    "Pool2DOptions": ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                      "FusedActivationFunction"),
    "AddOptions": ("FusedActivationFunction",),
    "ReducerOptions": ("KeepDims",),
    "FullyConnectedOptions": ("FusedActivationFunction", "WeightsFormat", "KeepNumDims"),
}  # fmt: skip


def describe_ops(model: bytes) -> list[tuple]:
    """Every operator of a ``.tflite`` model as ``(name, options, inputs, outputs)``.

    ``options`` is a sorted tuple of ``(field, value)``; inputs and outputs are
    ``(shape, type)`` pairs. Comparing two models' sorted lists compares their
    operator types, options and tensor shapes independent of the operator order.
    """
    m = _schema("Model").Model.GetRootAs(model, 0)
    sg = m.Subgraphs(0)
    union_names = {v: k for k, v in vars(_BOPT).items() if not k.startswith("_")}

    def tensor(i: int) -> tuple:
        if i < 0:
            return ((), "NONE")
        t = sg.Tensors(i)
        return (tuple(int(d) for d in t.ShapeAsNumpy()), _TYPE_NAMES[t.Type()])

    out = []
    for j in range(sg.OperatorsLength()):
        op = sg.Operators(j)
        name = _OP_NAMES[m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        kind = union_names.get(op.BuiltinOptionsType(), "NONE")
        options: tuple = ()
        if kind in _OPTION_FIELDS:
            table = getattr(_schema(kind), kind)()
            raw = op.BuiltinOptions()
            table.Init(raw.Bytes, raw.Pos)
            options = tuple(sorted((f, int(getattr(table, f)())) for f in _OPTION_FIELDS[kind]))
        ins = tuple(tensor(int(i)) for i in op.InputsAsNumpy())
        outs = tuple(tensor(int(i)) for i in op.OutputsAsNumpy())
        out.append((name, options, ins, outs))
    return out
