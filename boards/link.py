"""The UART host link: framed, checksummed messages between a host and a board.

This module is the one definition of the protocol. The gateware (:mod:`hdlgen.boards.host_link`)
takes its constants from here, the host driver (:mod:`hdlgen.boards.host`) encodes and decodes
with it, and the tests check one against the other.

Frame (both directions)::

    0xA5 0x5A | type u8 | length u16 LE | payload (length bytes) | crc u16 BE

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
final XOR; check value 0x29B1 for ``b"123456789"``) over ``type``, ``length`` and ``payload``,
sent most significant byte first, so the CRC register over ``type .. crc`` ends at zero for a
good frame. The host computes it with :func:`binascii.crc_hqx` (``crc_hqx(data, 0xFFFF)``), the
gateware a bit per cycle with the bit-serial processor of :mod:`amaranth.lib.crc`
(``catalog.CRC16_CCITT_FALSE(data_width=1)``, :class:`hdlgen.boards.frame_receiver.SerialCRC16`).

Messages (all integers little-endian; ``seq`` is the host's 16-bit sequence number, echoed):

============ ====== ============================================================================
message      type   payload
============ ====== ============================================================================
CLASSIFY     0x01   ``seq u16``, one byte per input pixel (``net.input.size`` bytes, index order)
INFO         0x02   ``seq u16``
LOAD         0x03   ``seq u16``, ``layer u8``, ``offset u16``, ``words u16 × n`` (1 ≤ n ≤ 256):
                    write weight words ``offset .. offset+n−1`` of a layer kept in SPRAM
                    (:mod:`hdlgen.boards.spram`)
RESULT       0x81   ``seq u16``, ``label u8``, ``cycles u32``, ``input_cycles u32``,
                    ``logits i32 × classes``: ``cycles`` as the core counts them (first pixel
                    in → result), ``input_cycles`` from the first to the last pixel going into
                    the core (the UART delivering them), so ``cycles − input_cycles`` is the
                    compute latency after the image arrived
INFO_REPLY   0x82   ``seq u16``, ``version u8``, ``input_size u16``, ``classes u8``,
                    ``clock_hz u32``, ``fingerprint u32`` (:func:`net_fingerprint`),
                    ``lanes u8``, ``spram_layers u8`` (bit ``i``: layer ``i``'s weights are in
                    SPRAM and must be loaded after configuration)
LOAD_REPLY   0x83   ``seq u16``: the words of that LOAD were written
ERROR        0xE0   ``seq u16`` (``0xFFFF`` when the frame broke before its ``seq``), ``code u8``
                    (:class:`ErrorCode`)
============ ====== ============================================================================

The board answers every frame it recognised (a complete sync) with exactly one response, in
the order the frames arrived. A frame whose CRC fails, whose length does not fit its type,
whose type is unknown, or that stalls mid-frame for longer than the board's timeout gets an
ERROR; the receiver then hunts for the next sync, so it resynchronises after garbage. A CLASSIFY
frame whose pixels already entered the network before its CRC failed still consumes that
network result, which is discarded, so results never shift to another frame.
"""

from __future__ import annotations

import binascii
import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["SYNC", "HEADER_SIZE", "TRAILER_SIZE", "VERSION", "NO_SEQ", "MessageType", "ErrorCode",
           "crc16", "encode_frame", "Frame", "FrameDecoder", "Result", "Info", "Error", "LinkError",
           "Loaded", "MAX_LOAD_WORDS", "classify_request", "info_request", "load_request", "result_response",
           "info_response", "load_response", "error_response",
           "parse_response", "result_payload_size", "response_lengths", "net_fingerprint",
           "classify_size", "result_size", "link_limit"]

SYNC = b"\xA5\x5A"
HEADER_SIZE = 5          # sync, type, length
TRAILER_SIZE = 2         # crc
VERSION = 1
NO_SEQ = 0xFFFF          # ERROR for a frame that broke before its sequence number
LOGIT_BYTES = 4
MAX_LOAD_WORDS = 256


class MessageType(enum.IntEnum):
    CLASSIFY = 0x01
    INFO = 0x02
    LOAD = 0x03
    RESULT = 0x81
    INFO_REPLY = 0x82
    LOAD_REPLY = 0x83
    ERROR = 0xE0


class ErrorCode(enum.IntEnum):
    """Why the board rejected a frame (payload of ERROR)."""

    BAD_CRC = 1       # the CRC did not match (the frame was damaged)
    BAD_LENGTH = 2    # the length does not fit the type (CLASSIFY: 2 + input size; INFO: 2;
                      # LOAD: 5 + 2·n, n = 1..256)
    BAD_TYPE = 3      # not a request type the board knows
    TIMEOUT = 4       # the frame stopped arriving before its end


class LinkError(Exception):
    """The host link failed: no answer, or an answer that does not belong to the request."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(kind: int, payload: bytes) -> bytes:
    """One frame: sync, type, length, payload, CRC."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length")
    body = struct.pack("<BH", kind, len(payload)) + bytes(payload)
    return SYNC + body + struct.pack(">H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A frame the decoder accepted (its CRC matched)."""

    kind: int
    payload: bytes


class FrameDecoder:
    """Incremental frame decoder that resynchronises after garbage.

    Feed it bytes as they arrive; :meth:`feed` returns the frames completed so far. Bytes that do
    not form a frame are skipped: after a failed CRC, a length over ``max_payload`` or a header
    outside ``lengths`` the search for the next sync restarts one byte after the failed sync, so
    a real frame hidden behind garbage is still found. ``dropped`` counts skipped bytes,
    ``bad_frames`` failed CRCs.

    Parameters
    ----------
    max_payload : int
        Longest payload to accept; longer lengths are taken as garbage.
    lengths : dict, optional
        The payload lengths each frame type may have (type → container of lengths, e.g.
        :func:`response_lengths`); other types and lengths are taken as garbage at once. Without
        it, a damaged length (a dropped byte before it) makes the decoder wait for up to 64 KiB
        and hold back every frame behind it.
    """

    def __init__(self, max_payload: int = 0xFFFF, lengths: dict | None = None):
        self.max_payload = max_payload
        self.lengths = lengths
        self._buffer = bytearray()
        self.dropped = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                keep = 1 if self._buffer.endswith(SYNC[:1]) else 0
                self._skip(len(self._buffer) - keep)
                return frames
            self._skip(start)
            if len(self._buffer) < HEADER_SIZE:
                return frames
            kind, length = struct.unpack_from("<BH", self._buffer, 2)
            if length > self.max_payload or self.lengths is not None and length not in self.lengths.get(kind, ()):
                self._skip(1)
                continue
            end = HEADER_SIZE + length + TRAILER_SIZE
            if len(self._buffer) < end:
                return frames
            body = bytes(self._buffer[2:HEADER_SIZE + length])
            (crc,) = struct.unpack_from(">H", self._buffer, HEADER_SIZE + length)
            if crc != crc16(body):
                self.bad_frames += 1
                self._skip(1)
                continue
            frames.append(Frame(kind, body[3:]))
            del self._buffer[:end]

    def _skip(self, count: int):
        del self._buffer[:count]
        self.dropped += count


@dataclass(frozen=True)
class Result:
    """A RESULT: the board's answer for one image."""

    seq: int
    label: int
    cycles: int
    input_cycles: int
    logits: tuple

    @property
    def compute_cycles(self) -> int:
        """Cycles from the image's last pixel entering the core to its result."""
        return self.cycles - self.input_cycles


@dataclass(frozen=True)
class Info:
    """An INFO_REPLY: what the board is built for."""

    seq: int
    version: int
    input_size: int
    classes: int
    clock_hz: int
    fingerprint: int
    lanes: int
    spram_layers: int

    @property
    def layers_to_load(self) -> list:
        return [i for i in range(8) if self.spram_layers >> i & 1]


@dataclass(frozen=True)
class Loaded:
    """A LOAD_REPLY: the board wrote the words of LOAD ``seq``."""

    seq: int


@dataclass(frozen=True)
class Error:
    """An ERROR: the board rejected a frame."""

    seq: int
    code: int


def classify_request(seq: int, pixels) -> bytes:
    """CLASSIFY frame for one image (uint8 pixel bytes in index order)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 bytes, got {pixels.dtype}")
    return encode_frame(MessageType.CLASSIFY, struct.pack("<H", seq) + pixels.tobytes())


def info_request(seq: int) -> bytes:
    return encode_frame(MessageType.INFO, struct.pack("<H", seq))


def load_request(seq: int, layer: int, offset: int, words) -> bytes:
    """LOAD frame: 16-bit weight words for ``layer`` starting at word ``offset``."""
    words = np.asarray(words)
    if not 1 <= len(words) <= MAX_LOAD_WORDS:
        raise ValueError(f"a LOAD carries 1..{MAX_LOAD_WORDS} words, got {len(words)}")
    return encode_frame(MessageType.LOAD, struct.pack("<HBH", seq, layer, offset) + words.astype("<u2").tobytes())


def result_payload_size(classes: int) -> int:
    return 11 + LOGIT_BYTES * classes


def classify_size(input_size: int) -> int:
    """Bytes on the wire of a CLASSIFY frame."""
    return len(classify_request(0, np.zeros(input_size, dtype=np.uint8)))


def result_size(classes: int) -> int:
    """Bytes on the wire of a RESULT frame."""
    return len(result_response(0, 0, 0, 0, [0] * classes))


def link_limit(input_size: int, classes: int, baud: int) -> float:
    """Images per second the line carries at ``baud`` (8N1): CLASSIFY frames to the board and
    RESULT frames back each on their own wire, so the longer of the two sets the pace."""
    from .uart import BITS_PER_BYTE

    return baud / (BITS_PER_BYTE * max(classify_size(input_size), result_size(classes)))


def response_lengths(classes: int | None = None) -> dict:
    """The payload lengths of each response type (for :class:`FrameDecoder`'s ``lengths``):
    RESULT's for ``classes``, or for any of 1..255 classes when not known."""
    results = range(result_payload_size(1), result_payload_size(255) + 1, LOGIT_BYTES) if classes is None else \
        (result_payload_size(classes),)
    return {MessageType.RESULT: results, MessageType.INFO_REPLY: (16,), MessageType.LOAD_REPLY: (2,),
            MessageType.ERROR: (3,)}


def result_response(seq: int, label: int, cycles: int, input_cycles: int, logits) -> bytes:
    logits = [int(v) for v in logits]
    return encode_frame(MessageType.RESULT, struct.pack(f"<HBII{len(logits)}i", seq, label, cycles, input_cycles,
                                                        *logits))


def info_response(seq: int, input_size: int, classes: int, clock_hz: int, fingerprint: int, lanes: int = 1,
                  spram_layers: int = 0) -> bytes:
    return encode_frame(MessageType.INFO_REPLY, struct.pack("<HBHBIIBB", seq, VERSION, input_size, classes, clock_hz,
                                                            fingerprint, lanes, spram_layers))


def load_response(seq: int) -> bytes:
    return encode_frame(MessageType.LOAD_REPLY, struct.pack("<H", seq))


def error_response(seq: int, code: int) -> bytes:
    return encode_frame(MessageType.ERROR, struct.pack("<HB", seq, code))


def parse_response(frame: Frame) -> Result | Info | Loaded | Error:
    """Decode a response frame; raises :class:`LinkError` for a frame that is no response."""
    p = frame.payload
    try:
        if frame.kind == MessageType.RESULT and len(p) >= 11 and (len(p) - 11) % LOGIT_BYTES == 0:
            head = struct.unpack_from("<HBII", p)
            count = (len(p) - 11) // LOGIT_BYTES
            return Result(*head, struct.unpack_from(f"<{count}i", p, 11))
        if frame.kind == MessageType.INFO_REPLY and len(p) == 16:
            return Info(*struct.unpack("<HBHBIIBB", p))
        if frame.kind == MessageType.LOAD_REPLY and len(p) == 2:
            return Loaded(*struct.unpack("<H", p))
        if frame.kind == MessageType.ERROR and len(p) == 3:
            return Error(*struct.unpack("<HB", p))
    except struct.error:
        pass
    raise LinkError(f"unexpected frame: type 0x{frame.kind:02X} with {len(p)} payload bytes")


def net_fingerprint(net) -> int:
    """CRC-32 of everything that decides the net's answers (input table, weights, biases, K, and a
    graph net's edges).

    The board reports it in INFO_REPLY, so the host can tell whether the bitstream on the board
    was built from the net it compares against.
    """
    crc = zlib.crc32(np.ascontiguousarray(net.input.table, dtype="<i8").tobytes())
    for layer in net.layers:
        geometry = [getattr(layer, name, ()) for name in ("in_shape", "kernel", "stride", "padding")]
        arrays = [getattr(layer, name) for name in ("weight", "bias", "k") if getattr(layer, name, None) is not None]
        for array in arrays + [np.array([v for part in geometry for v in part] or [0])]:
            array = np.ascontiguousarray(array, dtype="<i8")
            crc = zlib.crc32(struct.pack("<2I", *((array.shape + (1,))[:2])), crc)
            crc = zlib.crc32(array.tobytes(), crc)
    if not net.is_chain:    # a graph net: what each layer reads (a chain's order says it)
        sources = [j for l in range(len(net.layers)) for j in (*net.sources(l), -1)]
        crc = zlib.crc32(np.ascontiguousarray(sources, dtype="<i8").tobytes(), crc)
    return crc
