"""ONNX importer: a sequential ONNX graph → IR, one handler per operator.

Reads the protobuf with the ``onnx`` package (``pip install 'hdlgen[onnx]'``); no runtime
needed. Weights must be initializers (or constants); the graph must be one chain.
"""

from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import UserError
from .registry import Registry, optional_import

__all__ = ["load_onnx", "from_onnx_model", "HANDLERS"]

HANDLERS = Registry("ONNX")
handler = HANDLERS.register


def _onnx():
    return optional_import("onnx", "ONNX import", "onnx")


class _Node:
    """An ONNX node with its attributes decoded and its constant inputs resolved."""

    def __init__(self, proto, constants, onnx):
        self.proto, self.name = proto, proto.name or proto.output[0]
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}
        self.constants = constants

    def const(self, index, what):
        if index >= len(self.proto.input) or not self.proto.input[index]:
            return None
        name = self.proto.input[index]
        if name not in self.constants:
            raise UserError(f"{self.name} ({self.proto.op_type}): {what} {name!r} is computed, not an initializer; "
                            "only layers with constant parameters are supported")
        return self.constants[name]


def _pads(node):
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        raise UserError(f"{node.name}: asymmetric padding {pads} is not supported")
    if node.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UserError(f"{node.name}: auto_pad is not supported; export with explicit pads")
    return tuple(pads[:2])


@handler("Gemm")
def _gemm(node):
    weight, bias = node.const(1, "weight"), node.const(2, "bias")
    if node.attrs.get("transA", 0):
        raise UserError(f"{node.name}: Gemm with transA is not supported")
    if not node.attrs.get("transB", 0):
        weight = weight.T
    weight = weight * node.attrs.get("alpha", 1.0)
    bias = np.zeros(len(weight)) if bias is None else np.broadcast_to(bias * node.attrs.get("beta", 1.0), len(weight))
    return [ir.Dense(weight, bias, name=node.name)]


@handler("Relu")
def _relu(node):
    return [ir.ReLU(name=node.name)]


@handler("Flatten")
def _flatten(node):
    if node.attrs.get("axis", 1) != 1:
        raise UserError(f"{node.name}: Flatten axis {node.attrs['axis']} is not supported (only 1)")
    return [ir.Flatten(name=node.name)]


@handler("Conv")
def _conv(node):
    if node.attrs.get("group", 1) != 1 or any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise UserError(f"{node.name}: Conv with groups or dilation is not supported")
    weight, bias = node.const(1, "weight"), node.const(2, "bias")
    return [ir.Conv2d(weight, np.zeros(len(weight)) if bias is None else bias,
                      tuple(node.attrs.get("strides", [1, 1])), _pads(node), name=node.name)]


@handler("MaxPool", "AveragePool")
def _pool(node):
    if node.attrs.get("ceil_mode", 0):
        raise UserError(f"{node.name}: ceil_mode pooling is not supported")
    kernel = tuple(node.attrs["kernel_shape"])
    stride = tuple(node.attrs.get("strides", kernel))
    pool = ir.MaxPool2d if node.proto.op_type == "MaxPool" else ir.AvgPool2d
    return [pool(kernel, stride, _pads(node), name=node.name)]


@handler("BatchNormalization")
def _batch_norm(node):
    return [ir.BatchNorm(node.const(1, "scale"), node.const(2, "bias"), node.const(3, "mean"),
                         node.const(4, "var"), float(node.attrs.get("epsilon", 1e-5)), name=node.name)]


@handler("Dropout", "Identity")
def _identity(node):
    return []


def from_onnx_model(model) -> ir.Graph:
    onnx = _onnx()
    graph = model.graph
    constants = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    for proto in graph.node:  # constants and their aliases (exporters emit Identity of initializers)
        if proto.op_type == "Constant":
            constants[proto.output[0]] = onnx.numpy_helper.to_array(proto.attribute[0].t).astype(np.float64)
        elif proto.op_type == "Identity" and proto.input[0] in constants:
            constants[proto.output[0]] = constants[proto.input[0]]
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UserError(f"the model must take exactly one input tensor, it takes {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if not dims or any(d < 1 for d in dims):
        raise UserError(f"input {inputs[0].name!r} needs a fixed shape after the batch dimension, got {dims}")
    nodes, tail = [ir.Input(tuple(dims), name="input")], inputs[0].name
    for proto in graph.node:
        if proto.output[0] in constants:
            continue
        node = _Node(proto, constants, onnx)
        if proto.op_type == "Reshape":  # a flatten to (batch, features) is the only reshape a chain needs
            shape = node.const(1, "shape")
            if shape is None or len(shape) != 2:
                raise UserError(f"{node.name}: only reshapes to (batch, features) are supported")
            convert_node = _flatten
        else:
            convert_node = HANDLERS.lookup(proto.op_type, node.name)
        if proto.input[0] != tail:
            raise UserError(f"{node.name} ({proto.op_type}) does not take the previous layer's output; "
                            "only sequential networks (one chain of layers) are supported")
        nodes.extend(convert_node(node))
        tail = proto.output[0]
    if len(graph.output) != 1 or graph.output[0].name != tail:
        raise UserError("the model must return the last layer's output (one tensor of logits)")
    return ir.Graph(nodes)


def load_onnx(path) -> ir.Graph:
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise UserError(f"{path}: not a readable ONNX model ({e.__class__.__name__})") from None
    try:
        return from_onnx_model(model)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
