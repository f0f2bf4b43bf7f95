"""Spike-time unit bank: accumulator words → output spikes in tick order."""

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import DenseGeometry, ceil_div, ladder_steps, pack_words
from hdlgen.ttfs import layer_bounds, unsigned_width

from .dense import RETIMED
from .events import acc_word_layout, event_layout
from .formal import stream_ports
from .tick_sorter import TickSorter

__all__ = ["SpikeTimeBank"]


class SpikeTimeBank(wiring.Component):
    """Fire tick of every neuron of a hidden layer, emitted in tick order.

    Neuron ``i`` with potential ``A`` fires at the first output tick ``t`` with
    ``A ≥ K_i·(T − t)`` (the threshold falls by ``K_i`` per tick), i.e.

        ``q = clamp(floor(A / K_i), 0, T)``, fire tick ``T − q``, no spike for ``q = 0``

    (so any ``A < K_i``, negative ones included, gives no spike and ``A ≥ K_i·T`` fires at
    tick 0). The ladder is searched in binary rather than with ``T`` comparators: first
    ``A ≥ K·T``, then a restoring division for the bits of ``q < T`` (one compare-subtract
    per bit, each a pipeline stage). ``K`` is a constant when all neurons share it, else a
    per-neuron ROM whose output is registered (one more stage) before the first compare.

    There are ``spike_lanes`` ladders (the geometry's; a divisor of the lanes, all of them by
    default): a word of ``lanes`` potentials goes through in ``lanes / spike_lanes`` cycles,
    each part's fire ticks into a :class:`TickSorter` with a bank per ladder, which emits them
    by tick (within a tick bank by bank), then ``end``. With ``timing.registered_gather``
    (:class:`~hdlgen.rtl_templates.dense.EngineTiming`) and fewer ladders than lanes, each word
    is registered before its parts are chosen: a cycle more per image.

    Parameters
    ----------
    geometry : DenseGeometry or ConvGeometry
        A hidden layer's (with ``k``; a convolution's is per output channel, neurons in
        (channel, row, column) order): the lanes and words of the accumulator words on ``i``.

    Members
    -------
    i : In(stream.Signature(acc_word_layout(acc_width, lanes)))
        One image's ``out_words`` accumulator words, channel word ``w`` by channel word, each
        over the ``positions`` in order: lane ``l`` holds channel ``w·lanes + l`` (neuron
        ``channel·positions + position``; a dense layer has one position), ``last`` on the
        final one.
    o : Out(stream.Signature(event_layout(fan_out, T)))
        The layer's spikes in tick order, then ``end``.

    Attributes
    ----------
    timing : EngineTiming
        The family's timing structures (:data:`~hdlgen.rtl_templates.dense.RETIMED` unless set
        before elaboration, as :class:`~hdlgen.rtl_templates.top.NetworkTop` does).
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: DenseGeometry):
        layer = geometry.layer
        if not geometry.fires:
            raise ValueError(f"layer {layer.name!r} is the readout; it has no spike-time units")
        self.layer = layer
        self.lanes, self.words, self.positions = geometry.lanes, geometry.words, geometry.positions
        self.spike_lanes = geometry.spike_lanes
        self.acc_width = geometry.acc_width
        self.shared_k = geometry.shared_k
        self.timing = RETIMED
        super().__init__({
            "i": In(stream.Signature(acc_word_layout(self.acc_width, self.lanes))),
            "o": Out(stream.Signature(event_layout(layer.fan_out, layer.ticks))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, spike_lanes, ticks = self.layer, self.spike_lanes, self.layer.ticks
        positions, subwords = self.positions, self.lanes // self.spike_lanes
        channels = layer.fan_out // positions
        blocks = self.words * subwords          # channel blocks of ``spike_lanes`` channels
        m.submodules.sorter = sorter = TickSorter(layer.fan_out, ticks, spike_lanes, positions)
        wiring.connect(m, sorter.o, wiring.flipped(self.o))

        # ``spike_lanes`` potentials per cycle while the sorter collects: each word in
        # ``subwords`` parts (sub-word ``s`` holds channel block ``w·subwords + s``); the image's
        # end marker trails the last word down the ladder, and the next image waits until the
        # sorter has it
        sub, position = Signal(range(subwords)), Signal(range(positions))
        block_base = Signal(range(blocks))      # channel block of sub-word 0 of this word
        closing = Signal()
        take = Signal()
        m.d.comb += [take.eq(self.i.valid & sorter.i.ready & ~closing),
                     self.i.ready.eq(take & (sub == subwords - 1))]
        image_done = self.i.ready & self.i.payload.last
        with m.If(take):
            m.d.sync += sub.eq(Mux(sub == subwords - 1, 0, sub + 1))
            with m.If(sub == subwords - 1):
                m.d.sync += position.eq(Mux(position == positions - 1, 0, position + 1))
                with m.If(position == positions - 1):
                    m.d.sync += block_base.eq(block_base + subwords)
            with m.If(image_done):
                m.d.sync += [closing.eq(1), block_base.eq(0), position.eq(0)]
        block = Signal(range(blocks))
        m.d.comb += block.eq(block_base + sub)
        acc = self.i.payload.acc
        if subwords > 1 and self.timing.registered_gather:
            # the word and where the walk is in it, one stage later: no enable, so no fan-out of
            # ``i.ready`` to the word's flip-flops, and the word's path into a ladder's part
            # multiplexer starts at a flip-flop near it rather than in the sender's memory
            held = [Signal(acc.shape(), name="gather_acc"), Signal(name="gather_take"), Signal.like(sub, name="gather_sub"),
                    Signal.like(position, name="gather_position"), Signal.like(block, name="gather_block"),
                    Signal(name="gather_done")]
            m.d.sync += [r.eq(v) for r, v in zip(held, [acc, take, sub, position, block, image_done])]
            acc, take, sub, position, block, image_done = held

        # stage 0 (registers): the potentials, K, the sorter's word and which lanes are channels
        k_width = unsigned_width(int(layer.k.max()))
        valid, end = Signal(name="valid"), Signal(name="end")
        tag, present = Signal(sorter.i.payload.word.shape(), name="word"), Signal(spike_lanes, name="present")
        end_due = Signal()
        potentials = [Signal(signed(self.acc_width), name=f"potential{g}") for g in range(spike_lanes)]
        stage0 = potentials
        shift = (positions - 1).bit_length()
        m.d.sync += [end_due.eq(image_done), end.eq(end_due), valid.eq(take),
                     tag.eq(Cat(position, block) if shift else block),
                     present.eq(Cat(block < ceil_div(channels - g, spike_lanes) for g in range(spike_lanes)))]
        parts = [acc[part * spike_lanes:(part + 1) * spike_lanes] for part in range(subwords)]
        m.d.sync += [p.eq(Array(part[g] for part in parts)[sub] if subwords > 1 else parts[0][g])
                     for g, p in enumerate(potentials)]
        carried = [valid, end, tag, present]
        if self.shared_k:
            ks = [Const(int(layer.k[0]), unsigned(k_width))] * spike_lanes
        else:
            per_channel = np.zeros(blocks * spike_lanes, dtype=np.int64)
            per_channel[:channels] = layer.k_per_neuron()[::positions]
            m.submodules.k = k_rom = Memory(shape=unsigned(k_width * spike_lanes), depth=blocks,
                                            init=pack_words(per_channel.reshape(blocks, spike_lanes), k_width))
            k_read = k_rom.read_port()
            m.d.comb += k_read.addr.eq(block)
            # one more stage: K leaves the block RAM into a register before the first compare
            ks = [Signal(unsigned(k_width), name=f"k0_{g}") for g in range(spike_lanes)]
            m.d.sync += [k.eq(k_read.data[g * k_width:(g + 1) * k_width]) for g, k in enumerate(ks)]
            carried, potentials = _stage(m, "0k", carried), _stage(m, "0k", potentials)
        ladders = [_Ladder(m, g, rem, k, ticks, self.acc_width, k_width, self.shared_k)
                   for g, (rem, k) in enumerate(zip(potentials, ks))]

        # stage 1: A ≥ K·T fires at tick 0; stages 2..: one restoring-division step per bit of
        # q < T (the remainder stays below K·2^bit, so each bit is one compare-subtract; a
        # negative A never fits and gives q = 0)
        for n, bit in enumerate([None] + list(reversed(range(ladder_steps(ticks)))), start=1):
            carried = _stage(m, n, carried)
            for ladder in ladders:
                ladder.step(n, bit)

        # last stage: the fire ticks ``T − q`` (``T``: no spike, also for lanes past the last
        # channel), registered so the sorter's list addresses start at flip-flops
        valid, end, tag, present = carried
        fire_valid, fire_end, fire_word = Signal(), Signal(), Signal.like(tag, name="fire_word")
        fire_ticks = [Signal(range(ticks + 1), name=f"fire_tick{g}") for g in range(spike_lanes)]
        m.d.sync += [fire_valid.eq(valid), fire_end.eq(end), fire_word.eq(tag)]
        m.d.sync += [fire_tick.eq(ticks - Mux(present[g], ladder.q, 0))
                     for g, (ladder, fire_tick) in enumerate(zip(ladders, fire_ticks))]
        with m.If(fire_end):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.end.eq(1)]
            m.d.sync += closing.eq(0)
        with m.Elif(fire_valid):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.word.eq(fire_word)]
            m.d.comb += [sorter.i.payload.tick[g].eq(t) for g, t in enumerate(fire_ticks)]
        if self.formal:
            stream_ports(m, self)
            low, high = layer_bounds(layer)
            for acc in self.i.payload.acc:
                m.d.comb += Assume(~self.i.valid | (acc >= low) & (acc <= high))
            if "spike_time" in self.formal:
                # stage 0 → the fire tick registers: K's stage, A ≥ K·T, the bits, the fire tick
                delay = (0 if self.shared_k else 1) + 1 + ladder_steps(ticks) + 1
                self._fire_tick_property(m, _delayed(m, stage0, delay), fire_valid & ~fire_end, fire_word,
                                         fire_ticks, _delayed(m, [present], 1)[0])
        return m

    def _fire_tick_property(self, m, potentials, valid, word, fire_ticks, present):
        """Assert that each lane's fire tick is ``T − clamp(floor(A / K), 0, T)`` for the
        potential ``A`` it was computed from and its neuron's ``K`` (``T``, no spike, for a lane
        past the last channel); the first failing lane's neuron, ``A`` and tick are ``cex_*``."""
        layer, ticks, spike_lanes = self.layer, self.layer.ticks, self.spike_lanes
        shift = (self.positions - 1).bit_length()
        block, position = word[shift:], word[:shift]
        per_channel = layer.k_per_neuron()[::self.positions]
        channels = len(per_channel)
        k_table = Array(Const(int(k), unsigned_width(int(per_channel.max()))) for k in per_channel)
        cex = {name: Signal(shape, name=f"cex_{name}", attrs={"keep": 1}) for name, shape in
               [("neuron", range(layer.fan_out)), ("value", signed(self.acc_width)), ("tick", range(ticks + 1)),
                ("k", unsigned_width(int(per_channel.max())))]}
        checks = []
        for g, (a, tick) in enumerate(zip(potentials, fire_ticks)):
            channel = block * spike_lanes + g if spike_lanes > 1 else block
            k = k_table[channel]
            q = ticks - tick
            fires_right = ((q == 0) | (a >= k * q)) & ((q == ticks) | (a < k * (q + 1)))
            ok = Mux(present[g], fires_right & (channel < channels), tick == ticks)
            checks.append((ok, channel * self.positions + position if self.positions > 1 else channel, a, tick, k))
        for ok, neuron, a, tick, k in reversed(checks):
            with m.If(valid & ~ok):
                m.d.comb += [cex["neuron"].eq(neuron), cex["value"].eq(a), cex["tick"].eq(tick), cex["k"].eq(k)]
            m.d.comb += Assert(~valid | ok, "spike_time: fire tick = T − clamp(floor(A / K), 0, T)")


def _delayed(m, signals, cycles):
    """``signals`` delayed by ``cycles`` registers (formal properties' copies)."""
    for n in range(cycles):
        signals = _stage(m, f"f{n}", signals)
    return signals


def _stage(m, stage, signals):
    """Registered copies of ``signals`` (one pipeline stage), named ``<signal>_s<stage>``."""
    copies = [Signal.like(s, name=f"{s.name.split('_s')[0]}_s{stage}") for s in signals]
    m.d.sync += [c.eq(s) for c, s in zip(copies, signals)]
    return copies


class _Ladder:
    """One lane's comparator ladder: the remainder, ``K``, the bits of ``q`` found so far and
    whether ``A ≥ K·T``, one register set per stage."""

    def __init__(self, m, lane, rem, k, ticks, acc_width, k_width, shared_k):
        self.m, self.lane, self.ticks = m, lane, ticks
        self.acc_width, self.k_width, self.shared_k = acc_width, k_width, shared_k
        self.rem, self.k = rem, k
        self.bits = Const(0, range(ticks + 1))
        self.saturated = Const(0)

    def step(self, n, bit):
        m, lane = self.m, self.lane
        rem = Signal(signed(self.acc_width), name=f"rem{n}_{lane}")
        bits = Signal(range(self.ticks + 1), name=f"q{n}_{lane}")
        saturated = Signal(name=f"saturated{n}_{lane}")
        m.d.sync += [rem.eq(self.rem), bits.eq(self.bits)]
        k = self.k
        if not self.shared_k:   # a constant needs no pipeline register
            k = Signal(unsigned(self.k_width), name=f"k{n}_{lane}")
            m.d.sync += k.eq(self.k)
        if bit is None:
            m.d.sync += saturated.eq(self.rem >= self.k * self.ticks)
        else:
            step = self.k << bit
            m.d.sync += saturated.eq(self.saturated)
            with m.If(self.rem >= step):
                m.d.sync += [rem.eq(self.rem - step), bits.eq(self.bits | (1 << bit))]
        self.rem, self.k, self.bits, self.saturated = rem, k, bits, saturated

    @property
    def q(self):
        """``clamp(floor(A / K), 0, T)`` after the last stage."""
        return Mux(self.saturated, self.ticks, self.bits)
