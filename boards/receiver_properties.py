"""The link frame receiver's formal property (``receiver``, :data:`hdlgen.prove.PROPERTIES`),
stated so that k-induction closes at a small depth: the invariants that tie the receiver's state
to a shadow model of the frame make it inductive, so ``hdlgen prove`` shows it for every
reachable state instead of a bounded check over one frame.

Kept out of :mod:`.frame_receiver` (only :class:`~.frame_receiver.FrameReceiver` calls it, with the
``receiver`` kind in its ``formal``): no synthesis, simulation or ``hdlgen verilog`` build runs it.
"""

from amaranth.hdl import Assert, Cat, Const, Mux, Signal
from amaranth.lib.crc import catalog

from ..rtl_templates.formal import past
from . import link

__all__ = ["receiver_property", "stream_invariants"]

# the states that take a byte of the frame (FrameReceiver's frame_byte)
_FRAME_BYTES = ("TYPE", "LENGTH_LOW", "LENGTH_HIGH", "SEQ_LOW", "SEQ_HIGH", "LAYER", "OFFSET_LOW", "OFFSET_HIGH",
                "WORD_LOW", "WORD_HIGH", "PIXELS", "CRC_HIGH", "CRC_LOW")

# CRC-16/CCITT-FALSE (:func:`hdlgen.boards.link.crc16`): the polynomial of one shift, most significant bit first
_POLY = 0x1021


def _shifted(crc, bits):
    """``crc`` after the bit-serial CRC has taken ``bits`` (most significant first)."""
    for bit in bits:
        crc = Cat(Const(0, 1), crc[:15]) ^ Mux(crc[15] ^ bit, _POLY, 0)
    return crc


def stream_invariants(m, receiver, fsm, *, delivered, level, remaining, kind_flags, fed, timed_out):
    """Invariants of :class:`~.frame_receiver.FrameReceiver` ``receiver`` that make the stream rules
    on its outputs inductive: a byte fed whole into the CRC (``fed``, so offered to a sink) is one the
    line holds, so no silence abandons it; and the pixels into the core (``delivered`` of this
    image, modulo its size) and in the pixel buffer (``level``) follow the frame's state – all of
    an image's pixels are pushed from its last on, none outside an image – so ``input_cycles``
    stops with the image's last pixel, before its verdict is offered."""
    size = receiver.input_size
    classify, info, load = kind_flags

    def state(*names):
        return Cat(fsm.ongoing(name) for name in names).any()

    offered = past(m, receiver.bytes.valid & ~receiver.bytes.ready, "offered_byte")
    m.d.comb += Assert(~state(*_FRAME_BYTES) | ~fed | offered & ~timed_out, "receiver invariant: a byte fed is held")
    m.d.comb += Assert(~state("LENGTH_CHECK", "CHECK") | ~fed, "receiver invariant: no byte fed in a check")
    in_core = delivered + level
    m.d.comb += Assert(classify + info + load <= 1, "receiver invariant: one frame type")
    m.d.comb += Assert(delivered < size, "receiver invariant: pixels delivered of an image")
    m.d.comb += Assert(~state("SEQ_LOW", "SEQ_HIGH") | ~classify | (remaining == size - 1),
                       "receiver invariant: an image's pixels to come")
    m.d.comb += Assert(~state("PIXELS", "PAD") | (remaining <= size - 1) & (in_core == size - 1 - remaining),
                       "receiver invariant: pixels pushed")
    m.d.comb += Assert(~state("CRC_HIGH", "CRC_LOW", "CHECK", "VERDICT") | (in_core == 0) | (in_core == size),
                       "receiver invariant: an image pushed whole")
    m.d.comb += Assert(state("PIXELS", "PAD", "CRC_HIGH", "CRC_LOW", "CHECK", "VERDICT") | (in_core == 0),
                       "receiver invariant: no pixels outside an image")


def receiver_property(m, receiver, fsm, *, checker, crc_bit, fed, length, remaining, kind_flags, verdict,
                      quiet, timed_out, pixel_buffer):
    """Assert, of :class:`~.frame_receiver.FrameReceiver` ``receiver`` (its state machine ``fsm`` and
    the registers named by the keywords), that

    * a verdict without error follows only a frame whose CRC is right (a byte-wide CRC of its own
      over the frame bytes taken since the sync) and whose length field matches the bytes taken
      (and is ``2 + input_size`` for a CLASSIFY frame);
    * with a silent line, ready sinks and the ``step`` strobe (*calm*), every cycle in a frame
      brings it strictly closer to hunting again: a rank of its state falls, or stays while a
      measure within the state does (the silence timer, the padding left, the pixel buffer) – so
      from any state it returns to idle, in at most a frame's padding and a timeout.

    The invariants that make both inductive: per state, the frame bytes taken so far (from the
    pixels or words left), the type flags and length as taken, the receiver's CRC register equal
    to the shadow's advanced by the bits of the current byte already shifted in, and the
    silence timer below its limit until it fires."""
    size = receiver.input_size
    byte, take = receiver.bytes.payload, receiver.bytes.valid & receiver.bytes.ready
    busy = receiver.busy
    classify, info, load = kind_flags

    def state(*names):
        return Cat(fsm.ongoing(name) for name in names).any()

    # the shadow: the frame bytes since the sync, counted and put through a byte-wide CRC
    m.submodules.formal_crc = crc = catalog.CRC16_CCITT_FALSE(data_width=8).create()
    synced = state("SYNC2") & take & (byte == link.SYNC[1])
    count = Signal(17)      # frame bytes since the sync (at most 5 + 0xFFFF)
    shadow_length = Signal(16)
    kind = Signal(8)
    m.d.comb += [crc.start.eq(synced), crc.valid.eq(take & busy), crc.data.eq(byte)]
    with m.If(synced):
        m.d.sync += count.eq(0)
    with m.If(take & busy):
        m.d.sync += count.eq(count + 1)
        with m.If(count == 0):
            m.d.sync += kind.eq(byte)
        with m.If(count == 1):
            m.d.sync += shadow_length[:8].eq(byte)
        with m.If(count == 2):
            m.d.sync += shadow_length[8:].eq(byte)

    # a verdict without error, offered or waiting for its image's last pixel to leave the buffer
    accepted = fsm.ongoing("VERDICT") & (verdict.error == 0)
    cex_length = Signal(16, name="cex_length", attrs={"keep": 1})
    cex_bytes = Signal(17, name="cex_bytes", attrs={"keep": 1})
    m.d.comb += [cex_length.eq(shadow_length), cex_bytes.eq(count)]
    m.d.comb += Assert(~accepted | crc.match_detected, "receiver: no frame with a wrong CRC is accepted")
    m.d.comb += Assert(~accepted | (count == 5 + shadow_length), "receiver: no frame with a wrong length is accepted")
    m.d.comb += Assert(~accepted | (kind != link.MessageType.CLASSIFY) | (shadow_length == 2 + size),
                       "receiver: a CLASSIFY frame has one byte per pixel")

    m.d.comb += Assert(state(*fsm.encoding), "receiver invariant: a state of its own")
    # invariants: the type flags as taken, the length checked, the bytes taken per state
    flags_taken = ((classify == (kind == link.MessageType.CLASSIFY)) & (info == (kind == link.MessageType.INFO))
                   & (load == (kind == link.MessageType.LOAD)))
    words = shadow_length[1:] - 3      # a LOAD frame's words, less one (as LENGTH_CHECK sets ``remaining``)
    length_ok = (classify & (shadow_length == 2 + size) | info & (shadow_length == 2)
                 | load & (shadow_length >= 7) & shadow_length[0] & (shadow_length <= 5 + 2 * link.MAX_LOAD_WORDS))
    header = {"TYPE": 0, "LENGTH_LOW": 1, "LENGTH_HIGH": 2, "LENGTH_CHECK": 3}
    for name, taken in header.items():
        m.d.comb += Assert(~state(name) | (count == taken), f"receiver invariant: {name} bytes")
    m.d.comb += Assert(~state("LENGTH_LOW", "LENGTH_HIGH", "LENGTH_CHECK") | flags_taken, "receiver invariant: type")
    m.d.comb += Assert(~state("LENGTH_HIGH") | (length[:8] == shadow_length[:8]), "receiver invariant: length low")
    m.d.comb += Assert(~state("LENGTH_CHECK") | (length == shadow_length), "receiver invariant: length")
    checked_frame = flags_taken & length_ok
    body = {"SEQ_LOW": 3, "SEQ_HIGH": 4, "LAYER": 5, "OFFSET_LOW": 6, "OFFSET_HIGH": 7,
            "PIXELS": 5 + (size - 1) - remaining, "WORD_LOW": 8 + 2 * (words - remaining),
            "WORD_HIGH": 9 + 2 * (words - remaining), "CRC_HIGH": 3 + shadow_length, "CRC_LOW": 4 + shadow_length,
            "CHECK": 5 + shadow_length}
    for name, taken in body.items():
        m.d.comb += Assert(~state(name) | checked_frame & (count == taken), f"receiver invariant: {name} bytes")
    m.d.comb += Assert(~state("SEQ_LOW", "SEQ_HIGH", "LAYER", "OFFSET_LOW", "OFFSET_HIGH")
                       | (remaining == Mux(load, words, size - 1)), "receiver invariant: pixels or words to come")
    m.d.comb += Assert(~state("PIXELS") | classify & (remaining <= size - 1), "receiver invariant: pixels left")
    m.d.comb += Assert(~state("LAYER", "OFFSET_LOW", "OFFSET_HIGH") | load, "receiver invariant: a LOAD frame")
    m.d.comb += Assert(~state("WORD_LOW", "WORD_HIGH") | load & (remaining <= words), "receiver invariant: words left")
    m.d.comb += Assert(~accepted | checked_frame, "receiver invariant: an accepted frame's type and length")
    m.d.comb += Assert(~state("PAD") | (verdict.error != 0), "receiver invariant: a padded image is never accepted")

    # the CRC register: the shadow's, advanced by the bits of this byte shifted in so far
    bits = [byte[7 - n] for n in range(8)]
    advanced = Signal(16)
    with m.Switch(Cat(crc_bit, fed)):
        for n in range(9):
            with m.Case(n if n < 8 else 0b1000):
                m.d.comb += advanced.eq(_shifted(crc.crc, bits[:n]))
    m.d.comb += Assert(~fed | (crc_bit == 0), "receiver invariant: a byte fed whole")
    m.d.comb += Assert(~state("LENGTH_CHECK", "CHECK") | ~fed & (crc_bit == 0), "receiver invariant: no byte half fed")
    m.d.comb += Assert(~state(*_FRAME_BYTES, "LENGTH_CHECK", "CHECK") | (checker.crc == advanced),
                       "receiver invariant: the CRC of the bytes taken")
    # a byte being fed was offered and not taken last cycle: the stream rules hold it, with its payload
    offered = past(m, receiver.bytes.valid & ~receiver.bytes.ready, "offered")
    m.d.comb += Assert(~state(*_FRAME_BYTES) | ~(fed | (crc_bit != 0)) | offered & ~timed_out,
                       "receiver invariant: a byte fed is held")

    # no lock-up: calm, each cycle lowers (rank, measure)
    rank = Mux(state("LENGTH_CHECK"), 4, Mux(state(*_FRAME_BYTES), 3, Mux(state("PAD", "CHECK"), 2, 1)))
    timeout = receiver.timeout_steps
    m.d.comb += Assert(timed_out | (quiet < timeout), "receiver invariant: the silence timer below its limit")
    measure = Signal(max(len(remaining) + 2, (timeout + 1).bit_length()))
    with m.If(state(*_FRAME_BYTES)):
        m.d.comb += measure.eq(Mux(timed_out, 0, timeout - quiet))
    with m.Elif(state("PAD")):
        m.d.comb += measure.eq(2 * remaining + pixel_buffer.level)
    with m.Elif(state("VERDICT")):
        m.d.comb += measure.eq(pixel_buffer.level)
    calm = (~receiver.bytes.valid & receiver.step & receiver.pixels.ready & receiver.write.ready
            & receiver.verdicts.ready)
    was_calm = past(m, calm & busy, "calm")
    was_rank, was_measure = past(m, rank, "rank"), past(m, measure, "measure")
    closer = ~was_calm | ~busy | (rank < was_rank) | (rank == was_rank) & (measure < was_measure)
    m.d.comb += Assert(closer, "receiver: back to idle")
