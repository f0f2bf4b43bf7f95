"""Input encoder: pixel bytes → input spike events in tick order."""

from amaranth.hdl import Assert, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import InputGeometry
from hdlgen.ttfs import unsigned_width

from .events import event_group_layout, event_layout, times_constant
from .formal import stream_ports
from .sorter_pair import TickSorterPair
from .tick_sorter import TickSorter

# read ports of one copy of the tick table
TABLE_READ_PORTS = 8

__all__ = ["InputEncoder", "PixelPacker"]


class InputEncoder(wiring.Component):
    """Turn one image's pixel bytes into its input spikes, ``P`` pixels per transfer.

    Pixel ``j`` (the ``j``-th byte of the image) has activation ``q0 = table[pixel]`` and
    spikes at tick ``T0 − q0``; ``q0 = 0`` gives no spike. A 256-entry ROM in block RAM (one
    read port per pixel of a transfer) maps the byte straight to ``T0 − q0``.
    The ``P`` fire ticks of a transfer go into a :class:`TickSorter` with ``P`` banks (pixel
    ``j`` in bank ``j mod P``) in one cycle, which then emits them by tick, then ``end``.
    Pixels of the next image are accepted as soon as the sorter has emitted the previous image –
    or, with the geometry's two sorters (:class:`TickSorterPair`), as soon as the one before it has.
    Cycles per image: ``ceil(pixels / P) + 2`` to collect, then ``spikes + T0 + 1`` to emit.

    With the geometry's ``spikes_per_transfer`` ``S > 1`` (a first engine that takes ``S`` spikes
    a cycle, in any order) there is no sorter: each transfer's fire ticks are held and its
    spiking pixels leave ``S`` at a time in pixel order (the lowest first; a slot with no spike
    has tick ``T0``) while the next transfer is looked up; its first group leaves the cycle after
    the last of this one. Cycles per image: per transfer ``max(1, ceil(spikes / S))``, then
    ``end`` (one or two cycles).

    Parameters
    ----------
    geometry : InputGeometry
        The net's input encoding (``size`` pixels, window ``T0``, ``table``), the pixels
        per transfer ``P`` and the spikes per output transfer ``S``.

    Members
    -------
    pixels : In(stream.Signature(unsigned(8·P)))
        ``ceil(size / P)`` transfers per image, pixel ``j`` in byte ``j mod P`` of transfer
        ``j // P`` (the last transfer's bytes past the image are ignored), images back to back.
    o : Out(stream.Signature(event_layout(size, T0)))
        Input spike events, tick order, then ``end``; with ``S > 1``
        ``event_group_layout(size, T0, S)``: groups of up to ``S`` events, then ``end``.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: InputGeometry):
        if not isinstance(geometry, InputGeometry):
            raise TypeError(f"input encoder needs an InputGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.encoding = encoding = geometry.encoding
        slots = geometry.spikes_per_transfer
        out = (event_layout(encoding.size, encoding.ticks) if slots == 1
               else event_group_layout(encoding.size, encoding.ticks, slots))
        super().__init__({
            "pixels": In(stream.Signature(unsigned(8 * geometry.pixels_per_transfer))),
            "o": Out(stream.Signature(out)),
        })

    def elaborate(self, platform):
        m = Module()
        size, ticks = self.encoding.size, self.encoding.ticks
        per_transfer, transfers = self.geometry.pixels_per_transfer, self.geometry.transfers
        sorted_ = self.geometry.spikes_per_transfer == 1
        if sorted_:
            sorter_kind = TickSorterPair if self.geometry.sorters == 2 else TickSorter
            m.submodules.sorter = sorter = sorter_kind(size, ticks, per_transfer)
            wiring.connect(m, sorter.o, wiring.flipped(self.o))

        # the ROM holds the fire tick ``T0 − q0`` itself (``T0``: no spike), no subtractor after it;
        # a copy per TABLE_READ_PORTS pixels of a transfer (yosys' memory mapping aborts on a ROM
        # with 16 read ports)
        lookups = []
        for first in range(0, per_transfer, TABLE_READ_PORTS):
            table = Memory(shape=unsigned(unsigned_width(ticks)), depth=256,
                           init=[ticks - int(v) for v in self.encoding.table])
            m.submodules[f"table{first // TABLE_READ_PORTS}" if first else "table"] = table
            lookups += [table.read_port() for _ in range(min(TABLE_READ_PORTS, per_transfer - first))]

        index = Signal(range(transfers))
        looked_up = Signal()            # the lookups hold the fire ticks of transfer ``looked_index``
        looked_index = Signal(range(transfers))
        looked_last = Signal()
        closing = Signal()              # the image's ``end`` is due

        # The sorter accepts every word while collecting, so a transfer taken now can be passed
        # on next cycle without a stall.
        accept = self.pixels.valid & self.pixels.ready
        if sorted_:
            m.d.comb += self.pixels.ready.eq(sorter.i.ready & ~(looked_up & looked_last) & ~closing)
        for p, lookup in enumerate(lookups):
            m.d.comb += [lookup.addr.eq(self.pixels.payload[8 * p:8 * p + 8]), lookup.en.eq(accept)]
        if sorted_:
            m.d.sync += looked_up.eq(accept)
        with m.If(accept):
            m.d.sync += [looked_index.eq(index), looked_last.eq(index == transfers - 1),
                         index.eq(Mux(index == transfers - 1, 0, index + 1))]

        # bytes of the last transfer past the image carry no spike
        in_last = size - (transfers - 1) * per_transfer

        def fire_ticks():
            return [Mux(looked_last, ticks, lookup.data) if p >= in_last else lookup.data
                    for p, lookup in enumerate(lookups)]

        if sorted_:
            with m.If(closing):
                m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.end.eq(1)]
                with m.If(sorter.i.ready):
                    m.d.sync += closing.eq(0)
            with m.Elif(looked_up):
                m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.word.eq(looked_index)]
                m.d.comb += [sorter.i.payload.tick[p].eq(tick) for p, tick in enumerate(fire_ticks())]
                with m.If(looked_last):
                    m.d.sync += closing.eq(1)
        else:
            self._emit_groups(m, accept, fire_ticks(), (looked_up, looked_index, looked_last), closing)
        if self.formal:
            stream_ports(m, self, inputs=("pixels",))
        return m

    def _emit_groups(self, m, accept, fire_ticks, looked, closing):
        """Each transfer's spiking pixels, ``S`` at a time in pixel order, then ``end`` (no sorter)."""
        ticks, per_transfer = self.encoding.ticks, self.geometry.pixels_per_transfer
        looked_up, looked_index, looked_last = looked
        slots = self.geometry.spikes_per_transfer
        pending = Signal(per_transfer)      # the held transfer's spiking pixels not yet sent
        # and how many: whether this group is the transfer's last comes from a register, not from
        # the slots' choice (the next transfer's load, and through it pixels.ready, wait on that)
        pending_count = Signal(range(per_transfer + 1))
        held_ticks = [Signal(unsigned_width(ticks), name=f"held_tick{p}") for p in range(per_transfer)]
        held_base = Signal.like(self.o.payload.neuron[0], name="held_base")   # the transfer's first pixel
        held_last = Signal()                # the held transfer is its image's last, its end not yet due

        # slot s takes the s-th lowest pending pixel: its one-hot bit (a carry chain), then its position
        # and tick as ORs over the pixels it may be (no chain of multiplexers through every pixel)
        rest = pending
        m.d.comb += [self.o.valid.eq(closing | pending.any()), self.o.payload.end.eq(closing)]
        for s in range(slots):
            lowest = Signal(per_transfer, name=f"slot{s}_pixel")
            m.d.comb += lowest.eq(rest & (~rest + 1))
            position = Cat(Cat(lowest[p] for p in range(per_transfer) if p >> bit & 1).any()
                           for bit in range(max(1, (per_transfer - 1).bit_length())))
            tick = [Cat(lowest[p] & held_ticks[p][bit] for p in range(per_transfer)).any()
                    for bit in range(len(held_ticks[0]))]
            m.d.comb += [self.o.payload.neuron[s].eq(held_base + position),
                         self.o.payload.tick[s].eq(Mux(rest.any(), Cat(*tick), ticks))]
            rest = rest & ~lowest

        take = self.o.valid & self.o.ready
        sent = take & ~closing
        with m.If(sent):
            m.d.sync += [pending.eq(rest), pending_count.eq(Mux(pending_count > slots, pending_count - slots, 0))]
        with m.If(take & closing):
            m.d.sync += closing.eq(0)
        held_done = (pending_count == 0) | (sent & (pending_count <= slots))   # nothing of it left after this cycle
        queue_end = held_last & held_done & ~closing
        # (not under an ``end`` that waits: its payload holds the held transfer's slots, and must stay)
        load = looked_up & held_done & (~held_last | queue_end) & (~closing | take)
        with m.If(queue_end):
            m.d.sync += [closing.eq(1), held_last.eq(0)]
        with m.If(load):
            spiking = [tick != ticks for tick in fire_ticks]
            m.d.sync += [pending.eq(Cat(*spiking)), pending_count.eq(sum(spiking[1:], spiking[0])),
                         held_last.eq(looked_last), held_base.eq(times_constant(looked_index, per_transfer))]
            m.d.sync += [held.eq(tick) for held, tick in zip(held_ticks, fire_ticks)]
        m.d.comb += self.pixels.ready.eq(~looked_up | load)
        with m.If(accept):
            m.d.sync += looked_up.eq(1)
        with m.Elif(load):
            m.d.sync += looked_up.eq(0)
        if self.formal:     # the invariant the stream proof's induction needs
            bits = [pending[p] for p in range(per_transfer)]
            m.d.comb += Assert(pending_count == sum(bits[1:], bits[0]), "encoder invariant: the pending count")


class PixelPacker(wiring.Component):
    """Bytes one at a time → the core's pixel transfers of ``P`` pixels (for a source, such as a
    UART link, that delivers a byte at a time).

    Byte ``j`` of an image goes to byte ``j mod P`` of transfer ``j // P``; a transfer leaves
    when its ``P`` bytes are in or the image's last byte is (the rest of it zero). A byte is
    taken whenever the transfer being filled is not waiting for ``o.ready``.

    Parameters
    ----------
    geometry : InputGeometry
        The image size and ``P``.

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Pixel bytes, images back to back.
    o : Out(stream.Signature(unsigned(8·P)))
        The same pixels, ``P`` per transfer.
    """

    def __init__(self, geometry: InputGeometry):
        if not isinstance(geometry, InputGeometry):
            raise TypeError(f"pixel packer needs an InputGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        super().__init__({"i": In(stream.Signature(unsigned(8))),
                          "o": Out(stream.Signature(unsigned(8 * geometry.pixels_per_transfer)))})

    def elaborate(self, platform):
        m = Module()
        per_transfer, size = self.geometry.pixels_per_transfer, self.geometry.encoding.size
        pixel = Signal(range(size))           # of the next byte in its image
        lane = Signal(range(per_transfer))    # its byte in the transfer
        filled = Signal(8 * per_transfer)
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full), self.o.payload.eq(filled)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [full.eq(0), filled.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [filled.word_select(lane, 8).eq(self.i.payload),
                         pixel.eq(Mux(pixel == size - 1, 0, pixel + 1)),
                         lane.eq(Mux((lane == per_transfer - 1) | (pixel == size - 1), 0, lane + 1))]
            with m.If((lane == per_transfer - 1) | (pixel == size - 1)):
                m.d.sync += full.eq(1)
        return m
