"""The bit-exact golden model of a :class:`~hdlgen.ttfs.TTFSNet` (plain numpy, no simulator).

Two forms that must agree on every value, and that the RTL must reproduce:

* :func:`run_batch` – vectorized, in the activation domain: ``q`` of every spiking layer,
  the logits and the class of a batch of images.
* :func:`run_events` – one image, tick by tick, as the neuron model runs: input spikes add
  their weight to a slope that is integrated every tick (the ramp), then the comparator fires
  each neuron at the first output tick ``t`` with ``A ≥ K·(T − t)``. It returns every layer's
  spike list ``(neuron, tick)`` sorted by tick then neuron.

Each layer kind's arithmetic lives with the kind (:mod:`hdlgen.ttfs`: ``forward`` and
``events``); these two walk the net's graph, each layer reading the concatenation of its inputs.
The readout's class is argmax of the logits, ties going to the lowest index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ttfs import TTFSNet, spikes_from_q

__all__ = ["BatchResult", "EventResult", "run_batch", "run_events", "spikes_from_q"]


@dataclass
class BatchResult:
    """``q[0]`` is the input activation, ``q[l + 1]`` the output of hidden layer ``l``; all (N, size)."""

    q: list
    logits: np.ndarray
    classes: np.ndarray


@dataclass
class EventResult:
    """``spikes[0]`` the input spikes, ``spikes[l + 1]`` hidden layer ``l``'s; each a list of (neuron, tick)."""

    spikes: list
    logits: np.ndarray
    label: int


def _argmax_lowest(logits):
    return np.argmax(logits, axis=-1)  # numpy returns the first maximum: ties → lowest index


def run_batch(net: TTFSNet, pixels: np.ndarray) -> BatchResult:
    """Vectorized golden model of a batch of pixel bytes (N, input size)."""
    qs = [net.input.q(np.asarray(pixels).reshape(len(pixels), -1))]
    for l, layer in enumerate(net.layers):
        qs.append(layer.forward(net.gather(qs, l)))
    logits = qs.pop()
    return BatchResult(qs, logits, _argmax_lowest(logits))


def run_events(net: TTFSNet, pixels: np.ndarray) -> EventResult:
    """Event form of one image (pixel bytes of length input size)."""
    spikes = [spikes_from_q(net.input.q(np.asarray(pixels).reshape(-1)), net.input.ticks)]
    for l, layer in enumerate(net.layers):
        spikes.append(layer.events(net.gather_spikes(spikes, l)))
    logits = spikes.pop()
    return EventResult(spikes, logits, int(_argmax_lowest(logits)))
