"""cocotb driver, monitors and in-order checker of the generated TTFS core.

Composition (cocotb's ``matrix_multiplier`` example): :class:`PixelDriver` feeds images,
:class:`ResultMonitor` takes results under seeded back-pressure, one :class:`TraceMonitor` per
spiking layer records ``(neuron, tick)`` events, and :class:`InOrderChecker` compares every
image, in order, with :func:`hdlgen.golden.run_events`. :class:`NetworkTestbench` runs them in
three blocks of images:

* ``stress`` – random gaps between pixel bytes and between images, random ``result.ready``;
* ``isolated`` – each image alone in an empty core, no gaps: its latency in cycles;
* ``stream`` – images back to back, ``result.ready`` high: the interval between results.

Ports are found only through the sidecar JSON (:class:`~hdlgen.sim.core.CoreSpec`).
"""

from __future__ import annotations

import collections
import itertools

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, RisingEdge, SimTimeoutError, with_timeout

from hdlgen.geometry import NetGeometry
from hdlgen.golden import run_events

from .core import CoreSpec

__all__ = ["CLOCK_PERIOD_NS", "PixelDriver", "ResultMonitor", "TraceMonitor", "InOrderChecker",
           "NetworkTestbench", "image_modes"]

CLOCK_PERIOD_NS = 10


def _now_cycles() -> int:
    return round(get_sim_time("ns") / CLOCK_PERIOD_NS)


def image_modes(count: int, stream: int | None = None) -> list:
    """Block of each image: a quarter (at least one) ``isolated``, a quarter (at least two when
    there are three or more images) ``stream``, the rest ``stress`` first. With ``stream`` the last
    ``stream`` images stream (``2..count−1``) and the others run alone: the same images given twice
    have their latency and their interval measured."""
    if stream is not None:
        if not 2 <= stream < count:
            raise ValueError(f"a stream of {stream} images needs 2..{count - 1} of the {count} images")
        return ["isolated"] * (count - stream) + ["stream"] * stream
    isolated = max(1, count // 4)
    stream = min(count - isolated, max(2, count // 4)) if count >= 3 else count - isolated
    return ["stress"] * (count - isolated - stream) + ["isolated"] * isolated + ["stream"] * stream


class PixelDriver:
    """Drives the ``pixels`` stream, ``P`` bytes per transfer (the sidecar's ``per_transfer``;
    pixel ``j`` in byte ``j mod P``, the last transfer zero-padded).

    With ``gaps`` a seeded ``rng`` holds ``valid`` low for 1..3 cycles before about a third of
    the transfers (the core must not depend on a steady input).
    """

    def __init__(self, dut, spec: CoreSpec, rng: np.random.Generator):
        self.clock = getattr(dut, spec.clock)
        self.valid = getattr(dut, spec.pixels["valid"])
        self.ready = getattr(dut, spec.pixels["ready"])
        self.payload = getattr(dut, spec.pixels["payload"])
        self.per_transfer = spec.pixels.get("per_transfer", 1)
        self.rng = rng
        self.accepted = 0
        self.valid.value = 0
        self.payload.value = 0

    async def send(self, image: np.ndarray, gaps: bool) -> int:
        """Transfer one image; returns the cycle its first byte was accepted."""
        first = None
        for start in range(0, len(image), self.per_transfer):
            if gaps and self.rng.random() < 0.3:
                self.valid.value = 0
                await ClockCycles(self.clock, int(self.rng.integers(1, 4)))
            self.valid.value = 1
            self.payload.value = sum(int(byte) << (8 * k) for k, byte in enumerate(image[start:start + self.per_transfer]))
            await RisingEdge(self.clock)
            while self.ready.value != 1:
                await RisingEdge(self.clock)
            self.accepted += len(image[start:start + self.per_transfer])
            if first is None:
                first = _now_cycles()
        self.valid.value = 0
        return first

    async def idle(self, cycles: int):
        if cycles:
            await ClockCycles(self.clock, cycles)


class ResultMonitor:
    """Takes ``result`` transfers; ``ready`` follows :attr:`backpressure` (an iterator of 0/1, one
    per cycle while a result waits).

    Each entry of :attr:`results` is ``(ResultPayload, first_valid_cycle, transfer_cycle)``;
    :attr:`violations` lists breaches of the stream rules (a result withdrawn or changed
    before it was taken); ``progress`` (a path, optional) grows by one byte per result.
    """

    def __init__(self, dut, spec: CoreSpec, progress=None):
        self.spec = spec
        self.progress = progress
        self.clock = getattr(dut, spec.clock)
        self.valid = getattr(dut, spec.result["valid"])
        self.ready = getattr(dut, spec.result["ready"])
        self.payload = getattr(dut, spec.result["payload"])
        self.backpressure = itertools.repeat(1)
        self.results = []
        self.violations = []
        self._arrived = Event()
        self.ready.value = 0

    async def run(self):
        offered = None  # (cycle, payload) of a result seen valid but not yet taken
        while True:
            self.ready.value = next(self.backpressure)
            await RisingEdge(self.clock)
            if self.valid.value != 1:
                if offered:
                    self.violations.append(f"result offered at cycle {offered[0]} was withdrawn before a transfer")
                    offered = None
                await RisingEdge(self.valid)  # nothing to do until a result is offered
                continue
            now, bits = _now_cycles(), int(self.payload.value)
            if offered is None:
                offered = (now, bits)
            elif offered[1] != bits:
                self.violations.append(f"result payload changed at cycle {now} while waiting for ready "
                                       f"(offered at cycle {offered[0]})")
                offered = (offered[0], bits)
            if self.ready.value == 1:
                self.results.append((self.spec.decode_result(bits), offered[0], now))
                offered = None
                self._arrived.set()
                if self.progress:
                    with open(self.progress, "a") as f:
                        f.write(".")

    async def wait_for(self, count: int):
        """Return once ``count`` results have been taken."""
        while len(self.results) < count:
            self._arrived.clear()
            await self._arrived.wait()


class TraceMonitor:
    """Records one spiking layer's ``(neuron, tick)`` events from its trace ports, in order (a
    layer sending several at once: its slots' in slot order)."""

    def __init__(self, dut, spec: CoreSpec, layer: int):
        ports = spec.trace[layer]
        self.clock = getattr(dut, spec.clock)
        self.slots = [tuple(getattr(dut, slot[port]) for port in ("valid", "neuron", "tick"))
                      for slot in [ports] + ports.get("slots", [])]
        self.valid = self.slots[0][0]
        self.events = collections.deque()

    async def run(self):
        while True:
            await RisingEdge(self.clock)
            if self.valid.value == 1:
                self.events.extend((int(neuron.value), int(tick.value)) for valid, neuron, tick in self.slots
                                   if valid.value == 1)
            else:
                await RisingEdge(self.valid)  # sleep through layers that are not spiking


class InOrderChecker:
    """Compares each image's spikes, logits and class with :func:`~hdlgen.golden.run_events`.

    Trace events are assigned to images by the golden spike counts, in order, so the first
    differing spike of the whole stream is reported at the image it belongs to. The spikes of a
    layer whose stage does not keep neuron order within a tick (a tick sorter with several
    banks, a max-pool; docs/rtl-interface.md) are compared with the neurons of each tick sorted,
    ticks still in the order they came; an input encoder without a tick sorter's by tick and neuron.
    """

    def __init__(self, net, images: np.ndarray, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes=None):
        self.expected = [run_events(net, image) for image in images]
        geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
        producers = [geometry.input] + geometry.layers[:-1]
        self.unordered = {l for l, stage in enumerate(producers) if not stage.keeps_neuron_order}
        self.untimed = set() if geometry.input.keeps_tick_order else {0}
        self.mismatches = []

    def check(self, index: int, got, traces: list, counted_cycles: int) -> list:
        """Messages for image ``index`` (empty when it matches); also kept in :attr:`mismatches`."""
        expected = self.expected[index]
        messages = []
        for layer, monitor in enumerate(traces):
            want = expected.spikes[layer]
            have = [monitor.events.popleft() for _ in range(min(len(want), len(monitor.events)))]
            if layer in self.untimed:
                have = sorted(have, key=lambda spike: (spike[1], spike[0]))
            elif layer in self.unordered:
                have = _neurons_sorted_within_ticks(have)
            message = _first_spike_difference(index, layer, want, have)
            if message and not any("spike" in m for m in messages):
                messages.append(message)
        want_logits = [int(v) for v in expected.logits]
        for neuron, (w, h) in enumerate(zip(want_logits, got.logits)):
            if w != h:
                messages.append(f"image {index}: first differing logit {neuron}: expected {w}, got {h}")
                break
        if got.label != expected.label:
            messages.append(f"image {index}: class expected {expected.label}, got {got.label}")
        if got.cycles != counted_cycles:
            messages.append(f"image {index}: core reports {got.cycles} cycles, the testbench counted {counted_cycles}")
        self.mismatches.extend(messages)
        return messages

    def finish(self, traces: list) -> list:
        """Events left over after the last image are extra spikes."""
        for layer, monitor in enumerate(traces):
            if monitor.events:
                neuron, tick = monitor.events[0]
                self.mismatches.append(f"layer {layer}: {len(monitor.events)} spike(s) after the last image, "
                                       f"first neuron {neuron} tick {tick}")
        return self.mismatches


def _neurons_sorted_within_ticks(spikes):
    """Each run of equal ticks sorted by neuron; runs stay in arrival order."""
    return [spike for _, run in itertools.groupby(spikes, key=lambda s: s[1]) for spike in sorted(run)]


def _first_spike_difference(index, layer, want, have):
    where = f"image {index}, layer {layer}"
    for k, (w, h) in enumerate(zip(want, have)):
        if w != h:
            # out of (tick, neuron) order: most likely the next image's first spike
            hint = " out of order (the image ended early?)" if k and (h[1], h[0]) <= (have[k - 1][1], have[k - 1][0]) else ""
            return (f"{where}: first differing spike #{k}: expected neuron {w[0]} tick {w[1]}, "
                    f"got neuron {h[0]} tick {h[1]}{hint}")
    if len(have) < len(want):
        w = want[len(have)]
        return (f"{where}: spike #{len(have)} missing: expected neuron {w[0]} tick {w[1]} "
                f"(got {len(have)} of {len(want)})")
    return None


class NetworkTestbench:
    """Drives ``images`` through the core and checks them (see the module docstring).

    Parameters
    ----------
    dut : cocotb handle of the top module
    spec : CoreSpec
    net : TTFSNet
        The golden net the core is compared with.
    images : ndarray (N, input size) of uint8
    seed : int
        Seeds the pixel gaps and the back-pressure pattern.
    progress : path, optional
        A file that grows by one byte per result taken (for a progress bar outside the simulator).
    stream : int, optional
        Images in the ``stream`` block (:func:`image_modes`; default a quarter).
    """

    def __init__(self, dut, spec: CoreSpec, net, images: np.ndarray, seed: int, progress=None,
                 stream: int | None = None):
        self.dut = dut
        self.spec = spec
        self.images = np.asarray(images, dtype=np.uint8)
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.driver = PixelDriver(dut, spec, rng)
        self.monitor = ResultMonitor(dut, spec, progress)
        self.traces = [TraceMonitor(dut, spec, layer) for layer in range(len(spec.trace))]
        self.checker = InOrderChecker(net, self.images, spec.lanes, spec.pixels.get("per_transfer", 1),
                                      spec.spike_lanes)
        self.modes = image_modes(len(self.images), stream)
        self.first_pixel = [None] * len(self.images)

    def cycle_budget(self) -> int:
        """A generous bound on the whole run: 4× the worst case plus slow input per image."""
        per_image = 4 * self.spec.worst_case_cycles + 8 * self.images.shape[1] + 64 * len(self.spec.layers) + 1000
        return per_image * len(self.images) + 1000

    async def reset(self):
        clock = getattr(self.dut, self.spec.clock)
        reset = getattr(self.dut, self.spec.reset)
        reset.value = 1
        await ClockCycles(clock, 4)
        reset.value = 0
        await RisingEdge(clock)

    async def _feed(self):
        # ready low about a third of the cycles, in a seeded pattern of prime length
        stress_ready = itertools.cycle([int(r) for r in self.rng.random(61) >= 0.35])
        for index, (image, mode) in enumerate(zip(self.images, self.modes)):
            if mode == "stress":
                self.monitor.backpressure = stress_ready
                await self.driver.idle(int(self.rng.integers(0, 6)))
            elif mode == "isolated" or self.modes[index - 1] != "stream":
                await self.monitor.wait_for(index)  # an empty core
                self.monitor.backpressure = itertools.repeat(1)
            self.first_pixel[index] = await self.driver.send(image, gaps=mode == "stress")

    async def run(self) -> dict:
        """Run every image; returns the per-image records and the mismatches (JSON-ready)."""
        Clock(getattr(self.dut, self.spec.clock), CLOCK_PERIOD_NS, unit="ns").start()
        await self.reset()
        cocotb.start_soon(self.monitor.run())
        for monitor in self.traces:
            cocotb.start_soon(monitor.run())
        cocotb.start_soon(self._feed())
        timed_out = None
        try:
            await with_timeout(self.monitor.wait_for(len(self.images)), self.cycle_budget() * CLOCK_PERIOD_NS, "ns")
            await ClockCycles(getattr(self.dut, self.spec.clock), 8)  # let stray trace events show up
        except SimTimeoutError:
            timed_out = (f"timeout: {len(self.monitor.results)} of {len(self.images)} results after "
                         f"{self.cycle_budget()} cycles; {self.driver.accepted} pixel bytes accepted, "
                         f"spike events seen per layer {[len(t.events) for t in self.traces]}")
        records = []
        for index, (payload, first_valid, taken) in enumerate(self.monitor.results):
            counted = first_valid - self.first_pixel[index]
            self.checker.check(index, payload, self.traces, counted)
            records.append({"index": index, "mode": self.modes[index], "label": payload.label,
                            "cycles": payload.cycles, "counted_cycles": counted, "logits": payload.logits,
                            "first_pixel_cycle": self.first_pixel[index], "result_cycle": taken})
        mismatches = self.checker.finish(self.traces) if timed_out is None else self.checker.mismatches + [timed_out]
        return {"images": records, "mismatches": mismatches + self.monitor.violations}
