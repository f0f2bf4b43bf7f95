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

from .ttfs import TTFSNet

__all__ = ["BatchResult", "EventResult", "run_batch", "run_events", "spikes_from_q", "accumulate"]

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


def accumulate(layer, q_in: np.ndarray) -> np.ndarray:
    """``A = B + q_in·Wᵀ`` exactly, for a batch of integer activations (N, fan_in) → int64.

    Uses a float BLAS product when the layer's bounds prove every partial sum is exactly
    representable (the common case, ~100× faster than integer matmul), else int64.
    """
    w = layer.weight
    reach = max(int(np.abs(np.clip(w, None, 0).sum(axis=1)).max(initial=0)),
                int(np.clip(w, 0, None).sum(axis=1).max(initial=0))) * layer.ticks_in
    if reach < _EXACT_F32:
        dot = (q_in.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64)
    elif reach < _EXACT_F64:
        dot = (q_in.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    else:
        dot = q_in.astype(np.int64) @ w.T
    return dot + layer.bias


def _argmax_lowest(logits):
    return np.argmax(logits, axis=-1)  # numpy returns the first maximum: ties → lowest index


def run_batch(net: TTFSNet, pixels: np.ndarray) -> BatchResult:
    """Vectorized golden model of a batch of pixel bytes (N, input size)."""
    q = net.input.q(np.asarray(pixels).reshape(len(pixels), -1))
    qs = [q]
    for layer in net.layers[:-1]:
        acc = accumulate(layer, q)
        q = np.clip(acc // layer.k, 0, layer.ticks)  # floor division, as the comparator fires
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
    """Integrate slopes tick by tick: a spike at tick τ adds its weight column to the slope,
    and the slope is added to the potential at every tick τ..T_in−1 (i.e. T_in − τ times)."""
    slope = np.zeros(layer.fan_out, dtype=np.int64)
    potential = layer.bias.copy()
    by_tick = {}
    for neuron, tick in spikes:
        by_tick.setdefault(tick, []).append(neuron)
    for tick in range(ticks_in):
        for neuron in by_tick.get(tick, ()):
            slope += layer.weight[:, neuron]
        potential += slope
    return potential


def _fire(layer, potential):
    """Comparator against the falling threshold K·(T − t): each neuron fires once, at the first
    tick it reaches the threshold."""
    fired = np.zeros(layer.fan_out, dtype=bool)
    spikes = []
    for tick in range(layer.ticks):
        now = ~fired & (potential >= layer.k * (layer.ticks - tick))
        spikes.extend((int(n), tick) for n in np.flatnonzero(now))
        fired |= now
    return spikes


def run_events(net: TTFSNet, pixels: np.ndarray) -> EventResult:
    """Event form of one image (pixel bytes of length input size)."""
    q0 = net.input.q(np.asarray(pixels).reshape(-1))
    spikes = [spikes_from_q(q0, net.input.ticks)]
    ticks_in = net.input.ticks
    for layer in net.layers[:-1]:
        spikes.append(_fire(layer, _ramp(layer, spikes[-1], ticks_in)))
        ticks_in = layer.ticks
    logits = _ramp(net.layers[-1], spikes[-1], ticks_in)
    return EventResult(spikes, logits, int(_argmax_lowest(logits)))
