"""The host-link protocol (hdlgen.boards.link): CRC, framing, resynchronisation, messages."""

import numpy as np
import pytest
from amaranth.lib.crc import catalog
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlgen.boards import link
from hdlgen.boards.frame_receiver import SerialCRC16
from hdlgen.ttfs import InputEncoding, IntDense, TTFSNet

kinds = st.integers(0, 255)
payloads = st.binary(max_size=300)


def test_crc16_is_ccitt_false():
    assert link.crc16(b"123456789") == 0x29B1   # the catalogue check value of CRC-16/CCITT-FALSE


@given(st.binary(max_size=200))
def test_crc16_matches_amaranth_catalogue(data):
    assert link.crc16(data) == catalog.CRC16_CCITT_FALSE(8).compute(data)


@given(kinds, payloads)
def test_frame_residue_is_zero(kind, payload):
    """The gateware checks a frame by its CRC register holding the residue, 0, after type … crc."""
    frame = link.encode_frame(kind, payload)
    assert catalog.CRC16_CCITT_FALSE(8).compute(frame[2:]) == catalog.CRC16_CCITT_FALSE(8).residue() == 0


@settings(max_examples=30, deadline=None)
@given(kinds, st.binary(max_size=24), st.data())
def test_gateware_crc_is_the_link_crc(kind, payload, data):
    """The gateware's bit-serial CRC, fed a frame's type … crc most significant bit first, holds
    ``link.crc16`` of type … payload before the CRC bytes and matches at the end exactly when the
    frame is intact (one flipped bit, if drawn, is always caught)."""
    body = bytearray(link.encode_frame(kind, payload)[len(link.SYNC):])
    flip = data.draw(st.none() | st.integers(0, 8 * len(body) - 1))
    if flip is not None:
        body[flip // 8] ^= 0x80 >> flip % 8
    crc = SerialCRC16()
    sim = Simulator(crc)
    sim.add_clock(1e-6)
    seen = {}

    async def feed(ctx):
        ctx.set(crc.start, 1)
        await ctx.tick()
        ctx.set(crc.start, 0)
        for i, byte in enumerate(body):
            if i == len(body) - link.TRAILER_SIZE:
                seen["crc"] = ctx.get(crc.crc)
            for bit in range(7, -1, -1):
                ctx.set(crc.valid, 1)
                ctx.set(crc.bit, byte >> bit & 1)
                await ctx.tick()
                ctx.set(crc.valid, 0)   # a gap between bits changes nothing
                await ctx.tick()
        seen["match"] = ctx.get(crc.match)

    sim.add_testbench(feed)
    sim.run()
    assert seen["crc"] == link.crc16(bytes(body[:-link.TRAILER_SIZE]))
    assert seen["match"] == (flip is None)


@given(st.lists(st.tuples(kinds, payloads), max_size=5), st.integers(1, 64))
def test_decoder_round_trip_in_any_chunking(messages, chunk):
    stream = b"".join(link.encode_frame(k, p) for k, p in messages)
    decoder = link.FrameDecoder()
    frames = []
    for i in range(0, len(stream), chunk):
        frames += decoder.feed(stream[i:i + chunk])
    assert frames == [link.Frame(k, p) for k, p in messages]
    assert decoder.dropped == 0 and decoder.bad_frames == 0


@settings(max_examples=200)
@given(st.lists(st.tuples(st.binary(max_size=40), kinds, st.binary(max_size=40)), min_size=1, max_size=4))
def test_decoder_resynchronises_after_garbage(parts):
    """Frames behind arbitrary garbage (false syncs and lengths included) are all found, in order."""
    max_payload = 40
    decoder = link.FrameDecoder(max_payload=max_payload)
    stream = b"".join(garbage + link.encode_frame(k, p) for garbage, k, p in parts)
    frames = decoder.feed(stream + bytes(link.HEADER_SIZE + max_payload + link.TRAILER_SIZE))
    wanted = [link.Frame(k, p) for _, k, p in parts]
    found = iter(frames)
    assert all(any(f == w for f in found) for w in wanted)   # a subsequence, in order


@given(kinds, st.binary(min_size=1, max_size=100), st.data())
def test_any_single_bit_error_is_caught(kind, payload, data):
    frame = bytearray(link.encode_frame(kind, payload))
    bit = data.draw(st.integers(0, 8 * len(frame) - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert link.FrameDecoder().feed(bytes(frame) + bytes(400)) == []


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.lists(st.integers(-2**31, 2**31 - 1), min_size=1, max_size=20))
def test_result_round_trip(seq, label, cycles, input_cycles, logits):
    (frame,) = link.FrameDecoder().feed(link.result_response(seq, label, cycles, input_cycles, logits))
    assert link.parse_response(frame) == link.Result(seq, label, cycles, input_cycles, tuple(logits))
    assert len(frame.payload) == link.result_payload_size(len(logits))


def test_info_and_error_round_trip():
    (info,) = link.FrameDecoder().feed(link.info_response(3, 784, 10, 12_000_000, 0xDEADBEEF, 2, 0b101))
    info = link.parse_response(info)
    assert info == link.Info(3, link.VERSION, 784, 10, 12_000_000, 0xDEADBEEF, 2, 0b101)
    assert info.layers_to_load == [0, 2]
    (loaded,) = link.FrameDecoder().feed(link.load_response(9))
    assert link.parse_response(loaded) == link.Loaded(9)
    (error,) = link.FrameDecoder().feed(link.error_response(link.NO_SEQ, link.ErrorCode.TIMEOUT))
    assert link.parse_response(error) == link.Error(link.NO_SEQ, link.ErrorCode.TIMEOUT)
    with pytest.raises(link.LinkError):
        link.parse_response(link.Frame(link.MessageType.CLASSIFY, b"\x00\x00"))


def test_classify_request_layout():
    pixels = np.arange(5, dtype=np.uint8)
    frame = link.classify_request(0x1234, pixels)
    assert frame[:2] == link.SYNC and frame[2] == link.MessageType.CLASSIFY
    assert int.from_bytes(frame[3:5], "little") == 2 + len(pixels)
    assert frame[5:7] == b"\x34\x12" and frame[7:12] == pixels.tobytes()
    with pytest.raises(ValueError):
        link.classify_request(0, pixels.astype(np.int16))


@given(st.integers(0, 0xFFFF), st.integers(0, 7), st.integers(0, 0xFFFF),
       st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=link.MAX_LOAD_WORDS))
def test_load_request_layout(seq, layer, offset, words):
    (frame,) = link.FrameDecoder().feed(link.load_request(seq, layer, offset, words))
    assert frame.kind == link.MessageType.LOAD and len(frame.payload) == 5 + 2 * len(words)
    assert frame.payload[:5] == bytes([seq & 255, seq >> 8, layer, offset & 255, offset >> 8])
    assert list(np.frombuffer(frame.payload[5:], "<u2")) == words


def test_fingerprint_sees_every_weight():
    rng = np.random.default_rng(0)
    table = np.minimum(np.arange(256) // 32, 4)
    enc = InputEncoding((6,), 0.0, 1.0, 1.0, 4, table)

    def net(w):
        return TTFSNet(enc, [IntDense(w, np.zeros(3), None, 4, 0, 4, np.ones(3))])

    w = rng.integers(-7, 8, (3, 6))
    base = link.net_fingerprint(net(w))
    assert base == link.net_fingerprint(net(w.copy()))
    for i in range(w.size):
        changed = w.copy().reshape(-1)
        changed[i] = changed[i] + 1 if changed[i] < 7 else changed[i] - 1
        assert link.net_fingerprint(net(changed.reshape(w.shape))) != base
