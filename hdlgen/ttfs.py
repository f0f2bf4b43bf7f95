"""The integer TTFS network and its ``.ttfs`` file.

This is the contract between the compiler, the golden model and the RTL (DESIGN.md §2):

* :class:`InputEncoding` turns a float input into one byte per pixel and a byte into the
  input activation ``q0 = table[pixel]`` (``0..T0``; spike at tick ``T0 − q0``).
* :class:`IntDense` holds integer weights ``W``, biases ``B`` (accumulator units, rounding
  offset included) and per-neuron ``K``: ``A = B + W·q_in``,
  ``q = clamp(floor(A / K), 0, T)``. The readout layer has no ``K``; its ``A`` are the logits.

Every width is derived from worst-case bounds (:func:`layer_bounds`), so nothing overflows.

File format (``hdlgen-ttfs/2``): a zip written by :func:`numpy.savez` and read with
``allow_pickle=False`` (loading never runs code). Member ``header`` is UTF-8 JSON bytes (uint8
array) describing the net; arrays are ``input.table``, ``layer<i>.weight``, ``layer<i>.bias``,
``layer<i>.k`` (hidden layers) and ``layer<i>.scale``. Member ``checksum`` is the SHA-256 of
all the others (:func:`checksum`): a net changed after it was written is refused, not run.
Files of ``hdlgen-ttfs/1`` (the same without the checksum) still load. See docs/ttfs-format.md.
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
           "FORMAT", "checksum", "save", "load"]

FORMAT = "hdlgen-ttfs/2"
UNCHECKED_FORMAT = "hdlgen-ttfs/1"   # written before nets carried a checksum; still read
PIXEL_MAX = 255
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
    """What every layer with weights answers: ``A = B + W·q_in`` over its connections."""

    has_weights = True

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
    Neurons are numbered in (channel, row, column) order, as PyTorch flattens.

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

    kind = "maxpool2d"
    readout = False
    has_weights = False

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
    """A converted network: input encoding, integer layers (the last one the readout) and the
    settings it was made with (``meta``)."""

    input: InputEncoding
    layers: list
    name: str = "net"
    meta: dict = field(default_factory=dict)
    ann: ir.Graph | None = None  # the folded float network, the reference for accuracy

    def __post_init__(self):
        if not self.layers or not self.layers[-1].readout or any(l.readout for l in self.layers[:-1]):
            raise UserError("a TTFS net needs hidden layers with K and exactly one readout layer, last")
        ticks = self.input.ticks
        size = self.input.size
        for layer in self.layers:
            if layer.fan_in != size or layer.ticks_in != ticks:
                raise UserError(f"layer {layer.name!r}: expects {layer.fan_in} inputs in a {layer.ticks_in}-tick window, "
                                f"previous layer gives {size} in {ticks}")
            size, ticks = layer.fan_out, layer.ticks

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
    if header.get("format") == FORMAT:
        stored = arrays.pop("checksum", None)
        if stored is None:
            raise UserError(f"{path} is corrupted: it has no checksum; write it again with 'hdlgen convert'")
        if stored.tobytes() != checksum(arrays).encode():
            raise UserError(f"{path} is corrupted: checksum mismatch (its contents changed after it was written); "
                            "write it again with 'hdlgen convert'")
    elif header.get("format") != UNCHECKED_FORMAT:
        raise UserError(f"{path}: format {header.get('format')!r} is not supported; this hdlgen reads {FORMAT}")
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
