"""One handler per operator: the registry every importer keeps its converters in."""

from .. import ir
from ..errors import UserError

__all__ = ["Registry", "TORCH_LAYERS", "optional_import", "refuse", "in_batches", "global_average_pool", "trailing_softmax_note",
           "refuse_after_softmax"]


def optional_import(module: str, what: str, extra: str):
    """Import an optional dependency, or a :class:`UserError` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs the {module} package: pip install 'hdlgen[{extra}]'") from None


def refuse(where: str, attribute: str, value, supported: str):
    """Stop the import at an attribute value the handler does not implement: one line naming the layer,
    the attribute, its value and what is supported."""
    shown = value if isinstance(value, str) else repr(value)
    raise UserError(f"{where}: {attribute}={shown} is not supported; supported: {supported}")


def global_average_pool(size, name: str, keep_dims: bool) -> list:
    """IR of a mean over the whole ``size = (H, W)`` of each channel: one window as large as the
    map, then a Flatten unless the spatial axes are kept (as size-1 axes)."""
    pool = ir.AvgPool2d(tuple(size), tuple(size), name=name if keep_dims else f"{name}_pool")
    return [pool] if keep_dims else [pool, ir.Flatten(name=name)]


def trailing_softmax_note(name: str, op: str) -> str:
    """What the conversion report says of a dropped last softmax."""
    return f"{name}: trailing {op} dropped (the argmax is unchanged; the logits are the scores before it)"


def refuse_after_softmax(where: str):
    raise UserError(f"{where} follows a softmax; a softmax is supported only as the last layer")


def in_batches(run_chunk, x, batch):
    """``run_chunk`` (an array → ``{name: array}``) on all of ``x`` at once; or, when that fails or
    gives outputs of another batch size (a model whose operators fix its example's batch), in
    chunks of ``batch`` rows, the last one zero padded, keeping the batched outputs."""
    import numpy as np

    try:
        outputs = run_chunk(x)
        if all(v.ndim and len(v) == len(x) for v in outputs.values()):
            return outputs
    except Exception:
        if not batch or batch == len(x):
            raise
    chunks, size = {}, batch or len(x)
    for start in range(0, len(x), size):
        part = x[start:start + size]
        fill = size - len(part)
        if fill:
            part = np.concatenate([part, np.zeros((fill, *part.shape[1:]), part.dtype)])
        for name, value in run_chunk(part).items():
            if value.ndim and len(value) == size:
                chunks.setdefault(name, []).append(value[:size - fill])
    return {name: np.concatenate(values) for name, values in chunks.items()}


# What a PyTorch user calls the layers behind the ATen operators: a refusal lists these, not operator names
# (an operator missing here is listed by its own name).
TORCH_LAYERS = {
    "aten.linear.default": "Linear", "aten.conv2d.default": "Conv2d", "aten.conv2d.padding": "Conv2d",
    "aten.relu.default": "ReLU", "aten.relu_.default": "ReLU", "aten.max_pool2d.default": "MaxPool2d",
    "aten.avg_pool2d.default": "AvgPool2d", "aten.adaptive_avg_pool2d.default": "AdaptiveAvgPool2d",
    "aten.mean.dim": "x.mean((2, 3))", "aten.batch_norm.default": "BatchNorm2d",
    "aten.add.Tensor": "x + y", "aten.add_.Tensor": "x + y",
    **{f"aten.{op}{inplace}.default": layer for op, layer in [("gelu", "GELU"), ("silu", "SiLU"), ("sigmoid", "Sigmoid"),
                                                              ("tanh", "Tanh"), ("leaky_relu", "LeakyReLU"),
                                                              ("elu", "ELU"), ("hardswish", "Hardswish")]
       for inplace in ("", "_")},
    "aten._native_batch_norm_legit_no_training.default": "BatchNorm2d",
    **dict.fromkeys(["aten.flatten.using_ints", "aten.view.default", "aten.reshape.default", "aten._unsafe_view.default"],
                    "Flatten (or a reshape to (batch, features))"),
    **dict.fromkeys(["aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
                     "aten.feature_alpha_dropout.default"], "Dropout (eval mode)"),
    **dict.fromkeys(["aten.clone.default", "aten.contiguous.default", "aten.detach.default", "aten.alias.default"],
                    "Identity"),
    **dict.fromkeys(["aten.softmax.int", "aten.log_softmax.int", "aten._softmax.default", "aten._log_softmax.default"],
                    "Softmax or LogSoftmax (last)"),
}
_CONCATENATIONS = ("aten.cat.default", "aten.concat.default", "aten.concatenate.default", "Concat")
# operators that are activation functions (those with a handler are read: ReLU for TTFS, the others for AMOS)
_ACTIVATIONS = ("sigmoid", "tanh", "elu", "gelu", "silu", "swish", "mish", "softplus", "softsign", "hardtanh", "relu6",
                "leaky", "prelu", "clamp", "clip", "hardsigmoid", "threshold")


def _reason(op: str) -> str:
    """Why a layer of operator ``op`` cannot be converted, in a user's terms."""
    if op in _CONCATENATIONS:
        return "concatenation is not supported yet (a residual add is: x + y)"
    if any(name in op.lower() for name in _ACTIVATIONS):
        return "its activation is not one hdlgen reads"
    return "no spiking layer of hdlgen computes it"


class Registry(dict):
    """Maps an operator name to its handler; refuses duplicates and names the supported
    layers (``layers``: operator → the name a user knows, else the operator's) when asked for one it lacks."""

    def __init__(self, framework: str, layers: dict | None = None):
        super().__init__()
        self.framework, self.layers = framework, layers or {}

    def register(self, *operators):
        def decorate(fn):
            for op in operators:
                if op in self:
                    raise ValueError(f"duplicate {self.framework} handler for {op}")
                self[op] = fn
            return fn
        return decorate

    def lookup(self, op: str, where: str):
        if op not in self:
            supported = dict.fromkeys([name for known, name in self.layers.items() if known in self]
                                       + [known for known in sorted(self) if known not in self.layers])
            raise UserError(f"layer {where!r} ({self.framework} {op}) is not supported: {_reason(op)}; "
                            f"supported layers: {', '.join(supported)}")
        return self[op]
