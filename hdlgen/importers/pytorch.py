"""PyTorch importer: ``torch.export`` programs → IR, one handler per ATen operator.

The exported graph may be a DAG: each IR node reads the IR nodes of the values its operator
takes (a residual connection is ``aten.add.Tensor`` of two computed tensors).

Handlers live in a registry (:func:`handler`) that refuses duplicates; an unsupported operator
is named in the error together with the supported ones. Every handler reads the operator's
arguments by name (:class:`_Args`, from the ATen schema, defaults filled in) and checks each one;
an argument it does not read must hold its default, otherwise the layer is refused naming it.
The imported graph keeps the exported program as its ``reference`` for the conversion's self-check.
"""

from __future__ import annotations

import io
import json
import operator
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import ir
from ..errors import UserError
from . import registry
from .registry import Registry, in_batches, optional_import, refuse

__all__ = ["from_torch", "from_exported", "load_pt2", "handler", "HANDLERS"]

HANDLERS = Registry("PyTorch", registry.TORCH_LAYERS)
# Register a function ``(node, args, params) -> [ir nodes]`` for ATen targets like ``"aten.linear.default"``.
handler = HANDLERS.register

# Operators that leave the activation unchanged in inference (their ``train`` flag is checked).
_PASS_THROUGH = ("aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
                 "aten.feature_alpha_dropout.default", "aten.clone.default", "aten.contiguous.default",
                 "aten.detach.default", "aten.alias.default")
_SOFTMAX = ("aten.softmax.int", "aten.log_softmax.int", "aten._softmax.default", "aten._log_softmax.default")


def _torch():
    return optional_import("torch", "PyTorch import", "torch")


class _Params:
    """Resolve placeholders to numpy arrays (parameters, buffers, lifted constants)."""

    def __init__(self, exported):
        sig = exported.graph_signature
        names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                 **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
        tensors = {**exported.state_dict, **exported.constants}
        self.values = {ph: tensors[name].detach().cpu().double().numpy() for ph, name in names.items() if name in tensors}

    def get(self, arg, node, what):
        name = getattr(arg, "name", None)
        if arg is None:
            return None
        if name not in self.values:
            raise UserError(f"{node.name} ({node.target}): {what} is computed, not a stored tensor; "
                            "only layers with constant parameters are supported")
        return self.values[name]


class _Args:
    """The arguments of an ATen call by schema name, defaults filled in; remembers which were read."""

    def __init__(self, node):
        self.node, self.values, self.defaults, self.read = node, {}, {}, set()
        schema = getattr(node.target, "_schema", None)
        arguments = schema.arguments if schema is not None else []
        for i, a in enumerate(arguments):
            if i < len(node.args):
                value = node.args[i]
            elif a.name in node.kwargs:
                value = node.kwargs[a.name]
            else:
                value = a.default_value if a.has_default_value() else None
            self.values[a.name] = value
            self.defaults[a.name] = a.default_value if a.has_default_value() else None
        if arguments:
            self.read.add(arguments[0].name)   # the activation input

    def __getitem__(self, name):
        self.read.add(name)
        return self.values.get(name)

    def finish(self):
        """Refuse any argument the handler did not read unless it holds its default."""
        for name, value in self.values.items():
            if name in self.read or name in ("memory_format", "dtype", "layout", "device", "pin_memory", "cudnn_enabled"):
                continue
            if _norm(value) != _norm(self.defaults[name]):
                refuse(_where(self.node), name, value, f"the default {self.defaults[name]!r}")


def _norm(value):
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return getattr(value, "name", value)


def _where(node):
    stack = node.meta.get("nn_module_stack") or {}
    module = ""
    if stack:
        path, kind = list(stack.values())[-1]
        module = f", module {path or '(top)'} {getattr(kind, '__name__', str(kind).rsplit('.', 1)[-1])}"
    return f"layer {node.name!r} ({node.target}{module})"


def _pair(node, name, value, default=None):
    """An ``int[2]`` argument as a pair (one value stands for both; empty → ``default``)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0 and default is not None:
            return default
        if len(value) == 1:
            value = value[0]
        elif len(value) == 2:
            return int(value[0]), int(value[1])
        else:
            refuse(_where(node), name, value, "one or two integers (2-D layers only)")
    return int(value), int(value)


def _shape(node):
    val = node.meta.get("val")
    return tuple(int(s) for s in val.shape) if val is not None and hasattr(val, "shape") else None


def _in_shape(node):
    arg = node.args[0]
    return _shape(arg) if hasattr(arg, "meta") else None


@handler("aten.linear.default")
def _linear(node, args, params):
    weight = params.get(args["weight"], node, "weight")
    bias = params.get(args["bias"], node, "bias")
    return [ir.Dense(weight, np.zeros(len(weight)) if bias is None else bias, name=node.name)]


@handler("aten.relu.default", "aten.relu_.default")
def _relu(node, args, params):
    return [ir.ReLU(name=node.name)]


@handler("aten.gelu.default")
def _gelu(node, args, params):
    approximate = args["approximate"]
    if approximate not in ("none", "tanh"):
        refuse(_where(node), "approximate", approximate, "'none' or 'tanh'")
    return [ir.Activation("gelu" if approximate == "none" else "gelu_tanh", name=node.name)]


@handler("aten.leaky_relu.default", "aten.leaky_relu_.default")
def _leaky_relu(node, args, params):
    return [ir.Activation("leaky_relu", float(args["negative_slope"]), name=node.name)]


@handler("aten.elu.default", "aten.elu_.default")
def _elu(node, args, params):
    """ELU's ``scale`` and ``input_scale`` (SELU, CELU use them) left at 1 by ``nn.ELU``."""
    for name in ("scale", "input_scale"):
        if args[name] != 1:
            refuse(_where(node), name, args[name], "1 (nn.ELU)")
    return [ir.Activation("elu", float(args["alpha"]), name=node.name)]


_ACTIVATIONS = {"aten.silu.default": "silu", "aten.silu_.default": "silu", "aten.sigmoid.default": "sigmoid",
                "aten.sigmoid_.default": "sigmoid", "aten.tanh.default": "tanh", "aten.tanh_.default": "tanh",
                "aten.hardswish.default": "hardswish", "aten.hardswish_.default": "hardswish"}


@handler(*_ACTIVATIONS)
def _activation(node, args, params):
    return [ir.Activation(_ACTIVATIONS[str(node.target)], name=node.name)]


def _conv_common(node, args, params):
    weight = params.get(args["weight"], node, "weight")
    if weight.ndim != 4:
        refuse(_where(node), "weight", f"of {weight.ndim - 2}-D convolution", "2-D convolution (Conv2d) only")
    bias = params.get(args["bias"], node, "bias")
    stride, dilation = _pair(node, "stride", args["stride"]), _pair(node, "dilation", args["dilation"])
    if dilation != (1, 1):
        refuse(_where(node), "dilation", args["dilation"], "1")
    if args["groups"] != 1:
        refuse(_where(node), "groups", args["groups"], "1")
    return weight, np.zeros(len(weight)) if bias is None else bias, stride


@handler("aten.conv2d.default")
def _conv2d(node, args, params):
    weight, bias, stride = _conv_common(node, args, params)
    return [ir.Conv2d(weight, bias, stride, _pair(node, "padding", args["padding"]), name=node.name)]


@handler("aten.conv2d.padding")
def _conv2d_padding(node, args, params):
    """``padding='valid'`` (none) or ``'same'`` (odd kernels: half the kernel on each side)."""
    weight, bias, stride = _conv_common(node, args, params)
    mode, kernel = args["padding"], weight.shape[2:]
    if mode == "valid":
        padding = (0, 0)
    elif mode == "same" and all(k % 2 for k in kernel):
        padding = (kernel[0] // 2, kernel[1] // 2)
    else:
        refuse(_where(node), "padding", f"{mode!r} with a {kernel[0]}x{kernel[1]} kernel",
               "'valid', 'same' with odd kernel sizes, or integers")
    return [ir.Conv2d(weight, bias, stride, padding, name=node.name)]


def _pool_window(node, args, dilation=(1, 1)):
    kernel = _pair(node, "kernel_size", args["kernel_size"])
    stride = _pair(node, "stride", args["stride"], default=kernel)
    padding = _pair(node, "padding", args["padding"])
    if args["ceil_mode"]:
        shape, floor_shape = _shape(node), None
        in_shape = _in_shape(node)
        if in_shape is not None and len(in_shape) == 4:
            floor_shape = ir.window_output(in_shape[2:], kernel, stride, padding)
        if shape is None or floor_shape is None or tuple(shape[2:]) != tuple(floor_shape):
            refuse(_where(node), "ceil_mode", True, "False (or True where it does not change the output size)")
    return kernel, stride, padding


@handler("aten.max_pool2d.default")
def _max_pool(node, args, params):
    dilation = _pair(node, "dilation", args["dilation"])
    if dilation != (1, 1):
        refuse(_where(node), "dilation", args["dilation"], "1")
    kernel, stride, padding = _pool_window(node, args)
    return [ir.MaxPool2d(kernel, stride, padding, name=node.name)]


@handler("aten.avg_pool2d.default")
def _avg_pool(node, args, params):
    kernel, stride, padding = _pool_window(node, args)
    if padding != (0, 0):
        refuse(_where(node), "padding", args["padding"], "0")
    args["count_include_pad"]   # without padding every window counts only input positions
    divisor = args["divisor_override"]
    if divisor is not None and divisor != kernel[0] * kernel[1]:
        refuse(_where(node), "divisor_override", divisor, f"None (divide by the window size {kernel[0] * kernel[1]})")
    return [ir.AvgPool2d(kernel, stride, name=node.name)]


@handler("aten.adaptive_avg_pool2d.default")
def _adaptive_avg_pool(node, args, params):
    in_shape = _in_shape(node)
    if in_shape is None or len(in_shape) != 4:
        refuse(_where(node), "input", in_shape, "a (N, C, H, W) activation")
    h, w = in_shape[2:]
    out = _pair(node, "output_size", args["output_size"])
    if h % out[0] or w % out[1]:
        refuse(_where(node), "output_size", f"{out[0]}x{out[1]} from {h}x{w} (unequal windows)", "sizes that divide the input")
    kernel = (h // out[0], w // out[1])
    return [ir.AvgPool2d(kernel, kernel, name=node.name)]


@handler("aten.mean.dim")
def _mean(node, args, params):
    """``x.mean((2, 3))`` (or ``(-2, -1)``) on an image: global average pooling."""
    in_shape = _in_shape(node)
    dims = args["dim"]
    rank = len(in_shape) if in_shape is not None else 0
    axes = sorted(int(d) % rank for d in dims) if rank and dims is not None else None
    if rank != 4 or axes != [2, 3]:
        refuse(_where(node), "dim", dims, "the spatial axes (2, 3) of an (N, C, H, W) activation")
    return registry.global_average_pool(_in_shape(node)[2:], node.name, bool(args["keepdim"]))


def _batch_norm_node(node, args, params, eps):
    gamma, beta = params.get(args["weight"], node, "weight"), params.get(args["bias"], node, "bias")
    mean, var = params.get(args["running_mean"], node, "running_mean"), params.get(args["running_var"], node, "running_var")
    args["momentum"]   # only updates running statistics in training
    if mean is None or var is None:
        refuse(_where(node), "running statistics", "none (track_running_stats=False: training-mode batch norm)",
               "inference-mode batch norm with running_mean and running_var")
    ones = np.ones(len(mean))
    return [ir.BatchNorm(ones if gamma is None else gamma, 0 * ones if beta is None else beta, mean, var, eps,
                         name=node.name)]


@handler("aten.batch_norm.default")
def _batch_norm(node, args, params):
    if args["training"]:
        refuse(_where(node), "training", True, "False (inference-mode batch norm with running statistics; "
               "track_running_stats=False is training mode)")
    return _batch_norm_node(node, args, params, float(args["eps"]))


@handler("aten._native_batch_norm_legit_no_training.default")
def _batch_norm_no_training(node, args, params):
    return _batch_norm_node(node, args, params, float(args["eps"]))


@handler("aten.flatten.using_ints", "aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def _flatten(node, args, params):
    for name in ("start_dim", "end_dim", "size", "shape"):
        args[name]   # read; the output shape below is what decides
    shape, in_shape = _shape(node), _in_shape(node)
    if shape is None or in_shape is None or len(shape) != 2 or shape[0] != in_shape[0] \
            or shape[1] != int(np.prod(in_shape[1:])):
        refuse(_where(node), "shape", f"{in_shape} → {shape}", "a flatten to (batch, features)")
    return [ir.Flatten(name=node.name)]


@handler("aten.add.Tensor", "aten.add_.Tensor")
def _add(node, args, params):
    """The sum of two computed tensors (a residual connection)."""
    other = args["other"]
    if not hasattr(other, "op") or other.name in params.values:
        refuse(_where(node), "other", "a constant tensor or number", "the sum of two computed tensors (a residual add)")
    if args["alpha"] != 1:
        refuse(_where(node), "alpha", args["alpha"], "1")
    return [ir.Add(name=node.name)]


@handler(*_PASS_THROUGH)
def _identity(node, args, params):
    if args["train"]:
        refuse(_where(node), "train", True, "False (dropout is only supported in inference mode)")
    args["p"]
    return []


@handler(*_SOFTMAX)
def _softmax(node, args, params):
    shape = _shape(node)
    dim = args["dim"]
    if shape is None or len(shape) != 2 or int(dim) % 2 != 1:
        refuse(_where(node), "dim", dim, "1 (over the classes of (batch, classes) logits)")
    args["half_to_float"]
    return []


def _getitem_passthrough(node):
    """``_native_batch_norm_legit_no_training`` returns a tuple; its [0] is the activation."""
    return node.target is operator.getitem and node.args[1] == 0


def _reference(exported, batch, dtype):
    """``x ↦ {node name: PyTorch's output}``: the exported program's own graph run on numpy data, every node recorded.

    The whole batch runs at once; a program whose operators fix the example's batch size (a ``view`` to
    ``(1, -1)``, say) runs in chunks of that size instead, the last one padded."""
    torch = _torch()
    module = exported.graph_module
    tensors = {**exported.state_dict, **exported.constants}
    specs = exported.graph_signature.input_specs

    class Recorder(torch.fx.Interpreter):
        def __init__(self):
            super().__init__(module)
            self.outputs = {}

        def run_node(self, n):
            result = super().run_node(n)
            value = result[0] if isinstance(result, (tuple, list)) and result else result
            if n.op == "call_function" and isinstance(value, torch.Tensor):
                self.outputs[n.name] = value.detach().double().numpy().copy()   # in-place ops must not change it
            return result

    def run_chunk(part):
        recorder = Recorder()
        user = iter([torch.from_numpy(part)])
        recorder.run(*[tensors[spec.target] if spec.target in tensors else next(user).to(dtype) for spec in specs])
        return recorder.outputs

    def run(x):
        with torch.no_grad():
            return in_batches(run_chunk, np.asarray(x, dtype=np.float64), batch)

    run.framework = "PyTorch"
    run.tolerance = 3e-2 if dtype in (torch.float16, torch.bfloat16) else None   # None: the self-check's default
    return run


def from_exported(exported) -> ir.Graph:
    """IR from a ``torch.export.ExportedProgram`` of a feed-forward network (a chain or a DAG)."""
    params = _Params(exported)
    graph = exported.graph
    user_inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name not in params.values]
    if len(user_inputs) != 1:
        raise UserError(f"the model must take exactly one input tensor, it takes {len(user_inputs)}")
    calls = [n for n in graph.nodes if n.op == "call_function" and not _getitem_passthrough(n)]
    converters = [HANDLERS.lookup(str(n.target), n.name) for n in calls]   # an unknown operator is named first
    example = user_inputs[0].meta.get("val")
    nodes, notes = [ir.Input(tuple(example.shape[1:]), name="input")], []
    produced = {user_inputs[0]: nodes[0].name}      # fx value → the IR node that computes it
    shapes = {nodes[0].name: nodes[0].shape}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        if _getitem_passthrough(node):
            produced[node] = produced[node.args[0]]
            continue
        target = str(node.target)
        convert_node = converters[calls.index(node)]
        data = [a for a in node.args if hasattr(a, "op") and a.name not in params.values]
        unknown = [a for a in data if a not in produced]
        if not data or unknown:
            raise UserError(f"{_where(node)} takes {'no computed tensor' if not data else repr(unknown[0].name)}, "
                            "which is not a layer's output; supported: layers that read the input or other layers")
        if notes and target not in _SOFTMAX + _PASS_THROUGH:
            registry.refuse_after_softmax(_where(node))
        args = _Args(node)
        converted = convert_node(node, args, params)
        args.finish()
        if target in _SOFTMAX:
            notes.append(registry.trailing_softmax_note(node.name, node.target.__name__.split('.')[0]))
        inputs = tuple(produced[a] for a in data)
        for n in converted:
            n.inputs = inputs
            shapes[n.name] = n.output_shape_of([shapes[i] for i in inputs])
            inputs = (n.name,)
        shape = shapes[inputs[0]]
        expected = _shape(node)
        if expected is not None and converted and tuple(shape) != tuple(expected[1:]):
            raise UserError(f"{_where(node)}: imports with output shape {tuple(shape)} but PyTorch computes "
                            f"{tuple(expected[1:])}; one of its arguments is not supported")
        nodes.extend(converted)
        produced[node] = inputs[0]
    outputs = [n for n in graph.nodes if n.op == "output"][0].args[0]
    if len(outputs) != 1 or produced.get(outputs[0]) != nodes[-1].name:
        raise UserError("the model must return the last layer's output (one tensor of logits)")
    batch = example.shape[0] if isinstance(example.shape[0], int) else None
    return ir.Graph(nodes, reference=_reference(exported, batch, getattr(example, "dtype", None)), notes=notes)


def from_torch(module, example_input) -> ir.Graph:
    """Trace ``module`` (in eval mode) with ``torch.export`` on ``example_input`` and import it."""
    torch = _torch()
    if not isinstance(example_input, torch.Tensor):
        raise UserError(f"from_torch: example_input must be a torch.Tensor, got {type(example_input).__module__}."
                        f"{type(example_input).__qualname__}; pass e.g. torch.from_numpy(x[:1]).float()")
    module = module.eval()
    with torch.no_grad():
        exported = torch.export.export(module, (example_input,))
    return from_exported(exported)


def _check_layout(path: Path, names: list):
    """Refuse a zip that is not a torch.export archive before torch reads it (torch logs a long traceback):
    its program is ``<folder>/archive_format`` + models (torch ≥ 2.6) or ``serialized_exported_program.json``."""
    if any(name.endswith("/archive_format") or name.rpartition("/")[2] == "serialized_exported_program.json"
           for name in names):
        return
    if any(name.endswith("/data.pkl") for name in names):
        raise UserError(f"{path}: a torch.save file (weights or a pickled module), not a torch.export archive; "
                        "save the model with torch.export.save(torch.export.export(model, (example,)), PATH)")
    raise UserError(f"{path}: a zip, but not a torch.export archive (it has no archive_format record); "
                    "write the model with torch.export.save")


def _check_archive(path: Path):
    """Refuse ``.pt2`` archives that would make torch unpickle objects (not just tensors)."""
    torch = _torch()
    try:
        with zipfile.ZipFile(path) as archive:
            _check_layout(path, archive.namelist())
            damaged = archive.testzip()   # torch reads members without checking their CRCs
            if damaged is not None:
                raise UserError(f"{path}: is corrupted: member {damaged!r} fails its CRC check")
            for name in archive.namelist():
                if name.endswith(("model_weights_config.json", "model_constants_config.json")):
                    config = json.loads(archive.read(name)).get("config", {})
                    for key, entry in config.items():
                        if entry.get("use_pickle") or "tensor_meta" not in entry:
                            raise UserError(f"{path}: {key!r} is stored as a pickled object; hdlgen loads only "
                                            "plain tensors (save with torch.export.save from a tensor-only model)")
                elif "/sample_inputs/" in name:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
        raise UserError(f"{path}: not a torch.export archive (.pt2 written by torch.export.save)") from None
    except UserError:
        raise
    except Exception as e:  # torch's weights-only unpickler refusing an object
        raise UserError(f"{path}: sample inputs hold objects other than tensors ({e.__class__.__name__}); refused") from None


def load_pt2(path) -> ir.Graph:
    """Read a program saved with ``torch.export.save`` and import it."""
    torch = _torch()
    path = Path(path)
    _check_archive(path)
    try:
        exported = torch.export.load(str(path))
    except Exception as e:
        first_line = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise UserError(f"{path}: torch.export.load failed: {first_line}") from None
    try:
        return from_exported(exported)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None

