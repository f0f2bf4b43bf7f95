"""The link's frame receiver in simulation: a frame abandoned for silence in the very cycle a byte
arrives must not spoil the next frame's CRC (found by `hdlgen prove`'s receiver invariants: that
byte's first bit was shifted into the CRC, and the bit counter kept it into the next frame)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdlgen.boards import link
from hdlgen.boards.frame_receiver import FrameReceiver


def _verdicts_after_silence(silent_cycles: int):
    """Sync, ``silent_cycles`` cycles without a byte (the silence timer stepping every cycle), a
    stray byte, then a good INFO frame: the verdicts' error codes."""
    receiver = FrameReceiver(input_size=4, timeout_steps=1)
    verdicts = []

    async def bench(ctx):
        ctx.set(receiver.verdicts.ready, 1)
        ctx.set(receiver.pixels.ready, 1)
        ctx.set(receiver.write.ready, 1)
        ctx.set(receiver.step, 1)

        async def tick():
            await ctx.tick()
            if ctx.get(receiver.verdicts.valid):
                verdicts.append(ctx.get(receiver.verdicts.payload.error))

        async def send(data: bytes):
            for byte in data:
                ctx.set(receiver.bytes.valid, 1)
                ctx.set(receiver.bytes.payload, byte)
                while not ctx.get(receiver.bytes.ready):
                    await tick()
                await tick()
            ctx.set(receiver.bytes.valid, 0)

        await send(link.SYNC)
        for _ in range(silent_cycles):
            await tick()
        await send(b"\x00")
        for _ in range(4):
            await tick()
        await send(link.info_request(7))
        for _ in range(20):
            await tick()

    sim = Simulator(receiver)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return verdicts


@pytest.mark.parametrize("silent_cycles", range(6))
def test_a_frame_abandoned_as_a_byte_comes_leaves_the_next_frame_good(silent_cycles):
    verdicts = _verdicts_after_silence(silent_cycles)
    assert verdicts and verdicts[-1] == 0, verdicts


def test_a_timed_out_image_s_verdict_is_stable_while_it_waits():
    """A CLASSIFY frame that falls silent mid-image, with the core and the verdict sink not ready:
    the image is padded with zeros, and its TIMEOUT verdict, once offered, keeps its payload
    (``input_cycles`` too) until taken – the stream rule on ``verdicts``."""
    receiver = FrameReceiver(input_size=4, timeout_steps=1)
    offered = []

    async def bench(ctx):
        ctx.set(receiver.step, 1)
        ctx.set(receiver.write.ready, 1)
        frame = link.classify_request(3, np.array([1, 2, 3, 4], np.uint8))
        for byte in frame[:-5]:   # up to the first pixel, then silence
            ctx.set(receiver.bytes.valid, 1)
            ctx.set(receiver.bytes.payload, byte)
            ctx.set(receiver.pixels.ready, 1)
            while not ctx.get(receiver.bytes.ready):
                await ctx.tick()
            await ctx.tick()
        ctx.set(receiver.bytes.valid, 0)
        for cycle in range(80):   # the core takes a pixel every 5th cycle; the verdict waits
            ctx.set(receiver.pixels.ready, cycle % 5 == 0)
            await ctx.tick()
            if ctx.get(receiver.verdicts.valid):
                offered.append(ctx.get(receiver.verdicts.payload))
        ctx.set(receiver.verdicts.ready, 1)
        await ctx.tick()

    sim = Simulator(receiver)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert offered and offered[0].error == link.ErrorCode.TIMEOUT and offered[0].image
    assert all(verdict == offered[0] for verdict in offered), [v.input_cycles for v in offered]
