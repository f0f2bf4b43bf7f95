"""Cycle counts of the generated core for one image (docs/rtl-interface.md).

* event lower bound: ``Σ_ℓ input spikes_ℓ × ceil(fan_out_ℓ / lanes_ℓ) + Σ_ℓ T_ℓ`` – the cycles
  an event-driven core with ``lanes`` synapse updates per cycle cannot go below;
* dense schedule: ``Σ_ℓ fan_in_ℓ × ceil(fan_out_ℓ / lanes_ℓ) + Σ_ℓ T_ℓ`` – the same lanes
  visiting every input;
* :func:`overhead_bound`: what :class:`~hdlgen.rtl_templates.top.NetworkTop` adds on top of the
  event lower bound for an image entering an idle core (pixel loading, accumulator read-out,
  spike-time pipeline, handshakes).

``lanes_ℓ`` is ``min(lanes, fan_out_ℓ)``, as the core builds it.
"""

from __future__ import annotations

from .golden import EventResult
from .ttfs import TTFSNet

__all__ = ["layer_words", "event_lower_bound", "dense_schedule", "overhead_bound", "cycle_counts"]


def layer_words(net: TTFSNet, lanes: int = 1) -> list:
    """Accumulator words (cycles per input spike) of each dense layer."""
    return [-(-layer.fan_out // min(lanes, layer.fan_out)) for layer in net.layers]


def event_lower_bound(net: TTFSNet, input_spikes, lanes: int = 1) -> int:
    """``Σ_ℓ input_spikes[ℓ] × words_ℓ + Σ_ℓ T_ℓ``; ``input_spikes[ℓ]`` counts the spikes into layer ℓ."""
    words = layer_words(net, lanes)
    return int(sum(int(s) * w for s, w in zip(input_spikes, words)) + sum(net.ticks))


def dense_schedule(net: TTFSNet, lanes: int = 1) -> int:
    """``Σ_ℓ fan_in_ℓ × words_ℓ + Σ_ℓ T_ℓ``."""
    words = layer_words(net, lanes)
    return int(sum(layer.fan_in * w for layer, w in zip(net.layers, words)) + sum(net.ticks))


def overhead_bound(net: TTFSNet, lanes: int = 1) -> int:
    """Most cycles the core spends on one image beyond the event lower bound, from its first
    pixel to its result, when it enters an idle core and the result is taken at once: the
    pixels, one seek cycle per non-empty tick of every spike sorter, a read-out cycle per
    accumulator lane, the spike-time ladder and a few handshake cycles per stage."""
    cycles = net.input.size + 4
    for layer, words in zip(net.layers, layer_words(net, lanes)):
        cycles += layer.ticks_in + words * min(lanes, layer.fan_out) + 10
        if not layer.readout:
            cycles += (layer.ticks - 1).bit_length() + 4
    return cycles


def cycle_counts(net: TTFSNet, events: EventResult, lanes: int = 1) -> dict:
    """Bounds for one image from its golden spike lists (``hdlgen.golden.run_events``):
    ``{"event_lower_bound", "dense_schedule", "upper_bound"}``."""
    spikes = [len(s) for s in events.spikes]
    lower = event_lower_bound(net, spikes, lanes)
    return {"event_lower_bound": lower, "dense_schedule": dense_schedule(net, lanes),
            "upper_bound": lower + overhead_bound(net, lanes)}
