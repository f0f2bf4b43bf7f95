"""The UART host link around a network core, as gateware (protocol: :mod:`hdlgen.boards.link`).

::

    rx pin → UARTReceiver → byte FIFO → FrameReceiver ─pixels──→ core (NetworkTop) ─result─┐
                                              └─verdicts→ verdict stage ─→ ResponseEncoder ←┘
                                                                               └→ UARTTransmitter → tx pin

The receiver streams a CLASSIFY frame's pixels into the core as they arrive (no image buffer)
and, once the frame's CRC has been checked, queues one *verdict* per recognised frame. The
encoder answers verdicts in order: it pairs each image verdict with the core's next result
(results come in input order), sending a RESULT, or an ERROR while dropping the result of a
damaged frame, so a result is never sent for the wrong frame. LOAD frames write weight words
into SPRAM-backed weight memories (:mod:`hdlgen.boards.spram`) and are answered LOAD_REPLY.

The receiver is :mod:`hdlgen.boards.frame_receiver`, the encoder :mod:`hdlgen.boards.response_encoder`;
the host's side of the same link is :mod:`hdlgen.boards.host`.
"""


from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..geometry import ceil_div
from ..rtl_templates.encoder import PixelPacker
from . import link
from .frame_receiver import FrameReceiver, Verdict
from .response_encoder import ResponseEncoder
from .spram import SPRAMWeights
from .uart import UARTReceiver, UARTTransmitter, uart_divisor

__all__ = ["ByteFIFO", "HostLink", "RX_FIFO_DEPTH"]


class ByteFIFO(wiring.Component):
    """First-in first-out byte buffer in block RAM, its oldest byte offered from the read port.

    ``w`` takes a byte while fewer than ``depth`` are stored (``depth`` a power of two, so the
    pointers wrap without compares); ``r`` offers the oldest one (the block RAM's registered
    read data) and holds it until taken. Amaranth's ``SyncFIFOBuffered`` spends a level
    counter and a read-before-write emulation (a register and a multiplexer per bit on an
    iCE40) that this buffer does not need: it never reads the entry being written.

    Parameters
    ----------
    depth : int
        Bytes in the block RAM (a power of two, ≥ 2); one more waits on ``r``.

    Members
    -------
    w : In(stream.Signature(8))
    r : Out(stream.Signature(8))
    """

    def __init__(self, depth: int):
        self.bits = self.address_bits(depth)
        self.depth = depth
        super().__init__({"w": In(stream.Signature(8)), "r": Out(stream.Signature(8))})

    @staticmethod
    def address_bits(depth: int) -> int:
        """The block RAM's address width for ``depth`` bytes; ValueError unless a power of two ≥ 2."""
        try:
            bits = exact_log2(depth)
        except ValueError:
            bits = 0
        if bits < 1:
            raise ValueError(f"the byte FIFO's depth must be a power of two ≥ 2, got {depth}")
        return bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = Memory(shape=8, depth=self.depth, init=[])
        write = storage.write_port()
        read = storage.read_port(transparent_for=(write,))
        bits = self.bits
        # the pointers count to twice the depth: equal means empty, equal but for the top bit full
        produce = Signal(bits + 1)
        consume = Signal(bits + 1)
        full = (produce[:bits] == consume[:bits]) & (produce[bits] != consume[bits])
        fetch = (produce != consume) & (~self.r.valid | self.r.ready)
        m.d.comb += [self.w.ready.eq(~full), write.addr.eq(produce[:bits]), write.data.eq(self.w.payload),
                     write.en.eq(self.w.valid & ~full),
                     read.addr.eq(consume[:bits]), read.en.eq(fetch), self.r.payload.eq(read.data)]
        with m.If(write.en):
            m.d.sync += produce.eq(produce + 1)
        with m.If(fetch):
            m.d.sync += [consume.eq(consume + 1), self.r.valid.eq(1)]
        with m.Elif(self.r.ready):
            m.d.sync += self.r.valid.eq(0)
        return m


def _step_bits(cycles: int) -> int:
    """A timer of ``cycles`` counts steps of ``2**k`` cycles: about 16 steps, ``1 ≤ k ≤ 16``."""
    return min(16, max(1, cycles.bit_length() - 4))


RX_FIFO_DEPTH = 512   # bytes the board buffers while the core holds pixels back


class HostLink(wiring.Component):
    """The board side of the host link around a network core: UART in, core, UART out.

    Parameters
    ----------
    net : TTFSNet
        The net the core was built from (input size, classes and INFO fingerprint).
    core : wiring.Component
        A network core with ``pixels: In(stream.Signature(8))`` and ``result:
        Out(stream.Signature(ResultLayout))`` as in docs/rtl-interface.md (``NetworkTop``); a
        ``NetworkTop`` with several pixels per transfer gets the bytes through a
        :class:`~hdlgen.rtl_templates.encoder.PixelPacker`.
        Dense engines whose ``weights`` were replaced by :class:`~hdlgen.boards.spram.SPRAMWeights`
        (:func:`~hdlgen.boards.spram.place_weights`) get LOAD writes and are announced in INFO.
    clk_freq : float
        Clock frequency in Hz.
    baud : int
        UART rate; ``clk_freq / baud`` must be an integer within 2 % and at least 4.
    timeout : float
        Seconds of silence that abandon a half-received frame (up to a quarter more: the silence
        is timed in steps of a prescaler).
    rx_fifo_depth : int
        Bytes buffered between the UART and the frame receiver while the core holds pixels back
        (a power of two).
    verdict_depth : int
        Verdicts waiting for the encoder besides the one the receiver holds. One is enough for
        the host's two requests in flight: frames do not deadlock at any depth (a verdict waits
        only for results of images that already went in), a larger depth only lets the receiver
        run further ahead of the responses.
    error_hold : float
        Seconds the ``error`` status stays high after an ERROR response.

    Members
    -------
    rx : In(1)
        UART line from the host.
    tx : Out(1)
        UART line to the host.
    idle, busy, error : Out(1)
        Status for LEDs: nothing in flight; a frame, an image or a response in flight; an
        ERROR was sent within the last ``error_hold`` seconds.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    idle: Out(1)
    busy: Out(1)
    error: Out(1)

    def __init__(self, net, core, *, clk_freq: float, baud: int, timeout: float = 0.05,
                 rx_fifo_depth: int = RX_FIFO_DEPTH, verdict_depth: int = 1, error_hold: float = 0.25):
        self.net = net
        self.core = core
        self.clk_freq = clk_freq
        self.divisor = uart_divisor(clk_freq, baud)
        self.timeout_cycles = max(1, round(timeout * clk_freq))
        self.error_cycles = max(1, round(error_hold * clk_freq))
        self.timeout_step_bits = _step_bits(self.timeout_cycles)
        self.error_step_bits = _step_bits(self.error_cycles)
        ByteFIFO.address_bits(rx_fifo_depth)   # checked now, not first when elaborated
        if verdict_depth < 1:
            raise ValueError(f"the verdict FIFO's depth must be ≥ 1, got {verdict_depth}")
        self.rx_fifo_depth = rx_fifo_depth
        self.verdict_depth = verdict_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = uart_rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self.divisor)
        m.submodules.rx_fifo = rx_fifo = ByteFIFO(self.rx_fifo_depth)
        # at least timeout_cycles: the first step comes 1 to 2**k cycles after the last byte
        timeout_steps = ceil_div(self.timeout_cycles, 1 << self.timeout_step_bits) + 1
        m.submodules.receiver = receiver = FrameReceiver(self.net.input.size, timeout_steps)
        # The encoder holds a verdict until its response is out, so the receiver can take the
        # next frame (pixels into the core as they come) only with a verdict stage between them.
        m.submodules.verdict_stage = verdict_stage = SyncFIFOBuffered(width=Verdict.size, depth=self.verdict_depth)
        sprams = [engine.weights for engine in getattr(core, "engines", [])
                  if isinstance(engine.weights, SPRAMWeights)]
        m.submodules.encoder = encoder = ResponseEncoder(
            core.result.payload.shape(), input_size=self.net.input.size, clock_hz=round(self.clk_freq),
            fingerprint=link.net_fingerprint(self.net), lanes=_info_lanes(getattr(core, "lanes", 1), sprams),
            spram_layers=sum(1 << spram.layer for spram in sprams))

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.data, rx_fifo.w)
        # the byte FIFO's block RAM output goes through a register before the receiver's compares
        # (one byte every other cycle, still four times the UART's fastest rate)
        m.submodules.rx_stage = rx_stage = SyncFIFOBuffered(width=8, depth=1)
        wiring.connect(m, rx_fifo.r, rx_stage.w_stream)
        wiring.connect(m, rx_stage.r_stream, receiver.bytes)
        if core.pixels.payload.shape().width == 8:
            wiring.connect(m, receiver.pixels, core.pixels)
        else:   # a core taking several pixels per transfer gets them packed
            m.submodules.packer = packer = PixelPacker(core.geometry.input)
            wiring.connect(m, receiver.pixels, packer.i)
            wiring.connect(m, packer.o, core.pixels)
        m.d.comb += [verdict_stage.w_data.eq(receiver.verdicts.payload),
                     verdict_stage.w_en.eq(receiver.verdicts.valid),
                     receiver.verdicts.ready.eq(verdict_stage.w_rdy),
                     encoder.verdicts.payload.eq(verdict_stage.r_data),
                     encoder.verdicts.valid.eq(verdict_stage.r_rdy),
                     verdict_stage.r_en.eq(encoder.verdicts.ready)]
        wiring.connect(m, core.result, encoder.results)
        m.d.comb += receiver.write.ready.eq(1)   # SPRAM writes take one cycle; other layers ignore them
        for spram in sprams:
            m.d.comb += [spram.write.payload.eq(receiver.write.payload), spram.write.valid.eq(receiver.write.valid)]
        wiring.connect(m, encoder.bytes, uart_tx.data)

        # The timers count in steps of 2**k cycles (k ≤ 16) of one free-running prescaler: long
        # cycle counters with compares would be the slowest paths of a small design on an iCE40.
        prescaler = Signal(max(self.timeout_step_bits, self.error_step_bits))
        m.d.sync += prescaler.eq(prescaler + 1)
        m.d.comb += receiver.step.eq(prescaler[:self.timeout_step_bits].all())
        error_step = prescaler[:self.error_step_bits].all()
        steps = ceil_div(self.error_cycles, 1 << self.error_step_bits)
        error_timer = Signal(range(steps + 1))
        with m.If(encoder.error):
            m.d.sync += error_timer.eq(steps)
        with m.Elif(error_step & (error_timer != 0)):
            m.d.sync += error_timer.eq(error_timer - 1)
        m.d.comb += [
            self.busy.eq(receiver.busy | verdict_stage.r_rdy | encoder.busy | uart_tx.busy | rx_fifo.r.valid |
                         rx_stage.r_rdy),
            self.idle.eq(~self.busy),
            self.error.eq(error_timer != 0),
        ]
        return m


def _info_lanes(lanes, sprams) -> int:
    """The INFO's ``lanes``: the core's one number; with per-layer lanes, those of the engines with
    SPRAM weights (the one layout the host rebuilds, :meth:`~hdlgen.boards.host.Device.load_weights`),
    0 when they differ or do not fit its byte (more than 255: only for the first layer's spikes a cycle)."""
    if isinstance(lanes, int):
        return lanes if lanes <= 255 else _info_lanes((lanes,), sprams)
    spram_lanes = {spram.geometry.lanes for spram in sprams}
    return spram_lanes.pop() if len(spram_lanes) == 1 else 0
