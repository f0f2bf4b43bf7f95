"""Readout: final-layer potentials → class and logits."""

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import DenseGeometry
from hdlgen.ttfs import IntDense

from .events import acc_word_layout
from .formal import stream_ports

__all__ = ["Readout", "readout_layout"]


def readout_layout(layer: IntDense) -> data.StructLayout:
    """``{label, logits}``: the class (at least 1 bit) and the readout's potentials ``A``."""
    width = layer.widths()["accumulator"]
    return data.StructLayout({
        "label": unsigned(max(1, (layer.fan_out - 1).bit_length())),
        "logits": data.ArrayLayout(signed(width), layer.fan_out),
    })


class Readout(wiring.Component):
    """Collect the readout layer's potentials and pick the class.

    The logits are the readout accumulators ``A`` (no spike-time unit). The class is the
    argmax, ties going to the lowest index: neurons are scanned in increasing order and a
    later one replaces the best only when strictly greater. One neuron per cycle, through a
    register stage so the comparison does not start at the engine's block RAM.

    Parameters
    ----------
    geometry : DenseGeometry
        The readout layer's (``k is None``): lanes and words of the accumulator words on ``i``.

    Members
    -------
    i : In(stream.Signature(acc_word_layout(acc_width, lanes)))
        One image's accumulator words, ``last`` on the final one.
    o : Out(stream.Signature(readout_layout(layer)))
        One result per image.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: DenseGeometry):
        layer = geometry.layer
        if not layer.readout:
            raise ValueError(f"layer {layer.name!r} has K; the readout is the last layer, without K")
        self.layer, self.lanes, self.words, self.acc_width = layer, geometry.lanes, geometry.words, geometry.acc_width
        super().__init__({
            "i": In(stream.Signature(acc_word_layout(self.acc_width, self.lanes))),
            "o": Out(stream.Signature(readout_layout(layer))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, classes = self.lanes, self.layer.fan_out
        logits = Array(Signal(signed(self.acc_width), name=f"logit{n}") for n in range(classes))
        best = Signal(signed(self.acc_width))
        label = Signal(self.o.payload.label.shape())
        lane = Signal(range(lanes))
        neuron = Signal(range(self.words * lanes))
        done = Signal()

        m.d.comb += [self.o.valid.eq(done), self.o.payload.label.eq(label)]
        m.d.comb += [self.o.payload.logits[n].eq(logits[n]) for n in range(classes)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += done.eq(0)

        # stage 1: take one potential per cycle into a register (it comes straight from the
        # engine's block RAM); stage 2: store it and compare it with the best so far
        held_valid, held_last = Signal(), Signal()
        held_value, held_neuron = Signal(signed(self.acc_width)), Signal(range(self.words * lanes))
        closing = Signal()      # the image's last potential is in stage 2; take no more
        take = self.i.valid & ~done & ~closing
        m.d.comb += self.i.ready.eq(take & (lane == lanes - 1))
        m.d.sync += [held_valid.eq(0), held_last.eq(0)]
        with m.If(take):
            m.d.sync += [lane.eq(Mux(lane == lanes - 1, 0, lane + 1)), neuron.eq(neuron + 1),
                         held_valid.eq(neuron < classes), held_value.eq(self.i.payload.acc[lane]),
                         held_neuron.eq(neuron)]
            with m.If(self.i.ready & self.i.payload.last):
                m.d.sync += [neuron.eq(0), closing.eq(1), held_last.eq(1)]

        with m.If(held_valid):
            m.d.sync += logits[held_neuron].eq(held_value)
            with m.If((held_neuron == 0) | (held_value > best)):
                m.d.sync += [best.eq(held_value), label.eq(held_neuron)]
        with m.If(held_last):
            m.d.sync += [done.eq(1), closing.eq(0)]
        if self.formal:
            stream_ports(m, self)
        return m
