"""The float intermediate representation: a DAG of small validated layer nodes.

Importers (PyTorch, ONNX, npz) produce a :class:`Graph`; conversion passes
(:mod:`hdlgen.passes`) rewrite it and finally lower it to an integer TTFS net
(:mod:`hdlgen.ttfs`). Nodes hold float numpy arrays, name their inputs and know their output
shape. A Dense or Conv2d with several inputs reads their concatenation (features, or channels
of equal-sized maps): that is how a residual add reaches the integer net, where the neurons
after the add sum both branches in one accumulator (docs/ttfs-format.md).

Shapes exclude the batch dimension: a dense activation is ``(features,)``, an image
``(channels, height, width)`` in PyTorch's order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import float_ops
from .errors import UserError

__all__ = [
    "Node", "Input", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm", "Flatten",
    "ReLU", "Activation", "Add", "Output", "Graph", "NODE_TYPES", "window_output", "concatenate", "without",
]


def window_output(size, kernel, stride, padding) -> tuple:
    """Output ``(H, W)`` of a convolution or pooling window over an input ``size = (H, W)``
    (PyTorch's floor rule; below 1 when the window does not fit)."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def concatenate(shapes, owner: str) -> tuple:
    """Shape of the concatenation a several-input layer reads: features of vectors, or channels of
    (C, H, W) maps of one size; raises UserError naming ``owner`` when the shapes do not join."""
    shapes = [tuple(s) for s in shapes]
    if len(shapes) == 1:
        return shapes[0]
    if all(len(s) == 1 for s in shapes):
        return (sum(s[0] for s in shapes),)
    if all(len(s) == 3 for s in shapes) and len({s[1:] for s in shapes}) == 1:
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    raise UserError(f"{owner}: its inputs {shapes} cannot be joined (vectors, or feature maps of one size)")


def _joined(xs):
    """The batch concatenation of several inputs (axis 1: features or channels)."""
    return xs[0] if len(xs) == 1 else np.concatenate(xs, axis=1)


def _array(value, name, ndim, owner):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise UserError(f"{owner}: {name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{owner}: {name} contains NaN or infinite values; only finite weights are supported")
    return array


def _pair(value, name, owner, minimum):
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise UserError(f"{owner}: {name} must be an integer ≥ {minimum} or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


@dataclass
class Node:
    """Base class of IR nodes. ``name`` identifies the layer in messages and reports; ``inputs``
    names the nodes it reads (empty: the node before it in the graph, filled in by :class:`Graph`)."""

    name: str = field(default="", kw_only=True)
    inputs: tuple = field(default=(), kw_only=True)

    kind = "node"
    arity = 1   # inputs the node takes (None: one or more, joined)

    def output_shape(self, input_shape: tuple) -> tuple:
        """The shape this node produces from ``input_shape``; raises UserError if it can't take it."""
        return tuple(input_shape)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The float reference of this node on a batch ``x`` (N, *input shape)."""
        return x

    def output_shape_of(self, shapes: list) -> tuple:
        """:meth:`output_shape` of the shapes of all inputs."""
        return self.output_shape(shapes[0])

    def apply_all(self, xs: list) -> np.ndarray:
        """:meth:`apply` to the batches of all inputs."""
        return self.apply(xs[0])

    def where(self) -> str:
        return f"layer {self.name!r} ({self.kind})" if self.name else f"{self.kind} layer"

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.tolist() if isinstance(value, np.ndarray) else list(value) if f.name == "inputs" else value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Node:
        data = dict(data)
        kind = data.pop("kind")
        if kind not in NODE_TYPES:
            raise UserError(f"unknown IR node kind {kind!r}; known: {', '.join(sorted(NODE_TYPES))}")
        return NODE_TYPES[kind](**data)


@dataclass
class Input(Node):
    """The network input. ``shape`` is ``(features,)`` or ``(channels, height, width)``."""

    shape: tuple
    kind = "input"
    arity = 0

    def output_shape_of(self, shapes):
        return self.shape

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise UserError(f"input shape must be (features,) or (C, H, W) with positive sizes, got {self.shape}")


@dataclass
class Dense(Node):
    """Fully connected layer ``y = W x + b``; ``weight`` has shape ``(out, in)``. With several
    inputs, ``x`` is their concatenation."""

    weight: np.ndarray
    bias: np.ndarray
    kind = "dense"
    arity = None

    def output_shape_of(self, shapes):
        if len(shapes) == 1:
            return self.output_shape(shapes[0])
        return self.output_shape(concatenate([(int(np.prod(s)),) for s in shapes], self.where()))

    def apply_all(self, xs):
        return self.apply(_joined([x.reshape(len(x), -1) for x in xs]))

    def __post_init__(self):
        self.weight = _array(self.weight, "weight", 2, self.where())
        self.bias = _array(self.bias, "bias", 1, self.where())
        if self.bias.shape[0] != self.weight.shape[0]:
            raise UserError(f"{self.where()}: bias has {self.bias.shape[0]} entries, weight has {self.weight.shape[0]} rows")

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.weight.shape[1],):
            raise UserError(f"{self.where()}: expects input of shape ({self.weight.shape[1]},), gets {tuple(input_shape)}")
        return (self.weight.shape[0],)

    def apply(self, x):
        return x @ self.weight.T + self.bias


@dataclass
class Conv2d(Node):
    """2-D convolution, PyTorch semantics; ``weight`` has shape ``(out_c, in_c, kh, kw)``.

    Zero padding means "no spike" in the TTFS net. Dilation 1, groups 1. With several inputs
    (feature maps of one size), it convolves their channel concatenation.
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    kind = "conv2d"
    arity = None

    def output_shape_of(self, shapes):
        return self.output_shape(concatenate(shapes, self.where()))

    def apply_all(self, xs):
        return self.apply(_joined(xs))

    def __post_init__(self):
        self.weight = _array(self.weight, "weight", 4, self.where())
        self.bias = _array(self.bias, "bias", 1, self.where())
        self.stride = _pair(self.stride, "stride", self.where(), 1)
        self.padding = _pair(self.padding, "padding", self.where(), 0)
        if self.bias.shape[0] != self.weight.shape[0]:
            raise UserError(f"{self.where()}: bias has {self.bias.shape[0]} entries, "
                            f"weight has {self.weight.shape[0]} output channels")

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.weight.shape[1]:
            raise UserError(f"{self.where()}: expects ({self.weight.shape[1]}, H, W) input, gets {tuple(input_shape)}")
        _, h, w = input_shape
        kh, kw = self.weight.shape[2:]
        oh, ow = window_output((h, w), (kh, kw), self.stride, self.padding)
        if oh < 1 or ow < 1:
            raise UserError(f"{self.where()}: kernel {kh}x{kw} does not fit a {h}x{w} input")
        return (self.weight.shape[0], oh, ow)

    def apply(self, x):
        return float_ops.conv2d(x, self.weight, self.bias, self.stride, self.padding)


@dataclass
class _Pool(Node):
    kernel: tuple
    stride: tuple | None = None
    padding: tuple = (0, 0)

    def __post_init__(self):
        self.kernel = _pair(self.kernel, "kernel", self.where(), 1)
        self.stride = _pair(self.kernel if self.stride is None else self.stride, "stride", self.where(), 1)
        self.padding = _pair(self.padding, "padding", self.where(), 0)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise UserError(f"{self.where()}: expects (C, H, W) input, gets {tuple(input_shape)}")
        c, h, w = input_shape
        oh, ow = window_output((h, w), self.kernel, self.stride, self.padding)
        if oh < 1 or ow < 1:
            raise UserError(f"{self.where()}: window {self.kernel} does not fit a {h}x{w} input")
        return (c, oh, ow)


@dataclass
class MaxPool2d(_Pool):
    """Max pooling; in the TTFS net the earliest spike of each window passes."""

    kind = "maxpool2d"

    def apply(self, x):
        return float_ops.pool2d(x, self.kernel, self.stride, self.padding, np.max)


@dataclass
class AvgPool2d(_Pool):
    """Average pooling; folded into the next layer's weights at compile time."""

    kind = "avgpool2d"

    def apply(self, x):
        return float_ops.pool2d(x, self.kernel, self.stride, self.padding, np.mean)


@dataclass
class BatchNorm(Node):
    """Inference-mode batch norm over the channel (first) axis: ``(x − mean)/sqrt(var+eps)·γ + β``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5
    kind = "batchnorm"

    def __post_init__(self):
        for name in ("gamma", "beta", "mean", "var"):
            setattr(self, name, _array(getattr(self, name), name, 1, self.where()))
        if len({self.gamma.shape, self.beta.shape, self.mean.shape, self.var.shape}) != 1:
            raise UserError(f"{self.where()}: gamma, beta, mean and var must have the same length")
        if np.any(self.var + self.eps <= 0):
            raise UserError(f"{self.where()}: var + eps must be positive")

    def output_shape(self, input_shape):
        if input_shape[0] != self.gamma.shape[0]:
            raise UserError(f"{self.where()}: has {self.gamma.shape[0]} channels, input has {input_shape[0]}")
        return tuple(input_shape)

    def scale_shift(self):
        """Per-channel ``(scale, shift)`` with ``bn(x) = scale·x + shift``."""
        scale = self.gamma / np.sqrt(self.var + self.eps)
        return scale, self.beta - self.mean * scale

    def apply(self, x):
        return float_ops.channel_affine(x, *self.scale_shift())


@dataclass
class Flatten(Node):
    """(C, H, W) → (C·H·W,) in PyTorch's row-major order."""

    kind = "flatten"

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def apply(self, x):
        return x.reshape(x.shape[0], -1)


@dataclass
class ReLU(Node):
    """max(x, 0). Every hidden layer of a convertible net ends in one."""

    kind = "relu"

    def apply(self, x):
        return np.maximum(x, 0.0)


# Activation.function → the name a user knows, for messages
ACTIVATION_NAMES = {"gelu": "GELU", "gelu_tanh": "GELU (tanh approximation)", "silu": "SiLU", "sigmoid": "sigmoid",
                    "tanh": "tanh", "leaky_relu": "LeakyReLU", "elu": "ELU", "hardswish": "Hardswish"}
_WITH_ALPHA = ("leaky_relu", "elu")   # leaky ReLU's negative slope, ELU's alpha


@dataclass
class Activation(Node):
    """An activation other than ReLU: ``function`` (a key of :data:`ACTIVATION_NAMES`) with its one parameter
    ``alpha`` (leaky ReLU's negative slope, ELU's alpha; 0 for the others). No TTFS neuron computes it; only the
    AMOS comparison (:mod:`hdlgen.codes.amos_gates`) lowers it."""

    function: str
    alpha: float = 0.0
    kind = "activation"

    def __post_init__(self):
        if self.function not in ACTIVATION_NAMES:
            raise UserError(f"{self.where()}: unknown activation {self.function!r}; known: {', '.join(ACTIVATION_NAMES)}")
        self.alpha = float(self.alpha)
        if not np.isfinite(self.alpha) or self.function not in _WITH_ALPHA and self.alpha != 0:
            raise UserError(f"{self.where()}: {self.function} takes "
                            f"{'a finite alpha' if self.function in _WITH_ALPHA else 'no alpha'}, got {self.alpha!r}")

    def label(self) -> str:
        """The activation as a user writes it: ``GELU``, ``LeakyReLU(0.1)``."""
        name = ACTIVATION_NAMES[self.function]
        return f"{name}({self.alpha:g})" if self.function in _WITH_ALPHA else name

    def apply(self, x):
        return float_ops.ACTIVATIONS[self.function](x, self.alpha)


@dataclass
class Add(Node):
    """The sum of two tensors of one shape (a residual connection's ``main + shortcut``). Not a layer
    of the integer net: :class:`~hdlgen.passes.residual.MergeAdd` folds it into the layer whose
    neurons take both branches."""

    kind = "add"
    arity = 2

    def output_shape_of(self, shapes):
        if len(shapes) != 2 or tuple(shapes[0]) != tuple(shapes[1]):
            raise UserError(f"{self.where()}: adds tensors of shapes {[tuple(s) for s in shapes]}; "
                            "supported: two tensors of one shape")
        return tuple(shapes[0])

    def apply_all(self, xs):
        return xs[0] + xs[1]


@dataclass
class Output(Node):
    """Marks the readout: the preceding layer's potentials are the logits."""

    kind = "output"


NODE_TYPES = {cls.kind: cls for cls in (Input, Dense, Conv2d, MaxPool2d, AvgPool2d, BatchNorm, Flatten, ReLU, Activation, Add,
                                                 Output)}


@dataclass
class Graph:
    """A network: ``nodes[0]`` is the :class:`Input`, ``nodes[-1]`` the :class:`Output`, the
    nodes in topological order (every node after the ones it reads).

    Each node names its ``inputs``; a node that names none reads the node before it, so a chain
    needs no names. ``edges`` lists ``(from, to)`` pairs. Construction checks the names (unique,
    each input an earlier node, every node but the output read by some node) and every shape.

    An importer also gives ``reference`` – ``x ↦ {node name: the framework's own output}`` of the
    original model, for the self-check (:mod:`hdlgen.passes.selfcheck`) – and ``notes``: what it
    dropped on purpose (a trailing softmax). A QAT importer gives ``trained``: the grids the model was
    trained on (:class:`hdlgen.qat.TrainedGrids`). None of them is part of the network.
    """

    nodes: list
    reference: object = field(default=None, repr=False, compare=False)
    notes: list = field(default_factory=list, repr=False, compare=False)
    trained: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if not self.nodes or not isinstance(self.nodes[0], Input):
            raise UserError("a network must start with an Input node")
        if not isinstance(self.nodes[-1], Output):
            self.nodes = [*self.nodes, Output(name="output")]
        for i, node in enumerate(self.nodes):
            if not node.name:
                node.name = f"{node.kind}{i}"
        seen = set()
        for i, node in enumerate(self.nodes):
            if node.name in seen:
                raise UserError(f"two layers are named {node.name!r}; layer names must be unique")
            if i and not node.inputs:
                node.inputs = (self.nodes[i - 1].name,)
            node.inputs = tuple(node.inputs)
            missing = [name for name in node.inputs if name not in seen]
            if missing:
                raise UserError(f"{node.where()} reads {missing[0]!r}, which is not a layer before it")
            if node.arity is not None and len(node.inputs) != node.arity:
                raise UserError(f"{node.where()} takes {node.arity} input(s), it is given {len(node.inputs)}")
            if node.arity is None and not node.inputs:
                raise UserError(f"{node.where()} needs at least one input")
            seen.add(node.name)
        read = {name for node in self.nodes for name in node.inputs}
        unused = [node for node in self.nodes[:-1] if node.name not in read]
        if unused:
            raise UserError(f"the output of {unused[0].where()} is not used by any layer; "
                            "a network has one output, its last layer")
        self.shapes()

    @property
    def edges(self):
        return [(source, node.name) for node in self.nodes for source in node.inputs]

    @property
    def is_chain(self) -> bool:
        """Every node reads the one before it."""
        return all(node.inputs == (before.name,) for before, node in zip(self.nodes, self.nodes[1:]))

    @property
    def input_shape(self):
        return self.nodes[0].shape

    def node(self, name: str) -> Node:
        return self.nodes[self.index(name)]

    def index(self, name: str) -> int:
        return next(i for i, node in enumerate(self.nodes) if node.name == name)

    def consumers(self, name: str) -> list:
        """The nodes that read node ``name``, in order."""
        return [node for node in self.nodes if name in node.inputs]

    def sources(self, node: Node) -> list:
        """The nodes ``node`` reads, in its input order."""
        return [self.node(name) for name in node.inputs]

    def shapes(self) -> list:
        """Output shape of every node, in order."""
        shapes = {}
        for node in self.nodes:
            shapes[node.name] = node.output_shape_of([shapes[name] for name in node.inputs])
        return [shapes[node.name] for node in self.nodes]

    def forward(self, x: np.ndarray, collect: bool = False):
        """Float reference forward pass of a batch ``x`` (N, *input_shape).

        Returns the logits, or with ``collect`` the list of every node's output after the input."""
        outs = {self.nodes[0].name: x}
        for node in self.nodes[1:]:
            outs[node.name] = node.apply_all([outs[name] for name in node.inputs])
        return [outs[node.name] for node in self.nodes[1:]] if collect else outs[self.nodes[-1].name]

    def to_dict(self) -> dict:
        return {"nodes": [node.to_dict() for node in self.nodes]}

    @classmethod
    def from_dict(cls, data: dict) -> Graph:
        return cls([Node.from_dict(n) for n in data["nodes"]])


def without(nodes: list, name: str) -> list:
    """``nodes`` without node ``name`` (a one-input node): whatever read it reads its input instead."""
    removed = next(node for node in nodes if node.name == name)
    (source,) = removed.inputs
    return [dataclasses.replace(node, inputs=tuple(source if i == name else i for i in node.inputs))
            for node in nodes if node is not removed]
