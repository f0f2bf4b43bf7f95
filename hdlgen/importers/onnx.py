"""ONNX importer: a feed-forward ONNX graph → IR, one handler per operator.

Reads the protobuf with the ``onnx`` package (``pip install 'hdlgen[onnx]'``); no runtime
needed. Weights must be initializers (also in an external data file beside the model, as
torch's dynamo exporter writes them) or ``Constant`` nodes. The graph may be a DAG: each IR node
reads the IR nodes of the tensors it takes; an ``Add`` of two computed tensors is a residual add.

Every handler reads each attribute and optional input it understands through :class:`_Node`
and checks its value; an attribute it does not read must hold the operator schema's default,
and an input it does not read must be absent, or the layer is refused naming it. The imported
graph keeps the model as its ``reference`` (``onnx.reference.ReferenceEvaluator``) for the
conversion's self-check.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ..errors import UserError
from . import registry
from .registry import Registry, in_batches, optional_import, refuse

__all__ = ["load_onnx", "from_onnx_model", "HANDLERS"]

HANDLERS = Registry("ONNX")
# Register a function ``(node, built) -> [ir nodes]``; ``built`` is the IR so far (a handler may merge into its last node).
handler = HANDLERS.register

_RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
_SOFTMAX = ("Softmax", "LogSoftmax")


def _onnx():
    return optional_import("onnx", "ONNX import", "onnx")


def _decode(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class _Node:
    """An ONNX node with its attributes decoded and its constant inputs resolved; remembers what was read."""

    def __init__(self, proto, constants, opset, shape, onnx):
        self.proto, self.op, self.name = proto, proto.op_type, proto.name or proto.output[0]
        self.attrs = {a.name: _decode(onnx.helper.get_attribute_value(a)) for a in proto.attribute}
        self.constants, self.opset, self.shape, self.onnx = constants, opset, tuple(shape), onnx
        self.read_attrs, self.read_inputs, self.new_shape = set(), {0}, None

    def where(self):
        return f"layer {self.name!r} (ONNX {self.op})"

    def attr(self, name, default=None):
        self.read_attrs.add(name)
        return self.attrs.get(name, default)

    def has_input(self, index):
        return index < len(self.proto.input) and bool(self.proto.input[index])

    def const(self, index, what):
        self.read_inputs.add(index)
        if not self.has_input(index):
            return None
        name = self.proto.input[index]
        if name not in self.constants:
            raise UserError(f"{self.where()}: {what} {name!r} is computed, not an initializer; "
                            "only layers with constant parameters are supported")
        return self.constants[name]

    def refuse(self, attribute, value, supported):
        refuse(self.where(), attribute, value, supported)

    def finish(self):
        """Refuse attributes left unread unless at the schema's default, and inputs left unread (handlers check the
        optional outputs they know: MaxPool's Indices, BatchNormalization's running statistics)."""
        try:
            schema = self.onnx.defs.get_schema(self.op, self.opset, self.proto.domain)
            defaults = {k: v.default_value for k, v in schema.attributes.items()}
        except Exception:   # no schema known: every unread attribute is refused
            defaults = {}
        for name, value in self.attrs.items():
            if name in self.read_attrs:
                continue
            default = defaults.get(name)
            if default is None or not default.type or _decode(self.onnx.helper.get_attribute_value(default)) != value:
                self.refuse(name, value, "the default" + (f" {_decode(self.onnx.helper.get_attribute_value(default))!r}"
                                                           if default is not None and default.type else " (attribute absent)"))
        for index in range(len(self.proto.input)):
            if index not in self.read_inputs and self.proto.input[index]:
                self.refuse(f"input {index}", self.proto.input[index], "no such input")


def _spatial(node):
    if len(node.shape) != 3:
        node.refuse("input", f"of shape {node.shape}", "a (N, C, H, W) activation")
    return node.shape[1:]


def _window(node, kernel, dilations=(1, 1)):
    """``(stride, padding)`` of a Conv/pool from ``strides``, ``pads`` and ``auto_pad``."""
    stride = tuple(node.attr("strides", [1, 1]))
    pads = node.attr("pads", [0, 0, 0, 0])
    auto_pad = node.attr("auto_pad", "NOTSET")
    if len(stride) != 2 or len(pads) != 4 or len(kernel) != 2:
        node.refuse("kernel_shape", list(kernel), "2-D windows")
    if auto_pad == "VALID":
        return stride, (0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if stride != (1, 1) or any(k % 2 == 0 for k in kernel) or any(d != 1 for d in dilations):
            node.refuse("auto_pad", f"{auto_pad} with stride {list(stride)} and kernel {list(kernel)}",
                        "NOTSET, VALID, or SAME_* with stride 1 and odd kernels")
        return stride, (kernel[0] // 2, kernel[1] // 2)
    if auto_pad != "NOTSET":
        node.refuse("auto_pad", auto_pad, "NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    if list(pads[:2]) != list(pads[2:]):
        node.refuse("pads", list(pads), "symmetric padding (begin = end)")
    return stride, tuple(pads[:2])


@handler("Gemm")
def _gemm(node, built):
    weight, bias = node.const(1, "weight"), node.const(2, "bias")
    if node.attr("transA", 0):
        node.refuse("transA", 1, "0")
    if weight is None or weight.ndim != 2:
        node.refuse("B", None if weight is None else weight.shape, "a 2-D weight matrix")
    if not node.attr("transB", 0):
        weight = weight.T
    weight = weight * node.attr("alpha", 1.0)
    if bias is None:
        bias = np.zeros(len(weight))
    else:
        if bias.size not in (1, len(weight)) or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
            node.refuse("C", f"of shape {bias.shape}", f"a bias of shape ({len(weight)},), (1, {len(weight)}) or a scalar")
        bias = np.broadcast_to(bias.reshape(-1) * node.attr("beta", 1.0), len(weight))
    return [ir.Dense(weight, bias, name=node.name)]


@handler("MatMul")
def _matmul(node, built):
    weight = node.const(1, "weight")
    if weight is None or weight.ndim != 2 or len(node.shape) != 1:
        node.refuse("B", None if weight is None else f"of shape {weight.shape}",
                    "a constant 2-D (in, out) weight on a (batch, features) activation")
    return [ir.Dense(weight.T, np.zeros(weight.shape[1]), name=node.name)]


@handler("Add")
def _add(node, built):
    """Two computed tensors: a residual add. ``MatMul`` + ``Add`` of a constant: the dense layer's bias
    (the exporters' form of a Linear)."""
    if len(node.data) == 2:
        node.read_inputs.update(node.data)
        return [ir.Add(name=node.name)]
    other = node.const(1 - node.data_index, "bias")
    node.read_inputs.add(1 - node.data_index)
    last = built[-1] if len(built) > 1 else None
    if not isinstance(last, ir.Dense) or last.name != node.source or other.size not in (1, len(last.bias)) \
            or other.ndim > 2 or (other.ndim == 2 and other.shape[0] != 1):
        node.refuse("B", f"of shape {other.shape}", "a constant bias added straight after a MatMul/Gemm, "
                    "or a second computed tensor (a residual add)")
    built[-1] = dataclasses.replace(last, bias=last.bias + other.reshape(-1), name=node.name)
    return []


@handler("Relu")
def _relu(node, built):
    return [ir.ReLU(name=node.name)]


@handler("Gelu")
def _gelu(node, built):
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        node.refuse("approximate", approximate, "'none' or 'tanh'")
    return [ir.Activation("gelu" if approximate == "none" else "gelu_tanh", name=node.name)]


@handler("LeakyRelu")
def _leaky_relu(node, built):
    return [ir.Activation("leaky_relu", node.attr("alpha", 0.01), name=node.name)]


@handler("Elu")
def _elu(node, built):
    return [ir.Activation("elu", node.attr("alpha", 1.0), name=node.name)]


_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish"}


@handler(*_ACTIVATIONS)
def _activation(node, built):
    return [ir.Activation(_ACTIVATIONS[node.op], name=node.name)]


@handler("Mul")
def _mul(node, built):
    """``x · Sigmoid(x)``: SiLU as the exporters write it (the Sigmoid just built becomes a SiLU)."""
    last = built[-1]
    node.read_inputs.update(node.data)
    if len(node.data) != 2 or not (isinstance(last, ir.Activation) and last.function == "sigmoid") \
            or sorted(node.sources) != sorted((last.name, last.inputs[0])):
        node.refuse("inputs", list(node.proto.input), "x and Sigmoid(x) (SiLU)")
    built[-1] = dataclasses.replace(last, function="silu", name=node.name)
    return []


def _reshape_to(node, shape):
    """Record the shape a reshape leaves (batch first); the importer turns it into a Flatten or nothing."""
    features = int(np.prod(node.shape))
    if int(np.prod(shape[1:])) != features:
        node.refuse("shape", list(shape), f"a shape holding the {features} features of {('batch', *node.shape)}")
    node.new_shape = tuple(int(s) for s in shape[1:])
    return []


@handler("Flatten")
def _flatten(node, built):
    axis = node.attr("axis", 1)
    if axis not in (1, 1 - (len(node.shape) + 1)):
        node.refuse("axis", axis, "1 (keep the batch axis)")
    return _reshape_to(node, [-1, int(np.prod(node.shape))])


@handler("Reshape")
def _reshape(node, built):
    shape = node.const(1, "shape")
    allowzero = node.attr("allowzero", 0)
    if shape is None or shape.ndim != 1:
        node.refuse("shape", shape, "a constant shape")
    features = int(np.prod(node.shape))
    shape = [int(s) for s in shape]
    for i, s in enumerate(shape):
        if s == 0 and not allowzero:
            shape[i] = (-2, *node.shape)[i] if i <= len(node.shape) else s   # 0 copies the input's size (-2: the batch)
    rest = shape[1:]
    if shape and shape[0] == -1 and all(s > 0 for s in rest):
        return _reshape_to(node, [-1, *rest])
    keeps_batch = shape and (shape[0] == -2 or node.batch and shape[0] == node.batch)
    if keeps_batch and rest.count(-1) <= 1 and all(s > 0 or s == -1 for s in rest):
        known = int(np.prod([s for s in rest if s != -1]))
        if -1 in rest and known and features % known == 0:
            rest[rest.index(-1)] = features // known
        return _reshape_to(node, [-1, *rest])
    node.refuse("shape", shape, f"a flatten to (batch, {features}) (the batch first, then -1 or {features})")


@handler("Squeeze", "Unsqueeze")
def _squeeze(node, built):
    axes = node.const(1, "axes") if node.opset >= 13 else node.attr("axes")
    if node.opset < 13:
        node.read_inputs.add(1)
    rank = len(node.shape) + 1
    if axes is None:
        if node.op == "Unsqueeze":
            node.refuse("axes", None, "constant axes")
        axes = [i for i, s in enumerate((1, *node.shape)) if s == 1 and i > 0]
    shape = [-1, *node.shape]
    if node.op == "Squeeze":
        axes = sorted(int(a) % rank for a in np.ravel(axes))
        if 0 in axes or any(shape[a] != 1 for a in axes):
            node.refuse("axes", list(axes), "axes of size 1 after the batch axis")
        shape = [s for i, s in enumerate(shape) if i not in axes]
    else:
        for a in sorted(int(a) % (rank + len(np.ravel(axes))) for a in np.ravel(axes)):
            if a == 0:
                node.refuse("axes", list(np.ravel(axes)), "axes after the batch axis")
            shape.insert(a, 1)
    return _reshape_to(node, shape)


@handler("Conv")
def _conv(node, built):
    weight, bias = node.const(1, "weight"), node.const(2, "bias")
    if weight is None or weight.ndim != 4:
        node.refuse("weight", f"of a {weight.ndim - 2}-D convolution" if weight is not None else None, "2-D Conv only")
    if node.attr("group", 1) != 1:
        node.refuse("group", node.attrs["group"], "1")
    dilations = tuple(node.attr("dilations", [1, 1]))
    if any(d != 1 for d in dilations):
        node.refuse("dilations", list(dilations), "[1, 1]")
    kernel = tuple(node.attr("kernel_shape", weight.shape[2:]))
    if kernel != tuple(weight.shape[2:]):
        node.refuse("kernel_shape", list(kernel), f"the weight's kernel {list(weight.shape[2:])}")
    stride, padding = _window(node, kernel)
    return [ir.Conv2d(weight, np.zeros(len(weight)) if bias is None else bias, stride, padding, name=node.name)]


def _pool_window(node):
    kernel = tuple(node.attr("kernel_shape") or ())
    if len(kernel) != 2:
        node.refuse("kernel_shape", list(kernel), "a 2-D window")
    dilations = tuple(node.attr("dilations", [1, 1]))
    if any(d != 1 for d in dilations):
        node.refuse("dilations", list(dilations), "[1, 1]")
    stride, padding = _window(node, kernel)
    if node.attr("ceil_mode", 0):
        h, w = _spatial(node)
        floor = ir.window_output((h, w), kernel, stride, padding)
        ceil = tuple(-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip((h, w), kernel, stride, padding))
        ceil = tuple(o - 1 if (o - 1) * s >= n + p else o for o, n, s, p in zip(ceil, (h, w), stride, padding))
        if ceil != floor:
            node.refuse("ceil_mode", 1, "0 (or 1 where it does not change the output size)")
    return kernel, stride, padding


@handler("MaxPool")
def _max_pool(node, built):
    if len(node.proto.output) > 1 and node.proto.output[1]:
        node.refuse("output Indices", node.proto.output[1], "the pooled values only")
    node.attr("storage_order")   # only orders the Indices output
    kernel, stride, padding = _pool_window(node)
    return [ir.MaxPool2d(kernel, stride, padding, name=node.name)]


@handler("AveragePool")
def _avg_pool(node, built):
    kernel, stride, padding = _pool_window(node)
    if padding != (0, 0):
        node.refuse("pads", node.attrs.get("pads", node.attrs.get("auto_pad")), "no padding")
    node.attr("count_include_pad")   # without padding every window counts only input positions
    return [ir.AvgPool2d(kernel, stride, name=node.name)]


@handler("GlobalAveragePool")
def _global_average_pool(node, built):
    return registry.global_average_pool(_spatial(node), node.name, True)


@handler("ReduceMean")
def _reduce_mean(node, built):
    """The mean over the spatial axes (2, 3) of an image: global average pooling."""
    axes = node.const(1, "axes") if node.opset >= 18 else node.attr("axes")
    if node.opset < 18:
        node.read_inputs.add(1)
    keepdims, noop = node.attr("keepdims", 1), node.attr("noop_with_empty_axes", 0)
    rank = len(node.shape) + 1
    axes = list(range(rank)) if axes is None or np.size(axes) == 0 and not noop else list(np.ravel(axes))
    if rank != 4 or sorted(int(a) % rank for a in axes) != [2, 3]:
        node.refuse("axes", [int(a) for a in axes], "the spatial axes [2, 3] of an (N, C, H, W) activation")
    return registry.global_average_pool(_spatial(node), node.name, bool(keepdims))


@handler("BatchNormalization")
def _batch_norm(node, built):
    if node.attr("training_mode", 0) or any(o for o in node.proto.output[1:]):
        node.refuse("training_mode", 1, "0 (inference-mode batch norm with its running statistics)")
    if node.attr("spatial", 1) != 1:
        node.refuse("spatial", 0, "1")
    node.attr("momentum")   # only updates running statistics in training
    node.attr("is_test")
    node.attr("consumed_inputs")
    return [ir.BatchNorm(node.const(1, "scale"), node.const(2, "bias"), node.const(3, "mean"),
                         node.const(4, "var"), float(node.attr("epsilon", 1e-5)), name=node.name)]


@handler("Dropout")
def _dropout(node, built):
    training = node.const(2, "training_mode")
    if training is not None and np.any(training) or node.attr("is_test", 1) == 0:
        node.refuse("training_mode", True, "False (dropout is only supported in inference mode)")
    node.const(1, "ratio"), node.attr("ratio"), node.attr("seed")   # no effect in inference
    return []


@handler("Identity")
def _identity(node, built):
    return []


@handler(*_SOFTMAX)
def _softmax(node, built):
    axis = node.attr("axis", -1 if node.opset >= 13 else 1)
    if len(node.shape) != 1 or axis not in (1, -1):
        node.refuse("axis", axis, "1 (over the classes of (batch, classes) logits)")
    return []


def _constant_value(proto, onnx):
    attribute = proto.attribute[0]
    value = onnx.helper.get_attribute_value(attribute)
    if attribute.name == "sparse_value":
        raise UserError(f"{proto.name or proto.output[0]} (ONNX Constant): sparse constants are not supported")
    if isinstance(value, onnx.TensorProto):
        value = onnx.numpy_helper.to_array(value)
    return np.asarray(value, dtype=np.float64)


def _check_rank(proto, constants, onnx):
    """A 1-D or 3-D Conv/pool is named as such, before the input's shape is judged."""
    kernel = None
    if proto.op_type == "Conv" and len(proto.input) > 1 and proto.input[1] in constants:
        kernel = constants[proto.input[1]].shape[2:]
    elif proto.op_type in ("MaxPool", "AveragePool"):
        kernel = next((onnx.helper.get_attribute_value(a) for a in proto.attribute if a.name == "kernel_shape"), None)
    if kernel is not None and len(kernel) != 2:
        refuse(f"layer {proto.name or proto.output[0]!r} (ONNX {proto.op_type})", "kernel_shape", list(kernel),
               f"2-D {proto.op_type} only (a {len(kernel)}-D window is not supported)")


def _reference(model, input_name, names, batch, dtype):
    """``x ↦ {IR node name: the ONNX reference evaluator's output}`` with ``x`` fed to ``input_name``,
    run in chunks of a fixed batch size."""
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(model)

    def run_chunk(part):
        values = session.run(None, {input_name: part}, intermediate=True)
        return {ir_name: np.asarray(values[out], np.float64) for ir_name, out in names.items() if out in values}

    def run(x):
        """The whole batch at once; in chunks of the declared batch size when a reshape fixes it."""
        return in_batches(run_chunk, np.asarray(x, dtype=dtype), batch)

    run.framework = "ONNX (onnx.reference)"
    run.tolerance = 3e-2 if np.dtype(dtype).itemsize < 4 else None   # None: the self-check's default
    return run


def from_onnx_model(model) -> ir.Graph:
    onnx = _onnx()
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    constants = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    for proto in graph.node:  # constants and their aliases (exporters emit Identity of initializers)
        if proto.op_type == "Constant" and proto.domain in ("", "ai.onnx"):
            constants[proto.output[0]] = _constant_value(proto, onnx)
        elif proto.op_type == "Identity" and proto.input[0] in constants:
            constants[proto.output[0]] = constants[proto.input[0]]
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UserError(f"the model must take exactly one input tensor, it takes {len(inputs)}")
    layers = [p for p in graph.node if p.output[0] not in constants]
    for proto in layers:    # an unknown operator is named before anything it would cause further down
        name = proto.name or proto.output[0]
        if proto.domain not in ("", "ai.onnx"):
            raise UserError(f"ONNX operator {proto.domain}.{proto.op_type} ({name}) is not supported; "
                            f"supported: the standard domain's {', '.join(sorted(HANDLERS))}")
        HANDLERS.lookup(proto.op_type, name)
        _check_rank(proto, constants, onnx)
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d < 1 for d in dims[1:]):
        raise UserError(f"input {inputs[0].name!r} needs a fixed shape after the batch dimension, got {dims[1:]}")
    nodes, names, notes = [ir.Input(tuple(dims[1:]), name="input")], {}, []
    produced = {inputs[0].name: nodes[0].name}   # ONNX tensor → the IR node that computes it
    shapes = {nodes[0].name: nodes[0].shape}       # IR node → its shape
    actual = {inputs[0].name: nodes[0].shape}      # ONNX tensor → its shape (they differ between reshapes)
    reshaped_by = {}
    for proto in layers:
        data = [i for i, name in enumerate(proto.input) if name and name not in constants]
        node = _Node(proto, constants, opset, actual.get(proto.input[data[0]], ()) if data else (), onnx)
        node.batch = dims[0] if dims[0] > 0 else None
        two = proto.op_type in ("Add", "Mul") and len(data) == 2
        if not two and data != [0] and not (proto.op_type == "Add" and data == [1]) or \
                any(proto.input[i] not in produced for i in data):
            raise UserError(f"{node.where()} takes {'no computed tensor' if not data else 'a tensor no layer computes'}"
                            " in a place hdlgen does not support; supported: each layer reads the model's input or "
                            "earlier layers at its first input (an Add: two computed tensors, or one and a constant bias)")
        node.data, node.data_index = data, data[0]
        node.source = produced[proto.input[data[0]]]
        node.sources = tuple(produced[proto.input[i]] for i in data)
        node.read_inputs.add(node.data_index)
        if notes and proto.op_type not in _SOFTMAX + ("Identity",):
            registry.refuse_after_softmax(node.where())
        shape = shapes[node.source]
        if node.shape != shape and proto.op_type not in _RESHAPES + ("Identity", "Dropout"):
            raise UserError(f"{node.where()} takes the {('batch', *node.shape)} tensor that "
                            f"{reshaped_by[proto.input[data[0]]]} leaves; supported: reshapes that end in the layer "
                            f"shape {('batch', *shape)} or a flatten to (batch, features)")
        converted = HANDLERS[proto.op_type](node, nodes)
        node.finish()
        if proto.op_type in _SOFTMAX:
            notes.append(registry.trailing_softmax_note(node.name, proto.op_type))
        out = proto.output[0]
        if node.new_shape is not None:
            actual[out], reshaped_by[out] = node.new_shape, node.where()
            if len(node.new_shape) == 1 and len(shape) != 1 and node.new_shape[0] == int(np.prod(shape)):
                converted = [ir.Flatten(name=node.name)]
        sources = tuple(produced[proto.input[i]] for i in data)
        if not converted and proto.op_type in ("Add", "Mul"):   # merged into the layer before it, renamed
            sources = (nodes[-1].name,)
            shapes[nodes[-1].name] = shape
        for n in converted:
            n.inputs = sources
            shapes[n.name] = shape = n.output_shape_of([shapes[i] for i in sources])
            sources = (n.name,)
        nodes.extend(converted)
        produced[out] = sources[0]
        if node.new_shape is None:
            actual[out] = shapes[sources[0]]
        else:
            reshaped_by.setdefault(out, node.where())
        if converted or proto.op_type in ("Add", "Mul"):
            names[nodes[-1].name] = out
    last = graph.output[0].name if len(graph.output) == 1 else None
    if last is None or produced.get(last) != nodes[-1].name:
        raise UserError("the model must return the last layer's output (one tensor of logits)")
    if actual[last] != shapes[nodes[-1].name]:
        raise UserError(f"the model's output has the shape {('batch', *actual[last])} that {reshaped_by[last]} leaves; "
                        "supported: (batch, classes) logits")
    elem_type = inputs[0].type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type) if elem_type else np.float32
    if np.dtype(dtype).kind != "f":
        raise UserError(f"input {inputs[0].name!r} has element type {np.dtype(dtype)}; supported: float inputs")
    reference = _reference(model, inputs[0].name, names, dims[0] if dims[0] > 0 else None, dtype)
    return ir.Graph(nodes, reference=reference, notes=notes)


def load_onnx(path) -> ir.Graph:
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except FileNotFoundError as e:   # the external data file (model.onnx.data) is missing
        raise UserError(f"{path}: its external weight data is missing ({e.filename or e}); "
                        "keep the .data file the exporter wrote beside the model") from None
    except Exception as e:  # protobuf's DecodeError and friends
        first_line = str(e).splitlines()[0] if str(e) else ""
        if "should be stored in" in first_line:    # onnx's words for a missing external data file
            where = first_line.split("should be stored in", 1)[1].split(",")[0].strip()
            raise UserError(f"{path}: its weights are in an external data file that is missing or unreadable "
                            f"({where}); keep the .data file the exporter wrote beside the model") from None
        raise UserError(f"{path}: not a readable ONNX model ({e.__class__.__name__}{': ' + first_line if first_line else ''})") \
            from None
    if not model.HasField("graph"):   # an empty file parses as an empty ModelProto
        raise UserError(f"{path}: not an ONNX model (it holds no graph)")
    try:
        from .qonnx import from_qat_model, is_quantized  # quantization-aware-trained models keep their grids
        return from_qat_model(model) if is_quantized(model) else from_onnx_model(model)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
