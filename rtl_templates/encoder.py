"""Input encoder: pixel bytes → input spike events in tick order."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import InputGeometry
from hdlgen.ttfs import unsigned_width

from .events import event_layout
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

    Parameters
    ----------
    geometry : InputGeometry
        The net's input encoding (``size`` pixels, window ``T0``, ``table``) and the pixels
        per transfer ``P``.

    Members
    -------
    pixels : In(stream.Signature(unsigned(8·P)))
        ``ceil(size / P)`` transfers per image, pixel ``j`` in byte ``j mod P`` of transfer
        ``j // P`` (the last transfer's bytes past the image are ignored), images back to back.
    o : Out(stream.Signature(event_layout(size, T0)))
        Input spike events, tick order, then ``end``.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: InputGeometry):
        if not isinstance(geometry, InputGeometry):
            raise TypeError(f"input encoder needs an InputGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.encoding = encoding = geometry.encoding
        super().__init__({
            "pixels": In(stream.Signature(unsigned(8 * geometry.pixels_per_transfer))),
            "o": Out(stream.Signature(event_layout(encoding.size, encoding.ticks))),
        })

    def elaborate(self, platform):
        m = Module()
        size, ticks = self.encoding.size, self.encoding.ticks
        per_transfer, transfers = self.geometry.pixels_per_transfer, self.geometry.transfers
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
        m.d.comb += self.pixels.ready.eq(sorter.i.ready & ~(looked_up & looked_last) & ~closing)
        for p, lookup in enumerate(lookups):
            m.d.comb += [lookup.addr.eq(self.pixels.payload[8 * p:8 * p + 8]), lookup.en.eq(accept)]
        m.d.sync += looked_up.eq(accept)
        with m.If(accept):
            m.d.sync += [looked_index.eq(index), looked_last.eq(index == transfers - 1),
                         index.eq(Mux(index == transfers - 1, 0, index + 1))]

        with m.If(closing):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.end.eq(1)]
            with m.If(sorter.i.ready):
                m.d.sync += closing.eq(0)
        with m.Elif(looked_up):
            # bytes of the last transfer past the image carry no spike
            in_last = size - (transfers - 1) * per_transfer
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.word.eq(looked_index)]
            m.d.comb += [sorter.i.payload.tick[p].eq(Mux(looked_last, ticks, lookup.data) if p >= in_last
                                                     else lookup.data) for p, lookup in enumerate(lookups)]
            with m.If(looked_last):
                m.d.sync += closing.eq(1)
        if self.formal:
            stream_ports(m, self, inputs=("pixels",))
        return m


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
