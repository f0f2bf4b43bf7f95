"""The bit-exact golden model of a :class:`~hdlgen.ttfs.TTFSNet` (plain numpy, no simulator).

Two forms that must agree on every value, and that the RTL must reproduce:

* :func:`run_batch` – vectorized, in the activation domain: ``q`` of every spiking layer,
  the logits and the class of a batch of images.
* :func:`run_events` – one image, tick by tick, as the neuron model runs: input spikes add
  their weight to a slope that is integrated every tick (the ramp), then the comparator fires
  each neuron at the first output tick ``t`` with ``A ≥ K·(T − t)``. It returns every layer's
  spike list ``(neuron, tick)`` sorted by tick then neuron.

The readout's class is argmax of the logits, ties going to the lowest index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .float_ops import im2col
from .ttfs import TTFSNet

__all__ = ["BatchResult", "EventResult", "run_batch", "run_events", "spikes_from_q", "accumulate", "max_pool"]

_EXACT_F32 = 1 << 24
_EXACT_F64 = 1 << 53


@dataclass
class BatchResult:
    """``q[0]`` is the input activation, ``q[l]`` the output of hidden layer ``l``; all (N, size)."""

    q: list
    logits: np.ndarray
    classes: np.ndarray


@dataclass
class EventResult:
    """``spikes[0]`` the input spikes, ``spikes[l]`` hidden layer ``l``'s; each a list of (neuron, tick)."""

    spikes: list
    logits: np.ndarray
    label: int


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


def accumulate(layer, q_in: np.ndarray) -> np.ndarray:
    """``A = B + W·q_in`` exactly for a batch of activations (N, fan_in) → int64 (N, fan_out),
    neurons in (unit, position) order: (channel, row, column) for a convolution."""
    rows = layer.patches(q_in)
    n, positions, columns = rows.shape
    acc = _exact_product(rows.reshape(n * positions, columns), layer.weight_matrix(), layer.ticks_in) + layer.bias
    return acc.reshape(n, positions, -1).transpose(0, 2, 1).reshape(n, -1)


def max_pool(layer, q_in):
    """A max-pool layer of a batch of activations (N, fan_in) → (N, fan_out): the largest q,
    i.e. the earliest spike, of each window."""
    cols = im2col(q_in.reshape(len(q_in), *layer.in_shape), layer.kernel, layer.stride, layer.padding)
    return cols.max(axis=(4, 5)).transpose(0, 3, 1, 2).reshape(len(q_in), -1)


def _argmax_lowest(logits):
    return np.argmax(logits, axis=-1)  # numpy returns the first maximum: ties → lowest index


def run_batch(net: TTFSNet, pixels: np.ndarray) -> BatchResult:
    """Vectorized golden model of a batch of pixel bytes (N, input size)."""
    q = net.input.q(np.asarray(pixels).reshape(len(pixels), -1))
    qs = [q]
    for layer in net.layers[:-1]:
        if layer.has_weights:
            q = np.clip(accumulate(layer, q) // layer.k_per_neuron(), 0, layer.ticks)  # floor, as the comparator fires
        else:   # max-pool: padding is 0 = no spike, never the max of a non-empty window
            q = max_pool(layer, q)
        qs.append(q)
    logits = accumulate(net.layers[-1], q)
    return BatchResult(qs, logits, _argmax_lowest(logits))


def spikes_from_q(q: np.ndarray, ticks: int) -> list:
    """The spike list of one image's activations: (neuron, T − q) for q > 0, by tick then neuron."""
    neurons = np.flatnonzero(q)
    times = ticks - q[neurons]
    order = np.lexsort((neurons, times))
    return [(int(n), int(t)) for n, t in zip(neurons[order], times[order])]


def _ramp(layer, spikes, ticks_in):
    """Integrate slopes tick by tick: a spike at tick τ adds its weights to the slopes of the
    neurons it reaches, and the slope is added to the potential at every tick τ..T_in−1
    (i.e. T_in − τ times). A spike's weights: for each output position it reaches, the column
    of ``weight_matrix`` it meets there (neurons in (unit, position) order)."""
    matrix = layer.weight_matrix()
    slope = np.zeros((len(matrix), layer.fan_out // len(matrix)), dtype=np.int64)
    potential = np.repeat(layer.bias, layer.fan_out // len(layer.bias))
    by_tick = {}
    for neuron, tick in spikes:
        by_tick.setdefault(tick, []).append(neuron)
    for tick in range(ticks_in):
        for neuron in by_tick.get(tick, ()):
            for position, column in layer.positions_of(neuron):
                slope[:, position] += matrix[:, column]
        potential += slope.reshape(-1)
    return potential


def _first_spike_per_window(layer, spikes):
    """Max-pool of spikes: each window passes its earliest spike and drops the rest."""
    c_in, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
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


def _fire(layer, potential):
    """Comparator against the falling threshold K·(T − t): each neuron fires once, at the first
    tick it reaches the threshold."""
    fired = np.zeros(layer.fan_out, dtype=bool)
    k = layer.k_per_neuron()
    spikes = []
    for tick in range(layer.ticks):
        now = ~fired & (potential >= k * (layer.ticks - tick))
        spikes.extend((int(n), tick) for n in np.flatnonzero(now))
        fired |= now
    return spikes


def run_events(net: TTFSNet, pixels: np.ndarray) -> EventResult:
    """Event form of one image (pixel bytes of length input size)."""
    q0 = net.input.q(np.asarray(pixels).reshape(-1))
    spikes = [spikes_from_q(q0, net.input.ticks)]
    ticks_in = net.input.ticks
    for layer in net.layers[:-1]:
        if layer.has_weights:
            spikes.append(_fire(layer, _ramp(layer, spikes[-1], ticks_in)))
        else:
            spikes.append(_first_spike_per_window(layer, spikes[-1]))
        ticks_in = layer.ticks
    logits = _ramp(net.layers[-1], spikes[-1], ticks_in)
    return EventResult(spikes, logits, int(_argmax_lowest(logits)))
