"""The integer TTFS network and its ``.ttfs`` file.

This is the contract between the compiler, the golden model and the RTL (docs/design.md §2):

* :class:`InputEncoding` turns a float input into one byte per pixel and a byte into the
  input activation ``q0 = table[pixel]`` (``0..T0``; spike at tick ``T0 − q0``).
* :class:`IntDense` holds integer weights ``W``, biases ``B`` (accumulator units, rounding
  offset included) and per-neuron ``K``: ``A = B + W·q_in``,
  ``q = clamp(floor(A / K), 0, T)``. The readout layer has no ``K``; its ``A`` are the logits.
* Each layer names its ``inputs`` (``"input"`` or earlier layers): the net is a DAG in
  topological order, and a layer with several inputs reads their concatenation – the neurons
  after a residual add, ``A = B + Σ W·q_main + Σ W_skip·q_skip`` in one accumulator.

Each layer kind owns its arithmetic here: :meth:`~IntDense.forward` (the batch form, in the
activation domain) and :meth:`~IntDense.events` (the event form, spike lists in and out); the
golden model only walks the graph. Every width is derived from worst-case bounds
(:func:`layer_bounds`), so nothing overflows.

File format (``hdlgen-ttfs/3``): a zip written by :func:`numpy.savez` and read with
``allow_pickle=False`` (loading never runs code). Member ``header`` is UTF-8 JSON bytes (uint8
array) describing the net, each layer with its ``inputs``; arrays are ``input.table``,
``layer<i>.weight``, ``layer<i>.bias``, ``layer<i>.k`` (hidden layers) and ``layer<i>.scale``.
Member ``checksum`` is the SHA-256 of all the others (:func:`checksum`): a net changed after it
was written is refused, not run. Files of ``hdlgen-ttfs/2`` (chains: no ``inputs``) and
``hdlgen-ttfs/1`` (chains without the checksum) still load. See docs/ttfs-format.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ir
from .errors import UserError
from .files import write_atomically
from .float_ops import im2col

__all__ = ["InputEncoding", "IntDense", "IntConv2d", "IntMaxPool2d", "TTFSNet", "layer_bounds", "signed_width", "unsigned_width",
           "FORMAT", "INPUT", "LAYER_TYPES", "checksum", "save", "load", "spikes_from_q"]

FORMAT = "hdlgen-ttfs/3"
CHAIN_FORMAT = "hdlgen-ttfs/2"        # written before nets were graphs: each layer reads the one before; still read
UNCHECKED_FORMAT = "hdlgen-ttfs/1"   # written before nets carried a checksum; still read
PIXEL_MAX = 255
INPUT = "input"   # the name a layer gives the input encoder among its ``inputs``

_EXACT_F32 = 1 << 24
_EXACT_F64 = 1 << 53


def spikes_from_q(q: np.ndarray, ticks: int) -> list:
    """The spike list of one image's activations: (neuron, T − q) for q > 0, by tick then neuron."""
    neurons = np.flatnonzero(q)
    times = ticks - q[neurons]
    order = np.lexsort((neurons, times))
    return [(int(n), int(t)) for n, t in zip(neurons[order], times[order])]


def _exact_product(rows: np.ndarray, w: np.ndarray, ticks_in: int) -> np.ndarray:
    """``rows @ w.T`` exactly for integer ``rows`` in ``0..ticks_in``.

    Uses a float BLAS product when the bounds prove every partial sum is exactly representable
    (the common case, ~100× faster than integer matmul), else int64.
    """
    reach = max(int(np.abs(np.clip(w, None, 0).sum(axis=1)).max(initial=0)),
                int(np.clip(w, 0, None).sum(axis=1).max(initial=0))) * ticks_in
    if reach < _EXACT_F32:
        return (rows.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64)
    if reach < _EXACT_F64:
        return (rows.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return rows.astype(np.int64) @ w.T


# The longest window the generated core takes: every tick sorter keeps one flip-flop per tick of its window in
# each bank and walks the window tick by tick (Verilog of the digits MLP: 4.9 s at T = 1024, 31 s at 4096).
MAX_TICKS = 1024


def unsigned_width(value: int) -> int:
    """Bits of an unsigned number holding ``0..value``."""
    return max(1, int(value).bit_length())


def signed_width(low: int, high: int) -> int:
    """Bits of a two's complement number holding ``low..high``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= low and high < (1 << (bits - 1))):
        bits += 1
    return bits


@dataclass
class InputEncoding:
    """Float input → pixel byte → input activation.

    Parameters
    ----------
    shape : tuple
        Input shape without batch, ``(features,)`` or ``(C, H, W)``.
    offset, pixel_scale : float
        ``pixel = clamp(round((x − offset) / pixel_scale), 0, 255)``; the host sends these bytes.
    scale : float
        Real value of one unit of ``q0`` (``s0``).
    ticks : int
        ``T0``, the input window.
    table : ndarray
        256 non-decreasing integers in ``0..T0``: ``q0 = table[pixel]``.
    """

    shape: tuple
    offset: float
    pixel_scale: float
    scale: float
    ticks: int
    table: np.ndarray

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        self.table = np.asarray(self.table, dtype=np.int64)
        if self.ticks < 1:
            raise UserError(f"input window T0 must be ≥ 1, got {self.ticks}")
        if self.table.shape != (PIXEL_MAX + 1,) or self.table.min() < 0 or self.table.max() > self.ticks \
                or np.any(np.diff(self.table) < 0):
            raise UserError("input table must hold 256 non-decreasing values in 0..T0")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def pixels(self, x: np.ndarray) -> np.ndarray:
        """Bytes the hardware receives for a batch ``x`` (N, *shape) → uint8 (N, size)."""
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.clip(np.floor((x - self.offset) / self.pixel_scale + 0.5), 0, PIXEL_MAX).astype(np.uint8)

    def q(self, pixels: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(pixels, dtype=np.int64)]


class _WeightedLayer:
    """What every layer with weights answers: ``A = B + W·q_in`` over its connections, then
    ``q = clamp(floor(A / K), 0, T)`` (the readout keeps ``A``: the logits)."""

    has_weights = True

    def accumulate(self, q_in: np.ndarray) -> np.ndarray:
        """``A = B + W·q_in`` exactly for a batch of activations (N, fan_in) → int64 (N, fan_out),
        neurons in (unit, position) order: (channel, row, column) for a convolution."""
        rows = self.patches(q_in)
        n, positions, columns = rows.shape
        acc = _exact_product(rows.reshape(n * positions, columns), self.weight_matrix(), self.ticks_in) + self.bias
        return acc.reshape(n, positions, -1).transpose(0, 2, 1).reshape(n, -1)

    def forward(self, q_in: np.ndarray) -> np.ndarray:
        """The batch form: a hidden layer's ``q`` (floor, as the comparator fires), the readout's ``A``."""
        acc = self.accumulate(q_in)
        return acc if self.readout else np.clip(acc // self.k_per_neuron(), 0, self.ticks)

    def ramp(self, spikes) -> np.ndarray:
        """The event form's potentials: integrate slopes tick by tick. A spike at tick τ adds its
        weights to the slopes of the neurons it reaches, and the slope is added to the potential at
        every tick τ..T_in−1 (i.e. T_in − τ times). A spike's weights: for each output position it
        reaches, the column of ``weight_matrix`` it meets there (neurons in (unit, position) order)."""
        matrix = self.weight_matrix()
        slope = np.zeros((len(matrix), self.fan_out // len(matrix)), dtype=np.int64)
        potential = np.repeat(self.bias, self.fan_out // len(self.bias))
        by_tick = {}
        for neuron, tick in spikes:
            by_tick.setdefault(tick, []).append(neuron)
        for tick in range(self.ticks_in):
            for neuron in by_tick.get(tick, ()):
                for position, column in self.positions_of(neuron):
                    slope[:, position] += matrix[:, column]
            potential += slope.reshape(-1)
        return potential

    def fire(self, potential: np.ndarray) -> list:
        """Comparator against the falling threshold K·(T − t): each neuron fires once, at the first
        tick it reaches the threshold; spikes ``(neuron, tick)`` by tick then neuron."""
        fired = np.zeros(self.fan_out, dtype=bool)
        k = self.k_per_neuron()
        spikes = []
        for tick in range(self.ticks):
            now = ~fired & (potential >= k * (self.ticks - tick))
            spikes.extend((int(n), tick) for n in np.flatnonzero(now))
            fired |= now
        return spikes

    def events(self, spikes) -> list | np.ndarray:
        """The event form: the input spikes ``(neuron, tick)`` → a hidden layer's spikes, the readout's logits."""
        potential = self.ramp(spikes)
        return potential if self.readout else self.fire(potential)

    def torch_forward(self, params, q_in):
        """The batch form in PyTorch, for fine-tuning (:mod:`hdlgen.ttfs_torch`): ``params`` are the
        ``(W, B, K)`` float64 tensors shaped like ``weight``, ``bias``, ``k`` (they may differ from
        this layer's own integers), ``q_in`` (N, fan_in) → (N, fan_out), straight-through at the floor."""
        from .ttfs_torch import floor_divide  # torch only where fine-tuning runs

        weight, bias, k = params
        a, k = self._torch_accumulate(weight, bias, k, q_in)
        if k is not None:
            a = floor_divide(a, k).clamp(0, self.ticks)
        return a.reshape(len(q_in), -1)

    def _check_weights(self):
        """Validate ``bias``, ``weight_bits``, ``ticks_in``, ``k`` and ``ticks`` against the weights
        (``weight`` already an int64 array of the kind's shape); a :class:`UserError` naming the layer."""
        self.bias = np.asarray(self.bias, dtype=np.int64)
        self.scale = np.asarray(self.scale, dtype=np.float64)
        where = f"layer {self.name!r}"
        if self.bias.shape != (self.weight.shape[0],):
            raise UserError(f"{where}: bias must have one entry per output unit ({self.weight.shape[0]}), "
                            f"got {self.bias.shape}")
        if not 2 <= self.weight_bits <= 16:
            raise UserError(f"{where}: weight bits must be 2..16, got {self.weight_bits}")
        limit = (1 << (self.weight_bits - 1)) - 1
        if np.abs(self.weight).max(initial=0) > limit:
            raise UserError(f"{where}: a weight exceeds ±{limit} ({self.weight_bits}-bit symmetric)")
        if self.ticks_in < 1:
            raise UserError(f"{where}: input window must be ≥ 1, got {self.ticks_in}")
        if self.k is not None:
            self.k = np.asarray(self.k, dtype=np.int64)
            if self.k.shape != self.bias.shape or self.k.min() < 1:
                raise UserError(f"{where}: K must be one integer ≥ 1 per output unit")
            if self.ticks < 1:
                raise UserError(f"{where}: window T must be ≥ 1, got {self.ticks}")

    def widths(self) -> dict:
        """Bit widths derived from :func:`layer_bounds`."""
        low, high = layer_bounds(self)
        out = {"weight": self.weight_bits, "accumulator": signed_width(low, high),
               "input_tick": unsigned_width(self.ticks_in), "index": unsigned_width(self.fan_in - 1)}
        if not self.readout:
            out["k"] = unsigned_width(int(self.k.max()))
            out["threshold"] = unsigned_width(int(self.k.max()) * self.ticks)
            out["tick"] = unsigned_width(self.ticks)
        return out

    def weight_matrix(self) -> np.ndarray:
        """``W`` as ``(units, taps)``: a dense layer's ``(out, in)``, a convolution's ``(O, C·KH·KW)``
        (column ``(c·KH + ky)·KW + kx``), shared by all its output positions."""
        return self.weight.reshape(len(self.weight), -1)

    def k_per_neuron(self) -> np.ndarray:
        """The threshold step of every output neuron."""
        return np.repeat(self.k, self.fan_out // len(self.k))

    @property
    def shared_k(self) -> bool:
        """All neurons share one ``K`` (weights scaled per layer)."""
        return bool(np.all(self.k == self.k[0]))


@dataclass
class IntDense(_WeightedLayer):
    """An integer dense layer; ``k is None`` marks the readout.

    Parameters
    ----------
    weight : ndarray (out, in)
        Signed integers within ``±(2**(weight_bits−1) − 1)``.
    bias : ndarray (out,)
        Accumulator units; the round-to-nearest offset ``floor(K/2)`` is already added.
    k : ndarray (out,) or None
        Threshold step per neuron (all equal when weights are scaled per layer); ``None`` for the readout.
    ticks_in : int
        Window of the input activations (``q_in ∈ 0..ticks_in``).
    ticks : int
        Output window ``T``; 0 for the readout.
    weight_bits : int
    scale : ndarray (out,)
        Real value of one output unit (of ``q``, or of ``A`` for the readout).
    """

    weight: np.ndarray
    bias: np.ndarray
    k: np.ndarray | None
    ticks_in: int
    ticks: int
    weight_bits: int
    scale: np.ndarray
    name: str = field(default="dense")
    inputs: tuple = ()

    kind = "dense"

    def __post_init__(self):
        self.weight = np.asarray(self.weight, dtype=np.int64)
        if self.weight.ndim != 2:
            raise UserError(f"layer {self.name!r}: weight must be (out, in), got {self.weight.shape}")
        self._check_weights()

    @property
    def readout(self) -> bool:
        return self.k is None

    def positions_of(self, neuron: int) -> list:
        """``(output position, weight column)`` pairs input ``neuron`` reaches: its own column, once."""
        return [(0, neuron)]

    @staticmethod
    def _torch_accumulate(weight, bias, k, q_in):
        import torch
        return torch.addmm(bias, q_in, weight.T), k

    def patches(self, q_in: np.ndarray) -> np.ndarray:
        """What each output position sees of a batch (N, fan_in): (N, 1 position, fan_in)."""
        return q_in[:, None, :]

    @property
    def fan_in(self) -> int:
        return self.weight.shape[1]

    @property
    def fan_out(self) -> int:
        return self.weight.shape[0]


class _FeatureMapLayer:
    """Sizes of a layer between (C, H, W) feature maps, from ``in_shape`` and ``out_shape``."""

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def fan_out(self) -> int:
        return int(np.prod(self.out_shape))

    def window(self) -> dict:
        """The sliding window: ``kernel``, ``in_shape``, ``out_shape``, ``stride``, ``padding`` (lists)."""
        return {"kernel": list(self.kernel), "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "stride": list(self.stride), "padding": list(self.padding)}


@dataclass
class IntConv2d(_WeightedLayer, _FeatureMapLayer):
    """An integer 2-D convolution (PyTorch semantics, zero padding = no spike), always spiking.

    Same math as :class:`IntDense` with ``W`` the convolution: ``A = B + conv(q_in)``,
    ``q = clamp(floor(A / K), 0, T)``; ``bias``, ``k`` and ``scale`` are per output channel.
    Neurons are numbered in (channel, row, column) order, as PyTorch flattens. Several inputs are
    feature maps of one size, read as the concatenation of their channels (``in_shape``).

    Parameters
    ----------
    weight : ndarray (out_c, in_c, kh, kw)
    in_shape : tuple (in_c, h, w)
    stride, padding : tuple of 2 ints
    """

    weight: np.ndarray
    bias: np.ndarray
    k: np.ndarray
    ticks_in: int
    ticks: int
    weight_bits: int
    scale: np.ndarray
    in_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    name: str = field(default="conv")
    inputs: tuple = ()

    kind = "conv2d"
    readout = False

    def __post_init__(self):
        self.in_shape, self.stride, self.padding = (tuple(int(v) for v in t) for t in (self.in_shape, self.stride, self.padding))
        where = f"layer {self.name!r}"
        self.weight = np.asarray(self.weight, dtype=np.int64)
        if self.weight.ndim != 4 or self.weight.shape[1] != self.in_shape[0]:
            raise UserError(f"{where}: weight must be (out_c, {self.in_shape[0]}, kh, kw), got {self.weight.shape}")
        if min(self.out_shape[1:]) < 1:
            raise UserError(f"{where}: kernel {self.weight.shape[2:]} does not fit input {self.in_shape}")
        if self.k is None:
            raise UserError(f"{where}: a convolution is never the readout; it needs K")
        self._check_weights()

    def positions_of(self, neuron: int) -> list:
        """``(output position, weight column)`` pairs input ``neuron`` reaches: position
        ``oy·OW + ox`` and column ``(c·KH + ky)·KW + kx`` of :meth:`weight_matrix` for every tap with
        ``y + pad_y − ky = oy·stride_y``, ``0 ≤ oy < OH`` (the same for x)."""
        _, h, w = self.in_shape
        c, y, x = neuron // (h * w), neuron // w % h, neuron % w
        _, oh, ow = self.out_shape
        (kh, kw), (sy, sx), (py, px) = self.kernel, self.stride, self.padding
        reached = []
        for ky in range(kh):
            for kx in range(kw):
                oy, ry = divmod(y + py - ky, sy)
                ox, rx = divmod(x + px - kx, sx)
                if ry == 0 and rx == 0 and 0 <= oy < oh and 0 <= ox < ow:
                    reached.append((oy * ow + ox, (c * kh + ky) * kw + kx))
        return reached

    def _torch_accumulate(self, weight, bias, k, q_in):
        import torch.nn.functional as F
        a = F.conv2d(q_in.view(len(q_in), *self.in_shape), weight, bias, self.stride, self.padding)
        return a, None if k is None else k.view(1, -1, 1, 1)

    def patches(self, q_in: np.ndarray) -> np.ndarray:
        """What each output position sees of a batch (N, fan_in), zero padded: (N, OH·OW, C·KH·KW),
        columns as in :meth:`weight_matrix`."""
        cols = im2col(q_in.reshape(len(q_in), *self.in_shape), self.kernel, self.stride, self.padding)
        return cols.reshape(len(q_in), cols.shape[1] * cols.shape[2], -1)

    @property
    def kernel(self) -> tuple:
        return tuple(self.weight.shape[2:])

    @property
    def out_shape(self) -> tuple:
        return (self.weight.shape[0], *ir.window_output(self.in_shape[1:], self.kernel, self.stride, self.padding))


@dataclass
class IntMaxPool2d(_FeatureMapLayer):
    """Max pooling of spikes: ``q = max(window)``, i.e. the earliest spike of each window passes
    and later ones are dropped. Windows and ticks are unchanged by it (``ticks_in == ticks``)."""

    in_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    ticks: int
    name: str = field(default="maxpool")
    inputs: tuple = ()

    kind = "maxpool2d"
    readout = False
    has_weights = False

    def forward(self, q_in: np.ndarray) -> np.ndarray:
        """The batch form: the largest q, i.e. the earliest spike, of each window (N, fan_in) →
        (N, fan_out). Padding is 0 = no spike, never the max of a non-empty window."""
        cols = im2col(q_in.reshape(len(q_in), *self.in_shape), self.kernel, self.stride, self.padding)
        return cols.max(axis=(4, 5)).transpose(0, 3, 1, 2).reshape(len(q_in), -1)

    def torch_forward(self, params, q_in):
        """The batch form in PyTorch (fine-tuning): padding never wins, every q is ≥ 0 as here."""
        import torch.nn.functional as F
        pooled = F.max_pool2d(q_in.view(len(q_in), *self.in_shape), self.kernel, self.stride, self.padding)
        return pooled.reshape(len(q_in), -1)

    def events(self, spikes) -> list:
        """The event form: each window passes its earliest spike and drops the rest."""
        c_in, h, w = self.in_shape
        _, oh, ow = self.out_shape
        (kh, kw), (sy, sx), (py, px) = self.kernel, self.stride, self.padding
        fired, out = set(), []
        for neuron, tick in spikes:
            c, y, x = neuron // (h * w), neuron // w % h, neuron % w
            for oy in range(oh):
                for ox in range(ow):
                    if 0 <= y + py - oy * sy < kh and 0 <= x + px - ox * sx < kw:
                        window = (c * oh + oy) * ow + ox
                        if window not in fired:
                            fired.add(window)
                            out.append((window, tick))
        return sorted(out, key=lambda spike: (spike[1], spike[0]))

    def __post_init__(self):
        self.in_shape, self.kernel, self.stride, self.padding = (
            tuple(int(v) for v in t) for t in (self.in_shape, self.kernel, self.stride, self.padding))
        if min(self.out_shape[1:]) < 1:
            raise UserError(f"layer {self.name!r}: window {self.kernel} does not fit input {self.in_shape}")

    @property
    def ticks_in(self) -> int:
        return self.ticks

    @property
    def out_shape(self) -> tuple:
        return (self.in_shape[0], *ir.window_output(self.in_shape[1:], self.kernel, self.stride, self.padding))

    def widths(self) -> dict:
        return {"tick": unsigned_width(self.ticks), "index": unsigned_width(self.fan_in - 1)}


def layer_bounds(layer) -> tuple[int, int]:
    """Least and greatest value any partial sum ``B_i + Σ_{j∈S} W_ij·q_j`` can take, over all
    neurons, subsets ``S`` of inputs and ``q_j ∈ 0..ticks_in`` (for a conv: over its kernel)."""
    w = layer.weight.reshape(len(layer.weight), -1)
    high = layer.bias + np.clip(w, 0, None).sum(axis=1) * layer.ticks_in
    low = layer.bias + np.clip(w, None, 0).sum(axis=1) * layer.ticks_in
    return int(min(low.min(), 0)), int(max(high.max(), 0))


@dataclass
class TTFSNet:
    """A converted network: input encoding, integer layers in topological order (the last one the
    readout) and the settings it was made with (``meta``).

    Each layer names its ``inputs`` (:data:`INPUT` or earlier layers; none: the layer before it),
    and reads their concatenation. Sources are numbered ``0`` for the input and ``l + 1`` for
    layer ``l`` – the order of :attr:`sizes`, :attr:`ticks` and of the golden model's spike lists.
    """

    input: InputEncoding
    layers: list
    name: str = "net"
    meta: dict = field(default_factory=dict)
    ann: ir.Graph | None = None  # the folded float network, the reference for accuracy

    def __post_init__(self):
        if not self.layers or not self.layers[-1].readout or any(l.readout for l in self.layers[:-1]):
            raise UserError("a TTFS net needs hidden layers with K and exactly one readout layer, last")
        self._index = {INPUT: 0}
        for i, layer in enumerate(self.layers):
            if layer.name in self._index:
                raise UserError(f"two layers are named {layer.name!r}" + (f" ({INPUT!r} names the input)"
                                                                           if layer.name == INPUT else ""))
            layer.inputs = tuple(layer.inputs) or ((self.layers[i - 1].name if i else INPUT),)
            missing = [name for name in layer.inputs if name not in self._index]
            if missing:
                raise UserError(f"layer {layer.name!r} reads {missing[0]!r}, which is not the input or a layer before it")
            sources = [self._index[name] for name in layer.inputs]
            windows = sorted({self.window(j) for j in sources})
            size = sum(self.sizes[j] if j == 0 else self.layers[j - 1].fan_out for j in sources)
            if len(windows) > 1:
                raise UserError(f"layer {layer.name!r}: its inputs {', '.join(layer.inputs)} have windows {windows}; "
                                "the inputs of one layer must share one window")
            if layer.fan_in != size or layer.ticks_in != windows[0]:
                raise UserError(f"layer {layer.name!r}: expects {layer.fan_in} inputs in a {layer.ticks_in}-tick window, "
                                f"{'its inputs give' if len(sources) > 1 else 'previous layer gives'} {size} in {windows[0]}")
            if len(sources) > 1 and hasattr(layer, "in_shape"):
                joined = ir.concatenate([self.shape(j) for j in sources], f"layer {layer.name!r}")
                if tuple(layer.in_shape) != joined:
                    raise UserError(f"layer {layer.name!r}: its in_shape {tuple(layer.in_shape)} is not the channel "
                                    f"concatenation {joined} of its inputs")
            self._index[layer.name] = i + 1
        read = {name for layer in self.layers for name in layer.inputs}
        unused = [layer.name for layer in self.layers[:-1] if layer.name not in read]
        if unused:
            raise UserError(f"layer {unused[0]!r} is read by no layer; every layer but the readout must feed one")

    def sources(self, l: int) -> list:
        """Source numbers (0: the input, ``j + 1``: layer ``j``) of layer ``l``'s inputs, in order."""
        return [self._index[name] for name in self.layers[l].inputs]

    def consumers(self, source: int) -> list:
        """``(layer, input position)`` of every layer input that reads ``source``, in layer order."""
        return [(l, k) for l in range(len(self.layers)) for k, j in enumerate(self.sources(l)) if j == source]

    def window(self, source: int) -> int:
        """The window of a source's spikes."""
        return self.input.ticks if source == 0 else self.layers[source - 1].ticks

    def shape(self, source: int) -> tuple:
        """A source's output shape: the input's, a feature-map layer's ``out_shape``, else ``(fan_out,)``."""
        if source == 0:
            return tuple(self.input.shape)
        layer = self.layers[source - 1]
        return tuple(layer.out_shape) if hasattr(layer, "out_shape") else (layer.fan_out,)

    def offsets(self, l: int) -> list:
        """Where each input of layer ``l`` starts in the concatenation it reads."""
        starts, start = [], 0
        for j in self.sources(l):
            starts.append(start)
            start += self.sizes[j]
        return starts

    def gather(self, values: list, l: int) -> np.ndarray:
        """Layer ``l``'s input from per-source batches ``values`` (N, size): their concatenation."""
        parts = [values[j] for j in self.sources(l)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def gather_spikes(self, spikes: list, l: int) -> list:
        """Layer ``l``'s input spikes from per-source spike lists: neurons moved to their place in
        the concatenation, by tick then neuron."""
        sources = self.sources(l)
        if len(sources) == 1:
            return spikes[sources[0]]
        joined = [(n + start, t) for j, start in zip(sources, self.offsets(l)) for n, t in spikes[j]]
        return sorted(joined, key=lambda spike: (spike[1], spike[0]))

    @property
    def is_chain(self) -> bool:
        """Every layer reads the one before it (or the input, first)."""
        return all(self.sources(l) == [l] for l in range(len(self.layers)))

    @property
    def ticks(self) -> list:
        """Window of every spiking layer: input first, readout excluded."""
        return [self.input.ticks] + [l.ticks for l in self.layers[:-1]]

    @property
    def sizes(self) -> list:
        return [self.input.size] + [l.fan_out for l in self.layers]

    @property
    def classes(self) -> int:
        return self.layers[-1].fan_out

    @property
    def weight_bits(self) -> int:
        """The widest weights of any layer (max-pools have none)."""
        return max(layer.weight_bits for layer in self.layers if layer.has_weights)


LAYER_TYPES = {cls.kind: cls for cls in (IntDense, IntConv2d, IntMaxPool2d)}


def _layer_header(layer) -> dict:
    scalars = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)
               if not isinstance(getattr(layer, f.name), np.ndarray) and getattr(layer, f.name) is not None}
    return {"kind": layer.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in scalars.items()},
            "readout": layer.readout, "widths": layer.widths()}


def _header(net: TTFSNet) -> dict:
    enc = net.input
    return {
        "format": FORMAT, "name": net.name, "meta": net.meta,
        "input": {"shape": list(enc.shape), "offset": enc.offset, "pixel_scale": enc.pixel_scale,
                  "scale": enc.scale, "ticks": enc.ticks},
        "ann": [{k: v for k, v in node.to_dict().items() if not isinstance(getattr(node, k, None), np.ndarray)}
                for node in net.ann.nodes] if net.ann else None,
        "layers": [_layer_header(layer) for layer in net.layers],
    }


def checksum(arrays: dict) -> str:
    """SHA-256 (hex) of ``arrays`` – every member of a ``.ttfs`` file but ``checksum`` – over
    each one's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(net: TTFSNet, path) -> Path:
    """Write ``net`` to ``path`` (a ``.ttfs`` zip with its :func:`checksum`).

    The file is written beside ``path`` and renamed onto it, so an interrupted save leaves
    ``path`` as it was."""
    arrays = {"header": np.frombuffer(json.dumps(_header(net), indent=1).encode(), dtype=np.uint8),
              "input.table": net.input.table}
    for i, layer in enumerate(net.layers):
        for f in dataclasses.fields(layer):
            if isinstance(getattr(layer, f.name), np.ndarray):
                arrays[f"layer{i}.{f.name}"] = getattr(layer, f.name)
    for i, node in enumerate(net.ann.nodes if net.ann else []):
        for f in dataclasses.fields(node):
            if isinstance(getattr(node, f.name), np.ndarray):
                arrays[f"ann{i}.{f.name}"] = getattr(node, f.name)
    arrays["checksum"] = np.frombuffer(checksum(arrays).encode(), dtype=np.uint8)

    def write(temporary):
        with open(temporary, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez_compressed(f, **arrays)
    return write_atomically(path, write)


def _load_layer(i, header, arrays):
    header = dict(header)
    kind, widths = header.pop("kind"), header.pop("widths")
    header["inputs"] = tuple(header.get("inputs", ()))
    header.pop("readout")
    if kind not in LAYER_TYPES:
        raise UserError(f"layer kind {kind!r} is not supported; known: {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    prefix = f"layer{i}."
    own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    if "k" in {f.name for f in dataclasses.fields(cls)}:
        own.setdefault("k", None)
    layer = cls(**header, **own)
    if layer.widths() != widths:
        raise UserError(f"layer {layer.name!r} widths in the header do not match its weights")
    return layer


# what zipfile, zlib and numpy raise on a damaged zip or array member
_DAMAGED = (zipfile.BadZipFile, zlib.error, struct.error, EOFError, ValueError, KeyError, OSError,
            UnicodeDecodeError, NotImplementedError)


def load(path) -> TTFSNet:
    """Read a ``.ttfs`` file; raises :class:`UserError` naming the file on any problem,
    among them a :func:`checksum` that does not match the contents."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a .ttfs net written by 'hdlgen convert')")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays["header"].tobytes().decode())
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except _DAMAGED as e:
        raise UserError(f"{path}: not a .ttfs net ({e.__class__.__name__}); write one with 'hdlgen convert'") from None
    if header.get("format") in (FORMAT, CHAIN_FORMAT):
        stored = arrays.pop("checksum", None)
        if stored is None:
            raise UserError(f"{path} is corrupted: it has no checksum; write it again with 'hdlgen convert'")
        if stored.tobytes() != checksum(arrays).encode():
            raise UserError(f"{path} is corrupted: checksum mismatch (its contents changed after it was written); "
                            "write it again with 'hdlgen convert'")
    elif header.get("format") != UNCHECKED_FORMAT:
        raise UserError(f"{path}: format {header.get('format')!r} is not supported; this hdlgen reads {FORMAT} "
                        f"(and the older {CHAIN_FORMAT}, {UNCHECKED_FORMAT})")
    arrays.pop("header")
    try:
        h = header["input"]
        enc = InputEncoding(h["shape"], h["offset"], h["pixel_scale"], h["scale"], h["ticks"], arrays["input.table"])
        layers = [_load_layer(i, layer, arrays) for i, layer in enumerate(header["layers"])]
        ann = None
        if header.get("ann"):
            ann = ir.Graph([ir.Node.from_dict({**fields, **{k.split(".", 1)[1]: v for k, v in arrays.items()
                                                            if k.startswith(f"ann{i}.")}})
                            for i, fields in enumerate(header["ann"])])
        return TTFSNet(enc, layers, header.get("name", path.stem), header.get("meta", {}), ann)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: damaged .ttfs net ({e.__class__.__name__}: {e})") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
