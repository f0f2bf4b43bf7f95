"""Cycle counts of the generated core for one image (docs/rtl-interface.md).

* event lower bound: ``Σ_ℓ Σ_(input spikes of ℓ) cost_ℓ + Σ_ℓ T_ℓ`` – the cycles an
  event-driven core with ``lanes`` synapse updates per cycle cannot go below. An input spike
  costs a dense layer ``ceil(fan_out / lanes_ℓ)`` cycles and a convolution
  ``positions it reaches × ceil(out channels / lanes_ℓ)`` (its fan-out is out channels × the
  output positions its kernel taps reach); a max-pool works in the shadow of the next engine
  and counts 0. ``T_ℓ`` are the windows of the stages that walk ticks (input encoder, dense and
  conv layers; not max-pools);
* dense schedule: the same sum with every input spiking – the same lanes visiting every input;
* :func:`overhead_bound`: what :class:`~hdlgen.rtl_templates.top.NetworkTop` adds on top of the
  event lower bound for an image entering an idle core (pixel loading, accumulator read-out,
  spike-time pipeline, handshakes).

``lanes_ℓ`` is ``min(lanes, fan_out_ℓ)`` (a convolution's lanes run over its output
channels, so ``min(lanes, out channels)``), as the core builds it.
"""

from __future__ import annotations

import numpy as np

from .golden import EventResult
from .ttfs import IntConv2d, IntMaxPool2d, TTFSNet

__all__ = ["axis_taps", "capped_lanes", "layer_words", "input_costs", "event_lower_bound", "dense_schedule",
           "overhead_bound", "cycle_counts"]


def axis_taps(size: int, kernel: int, stride: int, padding: int, out: int) -> list:
    """Per input coordinate ``0..size−1`` along one axis, the ``(kernel offset, output coordinate)``
    pairs that reach an output: ``coordinate + padding − offset = output·stride`` with the output
    in ``0..out−1`` (offsets on the border or between strides reach nothing)."""
    taps = []
    for pos in range(size):
        reach = []
        for k in range(kernel):
            o, r = divmod(pos + padding - k, stride)
            if r == 0 and 0 <= o < out:
                reach.append((k, o))
        taps.append(reach)
    return taps


def _reach(layer) -> np.ndarray:
    """Output positions (conv) or windows (max-pool) each input neuron reaches, (fan_in,)."""
    channels, h, w = layer.in_shape
    kernel = layer.weight.shape[2:] if isinstance(layer, IntConv2d) else layer.kernel
    _, out_h, out_w = layer.out_shape
    rows = [len(t) for t in axis_taps(h, kernel[0], layer.stride[0], layer.padding[0], out_h)]
    cols = [len(t) for t in axis_taps(w, kernel[1], layer.stride[1], layer.padding[1], out_w)]
    return np.tile(np.outer(rows, cols).reshape(-1), channels)


def capped_lanes(net: TTFSNet, lanes: int) -> list:
    """Lanes each layer is built with: ``lanes`` capped at a dense layer's fan-out or a
    convolution's output channels; 1 for a max-pool (no lanes)."""
    caps = [layer.out_shape[0] if isinstance(layer, IntConv2d) else 1 if isinstance(layer, IntMaxPool2d)
            else layer.fan_out for layer in net.layers]
    return [min(lanes, cap) for cap in caps]


def layer_words(net: TTFSNet, lanes: int = 1) -> list:
    """Accumulator words of each layer: the cycles an input spike costs a dense layer, or one
    output position it reaches costs a convolution; 0 for a max-pool."""
    return [0 if isinstance(layer, IntMaxPool2d) else
            -(-(layer.out_shape[0] if isinstance(layer, IntConv2d) else layer.fan_out) // n)
            for layer, n in zip(net.layers, capped_lanes(net, lanes))]


def input_costs(net: TTFSNet, lanes: int = 1) -> list:
    """Per layer, the engine cycles a spike on each of its inputs costs, (fan_in,) each."""
    costs = []
    for layer, words in zip(net.layers, layer_words(net, lanes)):
        if isinstance(layer, IntConv2d):
            costs.append(_reach(layer) * words)
        else:
            costs.append(np.full(layer.fan_in, words, dtype=np.int64))
    return costs


def _walked_ticks(net: TTFSNet) -> int:
    """``Σ T`` of the stages that walk their window (every spiking layer but max-pools)."""
    return net.input.ticks + sum(layer.ticks for layer in net.layers[:-1] if not isinstance(layer, IntMaxPool2d))


def event_lower_bound(net: TTFSNet, spikes, lanes: int = 1) -> int:
    """``Σ_ℓ Σ_(n, τ) ∈ spikes[ℓ] cost_ℓ[n] + Σ_ℓ T_ℓ``; ``spikes[ℓ]`` are the ``(neuron, tick)``
    spikes into layer ℓ (``hdlgen.golden.run_events(...).spikes``)."""
    costs = input_costs(net, lanes)
    return int(sum(int(cost[[n for n, _ in s]].sum()) for s, cost in zip(spikes, costs)) + _walked_ticks(net))


def dense_schedule(net: TTFSNet, lanes: int = 1) -> int:
    """The event lower bound with every input of every layer spiking."""
    return int(sum(int(cost.sum()) for cost in input_costs(net, lanes)) + _walked_ticks(net))


def overhead_bound(net: TTFSNet, lanes: int = 1) -> int:
    """Most cycles the core spends on one image beyond the event lower bound, from its first
    pixel to its result, when it enters an idle core and the result is taken at once: the
    pixels, one seek cycle per non-empty tick of every spike sorter, a read-out cycle per
    accumulator lane, the spike-time ladder and a few handshake cycles per stage.
    A convolution reads its accumulators out one neuron per cycle and spends a cycle on an
    input spike that reaches no output; a max-pool visits every window of every input spike
    (all of them, at most) and a cycle per input reaching none."""
    cycles = net.input.size + 4
    for layer, words, n in zip(net.layers, layer_words(net, lanes), capped_lanes(net, lanes)):
        if isinstance(layer, IntMaxPool2d):
            reach = _reach(layer)
            cycles += int(reach.sum()) + int((reach == 0).sum()) + 8
            continue
        if isinstance(layer, IntConv2d):
            cycles += layer.ticks_in + layer.fan_out + int((_reach(layer) == 0).sum()) + 12
        else:
            cycles += layer.ticks_in + words * n + 10
        if not layer.readout:
            cycles += (layer.ticks - 1).bit_length() + 4
    return cycles


def cycle_counts(net: TTFSNet, events: EventResult, lanes: int = 1) -> dict:
    """Bounds for one image from its golden spike lists (``hdlgen.golden.run_events``):
    ``{"event_lower_bound", "dense_schedule", "upper_bound"}``."""
    lower = event_lower_bound(net, events.spikes, lanes)
    return {"event_lower_bound": lower, "dense_schedule": dense_schedule(net, lanes),
            "upper_bound": lower + overhead_bound(net, lanes)}
