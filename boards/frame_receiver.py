"""The receive side of the host link's gateware (protocol: :mod:`hdlgen.boards.link`): frames
from the UART's bytes, pixels into the core as they arrive, one verdict per recognised frame
(:class:`~hdlgen.boards.host_link.HostLink` wires it)."""


from contextlib import contextmanager

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..rtl_templates.formal import stream_ports
from . import link
from .receiver_properties import receiver_property, stream_invariants
from .spram import WeightWrite

__all__ = ["Verdict", "SerialCRC16", "FrameReceiver"]

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
                m.next = "VERDICT"
                m.d.sync += [verdict.image.eq(classify), verdict.info.eq(info), verdict.loaded.eq(load),
                             verdict.error.eq(Mux(checker.match, 0, link.ErrorCode.BAD_CRC))]
            with m.State("VERDICT"):
                # offered once an image's last pixel (a padded one too) is in the core: input_cycles
                # is final then, and stays while the verdict waits
                m.d.comb += self.verdicts.valid.eq(pixel_buffer.level == 0)
                with m.If(self.verdicts.valid & self.verdicts.ready):
                    m.next = "HUNT"
        m.d.comb += self.busy.eq(~fsm.ongoing("HUNT") & ~fsm.ongoing("SYNC2"))
        if self.formal:
            stream_ports(m, self, inputs=("bytes",), outputs=("pixels", "write", "verdicts"))
            stream_invariants(m, self, fsm, delivered=delivered, level=pixel_buffer.level, remaining=remaining,
                              kind_flags=(classify, info, load), fed=fed, timed_out=timed_out)
            if "receiver" in self.formal:
                receiver_property(m, self, fsm, checker=checker, crc_bit=crc_bit, fed=fed, length=length,
                                  remaining=remaining, kind_flags=(classify, info, load), verdict=verdict,
                                  quiet=quiet, timed_out=timed_out, pixel_buffer=pixel_buffer)
        return m
