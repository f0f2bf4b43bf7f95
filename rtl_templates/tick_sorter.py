"""Reorder one image's spikes from neuron order into tick order."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .events import event_layout, skid_buffer

__all__ = ["TickSorter"]


class TickSorter(wiring.Component):
    """Per-tick linked lists that turn a neuron-ordered spike stream into a tick-ordered one.

    Collect phase: every event ``(neuron, tick)`` is appended to the list of its tick, one per
    cycle, always accepted. Lists live in three small block RAMs – ``head`` and ``tail`` per
    tick, a ``next`` link per neuron – plus a ``filled`` bit per tick; an append reads
    ``tail[tick]`` (the read port is transparent, so back-to-back appends to one tick see each
    other) and writes ``next[tail]`` or ``head[tick]``, and ``tail[tick]``. The ``end`` event
    starts the emit phase: ticks ``0..T−1`` are walked in order, each list emitted from head to
    tail (one event per cycle), then ``end`` is emitted and the sorter collects again. Appending
    in arrival order keeps neurons of one tick in arrival order, so events that arrive in
    increasing neuron order leave sorted by (tick, neuron). The link memory has one address for
    its write (collect) and its read (emit), so it is a single-port block RAM and the walk's
    loop – link memory output → next link address – is one multiplexer; events leave through a
    skid buffer (:func:`~hdlgen.rtl_templates.events.skid_buffer`), so ``o.ready`` stops there.

    Cycles per image: events in + 1, then one per tick + one per non-empty tick + events out + 1,
    and the last event reaches ``o`` a cycle later (the skid buffer).

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
        m.submodules.head = head = Memory(shape=index_shape, depth=ticks, init=[])
        m.submodules.tail = tail = Memory(shape=index_shape, depth=ticks, init=[])
        m.submodules.links = links = Memory(shape=index_shape, depth=self.neurons, init=[])
        head_write, tail_write, link_write = head.write_port(), tail.write_port(), links.write_port()
        head_read = head.read_port(transparent_for=(head_write,))
        tail_read = tail.read_port(transparent_for=(tail_write,))
        link_read = links.read_port()
        filled = Signal(ticks)
        walk_tail = Signal(index_shape)   # tail[tick] while its list is walked

        # Read ports are addressed with the value a register takes next cycle, so their data
        # always belongs to the register's current value: head/tail[tick], next[current] (the
        # link memory while emitting, see below).
        tick, tick_next = Signal(range(ticks + 1)), Signal(range(ticks + 1))
        current, current_next = Signal(index_shape), Signal(index_shape)
        # ``current`` follows a link or a list head: both selects come from registers and
        # ``o.ready`` only, so the link memory's output passes one multiplexer to the next address
        take_head, take_link = Signal(), Signal()
        m.d.comb += [tick_next.eq(tick),
                     current_next.eq(Mux(take_link, link_read.data, Mux(take_head, head_read.data, current))),
                     head_read.addr.eq(tick_next), tail_read.addr.eq(tick_next)]
        m.d.sync += [tick.eq(tick_next), current.eq(current_next)]
        # ``current`` ends its list: a compare of two registers (comparing the link memory's
        # output instead would add it to the memory's slow clock-to-output)
        at_tail = Signal()
        m.d.comb += at_tail.eq(current == walk_tail)

        # Links are written only while collecting and read only while emitting, through one
        # address: the memory gets a single read/write port, and no logic that resolves a read
        # meeting a write on another port sits on the walk's path from the link memory's output
        # back to its address.
        # append, second cycle: tail[tick] of the event taken last cycle has arrived
        appending, append_tick, append_neuron = Signal(), Signal(range(ticks)), Signal(index_shape)
        link_addr = Signal(index_shape)
        # ``take_link`` (emitting) and ``appending`` (collecting) never meet, so the link memory's
        # output is the last multiplexer's input: one LUT between its output and its address
        m.d.comb += [link_addr.eq(Mux(take_link, link_read.data,
                                      Mux(appending, tail_read.data, Mux(take_head, head_read.data, current)))),
                     link_read.addr.eq(link_addr), link_write.addr.eq(link_addr)]
        m.d.sync += appending.eq(0)
        with m.If(appending):
            with m.If(filled.bit_select(append_tick, 1)):
                m.d.comb += [link_write.data.eq(append_neuron), link_write.en.eq(1)]
            with m.Else():
                m.d.comb += [head_write.addr.eq(append_tick), head_write.data.eq(append_neuron),
                             head_write.en.eq(1)]
            m.d.comb += [tail_write.addr.eq(append_tick), tail_write.data.eq(append_neuron), tail_write.en.eq(1)]
            m.d.sync += filled.bit_select(append_tick, 1).eq(1)

        # Events leave through a skid buffer: ``emit.ready`` is a register, so the consumer's
        # ready (often a long chain through its own pipeline) stops at the buffer instead of
        # reaching the walk's next read addresses.
        emit = stream.Signature(event_layout(self.neurons, ticks)).create(path=("emit",))
        skid_buffer(m, emit, self.o)

        with m.FSM(name="phase"):
            with m.State("collect"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & self.i.payload.end):
                    m.d.comb += tick_next.eq(0)
                    m.next = "seek"
                with m.Elif(self.i.valid):
                    m.d.comb += tail_read.addr.eq(self.i.payload.tick)
                    m.d.sync += [appending.eq(1), append_tick.eq(self.i.payload.tick),
                                 append_neuron.eq(self.i.payload.neuron)]
            # While emitting, ``filled`` shifts right as the tick advances (bit 0 is this tick's):
            # no wide mux sits between ``emit.ready`` (a register) and the next read addresses.
            with m.State("seek"):
                with m.If(tick == ticks):
                    m.d.comb += [emit.valid.eq(1), emit.payload.end.eq(1)]
                    with m.If(emit.ready):
                        m.next = "collect"
                with m.Elif(filled[0]):
                    m.d.comb += take_head.eq(1)
                    m.d.sync += walk_tail.eq(tail_read.data)
                    m.next = "walk"
                with m.Else():
                    m.d.comb += tick_next.eq(tick + 1)
                    m.d.sync += filled.eq(filled >> 1)
            with m.State("walk"):
                m.d.comb += [emit.valid.eq(1), emit.payload.neuron.eq(current),
                             emit.payload.tick.eq(tick)]
                with m.If(emit.ready):
                    with m.If(at_tail):
                        m.d.comb += tick_next.eq(tick + 1)
                        m.d.sync += filled.eq(filled >> 1)
                        m.next = "seek"
                    with m.Else():
                        m.d.comb += take_link.eq(1)
        return m
