"""Input encoder: pixel bytes → input spike events in tick order."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.ttfs import InputEncoding, unsigned_width

from .events import event_layout
from .tick_sorter import TickSorter

__all__ = ["InputEncoder"]


class InputEncoder(wiring.Component):
    """Turn one image's pixel bytes into its input spikes.

    Pixel ``j`` (the ``j``-th byte of the image) has activation ``q0 = table[pixel]`` and
    spikes at tick ``T0 − q0``; ``q0 = 0`` gives no spike. A 256-entry ROM in block RAM maps
    the byte straight to ``T0 − q0``.
    Spikes go into a :class:`TickSorter` in pixel order, which then emits them by tick
    (ties: increasing pixel index) followed by ``end``. Pixels of the next image are accepted
    as soon as the sorter has emitted the previous image.

    Cycles per image: ``pixels + 2`` to collect, then ``spikes + T0 + non-empty ticks + 1`` to emit.

    Parameters
    ----------
    encoding : InputEncoding
        The net's input encoding (``size`` pixels, window ``T0``, ``table``).

    Members
    -------
    pixels : In(stream.Signature(unsigned(8)))
        ``encoding.size`` bytes per image, in index order, images back to back.
    o : Out(stream.Signature(event_layout(size, T0)))
        Input spike events, tick order, then ``end``.
    """

    def __init__(self, encoding: InputEncoding):
        if not isinstance(encoding, InputEncoding):
            raise TypeError(f"input encoder needs an InputEncoding, got {type(encoding).__name__}")
        self.encoding = encoding
        super().__init__({
            "pixels": In(stream.Signature(unsigned(8))),
            "o": Out(stream.Signature(event_layout(encoding.size, encoding.ticks))),
        })

    def elaborate(self, platform):
        m = Module()
        size, ticks = self.encoding.size, self.encoding.ticks
        m.submodules.sorter = sorter = TickSorter(size, ticks)
        wiring.connect(m, sorter.o, wiring.flipped(self.o))

        # the ROM holds the fire tick ``T0 − q0`` itself (``T0``: no spike), no subtractor after it
        m.submodules.table = table = Memory(shape=unsigned(unsigned_width(ticks)), depth=256,
                                            init=[ticks - int(v) for v in self.encoding.table])
        lookup = table.read_port()

        index = Signal(range(size))
        looked_up = Signal()            # lookup.data holds the fire tick of pixel ``looked_index``
        looked_index = Signal(range(size))
        looked_last = Signal()
        closing = Signal()              # the image's ``end`` is due

        # The sorter accepts every event while collecting, so a pixel taken now can be passed
        # on next cycle without a stall.
        accept = self.pixels.valid & self.pixels.ready
        m.d.comb += [
            self.pixels.ready.eq(sorter.i.ready & ~(looked_up & looked_last) & ~closing),
            lookup.addr.eq(self.pixels.payload),
            lookup.en.eq(accept),
        ]
        m.d.sync += looked_up.eq(accept)
        with m.If(accept):
            m.d.sync += [looked_index.eq(index), looked_last.eq(index == size - 1),
                         index.eq(Mux(index == size - 1, 0, index + 1))]

        with m.If(closing):
            m.d.comb += [sorter.i.valid.eq(1), sorter.i.payload.end.eq(1)]
            with m.If(sorter.i.ready):
                m.d.sync += closing.eq(0)
        with m.Elif(looked_up):
            m.d.comb += [sorter.i.valid.eq(lookup.data != ticks),
                         sorter.i.payload.neuron.eq(looked_index),
                         sorter.i.payload.tick.eq(lookup.data)]
            with m.If(looked_last):
                m.d.sync += closing.eq(1)
        return m
