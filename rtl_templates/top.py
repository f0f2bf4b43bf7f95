"""The generated core: pixel stream in, class, logits and cycle count out."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import NetGeometry
from hdlgen.ttfs import TTFSNet

from .conv import ConvEngine
from .dense import RETIMED, DenseEngine, EngineTiming
from .encoder import InputEncoder
from .events import event_layout
from .graph import Fork, Join
from .maxpool import MaxPoolUnit
from .readout import Readout, readout_layout
from .spike_time import SpikeTimeBank

__all__ = ["NetworkTop", "result_layout", "trace_signature", "fork_for", "join_for", "STAGES"]

# layer kind → the component that takes the layer's input spikes, built from its stage geometry
STAGES = {"dense": DenseEngine, "conv2d": ConvEngine, "maxpool2d": MaxPoolUnit}


def result_layout(net: TTFSNet) -> data.StructLayout:
    """``{label, cycles, logits}`` as in docs/rtl-interface.md (label at bit 0)."""
    readout = readout_layout(net.layers[-1])
    return data.StructLayout({"label": readout["label"].shape, "cycles": unsigned(32),
                              "logits": readout["logits"].shape})


def trace_signature(net: TTFSNet, input_slots: int = 1) -> wiring.Signature:
    """``layer<l>: {valid, neuron, tick}`` for every spiking layer (0 = the input encoder), and
    ``layer0_slot<s>`` for each further spike the encoder sends at once (``input_slots``)."""
    members = {}
    for l, (size, ticks) in enumerate(zip(net.sizes, net.ticks)):
        layout = event_layout(size, ticks)
        tap = wiring.Signature({"valid": Out(1), "neuron": Out(layout["neuron"].shape), "tick": Out(layout["tick"].shape)})
        members[f"layer{l}"] = Out(tap)
        if l == 0:
            members.update({f"layer0_slot{s}": Out(tap) for s in range(1, input_slots)})
    return wiring.Signature(members)


def fork_for(geometry, source: int) -> Fork:
    """The :class:`Fork` of a source with several readers (0: the input encoder, ``j + 1``: layer ``j``)."""
    net = geometry.net
    return Fork(net.sizes[source], net.window(source), [b for b in geometry.buffers if b.source == source])


def join_for(net: TTFSNet, layer: int) -> Join:
    """The :class:`Join` in front of a layer with several inputs."""
    return Join([net.sizes[j] for j in net.sources(layer)], net.layers[layer].ticks_in)


class NetworkTop(wiring.Component):
    """The whole TTFS network as one streaming core (docs/rtl-interface.md).

    Input encoder → per hidden layer (dense or conv engine → spike-time unit bank, or max-pool
    unit) → dense engine →
    readout. Stages are decoupled by stream handshakes, so image ``n+1`` enters layer 1 while
    image ``n`` is in a later layer. In a graph net a source read by several layers feeds them
    through a :class:`~hdlgen.rtl_templates.graph.Fork` (the first reader directly, the others
    through a buffer of one image's events) and a layer with several inputs reads them through a
    :class:`~hdlgen.rtl_templates.graph.Join`. A free-running 32-bit cycle counter stamps each image's
    first accepted pixel into a small FIFO; the result carries ``now − stamp``, the cycles from
    that pixel to the first cycle ``result.valid`` is high for the image.

    Parameters
    ----------
    net : TTFSNet
    lanes : int
        Accumulators updated per cycle in every dense and conv engine (capped at each layer's
        fan-out, a convolution's output channels), ``1..`` largest fan-out.
    pixels_per_transfer : int
        Pixels ``P`` per transfer of the pixel stream, ``1..`` the input size.
    spike_lanes : int or None
        Ladders per spike-time bank, ``1..lanes`` (each bank uses the largest divisor of its
        lanes that divides it: fewer logic cells, ``lanes / spike_lanes`` cycles per word);
        ``None``: one per lane.
    trace : bool
        Add the ``trace`` member (for testbenches; production builds leave it out).
    engine_timing : EngineTiming
        What every dense engine and spike-time bank spends on timing (:class:`~hdlgen.rtl_templates.dense.EngineTiming`;
        a board build passes its family's choice, :attr:`hdlgen.boards.platforms.Family.engine_timing`).

    Members
    -------
    pixels : In(stream.Signature(unsigned(8·P)))
        ``ceil(net.input.size / P)`` transfers per image, pixel ``j`` in byte ``j mod P`` of
        transfer ``j // P`` (index order), images back to back.
    result : Out(stream.Signature(result_layout(net)))
        One transfer per image, in input order.
    trace : Out(trace_signature(net))
        Only with ``trace=True``: per spiking layer, ``valid`` high in exactly the cycles where
        one of its spike events is transferred to the next stage, with ``neuron`` and ``tick``.

    Raises
    ------
    ValueError
        If ``lanes``, ``pixels_per_transfer`` or ``spike_lanes`` is out of range.
    """

    def __init__(self, net: TTFSNet, *, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None,
                 trace: bool = False, engine_timing: EngineTiming = RETIMED):
        if not isinstance(net, TTFSNet):
            raise TypeError(f"NetworkTop needs a TTFSNet, got {type(net).__name__}")
        if not isinstance(engine_timing, EngineTiming):
            raise TypeError(f"engine_timing must be an EngineTiming, got {type(engine_timing).__name__}")
        self.net = net
        self.geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
        self.lanes = self.geometry.lanes
        self.pixels_per_transfer = self.geometry.input.pixels_per_transfer
        self.layer_lanes = self.geometry.layer_lanes
        self.with_trace = bool(trace)
        members = {"pixels": In(stream.Signature(unsigned(8 * self.pixels_per_transfer))),
                   "result": Out(stream.Signature(result_layout(net)))}
        if self.with_trace:
            members["trace"] = Out(trace_signature(net, self.geometry.input.spikes_per_transfer))
        super().__init__(members)
        self.encoder = InputEncoder(self.geometry.input)
        # per layer: the stage taking its input spikes, and the spike-time bank after an engine
        self.stages = [STAGES[stage.kind](stage) for stage in self.geometry.layers]
        self.engines = [self.stages[i] for i in self.geometry.engines]   # weight memories
        for stage in self.stages:
            if isinstance(stage, DenseEngine):
                stage.timing = engine_timing
        self.banks = [SpikeTimeBank(stage) if stage.fires else None for stage in self.geometry.layers]
        for bank in filter(None, self.banks):
            bank.timing = engine_timing
        self.readout = Readout(self.geometry.layers[-1])

    @property
    def in_flight(self) -> int:
        """Images the pipeline can hold at once (depth of the timestamp FIFO)."""
        return 2 * len(self.net.layers) + 3

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = encoder = self.encoder
        net = self.net
        spikes = []         # each source's event stream: the input encoder's, then each hidden layer's
        edges = {}          # (layer, input position) → the stream it reads

        def produce(stream_):
            source = len(spikes)
            spikes.append(stream_)
            readers = net.consumers(source)
            if len(readers) == 1:
                edges[readers[0]] = stream_
                return
            fork = m.submodules[f"fork{source}"] = fork_for(self.geometry, source)
            wiring.connect(m, stream_, fork.i)
            for reader, out in zip(readers, fork.outputs):
                edges[reader] = out

        produce(encoder.o)
        for n, (stage, bank) in enumerate(zip(self.stages, self.banks)):
            m.submodules[f"{stage.submodule_name}{n}"] = stage
            sources = net.sources(n)
            if len(sources) == 1:
                wiring.connect(m, edges[(n, 0)], stage.i)
            else:
                join = m.submodules[f"join{n}"] = join_for(net, n)
                for k, port in enumerate(join.inputs):
                    wiring.connect(m, edges[(n, k)], port)
                wiring.connect(m, join.o, stage.i)
            if bank is not None:
                m.submodules[f"spike_time{n}"] = bank
                wiring.connect(m, stage.o, bank.i)
                produce(bank.o)
            elif n < len(self.stages) - 1:   # a max-pool's output is its layer's spikes
                produce(stage.o)
        m.submodules.readout = readout = self.readout
        wiring.connect(m, self.stages[-1].o, readout.i)

        if self.with_trace:
            for l, events in enumerate(spikes):
                taken = events.valid & events.ready & ~events.payload.end
                if l == 0 and self.geometry.input.spikes_per_transfer > 1:
                    # a group's slots, each while it holds a spike
                    for s in range(self.geometry.input.spikes_per_transfer):
                        tap = getattr(self.trace, f"layer0_slot{s}" if s else "layer0")
                        m.d.comb += [tap.valid.eq(taken & (events.payload.tick[s] != net.input.ticks)),
                                     tap.neuron.eq(events.payload.neuron[s]), tap.tick.eq(events.payload.tick[s])]
                    continue
                tap = getattr(self.trace, f"layer{l}")
                m.d.comb += [tap.valid.eq(taken),
                             tap.neuron.eq(events.payload.neuron), tap.tick.eq(events.payload.tick)]

        # cycle count: stamp the first pixel of each image, subtract when its result appears
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.stamps = stamps = SyncFIFOBuffered(width=32, depth=self.in_flight)
        transfers = self.geometry.input.transfers
        pixel = Signal(range(transfers))     # the transfer of the image being taken
        first = pixel == 0
        m.d.comb += [
            encoder.pixels.payload.eq(self.pixels.payload),
            encoder.pixels.valid.eq(self.pixels.valid & (~first | stamps.w_rdy)),
            self.pixels.ready.eq(encoder.pixels.ready & (~first | stamps.w_rdy)),
            stamps.w_data.eq(now),
            stamps.w_en.eq(self.pixels.valid & self.pixels.ready & first),
        ]
        with m.If(self.pixels.valid & self.pixels.ready):
            m.d.sync += pixel.eq(Mux(pixel == transfers - 1, 0, pixel + 1))

        # the result is the readout's (held until taken) plus ``cycles``: ``elapsed`` follows
        # ``now + 1 − stamp`` until the result shows, then holds – so it is the count at the
        # first cycle ``result.valid`` is high
        elapsed = Signal(32)
        with m.If(~readout.o.valid):
            m.d.sync += elapsed.eq(now + 1 - stamps.r_data)
        m.d.comb += [
            self.result.valid.eq(readout.o.valid),
            readout.o.ready.eq(self.result.ready),
            stamps.r_en.eq(readout.o.valid & self.result.ready),
            self.result.payload.label.eq(readout.o.payload.label),
            self.result.payload.logits.eq(readout.o.payload.logits),
            self.result.payload.cycles.eq(elapsed),
        ]
        return m
