"""QAT importer: an ONNX model with quantizers – QONNX ``Quant`` (Brevitas ``export_qonnx``) or QCDQ
``QuantizeLinear → [Clip →] DequantizeLinear`` (``export_onnx_qcdq``) – → IR plus its trained grids.

Each quantizer is read (every attribute and input checked; ``qonnx`` reads the ``Quant`` attributes and
computes the quantized constants, ``pip install 'hdlgen[qat]'``) into a :class:`~hdlgen.qat.Grid`, then
taken out of the graph: a quantized constant becomes the constant it stands for (the trained weights),
an activation quantizer is bypassed and its grid kept for the layer whose ReLU it quantizes, the
input's for the pixel encoding. What is left is a float ONNX graph that :mod:`hdlgen.importers.onnx`
imports as any other; its reference check runs on it. The model with its quantizers is executed
(``onnx.reference`` with qonnx's ``Quant`` arithmetic) for :mod:`hdlgen.passes.source`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ir
from ..errors import UserError
from ..qat import Grid, TrainedGrids
from .onnx import _Node, from_onnx_model
from .registry import in_batches, optional_import

__all__ = ["is_quantized", "from_qat_model", "QUANT_DOMAINS"]

QUANT_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
_WEIGHTED = ("Gemm", "Conv", "MatMul")
# between a ReLU and the quantizer of its activation: what commutes with a monotone grid
_PASS_THROUGH = ("MaxPool", "Reshape", "Flatten", "Identity", "Dropout")


def is_quantized(model) -> bool:
    """The model holds QONNX or QCDQ quantizers."""
    return any(n.domain in QUANT_DOMAINS or n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


@dataclass
class _Quantizer:
    """One quantizer: the tensor it reads, the tensor it gives, its grid and rounding, its nodes."""

    input: str
    output: str
    grid: Grid
    rounding: str
    nodes: list
    where: str


def _constants(graph, onnx):
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for proto in graph.node:
        if proto.op_type == "Constant" and proto.domain in ("", "ai.onnx") and proto.attribute[0].name == "value":
            constants[proto.output[0]] = onnx.numpy_helper.to_array(proto.attribute[0].t)
        elif proto.op_type == "Identity" and proto.input[0] in constants:
            constants[proto.output[0]] = constants[proto.input[0]]
    return constants


def _scale(node, index):
    """A quantizer's scale: positive, one value or one per output channel (axis 0)."""
    scale = node.const(index, "scale")
    if scale is None or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        node.refuse("scale", None if scale is None else np.ravel(scale)[:4].tolist(), "positive constant scales")
    scale = np.asarray(scale, np.float64)
    if scale.size == 1:
        return scale.reshape(())
    if any(s != 1 for s in scale.shape[1:]):
        node.refuse("scale", f"of shape {scale.shape}", "one scale per tensor, or per output channel of a weight")
    return scale.reshape(-1)


def _zero(node, index):
    zero = node.const(index, "zero point")
    if zero is not None and np.any(zero != 0):
        node.refuse("zero_point", np.ravel(zero)[:4].tolist(), "0 (symmetric grids)")
    return zero


def _quant(proto, constants, opset, onnx):
    """A QONNX ``Quant``/``IntQuant``: qonnx's own reading of its attributes (defaults included)."""
    node = _Node(proto, constants, opset, (), onnx)
    if proto.op_type not in ("Quant", "IntQuant"):
        raise UserError(f"{node.where()}: the QONNX {proto.op_type} quantizer is not supported; supported: Quant "
                        "(IntQuant), integer grids")
    registry = optional_import("qonnx.custom_op.registry", "Importing a QONNX model", "qat")
    quant = optional_import("qonnx.custom_op.general.quant", "Importing a QONNX model", "qat")
    custom = registry.getCustomOp(proto)
    for name in node.attrs:
        if name not in custom.get_nodeattr_types():
            node.refuse(name, node.attrs[name], f"the Quant attributes {', '.join(custom.get_nodeattr_types())}")
        node.attr(name)
    signed, narrow = int(custom.get_nodeattr("signed")), int(custom.get_nodeattr("narrow"))
    rounding = str(custom.get_nodeattr("rounding_mode")).upper()
    if signed not in (0, 1) or narrow not in (0, 1):
        node.refuse("signed" if signed not in (0, 1) else "narrow", signed if signed not in (0, 1) else narrow, "0 or 1")
    try:
        quant.resolve_rounding_mode(rounding)
    except ValueError:
        node.refuse("rounding_mode", rounding, "ROUND, HALF_EVEN, HALF_UP, HALF_DOWN, FLOOR, CEIL, UP, DOWN")
    scale, _ = _scale(node, 1), _zero(node, 2)
    bits = node.const(3, "bit width")
    if bits is None or np.size(bits) != 1 or float(np.ravel(bits)[0]) not in range(2, 33):
        node.refuse("bitwidth", None if bits is None else np.ravel(bits).tolist(),
                    "a constant integer 2..32 (a bias may be wider than 16)")
    bits = int(np.ravel(bits)[0])
    node.finish()
    grid = Grid(scale, int(quant.min_int(signed, narrow, bits)), int(quant.max_int(signed, narrow, bits)),
                node.where())
    return _Quantizer(proto.input[0], proto.output[0], grid, rounding, [proto], node.where())


def _integer_range(node, dtype_of):
    dtype = np.dtype(dtype_of) if dtype_of is not None else np.dtype(np.uint8)   # no zero point: uint8 by the spec
    if dtype.kind not in "iu" or dtype.itemsize > 4:
        node.refuse("zero_point", f"of type {dtype}", "int8, uint8, int16, uint16, int32 (a bias)")
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _qcdq(proto, consumers, constants, opset, onnx):
    """``QuantizeLinear → [Clip →] DequantizeLinear`` of one scale: the grid clamps to the integer type,
    narrowed by the Clip."""
    quantize = _Node(proto, constants, opset, (), onnx)
    nodes = [proto]
    if quantize.attr("axis", 1) not in (0, 1) or quantize.attr("block_size", 0) or quantize.attr("output_dtype", 0):
        quantize.refuse("axis/block_size/output_dtype", [quantize.attrs.get(a) for a in ("axis", "block_size", "output_dtype")],
                        "per-tensor or per-output-channel (axis 0) quantization")
    if quantize.attr("saturate", 1) != 1:
        quantize.refuse("saturate", quantize.attrs["saturate"], "1")
    scale, zero = _scale(quantize, 1), _zero(quantize, 2)
    low, high = _integer_range(quantize, None if zero is None else zero.dtype)
    quantize.finish()
    follow = consumers.get(proto.output[0], [])
    if len(follow) == 1 and follow[0].op_type == "Clip":
        clip = _Node(follow[0], constants, opset, (), onnx)
        bounds = clip.const(1, "min"), clip.const(2, "max")
        if any(b is None or np.size(b) != 1 for b in bounds):
            clip.refuse("min/max", [None if b is None else np.ravel(b).tolist() for b in bounds], "constant integer bounds")
        low, high = max(low, int(np.ravel(bounds[0])[0])), min(high, int(np.ravel(bounds[1])[0]))
        clip.finish()
        nodes.append(follow[0])
        follow = consumers.get(follow[0].output[0], [])
    if len(follow) != 1 or follow[0].op_type != "DequantizeLinear":
        raise UserError(f"{quantize.where()}: its integers are read by {[f.op_type for f in follow] or 'nothing'}; "
                        "supported: QuantizeLinear → [Clip →] DequantizeLinear")
    dequantize = _Node(follow[0], constants, opset, (), onnx)
    if dequantize.attr("axis", 1) != quantize.attrs.get("axis", 1) or dequantize.attr("block_size", 0):
        dequantize.refuse("axis", dequantize.attrs.get("axis", 1), "the axis of its QuantizeLinear")
    _zero(dequantize, 2)
    if not np.array_equal(_scale(dequantize, 1), scale):
        dequantize.refuse("x_scale", "another scale", "the scale of its QuantizeLinear")
    dequantize.finish()
    nodes.append(follow[0])
    if scale.ndim and quantize.attrs.get("axis", 1) != 0:
        quantize.refuse("axis", quantize.attrs.get("axis", 1), "0 with a per-channel scale (a weight's output channels)")
    grid = Grid(scale, low, high, quantize.where())
    return _Quantizer(proto.input[0], follow[0].output[0], grid, "HALF_EVEN", nodes, quantize.where())


def _quantizers(graph, constants, opset, onnx):
    consumers = {}
    for proto in graph.node:
        for name in proto.input:
            consumers.setdefault(name, []).append(proto)
    found = []
    for proto in graph.node:
        if proto.domain in QUANT_DOMAINS:
            found.append(_quant(proto, constants, opset, onnx))
        elif proto.op_type == "QuantizeLinear":
            found.append(_qcdq(proto, consumers, constants, opset, onnx))
    claimed = {id(n) for q in found for n in q.nodes}
    producers = {o: p for p in graph.node for o in p.output}
    for proto in graph.node:
        if proto.op_type == "DequantizeLinear" and id(proto) not in claimed:
            found.append(_stored_integers(proto, producers, constants, opset, onnx))
            claimed.update(id(n) for n in found[-1].nodes)
    for proto in graph.node:
        if proto.op_type in ("DequantizeLinear", "Clip") and id(proto) not in claimed and proto.input[0] not in constants:
            raise UserError(f"layer {proto.name or proto.output[0]!r} (ONNX {proto.op_type}) is not part of a "
                            "QuantizeLinear → [Clip →] DequantizeLinear quantizer; supported: QCDQ quantizers only")
    return found, consumers


def _stored_integers(proto, producers, constants, opset, onnx):
    """``[Clip →] DequantizeLinear`` of a constant integer tensor (the QCDQ export of weights and biases): the
    integers as stored, on a grid of their type narrowed by the Clip."""
    dequantize, nodes = _Node(proto, constants, opset, (), onnx), [proto]
    stored, clip = proto.input[0], producers.get(proto.input[0])
    if clip is not None and clip.op_type == "Clip":
        stored, nodes = clip.input[0], [clip, proto]
    if stored not in constants:
        raise UserError(f"{dequantize.where()}: dequantizes a computed tensor without a QuantizeLinear; supported: "
                        "QuantizeLinear → [Clip →] DequantizeLinear, or a DequantizeLinear of stored integers")
    if dequantize.attr("axis", 1) not in (0, 1) or dequantize.attr("block_size", 0):
        dequantize.refuse("axis/block_size", [dequantize.attrs.get(a) for a in ("axis", "block_size")],
                          "per-tensor or per-output-channel (axis 0) scales")
    scale, _ = _scale(dequantize, 1), _zero(dequantize, 2)
    dequantize.finish()
    integers = constants[stored]
    low, high = _integer_range(dequantize, integers.dtype)
    if clip is not None and len(nodes) == 2:
        bounds = _Node(clip, constants, opset, (), onnx)
        low, high = max(low, int(np.ravel(bounds.const(1, "min"))[0])), min(high, int(np.ravel(bounds.const(2, "max"))[0]))
        bounds.finish()
    if scale.ndim and dequantize.attrs.get("axis", 1) != 0:
        dequantize.refuse("axis", dequantize.attrs.get("axis", 1), "0 with a per-channel scale (a weight's output channels)")
    per_row = scale.reshape(-1, *([1] * (integers.ndim - 1))) if scale.ndim else scale
    constants[f"{proto.output[0]}:stored"] = np.clip(integers, low, high) * per_row   # the values it stands for
    return _Quantizer(f"{proto.output[0]}:stored", proto.output[0], Grid(scale, low, high, dequantize.where()), "HALF_EVEN",
                      nodes, dequantize.where())


def _relu_of(tensor, producers, quantizer_of, where):
    """The ReLU whose output ``tensor`` is (through what commutes with a monotone grid: a max-pool, a reshape)."""
    while tensor in producers or tensor in quantizer_of:
        if tensor in quantizer_of:
            tensor = quantizer_of[tensor].input
            continue
        proto = producers[tensor]
        if proto.op_type == "Relu":
            return proto.name or proto.output[0]
        if proto.op_type not in _PASS_THROUGH:
            break
        tensor = proto.input[0]
    raise UserError(f"{where}: quantizes a tensor that is not a ReLU's output; supported: quantized ReLUs "
                    "(Brevitas QuantReLU), the input, weights and biases")


def _strip(model, quantizers, constants, onnx):
    """The model without its quantizers, and the grids they hold (by ONNX node name of the layer, or of the ReLU)."""
    graph = model.graph
    producers = {o: p for p in graph.node for o in p.output}
    quantizer_of = {q.output: q for q in quantizers}
    input_names = {i.name for i in graph.input if i.name not in constants}
    folded, bypass, trained, activations = {}, {}, TrainedGrids(), {}
    consumers = {}
    for proto in graph.node:
        for index, name in enumerate(proto.input):
            consumers.setdefault(name, []).append((proto, index))
    for q in quantizers:
        if q.input in constants:    # a weight or a bias: the trained values
            value = constants[q.input].astype(np.float64)
            scale = q.grid.scale.reshape(-1, *([1] * (value.ndim - 1))) if q.grid.per_channel else q.grid.scale
            integers = np.clip(_round(value / scale, q.rounding), q.grid.low, q.grid.high)
            folded[q.output] = integers * scale
            for proto, index in consumers.get(q.output, []):
                if proto.op_type in _WEIGHTED and index == 1:
                    if q.grid.per_channel and (proto.op_type == "MatMul" or proto.op_type == "Gemm" and not any(
                            a.name == "transB" and a.i for a in proto.attribute)):
                        raise UserError(f"{q.where}: per-channel scales on an (in, out) weight matrix; supported: "
                                        "per-channel scales on Gemm(transB=1) and Conv weights (output channels first)")
                    trained.weights[proto.name or proto.output[0]] = q.grid
            continue
        if q.grid.per_channel:
            raise UserError(f"{q.where}: one scale per channel on an activation; supported: one scale per activation tensor")
        if q.rounding not in ("ROUND", "HALF_EVEN"):
            raise UserError(f"{q.where}: rounding_mode={q.rounding} on an activation is not supported; supported: ROUND "
                            "(half to even; the spike-time unit rounds half up, docs/qat.md)")
        bypass[q.output] = q.input
        if q.input in input_names:
            trained.input, activations["input"] = q.grid, (q.input, q.output)
            continue
        if q.grid.low > 0:
            raise UserError(f"{q.where}: its grid starts at {q.grid.low}; supported: grids that hold 0 (a ReLU's)")
        relu = _relu_of(q.input, producers, quantizer_of, q.where)
        if relu in trained.outputs and trained.outputs[relu] != q.grid:
            raise UserError(f"{q.where}: a second, different grid on the output of {relu!r}; supported: one")
        trained.outputs[relu], activations[relu] = q.grid, (q.input, q.output)

    def source(name):
        while name in bypass:
            name = bypass[name]
        return name

    removed = {id(n) for q in quantizers for n in q.nodes}
    nodes = []
    for proto in graph.node:
        if id(proto) in removed:
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(proto)
        copy.input[:] = [source(name) for name in proto.input]
        nodes.append(copy)
    outputs = list(graph.output)
    if any(o.name in bypass for o in outputs):
        raise UserError("the model's output is quantized; supported: float logits from the last layer")
    initializers = list(graph.initializer) + [onnx.numpy_helper.from_array(v.astype(np.float32), name)
                                              for name, v in folded.items()]
    stripped = onnx.helper.make_graph(nodes, graph.name, list(graph.input), outputs, initializers)
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    plain = onnx.helper.make_model(stripped, opset_imports=opsets, ir_version=model.ir_version)
    return plain, trained, activations


def _round(x, mode):
    """The quantizer's rounding (qonnx's, which is Brevitas's)."""
    if mode == "HALF_EVEN":
        return np.round(x)
    from qonnx.custom_op.general.quant import resolve_rounding_mode
    return resolve_rounding_mode(mode)(x)


def _executor(model, input_name, batch, logits_layer, logits_scale, activations, grids):
    """``x ↦ {layer: source output}``: the readout's logits in units of its σ (``logits_scale``), and each
    quantized layer's integer ``q`` and its ``ties`` (values exactly half-way between two grid points)."""
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(model, new_ops=_quant_ops())
    logits_tensor = model.graph.output[0].name

    def run_chunk(part):
        values = session.run(None, {input_name: part.astype(np.float32)}, intermediate=True)
        out = {logits_layer: np.asarray(values[logits_tensor], np.float64).reshape(len(part), -1) / logits_scale}
        for name, (before, after) in activations.items():
            scale = float(grids[name].scale)
            out[name] = np.floor(np.asarray(values[after], np.float64).reshape(len(part), -1) / scale + 0.5)
            ratio = np.asarray(values[before], np.float64).reshape(len(part), -1) / scale
            out[f"{name}:ties"] = ((ratio - np.floor(ratio) == 0.5) & (ratio > 0) & (ratio < grids[name].high)).sum(axis=1)
        return out

    return lambda x: in_batches(run_chunk, np.asarray(x, np.float64).reshape(len(x), *_input_shape(model)), batch)


def _input_shape(model):
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]


def _quant_ops():
    """The quantizers for ``onnx.reference``: QONNX ``Quant``/``IntQuant`` computed by qonnx's own ``int_quant``, and
    opset 13's ``QuantizeLinear``/``DequantizeLinear`` (Brevitas's QCDQ opset) by onnx's latest kernels, which
    compute the same for integer types."""
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops.op_dequantize_linear import DequantizeLinear_25
    from onnx.reference.ops.op_quantize_linear import QuantizeLinear_25

    def run(self, x, scale, zeropt, bitwidth, signed=1, narrow=0, rounding_mode="ROUND"):
        from qonnx.custom_op.general.quant import quant
        mode = rounding_mode.decode() if isinstance(rounding_mode, bytes) else rounding_mode
        return (quant(x, scale, zeropt, bitwidth, signed, narrow, mode).astype(x.dtype),)

    standard = [type("QuantizeLinear", (QuantizeLinear_25,), {}), type("DequantizeLinear", (DequantizeLinear_25,), {})]
    return standard + [type(name, (OpRun,), {"op_domain": domain, "_run": run}) for name in ("Quant", "IntQuant")
                       for domain in QUANT_DOMAINS]


def from_qat_model(model) -> ir.Graph:
    """The IR of a QONNX or QCDQ model, with its trained grids as ``graph.trained``."""
    onnx = optional_import("onnx", "ONNX import", "onnx")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    constants = _constants(model.graph, onnx)
    quantizers, _ = _quantizers(model.graph, constants, opset, onnx)
    plain, trained, activations = _strip(model, quantizers, constants, onnx)
    graph = from_onnx_model(plain)
    names = {n.name for n in graph.nodes}
    for layer in [*trained.weights, *trained.outputs]:
        if layer not in names:
            raise UserError(f"layer {layer!r}: its quantizer belongs to a layer the import does not keep as one; "
                            "supported: quantized Gemm, MatMul and Conv layers")
    readout = next(n for n in reversed(graph.nodes) if isinstance(n, (ir.Dense, ir.Conv2d)))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    trained.source = _executor(model, model.graph.input[0].name, dims[0] if dims[0] > 0 else None, readout.name,
                               _readout_sigma(graph, readout, trained), activations, {**trained.outputs, "input": trained.input})
    graph.trained = trained
    return graph


def _readout_sigma(graph, readout, trained):
    """The real value of one unit of the readout's integer potential: its weight scale times its input's
    (the least weight scale when they are per channel, as :func:`hdlgen.qat.lower_layer` makes it)."""
    source = graph.node(readout.inputs[0])
    while not isinstance(source, (ir.ReLU, ir.Input)):
        source = graph.node(source.inputs[0])
    grid = trained.input if isinstance(source, ir.Input) else trained.outputs.get(source.name)
    if grid is None or readout.name not in trained.weights:   # logits in the model's own units
        return np.float64(1.0)
    return np.min(trained.weights[readout.name].scale) * float(grid.scale)   # per channel: rows rescaled to the least
