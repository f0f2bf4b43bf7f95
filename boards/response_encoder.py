"""The transmit side of the host link's gateware (protocol: :mod:`hdlgen.boards.link`): each
verdict answered in order, an image's verdict paired with the core's next result
(:class:`~hdlgen.boards.host_link.HostLink` wires it)."""



from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..errors import UserError
from . import link
from .frame_receiver import SerialCRC16, Verdict

__all__ = ["ResponseEncoder"]


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
