"""The stages of a graph net's edges: a spike stream read by several layers (:class:`Fork`) and a
layer that reads several spike streams (:class:`Join`)."""

from amaranth.hdl import Assert, Cat, Const, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import SkipBuffer

from .events import event_layout
from .formal import anyconst, image_tracker, in_order, once_per_image, stream_ports

__all__ = ["Fork", "Join"]

# events of a stream the bounded ``fork``/``join`` checks follow (their counts' range), and images
# (their ends): more than their cycles, so no count wraps within a check
FORMAL_EVENTS = 32
IMAGE_BITS = (FORMAL_EVENTS - 1).bit_length()


class Fork(wiring.Component):
    """One spike stream to several readers: the first straight through, each other one through a
    buffer that holds a whole image's events (the geometry's :class:`~hdlgen.geometry.SkipBuffer`).

    An event is taken from ``i`` when the first reader is ready and every buffer has room; it goes
    to the first reader and into every buffer in the same cycle. A buffer's reader takes the
    events in the same order, later, at its own pace: it is a layer's later input, which its
    :class:`Join` reads first. A buffer holds one image, so the source never waits for a reader
    that waits for the source's next image.

    Parameters
    ----------
    neurons, ticks : int
        The source's neurons and window (the events' layout).
    buffers : list of SkipBuffer
        One per reader after the first.

    Members
    -------
    i : In(stream.Signature(event_layout(neurons, ticks)))
    o : Out(stream.Signature(event_layout(neurons, ticks))) × (1 + len(buffers))
        ``o0`` the first reader's (no buffer), ``o1``… the buffers' read sides.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, neurons: int, ticks: int, buffers: list):
        if not buffers or not all(isinstance(b, SkipBuffer) for b in buffers):
            raise ValueError("a Fork needs at least one SkipBuffer (a source with one reader needs no fork)")
        self.buffers = list(buffers)
        self.neurons = int(neurons)
        layout = event_layout(neurons, ticks)
        super().__init__({"i": In(stream.Signature(layout)),
                          **{f"o{n}": Out(stream.Signature(layout)) for n in range(1 + len(self.buffers))}})

    @property
    def outputs(self) -> list:
        return [getattr(self, f"o{n}") for n in range(1 + len(self.buffers))]

    def elaborate(self, platform):
        m = Module()
        first, *rest = self.outputs
        room = Const(1)
        fifos = []
        for n, buffer in enumerate(self.buffers, 1):
            fifo = m.submodules[f"buffer{n}"] = SyncFIFOBuffered(width=len(self.i.payload.as_value()), depth=buffer.depth)
            room = room & fifo.w_rdy
            fifos.append(fifo)
        m.d.comb += [first.payload.eq(self.i.payload), first.valid.eq(self.i.valid & room),
                     self.i.ready.eq(first.ready & room)]
        for fifo, out in zip(fifos, rest):
            m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid & self.i.ready),
                         out.payload.eq(fifo.r_data), out.valid.eq(fifo.r_rdy), fifo.r_en.eq(out.ready)]
        if self.formal:
            stream_ports(m, self, outputs=[f"o{n}" for n in range(len(self.outputs))])
            once_per_image(m, self.i, "neuron", self.neurons)
            if "fork" in self.formal:
                self._fork_property(m, fifos)
        return m

    def _fork_property(self, m, fifos):
        """Assert that every reader gets every event taken from ``i`` (``end`` too) once, in
        order, and that a buffer has room for every event of the image its reader is on (it fills
        only when its reader is a whole image behind)."""
        pick = anyconst(m, self, range(FORMAL_EVENTS), "pick")
        i = self.i
        taken = i.valid & i.ready
        for n, out in enumerate(self.outputs):
            in_order(m, pick, taken, Value.cast(i.payload), out.valid & out.ready, Value.cast(out.payload), f"fork_o{n}")
        for n, (fifo, out) in enumerate(zip(fifos, self.outputs[1:]), 1):
            image_in, image_out = image_tracker(m, taken & i.payload.end, out.valid & out.ready & out.payload.end,
                                                f"fork_o{n}", bits=IMAGE_BITS)
            m.d.comb += Assert(~i.valid | (image_in != image_out) | fifo.w_rdy,
                               f"fork: buffer {n} has room for its reader's image")


class Join(wiring.Component):
    """Several spike streams into one layer that reads their concatenation.

    Per image: the events of inputs ``1, 2, …`` (each up to its ``end``, which is dropped), then
    those of input ``0`` and its ``end``, which closes the image. Input ``k``'s neuron ``n`` leaves
    as ``offsets[k] + n``. The events are not in tick order across inputs: the engines that read a
    join take their spikes in any order (each spike's tick gives its ``q``). One event a cycle,
    combinationally (``o.valid`` from the chosen input's ``valid``); a dropped ``end`` costs a cycle.

    Parameters
    ----------
    sizes : list of int
        Each input's neurons, in the layer's input order.
    ticks : int
        The window all inputs share.

    Members
    -------
    i0, i1, … : In(stream.Signature(event_layout(sizes[k], ticks)))
    o : Out(stream.Signature(event_layout(sum(sizes), ticks)))
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, sizes: list, ticks: int):
        self.sizes = [int(s) for s in sizes]
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"a Join takes two or more inputs of ≥ 1 neuron, got sizes {sizes!r}")
        self.offsets = [sum(self.sizes[:k]) for k in range(len(self.sizes))]
        super().__init__({**{f"i{k}": In(stream.Signature(event_layout(size, ticks))) for k, size in enumerate(self.sizes)},
                          "o": Out(stream.Signature(event_layout(sum(self.sizes), ticks)))})

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(len(self.sizes))]

    def elaborate(self, platform):
        m = Module()
        order = list(range(1, len(self.sizes))) + [0]     # the later inputs first, the first one last
        phase = Signal(range(len(order)))
        for step, k in enumerate(order):
            source = self.inputs[k]
            with m.If(phase == step):
                closes = k == 0
                m.d.comb += [self.o.payload.neuron.eq(source.payload.neuron + self.offsets[k]),
                             self.o.payload.tick.eq(source.payload.tick), self.o.payload.end.eq(source.payload.end),
                             self.o.valid.eq(source.valid & (Const(closes) | ~source.payload.end)),
                             source.ready.eq(self.o.ready | (Const(not closes) & source.payload.end))]
                with m.If(source.valid & source.ready & source.payload.end):
                    m.d.sync += phase.eq(0 if closes else step + 1)
        if self.formal:
            names = [f"i{k}" for k in range(len(self.sizes))]
            stream_ports(m, self, inputs=names)
            for name, size in zip(names, self.sizes):
                once_per_image(m, getattr(self, name), "neuron", size)
            if "join" in self.formal:
                self._join_property(m)
        return m

    def _join_property(self, m):
        """Assert, per input ``k``: its events leave in order, each once, as ``offsets[k] + n``
        with their tick, all before the image's ``end``; while they leave, every input before it
        (1, 2, …, then 0) has closed this image and ``k`` has not. ``end`` leaves once per image: with
        input 0's, after every later input's."""
        o = self.o
        left = o.valid & o.ready
        pick = anyconst(m, self, range(FORMAL_EVENTS), "pick")
        image_out = Signal(IMAGE_BITS, name="join_image_out")   # images closed so far
        m.d.sync += image_out.eq(image_out + (left & o.payload.end))
        closed = []     # per input: this image's end taken
        # the order and offsets from the contract, not the ones elaborate uses: a join that
        # reads in a wrong order or shifts wrongly fails
        for k in [*range(1, len(self.sizes)), 0]:
            source = self.inputs[k]
            taken = source.valid & source.ready
            offset = sum(self.sizes[:k])
            shifted = Signal.like(o.payload.neuron, name=f"join_i{k}_neuron")
            m.d.comb += shifted.eq(source.payload.neuron + offset)
            mine = left & ~o.payload.end & (o.payload.neuron >= offset) & (o.payload.neuron < offset + self.sizes[k])
            counts = in_order(m, pick, taken & ~source.payload.end, Cat(shifted, source.payload.tick), mine,
                              Cat(o.payload.neuron, o.payload.tick), f"join_i{k}")
            ends = Signal(IMAGE_BITS, name=f"join_i{k}_ends")
            m.d.sync += ends.eq(ends + (taken & source.payload.end))
            m.d.comb += Assert((ends - image_out)[:IMAGE_BITS] <= 1, f"join: input {k} closes each image once")
            m.d.comb += Assert(~mine | ((ends == image_out) & Cat(closed).all()),
                               f"join: input {k}'s events leave after the inputs before it, in their image")
            with m.If(left & o.payload.end):
                m.d.comb += Assert(counts[0] == counts[1], f"join: every event of input {k} leaves before end")
            closed.append((ends - image_out)[:IMAGE_BITS] == 1)
        zero = self.inputs[0]
        m.d.comb += Assert((left & o.payload.end) == (zero.valid & zero.ready & zero.payload.end),
                           "join: end leaves once per image, with input 0's")
        m.d.comb += Assert(~(left & o.payload.end) | Cat(closed[:-1]).all(),
                           "join: end leaves after every later input's")
