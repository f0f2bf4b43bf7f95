"""Whole-core equivalence: the generated core's class and logits equal the golden arithmetic for
every input image (``hdlgen prove --equivalence``; a bounded check over the whole latency of one
image entering an idle core, so for small dense nets only).

:class:`CoreEquivalence` wraps :class:`~hdlgen.rtl_templates.top.NetworkTop` and states, next to
it, a model of docs/design.md §2 in Amaranth expressions on the image's pixels: ``q0 = table[pixel]``,
``A = B + W·q`` per layer, ``q = clamp(floor(A / K), 0, T)`` (floor division by the constant
``K``), the readout's ``A`` as logits and the argmax with ties to the lowest index. The model is
written from the contract, not from the RTL: it shares no code with the components.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .ttfs import TTFSNet

__all__ = ["CoreEquivalence", "equivalence_depth"]


def equivalence_depth(net: TTFSNet, lanes: int = 1) -> int:
    """Cycles from reset that cover one image entering the core and its result: the engines'
    bias writes, the worst-case latency (:func:`hdlgen.cycles.overhead_bound` over the dense
    schedule's serial sum) and a few cycles of slack."""
    from .cycles import overhead_bound, serial_cycles
    from .geometry import NetGeometry

    clear = max(stage.words for stage in NetGeometry(net, lanes).layers)
    return clear + serial_cycles(net, None, lanes) + overhead_bound(net, lanes) + 4


class CoreEquivalence(wiring.Component):
    """``NetworkTop(net, lanes)`` with the golden model beside it: the first image's result must
    carry the model's label and logits.

    Parameters
    ----------
    net : TTFSNet
        A dense net (no convolution or pooling).
    lanes : int

    Members
    -------
    pixels : In(stream.Signature(unsigned(8)))
        The core's pixel stream: any bytes, one image (more are refused by assumption).
    result : Out(stream.Signature(result_layout(net)))
        The core's result stream.
    """

    formal = frozenset()

    def __init__(self, net: TTFSNet, lanes: int = 1):
        from .rtl_templates.top import result_layout

        if any(layer.kind != "dense" for layer in net.layers):
            raise ValueError("whole-core equivalence is for dense nets only")
        self.net, self.lanes = net, lanes
        super().__init__({"pixels": In(stream.Signature(unsigned(8))),
                          "result": Out(stream.Signature(result_layout(net)))})

    def elaborate(self, platform):
        from .rtl_templates.top import NetworkTop

        m = Module()
        net = self.net
        m.submodules.core = core = NetworkTop(net, lanes=self.lanes)
        wiring.connect(m, wiring.flipped(self.pixels), core.pixels)
        wiring.connect(m, core.result, wiring.flipped(self.result))
        if "equivalence" not in self.formal:
            return m
        size = net.input.size
        image = [Signal(8, name=f"pixel{j}") for j in range(size)]
        taken = Signal(range(size + 1))
        with m.If(self.pixels.valid & self.pixels.ready):
            m.d.sync += taken.eq(taken + 1)
            for j, pixel in enumerate(image):
                with m.If(taken == j):
                    m.d.sync += pixel.eq(self.pixels.payload)
        m.d.comb += Assume(~self.pixels.valid | (taken < size))     # one image
        table = Array(Const(int(v), range(net.input.ticks + 1)) for v in net.input.table)
        q = [table[p] for p in image]
        for layer in net.layers:
            weights = layer.weight_matrix()
            potentials = [int(layer.bias[i]) + sum(int(weights[i, j]) * q[j] for j in range(layer.fan_in)
                                                   if weights[i, j]) for i in range(layer.fan_out)]
            if layer.readout:
                break
            q = [Mux(a < 0, 0, Mux(a // int(k) > layer.ticks, layer.ticks, a // int(k)))
                 for a, k in zip(potentials, layer.k_per_neuron())]
        logits = [Signal(signed(len(core.result.payload.logits[0])), name=f"model_logit{i}")
                  for i in range(len(potentials))]
        m.d.comb += [logit.eq(a) for logit, a in zip(logits, potentials)]
        label, best = Const(0, len(core.result.payload.label)), logits[0]
        for i, logit in enumerate(logits[1:], start=1):
            label, best = Mux(logit > best, i, label), Mux(logit > best, logit, best)
        cex_label = Signal.like(core.result.payload.label, name="cex_label", attrs={"keep": 1})
        m.d.comb += cex_label.eq(core.result.payload.label)
        first = Signal(init=1)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += first.eq(0)
        payload = self.result.payload
        same_logits = Cat(payload.logits[i] for i in range(len(logits))) == Cat(logits)
        m.d.comb += Assert(~(self.result.valid & first) | (taken == size) & (payload.label == label) & same_logits,
                           "equivalence: the core's class and logits are the golden model's")
        return m
