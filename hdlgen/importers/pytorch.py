"""PyTorch importer: ``torch.export`` programs → IR, one handler per ATen operator.

Handlers live in a registry (:func:`handler`) that refuses duplicates; an unsupported operator
is named in the error together with the supported ones.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .. import ir
from ..errors import UserError
from .registry import Registry, optional_import

__all__ = ["from_torch", "from_exported", "load_pt2", "handler", "HANDLERS"]

HANDLERS = Registry("PyTorch")
# Register a function ``(node, args, params) -> [ir nodes]`` for ATen targets like ``"aten.linear.default"``.
handler = HANDLERS.register


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


def _ints(value):
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value), int(value))


@handler("aten.linear.default")
def _linear(node, args, params):
    weight = params.get(args[1], node, "weight")
    bias = params.get(args[2], node, "bias") if len(args) > 2 else None
    return [ir.Dense(weight, np.zeros(len(weight)) if bias is None else bias, name=node.name)]


@handler("aten.relu.default", "aten.relu_.default")
def _relu(node, args, params):
    return [ir.ReLU(name=node.name)]


@handler("aten.conv2d.default")
def _conv2d(node, args, params):
    weight = params.get(args[1], node, "weight")
    bias = params.get(args[2], node, "bias") if len(args) > 2 else None
    stride, padding = _ints(args[3] if len(args) > 3 else 1), args[4] if len(args) > 4 else 0
    dilation, groups = _ints(args[5] if len(args) > 5 else 1), args[6] if len(args) > 6 else 1
    if isinstance(padding, str):
        raise UserError(f"{node.name}: padding={padding!r} is not supported; give explicit integer padding")
    if dilation != (1, 1) or groups != 1:
        raise UserError(f"{node.name}: conv2d with dilation {dilation} / groups {groups} is not supported; "
                        "supported: dilation 1, groups 1")
    return [ir.Conv2d(weight, np.zeros(len(weight)) if bias is None else bias, stride, _ints(padding), name=node.name)]


@handler("aten.max_pool2d.default")
def _max_pool(node, args, params):
    kernel = _ints(args[1])
    stride = _ints(args[2]) if len(args) > 2 and args[2] else kernel
    padding = _ints(args[3]) if len(args) > 3 else (0, 0)
    dilation = _ints(args[4]) if len(args) > 4 else (1, 1)
    if dilation != (1, 1) or (len(args) > 5 and args[5]):
        raise UserError(f"{node.name}: max_pool2d with dilation or ceil_mode is not supported")
    return [ir.MaxPool2d(kernel, stride, padding, name=node.name)]


@handler("aten.avg_pool2d.default")
def _avg_pool(node, args, params):
    kernel = _ints(args[1])
    stride = _ints(args[2]) if len(args) > 2 and args[2] else kernel
    padding = _ints(args[3]) if len(args) > 3 else (0, 0)
    if padding != (0, 0):
        raise UserError(f"{node.name}: avg_pool2d with padding is not supported")
    return [ir.AvgPool2d(kernel, stride, name=node.name)]


@handler("aten.adaptive_avg_pool2d.default")
def _adaptive_avg_pool(node, args, params):
    h, w = node.args[0].meta["val"].shape[-2:]
    out = _ints(args[1])
    if h % out[0] or w % out[1]:
        raise UserError(f"{node.name}: adaptive average pool from {h}x{w} to {out[0]}x{out[1]} has unequal windows; "
                        "supported when the output divides the input")
    kernel = (h // out[0], w // out[1])
    return [ir.AvgPool2d(kernel, kernel, name=node.name)]


@handler("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default")
def _batch_norm(node, args, params):
    gamma, beta = params.get(args[1], node, "weight"), params.get(args[2], node, "bias")
    mean, var = params.get(args[3], node, "running_mean"), params.get(args[4], node, "running_var")
    eps = float(args[-1]) if node.target.__name__.startswith("_native") else float(args[7])
    ones = np.ones(len(mean))
    return [ir.BatchNorm(ones if gamma is None else gamma, 0 * ones if beta is None else beta, mean, var, eps,
                         name=node.name)]


@handler("aten.flatten.using_ints", "aten.view.default", "aten.reshape.default")
def _flatten(node, args, params):
    shape = node.meta.get("val").shape if "val" in node.meta else None
    if shape is not None and len(shape) != 2:
        raise UserError(f"{node.name}: only reshapes that flatten to (batch, features) are supported, got {tuple(shape)}")
    return [ir.Flatten(name=node.name)]


@handler("aten.dropout.default", "aten.clone.default", "aten.contiguous.default", "aten.detach.default")
def _identity(node, args, params):
    return []


def _getitem_passthrough(node):
    """``_native_batch_norm_legit_no_training`` returns a tuple; its [0] is the activation."""
    import operator
    return node.target is operator.getitem and node.args[1] == 0


def from_exported(exported) -> ir.Graph:
    """IR from a ``torch.export.ExportedProgram`` of a sequential network."""
    params = _Params(exported)
    graph = exported.graph
    user_inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name not in params.values]
    if len(user_inputs) != 1:
        raise UserError(f"the model must take exactly one input tensor, it takes {len(user_inputs)}")
    example = user_inputs[0].meta.get("val")
    nodes = [ir.Input(tuple(example.shape[1:]), name="input")]
    tail = user_inputs[0]
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        if _getitem_passthrough(node):
            tail = node
            continue
        target = str(node.target)
        convert_node = HANDLERS.lookup(target, node.name)
        if node.args[0] is not tail:
            raise UserError(f"{node.name} ({target}) does not take the previous layer's output; "
                            "only sequential networks (one chain of layers) are supported")
        nodes.extend(convert_node(node, node.args, params))
        tail = node
    outputs = [n for n in graph.nodes if n.op == "output"][0].args[0]
    if len(outputs) != 1 or outputs[0] is not tail:
        raise UserError("the model must return the last layer's output (one tensor of logits)")
    return ir.Graph(nodes)


def from_torch(module, example_input) -> ir.Graph:
    """Trace ``module`` (in eval mode) with ``torch.export`` on ``example_input`` and import it."""
    torch = _torch()
    module = module.eval()
    with torch.no_grad():
        exported = torch.export.export(module, (example_input,))
    return from_exported(exported)


def _check_archive(path: Path):
    """Refuse ``.pt2`` archives that would make torch unpickle objects (not just tensors)."""
    torch = _torch()
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(("model_weights_config.json", "model_constants_config.json")):
                    config = json.loads(archive.read(name)).get("config", {})
                    for key, entry in config.items():
                        if entry.get("use_pickle") or "tensor_meta" not in entry:
                            raise UserError(f"{path}: {key!r} is stored as a pickled object; hdlgen loads only "
                                            "plain tensors (save with torch.export.save from a tensor-only model)")
                elif "/sample_inputs/" in name:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
    except zipfile.BadZipFile:
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
