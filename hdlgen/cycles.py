"""Cycle counts of the generated core for one image (docs/rtl-interface.md), from the stage
costs of :mod:`hdlgen.geometry`.

* event lower bound: ``ceil(N_in / P) + Σ_ℓ Σ_(input spikes of ℓ) cost_ℓ + Σ_ℓ T_ℓ`` – the
  cycles an event-driven core with ``lanes`` synapse updates per cycle cannot go below. The
  input intake ``ceil(N_in / P)`` is the image's transfers on a pixel stream of ``P`` pixels
  each (no spike can leave in tick order before the last pixel is in). An input spike
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

from .geometry import NetGeometry
from .golden import EventResult
from .ttfs import TTFSNet

__all__ = ["event_lower_bound", "dense_schedule", "overhead_bound", "cycle_counts"]


def event_lower_bound(net: TTFSNet, spikes, lanes: int = 1, pixels_per_transfer: int = 1) -> int:
    """``ceil(N_in / P) + Σ_ℓ Σ_(n, τ) ∈ spikes[ℓ] cost_ℓ[n] + Σ_ℓ T_ℓ``; ``spikes[ℓ]`` are the
    ``(neuron, tick)`` spikes into layer ℓ (``hdlgen.golden.run_events(...).spikes``)."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer)
    costs = geometry.input_costs()
    return int(geometry.input.intake + sum(int(cost[[n for n, _ in s]].sum()) for s, cost in zip(spikes, costs))
               + geometry.walked_ticks)


def dense_schedule(net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1) -> int:
    """The event lower bound with every input of every layer spiking."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer)
    return int(geometry.input.intake + sum(int(cost.sum()) for cost in geometry.input_costs())
               + geometry.walked_ticks)


def overhead_bound(net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None) -> int:
    """Most cycles the core spends on one image beyond the event lower bound, from its first
    pixel to its result, when it enters an idle core and the result is taken at once: the sum
    of every stage's :meth:`~hdlgen.geometry.DenseGeometry.overhead`."""
    return NetGeometry(net, lanes, pixels_per_transfer, spike_lanes).overhead()


def cycle_counts(net: TTFSNet, events: EventResult, lanes: int = 1, pixels_per_transfer: int = 1,
                 spike_lanes: int | None = None) -> dict:
    """Bounds for one image from its golden spike lists (``hdlgen.golden.run_events``):
    ``{"event_lower_bound", "dense_schedule", "upper_bound"}``."""
    lower = event_lower_bound(net, events.spikes, lanes, pixels_per_transfer)
    return {"event_lower_bound": lower, "dense_schedule": dense_schedule(net, lanes, pixels_per_transfer),
            "upper_bound": lower + overhead_bound(net, lanes, pixels_per_transfer, spike_lanes)}
