"""Two tick sorters taking images in turn, so one collects while the other emits."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring

from .tick_sorter import TickSorter, sorter_properties

__all__ = ["TickSorterPair"]


class TickSorterPair(wiring.Component):
    """A :class:`TickSorter`'s interface on two of them: image ``n`` goes to sorter ``n mod 2``,
    so the next image's words are collected while this one's spikes are emitted.

    A :class:`TickSorter` takes no words while it emits, so a stage built on one is busy for its
    collect and emit phases one after the other. Here the words of an image go to the sorter
    whose turn it is (``i.ready`` is that sorter's) and the turn passes on with the image's
    ``end``; events leave from the sorter whose image is next (the turn passes on with the
    ``end`` that leaves). Images leave in the order they came. With images back to back the
    stage's time per image is the longer of the two phases instead of their sum; one image alone
    takes the same cycles as in one sorter (the turns are multiplexers, no registers).

    Parameters and members are :class:`TickSorter`'s.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, neurons: int, ticks: int, banks: int = 1, positions: int = 1):
        self.sorters = [TickSorter(neurons, ticks, banks, positions) for _ in range(2)]   # checks the arguments
        self.neurons, self.ticks, self.banks, self.positions = neurons, ticks, banks, positions
        self.words = self.sorters[0].words
        super().__init__(dict(self.sorters[0].signature.members))

    def elaborate(self, platform):
        m = Module()
        filling, emitting = Signal(), Signal()       # which sorter takes words, which one's events leave
        for n, sorter in enumerate(self.sorters):
            m.submodules[f"sorter{n}"] = sorter
            m.d.comb += [sorter.i.payload.eq(self.i.payload), sorter.i.valid.eq(self.i.valid & (filling == n)),
                         sorter.o.ready.eq(self.o.ready & (emitting == n))]
        first, second = self.sorters
        m.d.comb += [self.i.ready.eq(Mux(filling, second.i.ready, first.i.ready)),
                     self.o.valid.eq(Mux(emitting, second.o.valid, first.o.valid)),
                     self.o.payload.eq(Mux(emitting, second.o.payload, first.o.payload))]
        with m.If(self.i.valid & self.i.ready & self.i.payload.end):
            m.d.sync += filling.eq(~filling)
        with m.If(self.o.valid & self.o.ready & self.o.payload.end):
            m.d.sync += emitting.eq(~emitting)
        if self.formal:
            # a tick sorter's properties at the pair's ports: images leave in the order they came (up
            # to 5 at once: each sorter's end waiting in its skid buffer and its next image collected)
            sorter_properties(m, self, image_bits=3)
        return m
