"""Spike-time unit bank: accumulator words → output spikes in tick order."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import DenseGeometry, ladder_steps
from hdlgen.ttfs import unsigned_width

from .events import acc_word_layout, event_layout
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

    Neurons are handled one per cycle in index order; their spikes go into a
    :class:`TickSorter`, which emits them by tick (ties: increasing neuron), then ``end``.

    Parameters
    ----------
    geometry : DenseGeometry or ConvGeometry
        A hidden layer's (with ``k``; a convolution's is per output channel, neurons in
        (channel, row, column) order); its ``out_lanes`` are the lanes of the accumulator words
        on ``i`` (those of a dense engine, 1 after a conv engine).

    Members
    -------
    i : In(stream.Signature(acc_word_layout(acc_width, lanes)))
        One image's accumulator words, ``last`` on the final one.
    o : Out(stream.Signature(event_layout(fan_out, T)))
        The layer's spikes in tick order, then ``end``.
    """

    def __init__(self, geometry: DenseGeometry):
        layer = geometry.layer
        if not geometry.fires:
            raise ValueError(f"layer {layer.name!r} is the readout; it has no spike-time units")
        self.layer = layer
        self.lanes = geometry.out_lanes
        self.words = geometry.out_words
        self.acc_width = geometry.acc_width
        self.shared_k = geometry.shared_k
        super().__init__({
            "i": In(stream.Signature(acc_word_layout(self.acc_width, self.lanes))),
            "o": Out(stream.Signature(event_layout(layer.fan_out, layer.ticks))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, lanes, ticks = self.layer, self.lanes, self.layer.ticks
        fan_out = layer.fan_out
        m.submodules.sorter = sorter = TickSorter(fan_out, ticks)
        wiring.connect(m, sorter.o, wiring.flipped(self.o))

        # serialize the word's lanes: one neuron per cycle
        lane = Signal(range(lanes))
        neuron = Signal(range(self.words * lanes))
        closing = Signal()      # the image's end marker is in the ladder; hold the next image
        take = Signal()
        m.d.comb += [take.eq(self.i.valid & sorter.i.ready & ~closing),
                     self.i.ready.eq(take & (lane == lanes - 1))]
        image_done = self.i.ready & self.i.payload.last
        with m.If(take):
            m.d.sync += [lane.eq(Mux(lane == lanes - 1, 0, lane + 1)), neuron.eq(neuron + 1)]
            with m.If(image_done):
                m.d.sync += [neuron.eq(0), closing.eq(1)]

        # stage 0 (registers): potential and K; the end marker trails the last neuron
        k_width = unsigned_width(int(layer.k.max()))
        neuron_shape = range(self.words * lanes)
        valid, end = Signal(name="valid0"), Signal(name="end0")
        potential = Signal(signed(self.acc_width), name="rem0")
        end_due = Signal()
        m.d.sync += [end_due.eq(take & image_done), end.eq(end_due),
                     valid.eq(take & (neuron < fan_out)),
                     potential.eq(self.i.payload.acc[lane])]
        if self.shared_k:
            k = Const(int(layer.k[0]), unsigned(k_width))
        else:
            m.submodules.k = k_rom = Memory(shape=unsigned(k_width), depth=fan_out,
                                            init=[int(v) for v in layer.k_per_neuron()])
            k_read = k_rom.read_port()
            m.d.comb += k_read.addr.eq(neuron)
            # one more stage: K leaves the block RAM into a register before the first compare
            k = Signal(unsigned(k_width), name="k0")
            staged = Signal(name="valid0k"), Signal(name="end0k"), Signal(signed(self.acc_width), name="rem0k")
            m.d.sync += [k.eq(k_read.data)] + [to.eq(frm) for to, frm in zip(staged, (valid, end, potential))]
            valid, end, potential = staged
        rem = potential
        saturated = Const(0)
        q = Const(0, range(ticks + 1))

        # stage 1: A ≥ K·T fires at tick 0; stages 2..: one restoring-division step per bit of
        # q < T (the remainder stays below K·2^bit, so each bit is one compare-subtract; a
        # negative A never fits and gives q = 0)
        steps = [None] + list(reversed(range(ladder_steps(ticks))))
        for n, bit in enumerate(steps, start=1):
            regs = {"valid": Signal(name=f"valid{n}"), "end": Signal(name=f"end{n}"),
                    "rem": Signal(signed(self.acc_width), name=f"rem{n}"),
                    "k": Signal(unsigned(k_width), name=f"k{n}"),
                    "q": Signal(range(ticks + 1), name=f"q{n}"),
                    "saturated": Signal(name=f"saturated{n}")}
            m.d.sync += [regs["valid"].eq(valid), regs["end"].eq(end),
                         regs["rem"].eq(rem), regs["q"].eq(q)]
            if self.shared_k:
                regs["k"] = k   # a constant needs no pipeline register
            else:
                m.d.sync += regs["k"].eq(k)
            if bit is None:
                m.d.sync += regs["saturated"].eq(rem >= k * ticks)
            else:
                step = k << bit
                m.d.sync += regs["saturated"].eq(saturated)
                with m.If(rem >= step):
                    m.d.sync += [regs["rem"].eq(rem - step), regs["q"].eq(q | (1 << bit))]
            valid, end, rem, k, q, saturated = (regs["valid"], regs["end"], regs["rem"], regs["k"],
                                                regs["q"], regs["saturated"])

        # last stage: the fire tick T − q, registered so the sorter's list address starts at a flip-flop.
        # Valid neurons leave the ladder in index order from 0, so a count of them names each one
        # (no index travels down the ladder).
        fire_q = Mux(saturated, ticks, q)
        fires, fire_tick = Signal(), Signal(range(ticks + 1))
        fire_end, fire_who, leaving = Signal(), Signal(neuron_shape), Signal(neuron_shape)
        m.d.sync += [fires.eq(valid & (fire_q != 0)), fire_tick.eq(ticks - fire_q), fire_end.eq(end),
                     fire_who.eq(leaving)]
        with m.If(end):
            m.d.sync += leaving.eq(0)
        with m.Elif(valid):
            m.d.sync += leaving.eq(leaving + 1)
        with m.If(fire_end):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.end.eq(1)]
            m.d.sync += closing.eq(0)
        with m.Elif(fires):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.neuron.eq(fire_who),
                         sorter.i.payload.tick.eq(fire_tick)]
        return m
