"""Cycle counts of the generated core for one image (docs/rtl-interface.md), from the stage
costs of :mod:`hdlgen.geometry`.

* event lower bound: ``ceil(N_in / P) + Σ_(engines ℓ) max(C_ℓ, E_ℓ + T_ℓ)`` – the cycles an
  event-driven core with ``lanes`` synapse updates per cycle cannot go below. The input intake
  ``ceil(N_in / P)`` is the image's transfers on a pixel stream of ``P`` pixels each (no spike
  leaves in tick order before the last pixel is in). ``C_ℓ`` is what engine ℓ's input spikes
  cost it: a dense layer ``ceil(fan_out / lanes_ℓ)`` cycles a spike, a convolution ``positions
  it reaches × ceil(out channels / lanes_ℓ)`` (its fan-out is out channels × the output
  positions its kernel taps reach). ``E_ℓ + T_ℓ`` is the walk that feeds it: the tick sorter
  before it (the input encoder's, or the previous spike-time bank's; through a max-pool, which
  works in its shadow and counts 0) emits ``E_ℓ`` events at most one a cycle and spends a cycle
  on each of its ``T_ℓ`` ticks. The engine can finish neither before its spikes are paid for
  nor before its last spike has come, and the stages of one image follow each other (each
  waits for the image's ``end``);
* dense schedule: the same with every input spiking – the same lanes visiting every input;
* serial sum: ``ceil(N_in / P) + Σ_ℓ C_ℓ + Σ T`` over every walk, as if no walk overlapped its
  engine's work;
* throughput bound (:func:`stage_cycles`, :func:`throughput_bound`): with images back to back each
  stage works on a different image, so results cannot come faster than the busiest stage's
  cycles per image. A stage is busy with an image for what it cannot overlap with the next
  one's work, as the core builds it: the input encoder's tick sorter collects the pixel stream
  (``ceil(N_in / P)``) and then walks its window (``E_0 + T_0``) – with two sorters taking images
  in turn (:class:`~hdlgen.geometry.InputGeometry`'s ``sorters``) the longer of the two; an engine pays for its input
  spikes (``C_ℓ``, every input's in a graph net) and then reads its accumulators out into its
  drain FIFO, which takes the next image's spikes once the last word is read (its
  :meth:`~hdlgen.geometry.DenseGeometry.drain_cycles`); a spike-time bank's tick sorter
  collects that read-out (:meth:`~hdlgen.geometry.DenseGeometry.read_out_cycles`) and then walks
  its window (``E_ℓ + T_ℓ``), as the readout collects the last layer's; a max-pool visits every
  window of its input spikes and then clears its windows' fired bits. Over a stream the bound
  is the busiest stage's mean (:func:`throughput_bound`): a stage that is busiest for one
  image need not be for the next. ``overlapped`` gives the bound of a core whose stages each
  keep two images' state (take one in while putting the other out): the longer phase counts;
* :func:`overhead_bound`: what :class:`~hdlgen.rtl_templates.top.NetworkTop` adds on top of the
  serial sum for an image entering an idle core (accumulator read-out, spike-time pipeline,
  handshakes), so ``serial sum + overhead`` is an upper bound.

A first layer taking two input spikes a cycle (lanes twice its fan-out,
:attr:`~hdlgen.geometry.DenseGeometry.spikes_per_cycle`) is fed by an encoder without a tick sorter
that sends each transfer's spikes two at a time as the transfers come: its walk is
``max(ceil(N_in / P), Σ_transfers max(1, ceil(spikes / 2)))`` from the first transfer (no intake
before it, no ``T_0``; :meth:`~hdlgen.geometry.InputGeometry.groups`), and the engine pays a cycle
per group that holds spikes.

``lanes_ℓ`` is the stage's lanes as the core builds it (:func:`hdlgen.geometry.stage_geometry`:
at most the lanes asked for that layer and its fan-out – a convolution's lanes run over its output
channels –, the fewest that give the same words).

In a graph net a layer's input spikes are those of all its inputs (their concatenation). The
lower bound follows the path through each layer's first input, and counts an engine's spikes of
that input only: a later input's spikes wait in a skip buffer and may be paid for while earlier
stages still work. The serial sum and the upper bound count them all.
"""

from __future__ import annotations

import numpy as np

from .geometry import DenseGeometry, NetGeometry
from .golden import EventResult
from .ttfs import TTFSNet

__all__ = ["event_lower_bound", "dense_schedule", "serial_cycles", "overhead_bound", "cycle_counts", "stage_cycles",
           "throughput_bound", "dense_throughput_bound"]


def _inputs(spikes) -> list:
    """Per source (the input, then each layer), the indices of its neurons that spiked."""
    return [np.array([n for n, _ in source], dtype=np.int64) for source in spikes]


def _every_input(geometry: NetGeometry) -> list:
    return [np.arange(size) for size in geometry.net.sizes[:-1]]


def _gathered(net: TTFSNet, spiked: list, l: int) -> np.ndarray:
    """Layer ``l``'s spiking inputs, as indices into the concatenation it reads."""
    return np.concatenate([spiked[j] + start for j, start in zip(net.sources(l), net.offsets(l))])


def _spike_cycles(geometry: NetGeometry, l: int, cost: np.ndarray, taken: np.ndarray) -> int:
    """What layer ``l``'s engine pays for its input spikes ``taken``: their costs, or the groups
    they come in when it takes several a cycle (from the input encoder, each transfer's)."""
    if geometry.layers[l].spikes_per_cycle > 1:
        return geometry.input.groups(taken, least=0)
    return int(cost[taken].sum())


def _input_walk(geometry: NetGeometry, spiked: np.ndarray) -> tuple:
    """``(start, cycles)`` of the input encoder's emission: after the intake, its spikes and
    window through the tick sorter; or, without one, its groups as the transfers come."""
    inp = geometry.input
    if inp.sorters:
        return inp.intake, len(spiked) + inp.walked_ticks
    return 0, max(inp.intake, inp.groups(spiked))


def _event_cycles(geometry: NetGeometry, spiked) -> int:
    """``intake + Σ max(C, E + T)`` along the first inputs, for the spiking neurons ``spiked[j]`` of each source.

    ``start[j]`` is when source ``j``'s walk can start: the intake for the input, the engine's finish
    for a spike-time bank (a max-pool passes its input's on). An engine finishes ``max(C, E + T)``
    after its first input's walk starts; ``C`` counts the spikes of that input only, since a later
    input's spikes wait in a skip buffer and may be paid for while the earlier stages still work."""
    net = geometry.net
    walked = [geometry.input.walked_ticks] + [stage.walked_ticks for stage in geometry.layers[:-1]]
    input_start, input_walk = _input_walk(geometry, spiked[0])
    walk, start = [input_walk], [input_start]
    finish = start[0]
    for l, (stage, cost) in enumerate(zip(geometry.layers, geometry.input_costs())):
        main = net.sources(l)[0]
        finish = start[main]
        if stage.words:      # an engine (a max-pool has no words: it works in the next one's shadow)
            finish += max(_spike_cycles(geometry, l, cost, spiked[main] + net.offsets(l)[0]), walk[main])
        if l + 1 < len(walked):
            walk.append(len(spiked[l + 1]) + walked[l + 1] if walked[l + 1] else walk[main])
            start.append(finish)
    return int(finish)


def event_lower_bound(net: TTFSNet, spikes, lanes: int = 1, pixels_per_transfer: int = 1) -> int:
    """``ceil(N_in / P) + Σ_(engines ℓ) max(C_ℓ, E_ℓ + T_ℓ)``; ``spikes[j]`` are the
    ``(neuron, tick)`` spikes of source ``j`` (``hdlgen.golden.run_events(...).spikes``)."""
    return _event_cycles(NetGeometry(net, lanes, pixels_per_transfer), _inputs(spikes))


def dense_schedule(net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1) -> int:
    """The event lower bound with every input of every layer spiking."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer)
    return _event_cycles(geometry, _every_input(geometry))


def _serial_cycles(geometry: NetGeometry, spiked) -> int:
    costs = geometry.input_costs()
    return int(geometry.input.intake + sum(_spike_cycles(geometry, l, costs[l], _gathered(geometry.net, spiked, l))
                                           for l in range(len(costs))) + geometry.walked_ticks)


def serial_cycles(net: TTFSNet, spikes=None, lanes: int = 1, pixels_per_transfer: int = 1) -> int:
    """``ceil(N_in / P) + Σ_ℓ C_ℓ + Σ T`` (every walked window), for ``spikes`` or, when
    ``None``, every input spiking."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer)
    return _serial_cycles(geometry, _every_input(geometry) if spikes is None else _inputs(spikes))


def overhead_bound(net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None) -> int:
    """Most cycles the core spends on one image beyond its serial sum, from its first pixel to
    its result, when it enters an idle core and the result is taken at once: the sum of every
    stage's :meth:`~hdlgen.geometry.DenseGeometry.overhead`."""
    return NetGeometry(net, lanes, pixels_per_transfer, spike_lanes).overhead()


def _stage_cycles(geometry: NetGeometry, spiked, overlapped: bool = False) -> dict:
    """Per stage, its two phases for one image – what it takes in, then what it puts out – added up,
    or with ``overlapped`` the longer one (as if the stage kept two images' state)."""
    net = geometry.net
    # a sorter collects the intake, then walks; without one the groups leave as the transfers come
    start, walk = _input_walk(geometry, spiked[0])
    phases = {"input": (start, walk) if geometry.input.sorters else (walk,)}
    for l, (stage, cost) in enumerate(zip(geometry.layers, geometry.input_costs())):
        name, taken = stage.layer.name, _gathered(net, spiked, l)
        if not stage.words:   # a max-pool: its windows' visits, then clearing their fired bits
            phases[name] = (int(stage.reach()[taken].sum()), stage.layer.fan_out)
            continue
        read_out = DenseGeometry.read_out_cycles(stage)   # a conv's cycles for spikes reaching nothing are a bound
        phases[f"{name} engine"] = (_spike_cycles(geometry, l, cost, taken), stage.drain_cycles())
        if stage.fires:
            phases[f"{name} sorter"] = (read_out, len(spiked[l + 1]) + stage.walked_ticks)
        else:
            phases[f"{name} readout"] = (read_out,)
    both = {"input"} if geometry.input.sorters == 2 else set()    # stages that hold two images
    return {stage: int(max(cycles) if overlapped or stage in both else sum(cycles)) for stage, cycles in phases.items()}


def stage_cycles(net: TTFSNet, spikes, lanes: int = 1, pixels_per_transfer: int = 1,
                 spike_lanes: int | None = None, overlapped: bool = False) -> dict:
    """Per stage (``"input"``, ``"<layer> engine"``, ``"<layer> sorter"``, a max-pool's ``"<layer>"``), the
    cycles it is busy with one image whose spikes are ``spikes`` (``hdlgen.golden.run_events(...).spikes``)
    and cannot spend on the next one (see the module docstring). With ``overlapped``, those of a core
    whose every stage takes the next image in while it puts this one out (the longer of the two)."""
    return _stage_cycles(NetGeometry(net, lanes, pixels_per_transfer, spike_lanes), _inputs(spikes), overlapped)


def throughput_bound(net: TTFSNet, spike_lists, lanes: int = 1, pixels_per_transfer: int = 1,
                     spike_lanes: int | None = None, overlapped: bool = False) -> tuple:
    """``(cycles, stage)``: the fewest mean cycles between results of the images whose spikes are
    ``spike_lists`` fed back to back – the busiest stage's mean :func:`stage_cycles` over them – and
    that stage."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    per_image = [_stage_cycles(geometry, _inputs(spikes), overlapped) for spikes in spike_lists]
    means = {stage: float(np.mean([busy[stage] for busy in per_image])) for stage in per_image[0]}
    stage = max(means, key=means.get)
    return means[stage], stage


def dense_throughput_bound(net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1,
                           spike_lanes: int | None = None) -> int:
    """The throughput bound with every input of every layer spiking (and every neuron spiking):
    the net's figure, the same for every image."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    return max(_stage_cycles(geometry, [np.arange(size) for size in net.sizes]).values())


def cycle_counts(net: TTFSNet, events: EventResult, lanes: int = 1, pixels_per_transfer: int = 1,
                 spike_lanes: int | None = None) -> dict:
    """Bounds for one image from its golden spike lists (``hdlgen.golden.run_events``):
    ``{"event_lower_bound", "dense_schedule", "upper_bound"}``."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    inputs = _inputs(events.spikes)
    return {"event_lower_bound": _event_cycles(geometry, inputs),
            "dense_schedule": _event_cycles(geometry, _every_input(geometry)),
            "upper_bound": _serial_cycles(geometry, inputs) + geometry.overhead()}
