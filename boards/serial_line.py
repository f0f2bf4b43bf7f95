"""A simulated serial line: a pyserial-like port whose far end is a simulated design's UART pins.

It lets the host driver (:class:`hdlgen.boards.host.Device`) talk to a board top running in
Amaranth's simulator, bit by bit, with no board attached::

    sim = Simulator(host_link)
    sim.add_clock(1 / clk_freq)
    port = SimulatedSerial(sim, host_link.rx, host_link.tx, divisor=divisor, clk_freq=clk_freq)
    Device(port).classify(pixels)

Reading advances the simulation; ``timeout`` is in simulated seconds. With ``faults``
(:class:`LineFaults`) the line damages bytes in both directions and stalls; :func:`soak_link`
runs the real board top and host driver over such a line and :meth:`Soak.check` audits what
crossed it.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

__all__ = ["SimulatedSerial", "LineFaults", "Soak", "soak_link"]

DIRECTIONS = ("to_device", "from_device")


# Plain awaits only: these testbenches never end, and an unfinished ``tick().until()`` or
# ``tick().repeat()`` (async generators) complains when the simulator is dropped.
async def _ticks(ctx, count):
    for _ in range(count):
        await ctx.tick()


class LineFaults:
    """Seeded faults of a serial line, drawn byte by byte for each direction.

    Each byte is hit with probability ``rate`` by one of ``flip`` (one random bit inverted),
    ``drop`` (never arrives) or ``duplicate`` (arrives twice), evenly; each byte that is sent
    is preceded with probability ``stall_rate`` by a stall: the line idles for a time drawn
    uniformly from (0, ``max_stall``] seconds. Towards the device that is idle time inside or
    between frames, as the board's receiver sees it; from the device the bytes are held back
    that long before the host may read them (an adapter's latency), as the host's driver sees it.

    Parameters
    ----------
    seed : int
        Seed of the draws: the same seed, rates and traffic damage the same bytes.
    rate : float
        Probability that a byte is flipped, dropped or duplicated.
    stall_rate : float
        Probability of a stall before a byte.
    max_stall : float
        Longest stall in seconds.

    Members
    -------
    counts : dict
        ``counts[direction][kind]``: faults injected so far, ``direction`` one of
        ``to_device``/``from_device``, ``kind`` one of :attr:`KINDS`.
    """

    KINDS = ("flip", "drop", "duplicate", "stall")

    def __init__(self, seed: int, *, rate: float = 0.01, stall_rate: float = 0.001, max_stall: float = 3e-3):
        if not (0 <= rate <= 1 and 0 <= stall_rate <= 1):
            raise ValueError(f"fault rates must be probabilities, got rate {rate}, stall_rate {stall_rate}")
        if max_stall <= 0:
            raise ValueError(f"max_stall must be > 0 seconds, got {max_stall}")
        self.seed = seed
        self.rate = rate
        self.stall_rate = stall_rate
        self.max_stall = max_stall
        self._rng = random.Random(seed)
        self.counts = {direction: dict.fromkeys(self.KINDS, 0) for direction in DIRECTIONS}

    def damage(self, data: bytes, direction: str) -> list[tuple[float, int]]:
        """What the line delivers of ``data``: (seconds of idle line before it, byte) pairs."""
        rng, counts = self._rng, self.counts[direction]
        out = []
        for byte in data:
            kind = rng.choice(self.KINDS[:3]) if rng.random() < self.rate else None
            if kind == "drop":
                counts["drop"] += 1
                continue
            idle = 0.0
            if rng.random() < self.stall_rate:
                counts["stall"] += 1
                idle = self.max_stall * (1 - rng.random())   # (0, max_stall]
            if kind == "flip":
                counts["flip"] += 1
                byte ^= 1 << rng.randrange(8)
            out.append((idle, byte))
            if kind == "duplicate":
                counts["duplicate"] += 1
                out.append((0.0, byte))
        return out


class SimulatedSerial:
    """The host end of an 8N1 serial line into a simulation.

    Parameters
    ----------
    sim : amaranth.sim.Simulator
        The simulator; two background testbenches are added to it (before it runs).
    rx : Signal
        The design's receive pin (driven here).
    tx : Signal
        The design's transmit pin (sampled here).
    divisor : int
        Clock cycles per bit, as the design was built with.
    clk_freq : float
        The simulated clock frequency (Hz), to turn ``timeout`` into simulated time.
    timeout : float
        Simulated seconds :meth:`read` waits for the bytes asked for.
    faults : LineFaults, optional
        Damage and stalls on the line (may be set to ``None`` later for a clean line).

    Members
    -------
    host_wrote, board_sent, board_received : bytearray
        The bytes the host wrote, the design sent (before the line's faults) and the design was
        sent (after them): what a soak is audited against.
    """

    def __init__(self, sim, rx, tx, *, divisor: int, clk_freq: float, timeout: float = 0.01,
                 faults: LineFaults | None = None):
        self.sim = sim
        self.divisor = divisor
        self.clk_freq = clk_freq
        self.timeout = timeout
        self.faults = faults
        self.cycles = 0                # clock cycles simulated so far
        self._to_device = deque()      # (idle cycles before it, byte)
        self._held = deque()           # from the device, readable from a cycle on: (cycle, byte)
        self._from_device = bytearray()
        self.host_wrote = bytearray()
        self.board_sent = bytearray()
        self.board_received = bytearray()
        self.line_errors = 0           # bytes from the design with a low stop bit
        sim.add_testbench(self._make_driver(rx), background=True)
        sim.add_testbench(self._make_monitor(tx), background=True)

    def _line(self, data: bytes, direction: str) -> list[tuple[int, int]]:
        """``data`` as the line delivers it: (idle cycles before it, byte) pairs."""
        if self.faults is None:
            return [(0, byte) for byte in data]
        return [(round(idle * self.clk_freq), byte) for idle, byte in self.faults.damage(data, direction)]

    def _make_driver(self, rx):
        async def driver(ctx):
            ctx.set(rx, 1)
            while True:
                if not self._to_device:   # look again a character time later: waking is slow
                    await ctx.delay(10 * self.divisor / self.clk_freq)
                    await ctx.tick()
                    continue
                idle, byte = self._to_device.popleft()
                await _ticks(ctx, idle)
                self.board_received.append(byte)
                for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    ctx.set(rx, bit)
                    await _ticks(ctx, self.divisor)
        return driver

    def _make_monitor(self, tx):
        async def monitor(ctx):
            while True:
                await ctx.negedge(tx)   # woken by the start bit, not every cycle
                await _ticks(ctx, self.divisor // 2)   # middle of the start bit
                byte = 0
                for i in range(8):
                    await _ticks(ctx, self.divisor)
                    byte |= ctx.get(tx) << i
                await _ticks(ctx, self.divisor)
                if ctx.get(tx):
                    self.board_sent.append(byte)
                    # a stall holds back this byte and, to keep their order, all after it (from the
                    # end of this read step: the time here to a character)
                    for idle, delivered in self._line(bytes([byte]), "from_device"):
                        ready = max(self.cycles, self._held[-1][0] if self._held else 0) + idle
                        self._held.append((ready, delivered))
                else:
                    self.line_errors += 1
                    if not ctx.get(tx):
                        await ctx.posedge(tx)
        return monitor

    def _release(self):
        while self._held and self._held[0][0] <= self.cycles:
            self._from_device.append(self._held.popleft()[1])

    @property
    def baudrate(self) -> float:
        """The line's rate, as pyserial's ``Serial.baudrate``."""
        return self.clk_freq / self.divisor

    @property
    def in_waiting(self) -> int:
        self._release()
        return len(self._from_device)

    def write(self, data: bytes) -> int:
        self.host_wrote += data
        self._to_device.extend(self._line(data, "to_device"))
        return len(data)

    def flush(self):
        pass

    def reset_input_buffer(self):
        self._from_device.clear()

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, advancing the simulation until they came or ``timeout`` passed."""
        # Whole clock cycles only: a deadline between two clock edges would leave the simulator
        # past it, and the next, smaller step would go back in time.
        deadline = self.cycles + max(1, round(self.timeout * self.clk_freq))
        step = 10 * self.divisor   # one character time
        self._release()
        while len(self._from_device) < size and self.cycles < deadline:
            self.cycles = min(self.cycles + step, deadline)
            self.sim.run_until(self.cycles / self.clk_freq)
            self._release()
        out = bytes(self._from_device[:size])
        del self._from_device[:size]
        return out

    def close(self):
        pass


@dataclass
class Soak:
    """What :func:`soak_link` saw: the driver's results and statistics and the line's logs.

    Members
    -------
    net, pixels
        The net and the images (uint8, (N, input size)) classified.
    results : list
        :meth:`Device.classify`'s answer, one :class:`~hdlgen.boards.link.Result` per image.
    stats : ClassifyStats
    port : SimulatedSerial
        The line, its :class:`LineFaults` (``port.faults``) and logs.
    top : HostLink
    device : Device
        The host driver.
    seconds : float
        Wall time of the classification.
    line_seconds : float
        Simulated time of the classification: what the board and the line took.
    """

    net: object
    pixels: np.ndarray
    results: list
    stats: object
    port: SimulatedSerial
    top: object
    device: object
    seconds: float
    line_seconds: float = 0.0

    def recover(self, pixels) -> tuple[list, object]:
        """Classify ``pixels`` on the same board (no reset) once the line is clean: (results, stats).

        The faults are switched off and the line read until it is silent for the port's timeout,
        longer than the board's, so late answers are gone and the board has abandoned any frame
        the faults left half-received.
        """
        from .host import ClassifyStats

        self.port.faults = None
        while self.port.read(256):
            pass
        stats = ClassifyStats()
        return self.device.classify(pixels, stats=stats), stats

    def check(self) -> dict:
        """Audit the soak against the golden model and the line's logs; returns the counts.

        Raises AssertionError unless: every image has one result, equal to
        :func:`hdlgen.golden.run_batch` (label and logits; for the first 50 images also to
        :func:`~hdlgen.golden.run_events`);
        no two images got the result of one sequence number; each result's sequence number is a
        CLASSIFY the host wrote for that image; the board sent at most one RESULT per sequence
        number and only for a CLASSIFY that reached it intact, each equal to the golden model of
        that request's image, with ``0 ≤ input_cycles < cycles``.
        """
        from .. import golden
        from . import link

        ref = golden.run_batch(self.net, self.pixels)
        problems = []
        if len(self.results) != len(self.pixels) or any(r is None for r in self.results):
            problems.append(f"{sum(r is None for r in self.results)} of {len(self.pixels)} images unanswered")
        seqs = [r.seq for r in self.results if r is not None]
        if len(set(seqs)) != len(seqs):
            problems.append(f"sequence numbers answered twice: {[s for s, n in Counter(seqs).items() if n > 1][:5]}")

        def classify_frames(data):
            # only CLASSIFY headers: a damaged length would hold back the frames behind it
            decoder = link.FrameDecoder(lengths={link.MessageType.CLASSIFY: (2 + self.net.input.size,)})
            frames = decoder.feed(bytes(data))
            return [(int.from_bytes(f.payload[:2], "little"), f.payload[2:]) for f in frames]

        # seq → the pixels it carried, from what the host wrote (no seq is written twice); equal
        # images have equal answers, so the golden model's are looked up by pixels
        requests = classify_frames(self.port.host_wrote)
        golden_of = {}
        for i, p in enumerate(self.pixels):
            golden_of.setdefault(p.tobytes(), i)
        image_of = dict(requests)
        if len(image_of) != len(requests):
            problems.append("the host reused a sequence number")
        intact = {seq for seq, _ in classify_frames(self.port.board_received)}
        decoder = link.FrameDecoder(lengths=link.response_lengths(self.net.classes))
        board_results = [link.parse_response(f) for f in decoder.feed(bytes(self.port.board_sent))]
        board_results = [r for r in board_results if isinstance(r, link.Result)]
        sent_twice = [s for s, n in Counter(r.seq for r in board_results).items() if n > 1]
        if sent_twice:
            problems.append(f"the board answered sequence numbers twice: {sent_twice[:5]}")
        for r in board_results:
            if r.seq not in image_of or r.seq not in intact:
                problems.append(f"RESULT {r.seq} answers no intact CLASSIFY")
                continue
            i = golden_of[image_of[r.seq]]
            if (r.label, list(r.logits)) != (int(ref.classes[i]), ref.logits[i].tolist()):
                problems.append(f"RESULT {r.seq} (image {i}): {r.label} {r.logits}, golden {ref.classes[i]} "
                                f"{ref.logits[i].tolist()}")
            # the latency is not the image's alone: the core may still be busy with the one before
            if not 0 <= r.input_cycles < r.cycles:
                problems.append(f"RESULT {r.seq} (image {i}): cycles {r.cycles}, input {r.input_cycles}")
        for i, r in enumerate(self.results):
            if r is None:
                continue
            if image_of.get(r.seq) != self.pixels[i].tobytes():
                problems.append(f"image {i} got the result of seq {r.seq}, a request for other pixels")
            if (r.label, list(r.logits)) != (int(ref.classes[i]), ref.logits[i].tolist()):
                problems.append(f"image {i}: {r.label} {r.logits}, golden {ref.classes[i]} {ref.logits[i].tolist()}")
            if i < 50:   # the event form too, for a sample (it is slower than the batch form)
                events = golden.run_events(self.net, self.pixels[i])
                if (r.label, list(r.logits)) != (events.label, events.logits.tolist()):
                    problems.append(f"image {i}: the event form gives {events.label} {events.logits.tolist()}")
        assert not problems, f"{len(problems)} problems, first: " + "; ".join(problems[:5])
        return {"images": len(self.pixels), "requests_sent": self.stats.sent, "retries": self.stats.retries,
                "errors": dict(self.stats.errors), "board_results": len(board_results),
                "late_results_dropped": len(board_results) - len(self.results),
                "intact_requests_at_board": len(intact)}


def soak_link(net, pixels, *, seed: int, clk_freq: float = 1e6, baud: int = 250_000, board_timeout: float = 3e-4,
              port_timeout: float = 1.2e-3, rate: float = 0.01, stall_rate: float = 0.001, max_stall: float = 1.5e-3,
              retries: int = 30, window: int | None = 2, device=None, core=None) -> Soak:
    """Classify ``pixels`` on a simulated board top (:class:`~hdlgen.boards.host_link.HostLink`
    around a :class:`~hdlgen.rtl_templates.top.NetworkTop` of ``net``) with the host driver, over
    a line with :class:`LineFaults` (``seed``, ``rate``, ``stall_rate``, ``max_stall``).

    The defaults make frames short: 4 clock cycles per bit (the fewest the UART takes), a board
    timeout of 0.3 ms (7.5 characters) and a host read timeout of 1.2 ms, longer than the board
    takes to answer two requests in flight. ``device`` makes the driver (default
    :class:`~hdlgen.boards.host.Device` with ``retries`` and ``window``; None: the driver's
    default for the line's rate) from the port. ``clk_freq`` and ``baud`` set the line's speed:
    12 MHz and 3 Mbaud is the iCEBreaker's link. ``core`` replaces the default ``NetworkTop(net)``
    (e.g. one with more lanes).
    """
    from amaranth.sim import Simulator

    from ..rtl_templates.top import NetworkTop
    from .host import ClassifyStats, Device
    from .host_link import HostLink

    top = HostLink(net, NetworkTop(net) if core is None else core, clk_freq=clk_freq, baud=baud, timeout=board_timeout)
    sim = Simulator(top)
    sim.add_clock(1 / clk_freq)
    faults = LineFaults(seed, rate=rate, stall_rate=stall_rate, max_stall=max_stall)
    port = SimulatedSerial(sim, top.rx, top.tx, divisor=top.divisor, clk_freq=clk_freq, timeout=port_timeout,
                           faults=faults)
    device = device(port) if device is not None else Device(port, window=window, retries=retries)
    device.check(net)   # as ``hdlgen run`` does: INFO over the faulty line, then the images
    stats = ClassifyStats()
    start, start_cycles = time.perf_counter(), port.cycles
    results = device.classify(pixels, stats=stats)
    return Soak(net, np.asarray(pixels, dtype=np.uint8), results, stats, port, top, device, time.perf_counter() - start,
                (port.cycles - start_cycles) / clk_freq)
