"""Gateware of the UART host link around a network core (protocol: :mod:`hdlgen.boards.link`).

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
"""

from contextlib import contextmanager

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..errors import UserError
from ..geometry import ceil_div
from ..rtl_templates.encoder import PixelPacker
from ..rtl_templates.formal import stream_ports
from . import link
from .receiver_properties import receiver_property
from .spram import SPRAMWeights, WeightWrite
from .uart import UARTReceiver, UARTTransmitter, uart_divisor

__all__ = ["Verdict", "SerialCRC16", "FrameReceiver", "ResponseEncoder", "ByteFIFO", "HostLink"]

Verdict = data.StructLayout({
    "seq": unsigned(16),
    "error": unsigned(max(link.ErrorCode).bit_length()),   # 0, or a link.ErrorCode
    "info": unsigned(1),     # answer with INFO_REPLY (when error is 0)
    "image": unsigned(1),    # the frame sent an image into the core: consume one result
    "loaded": unsigned(1),   # answer with LOAD_REPLY (when error is 0)
    "input_cycles": unsigned(32),  # first to last pixel into the core
})


class SerialCRC16(wiring.Component):
    """The link's CRC (:func:`hdlgen.boards.link.crc16`), one bit per cycle: the bit-serial
    processor of :mod:`amaranth.lib.crc` for ``catalog.CRC16_CCITT_FALSE``.

    ``start`` sets the register to the initial value; in a cycle with ``valid``, ``bit`` is
    shifted in (after the initial value if ``start`` is high too); the bits of a byte go most
    significant first. ``crc`` is the register; ``match`` is high while it holds the residue,
    as it does after a good frame's own CRC. A byte-wide CRC costs a wide XOR network, and the
    link has the cycles the UART takes for a byte (10 · divisor ≥ 40) to spare.

    Members
    -------
    start, valid, bit : In(1)
    crc : Out(16)
    match : Out(1)
    """

    start: In(1)
    valid: In(1)
    bit: In(1)
    crc: Out(16)
    match: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.processor = processor = catalog.CRC16_CCITT_FALSE(data_width=1).create()
        m.d.comb += [processor.start.eq(self.start), processor.valid.eq(self.valid), processor.data.eq(self.bit),
                     self.crc.eq(processor.crc), self.match.eq(processor.match_detected)]
        return m


class FrameReceiver(wiring.Component):
    """Frame receiver: sync hunt, header check, pixels into the core, CRC check, verdict.

    Protocol (:mod:`hdlgen.boards.link`): waits for ``A5 5A``; reads type and length; a type
    other than CLASSIFY/INFO/LOAD, or a length other than ``2 + input_size`` (CLASSIFY), 2 (INFO)
    or ``5 + 2·n`` with ``n`` in 1..256 (LOAD), queues an ERROR verdict (``seq = 0xFFFF``) and goes back
    to hunting. Then the sequence number; a CLASSIFY frame's pixel bytes are passed to ``pixels`` one for one as they arrive
    (back-pressure from the core holds the byte stream); then the CRC, checked by the residue of
    CRC-16/CCITT-FALSE over type … crc (:class:`SerialCRC16`: each byte is shifted in before it
    is taken, so the receiver takes at most a byte every 9 cycles). A LOAD frame's words go out on ``write`` as they
    arrive (layer, word address ``offset + i``, 16-bit data). One verdict per recognised frame:
    no error, BAD_CRC, BAD_LENGTH, BAD_TYPE or TIMEOUT. The verdict is held on ``verdicts``
    until taken; the next frame is hunted for only then.

    If no byte is available for ``timeout_steps`` strobes of ``step`` in the middle of a frame,
    the frame is abandoned with a TIMEOUT verdict; if its image had started, the missing pixels
    are sent as zeros so that the core still sees whole images (its result is then discarded).
    The silence is timed in steps of a prescaler shared with other timers: a wide cycle counter
    and its compare would cost more than the whole frame logic.

    Pixels leave through a register (a one-entry FIFO), so the core's ``ready`` does not sit in
    one combinational path with the byte stream and this state machine. ``input_cycles`` is timed
    where the pixels go into the core, and an image's verdict waits until its last pixel has.

    Parameters
    ----------
    input_size : int
        Pixels per image (1..65533).
    timeout_steps : int
        Strobes of ``step`` without a byte that abandon a frame (≥ 1).

    Members
    -------
    bytes : In(stream.Signature(8))
    pixels : Out(stream.Signature(8))
    write : Out(stream.Signature(WeightWrite))
        Weight words of LOAD frames.
    verdicts : Out(stream.Signature(Verdict))
    step : In(1)
        The silence timer's clock enable.
    busy : Out(1)
        High from a complete sync to the verdict being taken.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, input_size: int, timeout_steps: int):
        if not 1 <= input_size <= 0xFFFF - 2:
            raise ValueError(f"input size must be 1..65533 pixels, got {input_size}")
        if timeout_steps < 1:
            raise ValueError(f"timeout must be ≥ 1 step, got {timeout_steps}")
        self.input_size = input_size
        self.timeout_steps = timeout_steps
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "pixels": Out(stream.Signature(8)),
            "write": Out(stream.Signature(WeightWrite)),
            "verdicts": Out(stream.Signature(Verdict)),
            "step": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = checker = SerialCRC16()
        m.submodules.pixel_buffer = pixel_buffer = SyncFIFOBuffered(width=8, depth=1)
        wiring.connect(m, pixel_buffer.r_stream, wiring.flipped(self.pixels))
        pixels = pixel_buffer.w_stream
        layer = Signal(8)
        offset = Signal(16)
        word_low = Signal(8)

        byte = self.bytes.payload
        take = self.bytes.valid & self.bytes.ready
        # the type, decoded as it is taken (three flags instead of an 8-bit type and its compares)
        classify, info, load = Signal(), Signal(), Signal()
        # the length field; from the sequence number on, its low bits count down the pixels or
        # words still to come (the last one at 0)
        length = Signal(16)
        remaining = length[:(max(self.input_size, link.MAX_LOAD_WORDS) - 1).bit_length()]
        verdict = Signal(Verdict)
        input_cycles = Signal(32)
        quiet = Signal(range(self.timeout_steps))
        timed_out = Signal()

        # input_cycles: the first to the last pixel of an image going into the core; it counts
        # while an image is under way and stops at its last pixel, which is in before its verdict
        delivered = Signal(range(self.input_size))
        with m.If(self.pixels.valid & self.pixels.ready):
            m.d.sync += delivered.eq(Mux(delivered == self.input_size - 1, 0, delivered + 1))
            with m.If(delivered == 0):
                m.d.sync += input_cycles.eq(0)
        with m.If(delivered != 0):
            m.d.sync += input_cycles.eq(input_cycles + 1)

        m.d.comb += [self.verdicts.payload.eq(verdict), self.verdicts.payload.input_cycles.eq(input_cycles)]

        # A byte of the frame is shifted into the CRC, a bit per cycle, before it is taken
        # (``fed``): a byte-wide CRC is a wide XOR network, and bytes come at most every
        # 10 · divisor cycles from the UART.
        checked = Signal()   # this state's byte goes into the CRC
        fed = Signal()
        crc_bit = Signal(range(8))
        m.d.comb += checker.bit.eq(byte.bit_select(~crc_bit, 1))   # most significant first
        with m.If(checked & self.bytes.valid & ~fed):
            m.d.comb += checker.valid.eq(1)
            m.d.sync += crc_bit.eq(crc_bit + 1)
            with m.If(crc_bit == 7):
                m.d.sync += fed.eq(1)
        with m.If(take):
            m.d.sync += fed.eq(0)
        # The silence timer runs only while a frame is open and nothing waits in the byte stream.
        # ``timed_out`` is a register kept equal to ``quiet == timeout_steps`` (a compare
        # feeding every state's logic would be a long path).
        with m.If(self.bytes.valid | ~self.busy):
            m.d.sync += [quiet.eq(0), timed_out.eq(0)]
        with m.Elif(self.step & ~timed_out):
            m.d.sync += [quiet.eq(quiet + 1), timed_out.eq(quiet == self.timeout_steps - 1)]

        @contextmanager
        def frame_byte(state, *, ready=None, comb=(), image=0, abandon="VERDICT"):
            """A state that takes one byte of the frame once it is in the CRC (``ready``: the
            byte's sink, if any, is ready; ``comb``: the state's other outputs); the body says
            what the byte does when it is taken. A silence abandons the frame with a TIMEOUT
            verdict (``image``: the core got pixels of it) and goes to ``abandon``."""
            with m.State(state):
                m.d.comb += [self.bytes.ready.eq(fed if ready is None else ready & fed), checked.eq(1), *comb]
                with m.If(take):
                    yield
                with m.Elif(timed_out):
                    m.d.sync += [verdict.error.eq(link.ErrorCode.TIMEOUT), verdict.image.eq(image)]
                    m.next = abandon

        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(take & (byte == link.SYNC[0])):
                    m.next = "SYNC2"
            with m.State("SYNC2"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(take):
                    with m.If(byte == link.SYNC[1]):
                        m.d.comb += checker.start.eq(1)
                        # a frame abandoned in the cycle a byte came may have shifted one bit of it in
                        m.d.sync += [verdict.seq.eq(link.NO_SEQ), verdict.error.eq(0), verdict.image.eq(0),
                                     verdict.info.eq(0), verdict.loaded.eq(0), crc_bit.eq(0)]
                        m.next = "TYPE"
                    with m.Elif(byte != link.SYNC[0]):
                        m.next = "HUNT"
            for state, target, actions in [
                    ("TYPE", "LENGTH_LOW", [classify.eq(byte == link.MessageType.CLASSIFY),
                                            info.eq(byte == link.MessageType.INFO),
                                            load.eq(byte == link.MessageType.LOAD)]),
                    ("LENGTH_LOW", "LENGTH_HIGH", [length[:8].eq(byte)]),
                    ("LENGTH_HIGH", "LENGTH_CHECK", [length[8:].eq(byte)]),
                    ("SEQ_LOW", "SEQ_HIGH", [verdict.seq[:8].eq(byte)]),
                    ("LAYER", "OFFSET_LOW", [layer.eq(byte)]),
                    ("OFFSET_LOW", "OFFSET_HIGH", [offset[:8].eq(byte)]),
                    ("OFFSET_HIGH", "WORD_LOW", [offset[8:].eq(byte)]),
                    ("WORD_LOW", "WORD_HIGH", [word_low.eq(byte)])]:
                with frame_byte(state):
                    m.d.sync += actions
                    m.next = target
            with m.State("LENGTH_CHECK"):
                # the length is checked from registers, a cycle after its last byte: the
                # compares do not follow the byte handshake in the same cycle
                m.d.sync += remaining.eq(Mux(load, length[1:] - 3, self.input_size - 1))   # (length − 7) / 2
                with m.If(classify & (length == 2 + self.input_size) | info & (length == 2) |
                          load & (length >= 7) & length[0] & (length <= 5 + 2 * link.MAX_LOAD_WORDS)):
                    m.next = "SEQ_LOW"
                with m.Else():
                    m.d.sync += verdict.error.eq(Mux(classify | info | load, link.ErrorCode.BAD_LENGTH,
                                                     link.ErrorCode.BAD_TYPE))
                    m.next = "VERDICT"
            with frame_byte("SEQ_HIGH"):
                m.d.sync += verdict.seq[8:].eq(byte)
                with m.If(classify):
                    m.next = "PIXELS"
                with m.Elif(load):
                    m.next = "LAYER"
                with m.Else():
                    m.next = "CRC_HIGH"
            with frame_byte("WORD_HIGH", ready=self.write.ready,
                            comb=[self.write.valid.eq(self.bytes.valid & fed), self.write.payload.layer.eq(layer),
                                  self.write.payload.addr.eq(offset), self.write.payload.data.eq(Cat(word_low, byte))]):
                m.d.sync += [remaining.eq(remaining - 1), offset.eq(offset + 1)]   # the next word's address
                with m.If(remaining == 0):
                    m.next = "CRC_HIGH"
                with m.Else():
                    m.next = "WORD_LOW"
            # a stalled image is padded with zeros (PAD), so that the core still sees whole images
            with frame_byte("PIXELS", ready=pixels.ready, comb=[pixels.valid.eq(self.bytes.valid & fed),
                                                               pixels.payload.eq(byte)], image=1, abandon="PAD"):
                m.d.sync += remaining.eq(remaining - 1)
                with m.If(remaining == 0):
                    m.next = "CRC_HIGH"
            with m.State("PAD"):
                m.d.comb += pixels.valid.eq(1)  # payload 0
                with m.If(pixels.ready):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining == 0):
                        m.next = "VERDICT"
            for state, target in [("CRC_HIGH", "CRC_LOW"), ("CRC_LOW", "CHECK")]:
                with frame_byte(state, image=classify):
                    m.next = target
            with m.State("CHECK"):
                with m.If(pixel_buffer.level == 0):   # input_cycles is final
                    m.next = "VERDICT"
                m.d.sync += [verdict.image.eq(classify), verdict.info.eq(info), verdict.loaded.eq(load),
                             verdict.error.eq(Mux(checker.match, 0, link.ErrorCode.BAD_CRC))]
            with m.State("VERDICT"):
                m.d.comb += self.verdicts.valid.eq(1)
                with m.If(self.verdicts.ready):
                    m.next = "HUNT"
        m.d.comb += self.busy.eq(~fsm.ongoing("HUNT") & ~fsm.ongoing("SYNC2"))
        if self.formal:
            stream_ports(m, self, inputs=("bytes",), outputs=("pixels", "write", "verdicts"))
            if "receiver" in self.formal:
                receiver_property(m, self, fsm, checker=checker, crc_bit=crc_bit, fed=fed, length=length,
                                  remaining=remaining, kind_flags=(classify, info, load), verdict=verdict,
                                  quiet=quiet, timed_out=timed_out, pixel_buffer=pixel_buffer)
        return m


class ResponseEncoder(wiring.Component):
    """Response encoder: one response frame per verdict, in verdict order.

    Protocol (:mod:`hdlgen.boards.link`): for a verdict with ``image`` set, waits for the core's
    next result. No error → RESULT (``seq``, label, cycles, input cycles, logits sign-extended
    to 32 bits); an error → ERROR (``seq``, code), the result is dropped; ``info`` → INFO_REPLY
    with the constants given here; ``loaded`` → LOAD_REPLY. The frame is sent byte by byte on
    ``bytes``, CRC-16/CCITT-FALSE over type … payload appended most significant byte first.

    The frame is first copied into a block RAM that holds its constant bytes from the start: a
    variable byte every two cycles, picked from the verdict and the result while they wait on
    their streams (a stream holds its payload until it is taken). Both are taken once the frame
    is there (a RESULT with 10 classes: about 110 cycles), so the core's next result is not held
    up by the UART. Then the frame is sent from the block RAM, each byte shifted into a
    bit-serial CRC while the UART sends the one before. A copy in flip-flops (a shift register
    or registered fields) would cost a flip-flop and a multiplexer per frame bit.

    Parameters
    ----------
    result_shape : data.StructLayout
        The core's result layout: ``label``, ``cycles`` (32 bits), ``logits`` (an array of
        signed accumulators of at most 32 bits).
    input_size, clock_hz, fingerprint, lanes, spram_layers : int
        Reported in INFO_REPLY (``spram_layers``: bit ``i`` set for a layer in SPRAM).

    Members
    -------
    verdicts : In(stream.Signature(Verdict))
    results : In(stream.Signature(result_shape))
    bytes : Out(stream.Signature(8))
    busy : Out(1)
        High while a response is being sent.
    error : Out(1)
        Strobes when an ERROR response is started.
    """

    def __init__(self, result_shape, *, input_size: int, clock_hz: int, fingerprint: int, lanes: int = 1,
                 spram_layers: int = 0):
        logits = result_shape["logits"].shape
        if not isinstance(logits, data.ArrayLayout):
            raise TypeError(f"result logits must be an ArrayLayout, got {logits!r}")
        element = logits.elem_shape
        if element.width > 8 * link.LOGIT_BYTES:
            raise UserError(f"the readout accumulator is {element.width} bits; the host link carries "
                            f"{8 * link.LOGIT_BYTES}-bit logits (use fewer weight bits or smaller biases)")
        if not 1 <= logits.length <= 255:
            raise ValueError(f"the host link carries 1..255 classes, got {logits.length}")
        self.classes = logits.length
        self.input_size = input_size
        self.clock_hz = int(clock_hz)
        self.fingerprint = int(fingerprint)
        self.lanes = int(lanes)
        self.spram_layers = int(spram_layers)
        super().__init__({
            "verdicts": In(stream.Signature(Verdict)),
            "results": In(stream.Signature(result_shape)),
            "bytes": Out(stream.Signature(8)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc_gen = SerialCRC16()

        verdict = self.verdicts.payload
        result = self.results.payload

        def le(value, size):
            """``value`` as ``size`` little-endian bytes: ints for a constant, slices for a signal."""
            if isinstance(value, int):
                return list(value.to_bytes(size, "little"))
            value = Cat(value, Const(0, 8 * size - len(value)))
            return [value[8 * i:8 * i + 8] for i in range(size)]

        def frame(kind, payload, more=0):
            """A frame up to its CRC as ints and slices; ``payload``: (value, bytes) pairs, then
            ``more`` bytes that are not listed."""
            size = sum(n for _, n in payload) + more
            return [*link.SYNC, kind, *le(size, 2), *[byte for value, n in payload for byte in le(value, n)]]

        logit_bytes = link.LOGIT_BYTES * self.classes
        # RESULT without its logits, which follow from the logit multiplexer
        frames = {
            "result": frame(link.MessageType.RESULT, [(verdict.seq, 2), (result.label, 1), (result.cycles[:32], 4),
                                                      (verdict.input_cycles, 4)], more=logit_bytes),
            "info": frame(link.MessageType.INFO_REPLY, [(verdict.seq, 2), (link.VERSION, 1), (self.input_size, 2),
                                                        (self.classes, 1), (self.clock_hz, 4), (self.fingerprint, 4),
                                                        (self.lanes, 1), (self.spram_layers, 1)]),
            "loaded": frame(link.MessageType.LOAD_REPLY, [(verdict.seq, 2)]),
            "error": frame(link.MessageType.ERROR, [(verdict.seq, 2), (verdict.error, 1)]),
        }
        sizes = {kind: len(bytes_) + (logit_bytes if kind == "result" else 0) for kind, bytes_ in frames.items()}
        # the bytes from the sequence number to the last one taken from the verdict or result
        variable = {kind: max(i for i, byte in enumerate(bytes_) if not isinstance(byte, int))
                    for kind, bytes_ in frames.items()}
        assert all(not isinstance(byte, int) for kind, bytes_ in frames.items()
                   for byte in bytes_[link.HEADER_SIZE:variable[kind] + 1])

        # The frames lie in the block RAM side by side, their constant bytes there from the
        # start; a response copies in only its variable bytes. RESULT is first, the others in
        # slots after it: a frame's address is its base ORed with the byte index.
        result_area = 1 << (sizes["result"] - 1).bit_length()
        slot = 1 << (max(size for kind, size in sizes.items() if kind != "result") - 1).bit_length()
        bases = {"result": 0, "info": result_area, "loaded": result_area + slot, "error": result_area + 2 * slot}
        init = [0] * (result_area + 3 * slot)
        for k, bytes_ in frames.items():
            for i, byte in enumerate(bytes_):
                if isinstance(byte, int):
                    init[bases[k] + i] = byte

        # which response: in this priority, decoded from the waiting verdict
        is_error = verdict.error != 0
        is_info = ~is_error & verdict.info
        is_loaded = ~is_error & ~verdict.info & verdict.loaded

        def by_kind(values):
            return Mux(is_error, values["error"], Mux(is_info, values["info"],
                                                      Mux(is_loaded, values["loaded"], values["result"])))

        index = Signal(range(result_area))     # the byte being copied or sent
        # the response, decoded from the verdict when it is started (the copy works from this
        # register, not from the decoder)
        kinds = list(frames)
        kind = Signal(range(len(kinds)))
        head_byte = Signal(8)
        # Only the copy of a head reads it, from HEADER_SIZE on: the index's bits above the heads
        # are not decoded, and the last position is every other value's too.
        head_end = max(variable.values())
        with m.Switch(index[:head_end.bit_length()]):
            for i in range(link.HEADER_SIZE, head_end + 1):
                candidates = {k: bytes_[i] for k, bytes_ in frames.items() if i <= variable[k]}
                with m.Case(i) if i < head_end else m.Default():
                    if len(candidates) == 1:
                        m.d.comb += head_byte.eq(*candidates.values())
                    elif set(candidates) == {"result", "error"}:
                        m.d.comb += head_byte.eq(Mux(kind == kinds.index("error"), candidates["error"],
                                                     candidates["result"]))
                    else:   # the sequence number, the same in every frame
                        m.d.comb += head_byte.eq(candidates["result"])

        # RESULT's logits: one selected by a counter, then one of its bytes (sign-extended)
        logit = Signal(range(self.classes))
        logit_byte = Signal(range(link.LOGIT_BYTES))
        selected = Signal(signed(8 * link.LOGIT_BYTES))
        m.d.comb += selected.eq(result.logits[logit])
        logit_out = Signal(8)
        m.d.comb += logit_out.eq(selected.word_select(logit_byte, 8))

        m.submodules.frames = memory = Memory(shape=8, depth=len(init), init=init)
        write = memory.write_port()
        # transparent: nothing is read where it is written, and a port that returns the old
        # data on a collision costs a register and a multiplexer per bit on an iCE40
        read = memory.read_port(transparent_for=(write,))
        step = Signal(range(11))               # of the byte at index being sent
        # The byte goes out and into the CRC from a register loaded straight from the block
        # RAM's output, which is slow (on an ECP5 more than half of a 10 ns cycle).
        tx_byte = Signal(8)
        # the multiplexers' byte is registered before the block RAM's write port (on an ECP5 they
        # were the longest path into it)
        copy_byte = Signal(8)
        picked = Signal()
        base = Array(Const(bases[k], range(len(init))) for k in kinds)[kind]
        last = Array(Const(sizes[k] - 1, range(result_area)) for k in kinds)[kind]
        m.d.comb += [write.addr.eq(index | base), write.data.eq(copy_byte), read.addr.eq(index | base)]

        def copied():
            m.d.sync += [index.eq(0), step.eq(0)]
            m.next = "RELEASE"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.verdicts.valid & (~verdict.image | self.results.valid)):
                    m.d.comb += [crc_gen.start.eq(1), self.error.eq(is_error)]
                    m.d.sync += [index.eq(link.HEADER_SIZE), logit.eq(0), logit_byte.eq(0),
                                 kind.eq(by_kind({k: i for i, k in enumerate(kinds)}))]
                    m.next = "COPY_HEAD"
            # a byte is copied in two cycles: picked into copy_byte, then written
            with m.State("COPY_HEAD"):
                with m.If(~picked):
                    m.d.sync += [copy_byte.eq(head_byte), picked.eq(1)]
                with m.Else():
                    m.d.comb += write.en.eq(1)
                    m.d.sync += [index.eq(index + 1), picked.eq(0)]
                    with m.If(index == Array(variable[k] for k in kinds)[kind]):
                        with m.If(kind == kinds.index("result")):
                            m.next = "COPY_LOGITS"
                        with m.Else():
                            copied()
            with m.State("COPY_LOGITS"):
                with m.If(~picked):
                    m.d.sync += [copy_byte.eq(logit_out), picked.eq(1)]
                with m.Else():
                    m.d.comb += write.en.eq(1)
                    m.d.sync += [index.eq(index + 1), logit_byte.eq(logit_byte + 1), picked.eq(0)]
                    with m.If(logit_byte == link.LOGIT_BYTES - 1):
                        m.d.sync += logit.eq(logit + 1)
                        with m.If(logit == self.classes - 1):
                            copied()
            with m.State("RELEASE"):
                # the frame is in the block RAM: the verdict and its result may go (a state of its
                # own, so that the result's ready comes from registers into the core)
                m.d.comb += [self.verdicts.ready.eq(1), self.results.ready.eq(verdict.image)]
                m.next = "SEND"
            with m.State("SEND"):
                # a byte takes a cycle to read, one into ``tx_byte``, 8 into the CRC (the UART is
                # still busy with the one before), then it is offered
                m.d.comb += [self.bytes.valid.eq(step == 10), self.bytes.payload.eq(tx_byte),
                             crc_gen.valid.eq((step >= 2) & (step != 10) & (index >= len(link.SYNC))),
                             crc_gen.bit.eq(Cat(0, 0, tx_byte[::-1]).bit_select(step, 1))]
                with m.If(step == 1):
                    m.d.sync += tx_byte.eq(read.data)
                with m.If(step != 10):
                    m.d.sync += step.eq(step + 1)
                with m.Elif(self.bytes.ready):
                    m.d.sync += [index.eq(index + 1), step.eq(0)]
                    with m.If(index == last):
                        m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                m.d.comb += [self.bytes.valid.eq(1), self.bytes.payload.eq(crc_gen.crc[8:])]
                with m.If(self.bytes.ready):
                    m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                m.d.comb += [self.bytes.valid.eq(1), self.bytes.payload.eq(crc_gen.crc[:8])]
                with m.If(self.bytes.ready):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


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
            fingerprint=link.net_fingerprint(self.net), lanes=getattr(core, "lanes", 1),
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
