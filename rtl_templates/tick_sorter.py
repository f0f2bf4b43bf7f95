"""Reorder one image's spikes from neuron order into tick order."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .events import event_layout

__all__ = ["TickSorter"]


class TickSorter(wiring.Component):
    """Per-tick linked lists that turn a neuron-ordered spike stream into a tick-ordered one.

    Collect phase: every event ``(neuron, tick)`` is appended to the list of its tick (a head
    and tail register per tick, a ``next`` link per neuron in block RAM), one per cycle, always
    accepted. The ``end`` event starts the emit phase: ticks ``0..T−1`` are walked in order,
    each list emitted from head to tail (one event per cycle), then ``end`` is emitted and the
    sorter collects again. Appending in arrival order keeps neurons of one tick in arrival
    order, so events that arrive in increasing neuron order leave sorted by (tick, neuron).

    Cycles per image: events in + one per tick + one per non-empty tick + events out + 1.

    Parameters
    ----------
    neurons : int
        Number of distinct neuron indices (``0..neurons−1``); each may appear at most once per image.
    ticks : int
        Window ``T``; event ticks are ``0..T−1``.

    Members
    -------
    i : In(stream.Signature(event_layout(neurons, ticks)))
        Events of one image in increasing neuron order, then ``end``. ``ready`` is high for the
        whole collect phase and low while emitting.
    o : Out(stream.Signature(event_layout(neurons, ticks)))
        The same events sorted by tick, then ``end``.
    """

    def __init__(self, neurons: int, ticks: int):
        if int(neurons) < 1 or int(ticks) < 1:
            raise ValueError(f"tick sorter needs ≥ 1 neuron and ≥ 1 tick, got {neurons} and {ticks}")
        self.neurons, self.ticks = int(neurons), int(ticks)
        layout = event_layout(self.neurons, self.ticks)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        ticks = self.ticks
        index_shape = self.i.payload.neuron.shape()
        head = Array(Signal(index_shape, name=f"head{t}") for t in range(ticks))
        tail = Array(Signal(index_shape, name=f"tail{t}") for t in range(ticks))
        filled = Signal(ticks)

        m.submodules.links = links = Memory(shape=index_shape, depth=self.neurons, init=[])
        link_write = links.write_port()
        link_read = links.read_port()

        tick = Signal(range(ticks + 1))
        # ``current`` is the event offered on ``o``; the link port is addressed with the value
        # ``current`` takes next cycle, so its data is always ``next[current]``.
        current = Signal(index_shape)
        current_next = Signal(index_shape)
        m.d.comb += [current_next.eq(current), link_read.addr.eq(current_next)]
        m.d.sync += current.eq(current_next)

        with m.FSM(name="phase"):
            with m.State("collect"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & self.i.payload.end):
                    m.d.sync += tick.eq(0)
                    m.next = "seek"
                with m.Elif(self.i.valid):
                    t, neuron = self.i.payload.tick, self.i.payload.neuron
                    with m.If(filled.bit_select(t, 1)):
                        m.d.comb += [link_write.addr.eq(tail[t]), link_write.data.eq(neuron),
                                     link_write.en.eq(1)]
                    with m.Else():
                        m.d.sync += head[t].eq(neuron)
                    m.d.sync += [tail[t].eq(neuron), filled.bit_select(t, 1).eq(1)]
            with m.State("seek"):
                with m.If(tick == ticks):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.end.eq(1)]
                    with m.If(self.o.ready):
                        m.d.sync += filled.eq(0)
                        m.next = "collect"
                with m.Elif(filled.bit_select(tick, 1)):
                    m.d.comb += current_next.eq(head[tick])
                    m.next = "walk"
                with m.Else():
                    m.d.sync += tick.eq(tick + 1)
            with m.State("walk"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.neuron.eq(current),
                             self.o.payload.tick.eq(tick)]
                with m.If(self.o.ready):
                    with m.If(current == tail[tick]):
                        m.d.sync += tick.eq(tick + 1)
                        m.next = "seek"
                    with m.Else():
                        m.d.comb += current_next.eq(link_read.data)
        return m
