"""End to end without a board: host driver → simulated UART line → HostLink → core → back.

The whole board logic (UART RX, frame receiver, core, response encoder, UART TX) runs in
Amaranth's simulator at the bit level; the host side is the real driver
(:class:`hdlgen.boards.host.Device`) over :class:`hdlgen.boards.serial_line.SimulatedSerial`.
The core is the real ``NetworkTop`` or a stand-in that answers with the golden model (which
checks the link, not the network).
"""

import numpy as np
import pytest
from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from amaranth.utils import ceil_log2
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlgen import golden
from hdlgen.boards import link
from hdlgen.boards.frame_receiver import SerialCRC16
from hdlgen.boards.host import ClassifyStats, Device
from hdlgen.boards.host_link import ByteFIFO
from hdlgen.rtl_templates.top import NetworkTop

from .helpers import CLK, serial_link, tiny_net


def result_layout(net):
    """The result layout of docs/rtl-interface.md."""
    acc = net.layers[-1].widths()["accumulator"]
    return data.StructLayout({"label": max(1, ceil_log2(net.classes)), "cycles": 32,
                              "logits": data.ArrayLayout(signed(acc), net.classes)})


class ModelCore(wiring.Component):
    """Stand-in with NetworkTop's ports; its behaviour is the testbench :meth:`run` (golden model).

    ``busy_cycles``: after the last pixel of an image it takes no pixels for that long, as a
    slow core would."""

    def __init__(self, net, busy_cycles=0):
        self.net = net
        self.busy_cycles = busy_cycles
        super().__init__({"pixels": In(stream.Signature(8)),
                          "result": Out(stream.Signature(result_layout(net)))})

    def elaborate(self, platform):
        return Module()

    async def run(self, ctx):
        size = self.net.input.size
        ctx.set(self.pixels.ready, 1)
        while True:
            image, cycles = [], 0
            while len(image) < size:
                _, _, valid, payload = await ctx.tick().sample(self.pixels.valid, self.pixels.payload)
                if image:
                    cycles += 1
                if valid:
                    image.append(payload)
            ref = golden.run_events(self.net, np.array(image, dtype=np.uint8))
            ctx.set(self.pixels.ready, 0)
            for _ in range(self.busy_cycles):
                await ctx.tick()
                cycles += 1
            ctx.set(self.result.payload, {"label": ref.label, "cycles": cycles + 1,
                                          "logits": [int(v) for v in ref.logits]})
            ctx.set(self.result.valid, 1)
            while not (await ctx.tick().sample(self.result.ready))[2]:
                pass
            ctx.set(self.result.valid, 0)
            ctx.set(self.pixels.ready, 1)


def make_link(net, core_kind, busy_cycles=0, status=None, observe=None, **kwargs):
    core = ModelCore(net, busy_cycles) if core_kind == "model" else NetworkTop(net)
    top, sim, port = serial_link(net, core, error_hold=1e-4, **kwargs)
    if core_kind == "model":
        sim.add_testbench(core.run, background=True)
    if status is not None:   # count the cycles each LED status is on
        async def watch(ctx):
            while True:
                _, _, *values = await ctx.tick().sample(top.idle, top.busy, top.error)
                for name, value in zip(("idle", "busy", "error"), values):
                    status[name] = status.get(name, 0) + value
                    status[name + "_now"] = value
        sim.add_testbench(watch, background=True)
    if observe is not None:   # a background testbench of the caller's, given the HostLink
        sim.add_testbench(observe(top), background=True)
    return top, port


@pytest.fixture(params=["model", "rtl"])
def core_kind(request):
    return request.param


def test_classify_matches_golden(core_kind):
    net = tiny_net()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (6, net.input.size), dtype=np.uint8)
    _, port = make_link(net, core_kind)
    dev = Device(port)
    stats = ClassifyStats()
    results = dev.classify(pixels, stats=stats)
    ref = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(ref.classes)
    assert [list(r.logits) for r in results] == ref.logits.tolist()
    assert stats.retries == 0 and stats.errors == {} and stats.sent == len(pixels)
    # the pixels come over the UART (10 bits of 4 cycles each), the core is much faster
    assert all(r.input_cycles >= 40 * (net.input.size - 1) for r in results)
    assert all(0 < r.compute_cycles < r.input_cycles for r in results)


def test_a_core_taking_several_pixels_per_transfer_gets_the_bytes_packed():
    """The link delivers a byte at a time; a core with P = 5 (12 pixels: transfers of 5, 5, 2)
    gets them through a PixelPacker and classifies as the golden model does."""
    net = tiny_net()
    pixels = np.random.default_rng(4).integers(0, 256, (3, net.input.size), dtype=np.uint8)
    top, sim, port = serial_link(net, NetworkTop(net, lanes=2, pixels_per_transfer=5))
    results = Device(port).classify(pixels)
    ref = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(ref.classes)
    assert [list(r.logits) for r in results] == ref.logits.tolist()


def test_info_reports_the_net(core_kind):
    net = tiny_net()
    _, port = make_link(net, core_kind)
    info = Device(port).check(net)
    assert (info.input_size, info.classes, info.clock_hz) == (net.input.size, net.classes, CLK)


def test_corrupted_frame_gets_error_and_next_frame_works(core_kind):
    net = tiny_net()
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (3, net.input.size), dtype=np.uint8)
    status = {}
    _, port = make_link(net, core_kind, status=status)
    decoder = link.FrameDecoder()

    good = [link.classify_request(10 + i, p) for i, p in enumerate(pixels)]
    bad = bytearray(good[1])
    bad[9] ^= 0x40                                     # a pixel bit flips on the line
    port.write(b"\x00\xA5\x13garbage" + good[0] + bytes(bad) + good[2])
    responses = []
    while len(responses) < 3 and (data := port.read(64)):
        responses += [link.parse_response(f) for f in decoder.feed(data)]
    ref = golden.run_batch(net, pixels)
    assert responses[0] == link.Result(10, int(ref.classes[0]), responses[0].cycles, responses[0].input_cycles,
                                       tuple(ref.logits[0]))
    assert responses[1] == link.Error(11, link.ErrorCode.BAD_CRC)
    assert isinstance(responses[2], link.Result) and responses[2].seq == 12
    assert list(responses[2].logits) == ref.logits[2].tolist()
    assert port.read(1) == b""                         # nothing else: no duplicate, no spurious error
    # LEDs: busy while frames were in flight, error for a while after the ERROR, idle at the end
    assert status["busy"] > 0 and status["error"] > 0
    assert status["idle_now"] == 1 and status["busy_now"] == 0 and status["error_now"] == 0


def test_a_slow_core_holds_pixels_back_without_losing_bytes():
    """The core takes no pixels for 3000 cycles (75 characters) after each image, while the
    driver already sends the next one: the byte FIFO absorbs it, nothing is resent."""
    net = tiny_net()
    pixels = np.random.default_rng(7).integers(0, 256, (4, net.input.size), dtype=np.uint8)
    _, port = make_link(net, "model", busy_cycles=3000)
    stats = ClassifyStats()
    results = Device(port).classify(pixels, stats=stats)
    assert [list(r.logits) for r in results] == golden.run_batch(net, pixels).logits.tolist()
    assert stats.retries == 0 and stats.errors == {}
    assert all(r.compute_cycles > 3000 for r in results)


@pytest.mark.parametrize("frame, code", [
    (link.encode_frame(link.MessageType.CLASSIFY, b"\x01\x00" + bytes(3)), link.ErrorCode.BAD_LENGTH),
    (link.encode_frame(0x33, b"\x01\x00"), link.ErrorCode.BAD_TYPE),
])
def test_bad_header_gets_error(frame, code, core_kind):
    net = tiny_net()
    _, port = make_link(net, core_kind)
    port.write(frame)
    decoder = link.FrameDecoder()
    frames = []
    while not frames and (data := port.read(16)):
        frames += decoder.feed(data)
    assert [link.parse_response(f) for f in frames] == [link.Error(link.NO_SEQ, code)]
    assert Device(port).classify(np.zeros((1, net.input.size), np.uint8))[0].seq is not None


def test_truncated_frame_times_out_and_the_link_recovers(core_kind):
    net = tiny_net()
    pixels = np.arange(2 * net.input.size, dtype=np.uint8).reshape(2, -1)
    _, port = make_link(net, core_kind)
    port.write(link.classify_request(7, pixels[0])[:10])   # the rest never comes
    decoder = link.FrameDecoder()
    frames = []
    while not frames and (data := port.read(16)):
        frames += decoder.feed(data)
    assert [link.parse_response(f) for f in frames] == [link.Error(7, link.ErrorCode.TIMEOUT)]
    results = Device(port).classify(pixels)
    assert [r.label for r in results] == list(golden.run_batch(net, pixels).classes)


def test_a_stalled_frame_times_out_after_the_timeout_and_not_much_later():
    """The silence is timed in prescaler steps: from the last bit on the line to the ERROR, at
    least the timeout and at most two steps (and the last byte's bits) more."""
    net = tiny_net()
    seen = {"cycle": 0, "last_low": 0, "error": None}

    def observe(top):
        async def run(ctx):
            async for _, _, rx, error in ctx.tick().sample(top.rx, top.error):
                seen["cycle"] += 1
                if not rx:
                    seen["last_low"] = seen["cycle"]
                if error and seen["error"] is None:
                    seen["error"] = seen["cycle"]
        return run

    top, port = make_link(net, "model", observe=observe)
    port.write(link.classify_request(7, np.arange(net.input.size, dtype=np.uint8))[:12])
    frames = []
    decoder = link.FrameDecoder()
    while not frames and (data := port.read(16)):
        frames += decoder.feed(data)
    assert [link.parse_response(f) for f in frames] == [link.Error(7, link.ErrorCode.TIMEOUT)]
    silence = seen["error"] - seen["last_low"]
    step = 1 << top.timeout_step_bits
    assert top.timeout_cycles <= silence <= top.timeout_cycles + 2 * step + 20 * top.divisor


def test_driver_retries_lost_and_damaged_frames(core_kind):
    """A port that damages some requests: the driver resends, every image gets exactly one result."""
    net = tiny_net()
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (8, net.input.size), dtype=np.uint8)
    _, port = make_link(net, core_kind)
    writes = iter(range(1000))
    real_write = port.write

    def lossy_write(frame):
        n = next(writes)
        if n % 3 == 1:
            frame = frame[:6] + bytes([frame[6] ^ 0xFF]) + frame[7:]   # damaged: BAD_CRC
        elif n == 4:
            frame = frame[:4]                                          # cut short: TIMEOUT
        return real_write(frame)

    port.write = lossy_write
    stats = ClassifyStats()
    results = Device(port, retries=5).classify(pixels, stats=stats)
    ref = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(ref.classes)
    assert [list(r.logits) for r in results] == ref.logits.tolist()
    assert stats.retries >= 3 and stats.errors.get("BAD_CRC", 0) >= 2


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=24))
def test_serial_crc_is_the_link_crc(data):
    """Bit by bit, most significant first: the CRC of the frame bytes, then zero after its CRC."""
    crc = SerialCRC16()
    sim = Simulator(crc)
    sim.add_clock(1e-6)
    seen = []

    async def feed(ctx):
        ctx.set(crc.start, 1)
        await ctx.tick()
        ctx.set(crc.start, 0)
        ctx.set(crc.valid, 1)
        for byte in data + link.crc16(data).to_bytes(2, "big"):
            for bit in range(7, -1, -1):
                ctx.set(crc.bit, byte >> bit & 1)
                await ctx.tick()
            seen.append(ctx.get(crc.crc))

    sim.add_testbench(feed)
    sim.run()
    assert seen[len(data) - 1] == link.crc16(data)
    assert seen[-1] == 0


def test_byte_fifo_fills_to_its_depth_and_keeps_order():
    depth = 8
    fifo = ByteFIFO(depth)
    sim = Simulator(fifo)
    sim.add_clock(1e-6)
    data = list(range(100, 100 + 3 * depth))
    accepted, received = [], []

    async def write(ctx):
        ctx.set(fifo.w.valid, 1)
        for byte in data:
            ctx.set(fifo.w.payload, byte)
            while not (await ctx.tick().sample(fifo.w.ready))[2]:
                pass
            accepted.append(byte)
        ctx.set(fifo.w.valid, 0)

    async def read(ctx):
        for _ in range(3 * depth):   # nothing taken yet: the block RAM and the output register fill
            await ctx.tick()
        assert len(accepted) == depth + 1
        for cycle in range(20 * depth):
            ctx.set(fifo.r.ready, cycle % 3 != 1)
            _, _, valid, ready, payload = await ctx.tick().sample(fifo.r.valid, fifo.r.ready, fifo.r.payload)
            if valid and ready:
                received.append(payload)

    sim.add_testbench(write)
    sim.add_testbench(read)
    sim.run()
    assert received == data

