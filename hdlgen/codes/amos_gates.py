"""AMOS for nets with any activation: every gate emulated by ``K`` at-most-one-spike units.

:func:`lower` converts a float graph whose hidden layers end in ReLU or in an
:class:`~hdlgen.ir.Activation` (GELU, SiLU, sigmoid, tanh, leaky ReLU, ELU, hard-swish) as
:mod:`hdlgen.codes.amos` converts a ReLU net – the same folding passes, calibration, weight
quantization and input encoding at the window ``2^K − 1`` – except where a layer ends in another
gate. There the weights are quantized with their own scale ``σ`` (one per layer), the gate's input
range is the calibrated pre-activation range (the percentiles ``100 − p`` and ``p`` of
``--calibration``), and its units are fitted to the gate over that range, weighted by where the
calibration data's pre-activations lie (:func:`hdlgen.codes.gate_units.fit_units`); the fit's
maximum error over the range and its RMS error on the data are reported. A ReLU layer keeps the
binary units, so a ReLU net lowers to exactly the integers of :class:`hdlgen.codes.amos.AMOSNet`.

A neuron's value is ``y = c + Σ_k d_k·z_k`` in its layer's output units, and the next layer reads
these values: ``A = B + Σ_j W_ij·y_j``. Two golden forms agree on every value:

* :func:`run_batch`: all neurons at once, layer by layer;
* :func:`run_events`: one image, spike by spike – a layer's potential starts at its response to every
  input at its value without spikes (``c``; 0 for the input and ReLU layers), each input spike
  ``(j, k)`` adds ``W_ij·d_k`` of its source, and the units fire by subtraction; a max-pool (of a ReLU
  layer only) is the bit-serial maximum of :mod:`hdlgen.codes.amos`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import ir
from ..errors import UserError
from ..golden import EventResult
from ..passes import FOLDING, Calibrate, CheckStructure, Conversion, ConvertConfig
from ..passes.quantize import column_scale, input_encoding, input_offset_bias, quantize_weights
from ..ttfs import INPUT, IntConv2d, IntDense, IntMaxPool2d, TTFSNet
from . import amos
from .gate_units import MAX_GATE_BITS, binary_units, fire_units, fit_units, max_error

__all__ = ["GATES", "GateNet", "has_gates", "gate_of", "lower", "run_batch", "run_events", "GateBatch"]

GATES = (ir.ReLU, ir.Activation)   # the IR kinds a hidden layer may end in here
_DATA_POINTS = 200_000             # calibration pre-activations a gate's fit reads, at most (evenly taken)


def has_gates(graph: ir.Graph) -> bool:
    """``graph`` holds an activation other than ReLU."""
    return any(isinstance(node, ir.Activation) for node in graph.nodes)


def gate_of(graph: ir.Graph, node: ir.Node):
    """The ReLU or Activation that reads Dense/Conv2d ``node`` (None: the readout)."""
    readers = [r for r in graph.consumers(node.name) if isinstance(r, GATES)]
    return readers[0] if readers else None


@dataclass
class GateNet:
    """A net lowered for AMOS with its gates' units.

    Members
    -------
    net : TTFSNet
        Integer weights, biases and graph; every window ``2^bits − 1``. A ReLU layer's ``k`` is its
        threshold step, as in :class:`~hdlgen.codes.amos.AMOSNet`; another gate's, its lowest lane's step.
    units : list
        Per layer, its :class:`~hdlgen.codes.gate_units.Units` (None for a max-pool and the readout).
    fits : list of dict
        Per layer with another gate: its activation, input range and the fit's maximum error.
    bits : int
    """

    net: TTFSNet
    units: list
    fits: list
    bits: int

    def carried(self, source: int) -> tuple:
        """``(d, c)`` of a source's neurons (0: the input): what each spike carries, the value without spikes."""
        if source == 0:
            return np.int64(1) << np.arange(self.bits - 1, -1, -1, dtype=np.int64), 0
        layer = self.net.layers[source - 1]
        if not layer.has_weights:     # a max-pool of a ReLU layer's binary values
            return self.carried(self.net.sources(source - 1)[0])
        units = self.units[source - 1]
        return units.weights, units.offset


def _check_structure(state):
    """The graph as the TTFS flow accepts it with every gate a ReLU, and no max-pool of another gate (a maximum of
    non-binary values has no bit-serial form)."""
    stand_in = [ir.ReLU(name=n.name, inputs=n.inputs) if isinstance(n, ir.Activation) else n for n in state.graph.nodes]
    CheckStructure().run(Conversion(ir.Graph(stand_in), state.calibration_data, state.config))
    for node in state.graph.nodes:
        if isinstance(node, ir.MaxPool2d):
            (before,) = state.graph.sources(node)
            while isinstance(before, ir.Flatten):
                (before,) = state.graph.sources(before)
            if isinstance(before, ir.Activation):
                raise UserError(f"{node.where()} pools {before.where()} ({before.label()}): AMOS pools ReLU outputs "
                                "only; put the max-pool before the activation")


def _accumulate(layer, values: np.ndarray) -> np.ndarray:
    """``A = B + W·y`` exactly for signed integer values ``y`` (N, fan_in) → (N, fan_out), neurons in
    (unit, position) order: a float product where every partial sum is exact, else int64."""
    rows = layer.patches(values)
    n, positions, columns = rows.shape
    matrix = layer.weight_matrix()
    reach = int(np.abs(matrix).sum(axis=1).max(initial=0)) * int(np.abs(values).max(initial=0))
    flat = rows.reshape(n * positions, columns)
    product = (flat.astype(np.float64) @ matrix.T.astype(np.float64)).astype(np.int64) if reach < 1 << 53 \
        else flat.astype(np.int64) @ matrix.T
    acc = product + layer.bias
    return acc.reshape(n, positions, -1).transpose(0, 2, 1).reshape(n, -1)


def _gate_range(pre: np.ndarray, percentile: float) -> tuple:
    """The calibrated input range of a gate: the ``100 − p`` and ``p`` percentiles of its pre-activations."""
    low, high = np.percentile(pre, [100 - percentile, percentile]) if percentile < 100 else (pre.min(), pre.max())
    return float(low), float(max(high, low))


def lower(graph: ir.Graph, calibration_x, config: ConvertConfig, bits: int, name: str = "net") -> GateNet:
    """``graph`` lowered for AMOS with ``bits`` units per neuron (module docstring); ``config``'s windows are
    ignored (they are ``2^bits − 1``)."""
    if not 1 <= bits <= MAX_GATE_BITS:
        raise UserError(f"AMOS with activations other than ReLU takes 1..{MAX_GATE_BITS} units per neuron, got {bits}")
    config = dataclasses.replace(config, ticks=amos.window(bits))
    data = np.asarray(calibration_x, dtype=np.float64)
    state = Conversion(graph, data.reshape((len(data), *graph.input_shape)), config, name)
    for step in FOLDING:
        step.run(state)
    _check_structure(state)
    Calibrate().run(state)
    graph, stats, ticks = state.graph, state.stats, config.ticks
    outputs = dict(zip((n.name for n in graph.nodes[1:]), graph.forward(state.calibration_data, collect=True)))
    relu_scales = dict(zip((n.name for n in graph.nodes if isinstance(n, ir.ReLU)), stats["scales"][1:]))
    encoding = input_encoding(stats.get("input_shape", graph.input_shape), stats["input_offset"],
                              stats["pixel_scale"], stats["scales"][0], ticks)
    shapes = dict(zip((n.name for n in graph.nodes), graph.shapes()))
    origin = {graph.nodes[0].name: INPUT}
    scale_of = {INPUT: np.full(graph.input_shape[0], encoding.scale)}
    size_of = {INPUT: encoding.size}
    layers, units, fits = [], [], []
    for node in graph.nodes[1:]:
        sources = tuple(origin[n] for n in node.inputs)
        if isinstance(node, (*GATES, ir.Flatten)):
            origin[node.name] = sources[0]
            continue
        if not isinstance(node, (ir.Dense, ir.Conv2d, ir.MaxPool2d)):
            continue
        in_shape = ir.concatenate([shapes[n] for n in node.inputs], node.where())
        if isinstance(node, ir.MaxPool2d):
            layer = IntMaxPool2d(in_shape, node.kernel, node.stride, node.padding, ticks, name=node.name, inputs=sources)
            scale_of[node.name], gate_units = scale_of[sources[0]], None
        else:
            sizes = [size_of[s] for s in sources]
            weight = node.weight.reshape(len(node.weight), -1)
            columns = column_scale([scale_of[s] for s in sources], sizes, weight.shape[1])
            bias = input_offset_bias(node, sources, sizes, encoding)
            gate = gate_of(graph, node)
            if isinstance(gate, ir.ReLU):
                w, b, k, scale = quantize_weights(weight, bias, columns, relu_scales[gate.name], config.weight_bits,
                                                  config.per_channel, rounding=False)
                positions = int(np.prod(shapes[node.name])) // len(w)   # a convolution's neurons per channel
                gate_units = binary_units(k, bits, config.rounding, scale, positions)
            else:   # the readout, or another gate: one scale σ for the layer
                w, b, _, sigma = quantize_weights(weight, bias, columns, None, config.weight_bits, False, False)
                gate_units = k = None
                scale = sigma
                if gate is not None:
                    gate_units, fit = _fit_gate(node, gate, outputs[node.name], float(sigma[0]), bits,
                                                config.percentile())
                    fits.append(fit)
                    k = np.full(len(w), gate_units.lanes[0][1], dtype=np.int64)
                    scale = np.full(len(w), gate_units.scale)
            if gate_units is not None:
                b = b + gate_units.shift
            common = (b, k, ticks, ticks if gate is not None else 0, config.weight_bits, scale)
            layer = IntConv2d(w.reshape(node.weight.shape), *common, in_shape, node.stride, node.padding,
                              name=node.name, inputs=sources) if isinstance(node, ir.Conv2d) else \
                IntDense(w, *common, name=node.name, inputs=sources)
            scale_of[node.name] = layer.scale
        size_of[node.name] = layer.fan_out
        origin[node.name] = node.name
        layers.append(layer)
        units.append(gate_units)
    meta = {"weight_bits": config.weight_bits, "per_channel": config.per_channel, "calibration": config.calibration,
            "rounding": config.rounding}
    return GateNet(TTFSNet(encoding, layers, name, meta, graph), units, fits, bits)


def _fit_gate(node, gate, pre, sigma: float, bits: int, percentile: float) -> tuple:
    """The units of ``gate`` after ``node`` (pre-activations ``pre`` on the calibration data, potentials of
    real value ``sigma``) and the report of their fit."""
    function = gate.apply
    low, high = _gate_range(pre, percentile)
    low_int, high_int = int(np.floor(low / sigma)), int(np.ceil(high / sigma))
    pre = pre.reshape(-1)[::max(1, pre.size // _DATA_POINTS)]
    units = fit_units(function, sigma, low_int, high_int, bits, pre / sigma)
    error = max_error(function, sigma, low_int, high_int, units)
    span = float(np.ptp(function(np.linspace(low, high, 1001))))
    ours = units.value(fire_units(np.round(pre / sigma).astype(np.int64) + units.shift[0], units)) * units.scale
    return units, {"layer": node.name, "activation": gate.label(), "range": [low, high], "units": bits,
                   "lanes": len(units.lanes), "max_error": error, "max_error_of_range": error / span if span else 0.0,
                   "rms_error_on_data": float(np.sqrt(np.mean((ours - function(pre)) ** 2)))}


@dataclass
class GateBatch:
    """``values[0]`` the input's, ``values[l + 1]`` layer ``l``'s neuron values; ``counts`` their spikes; all (N, size)."""

    values: list
    counts: list
    logits: np.ndarray
    classes: np.ndarray


def run_batch(gates: GateNet, pixels: np.ndarray) -> GateBatch:
    """The batch form on pixel bytes (N, input size)."""
    net = gates.net
    q0 = net.input.q(np.asarray(pixels).reshape(len(pixels), -1))
    values, counts = [q0], [amos.spike_counts(q0)]
    for l, layer in enumerate(net.layers):
        x = net.gather(values, l)
        if not layer.has_weights:
            y = layer.forward(x)
            values.append(y)
            counts.append(amos.spike_counts(y))
            continue
        potential = _accumulate(layer, x)
        if layer.readout:
            return GateBatch(values, counts, potential, np.argmax(potential, axis=1))
        z = fire_units(potential, gates.units[l])
        values.append(gates.units[l].value(z))
        counts.append(z.sum(axis=-1))
    raise AssertionError("a net ends in its readout")


def _integrate(gates: GateNet, l: int, spikes) -> np.ndarray:
    """Layer ``l``'s potentials from its input spikes ``(j, k)`` on the concatenation of its sources."""
    net, layer = gates.net, gates.net.layers[l]
    carried = [gates.carried(j) for j in net.sources(l)]
    resting = np.concatenate([np.full(net.sizes[j], c, dtype=np.int64) for j, (_, c) in zip(net.sources(l), carried)])
    potential = _accumulate(layer, resting[None, :])[0].reshape(len(layer.weight_matrix()), -1)
    owner = np.repeat(np.arange(len(carried)), [net.sizes[j] for j in net.sources(l)])
    matrix = layer.weight_matrix()
    for neuron, step in spikes:
        weight = carried[owner[neuron]][0][step]
        for position, column in layer.positions_of(neuron):
            potential[:, position] += matrix[:, column] * weight
    return potential.reshape(-1)


def run_events(gates: GateNet, pixels: np.ndarray) -> EventResult:
    """The event form of one image (pixel bytes of length input size): every layer's ``(neuron, step)`` spikes,
    the logits and the class."""
    net, bits = gates.net, gates.bits
    q0 = net.input.q(np.asarray(pixels).reshape(-1))
    spikes = [amos.spike_list(amos.fire(q0, np.ones(len(q0), dtype=np.int64), bits))]
    for l, layer in enumerate(net.layers[:-1]):
        inputs = net.gather_spikes(spikes, l)
        if layer.has_weights:
            spikes.append(amos.spike_list(fire_units(_integrate(gates, l, inputs), gates.units[l])))
        else:
            spikes.append(amos.bit_serial_max(layer, inputs, bits))
    logits = _integrate(gates, len(net.layers) - 1, net.gather_spikes(spikes, len(net.layers) - 1))
    return EventResult(spikes, logits, int(np.argmax(logits)))

