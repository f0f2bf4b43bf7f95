"""The 8N1 UART blocks: loopback of random bytes, framing errors, overrun, divisor checks."""

import pytest
from amaranth import Module
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlgen.boards.uart import UARTReceiver, UARTTransmitter, uart_divisor
from hdlgen.errors import UserError


def loopback(data, tx_divisor, rx_divisor):
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(tx_divisor)
    m.submodules.rx = rx = UARTReceiver(rx_divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    received = []

    async def send(ctx):
        for byte in data:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            while not (await ctx.tick().sample(tx.data.ready))[2]:
                pass
        ctx.set(tx.data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        for _ in range(12 * max(tx_divisor, rx_divisor) * (len(data) + 1)):
            _, _, valid, payload = await ctx.tick().sample(rx.data.valid, rx.data.payload)
            if valid:
                received.append(payload)

    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run()
    return received


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.integers(4, 12))
def test_loopback(data, divisor):
    assert loopback(data, divisor, divisor) == list(data)


def test_loopback_tolerates_clock_mismatch():
    """Transmitter and receiver 2 % apart (50 vs 51 cycles per bit) still agree."""
    data = bytes(range(0, 256, 17))
    assert loopback(data, 51, 50) == list(data)
    assert loopback(data, 50, 51) == list(data)


def test_low_stop_bit_is_a_framing_error_and_overrun_is_flagged():
    rx = UARTReceiver(4)
    sim = Simulator(rx)
    sim.add_clock(1e-6)
    seen = {"framing": 0, "overrun": 0, "bytes": []}

    async def line(ctx):
        def bits(byte, stop):
            return [0, *((byte >> i) & 1 for i in range(8)), stop]
        for bit in bits(0x55, 0) + [1] * 8 + bits(0x12, 1) + bits(0x34, 1) + [1] * 8:
            ctx.set(rx.rx, bit)
            for _ in range(4):
                _, _, framing, overrun, valid = await ctx.tick().sample(rx.framing_error, rx.overrun, rx.data.valid)
                seen["framing"] += framing
                seen["overrun"] += overrun
        seen["bytes"].append(ctx.get(rx.data.payload) if ctx.get(rx.data.valid) else None)

    sim.add_testbench(line)
    sim.run()
    # nobody takes bytes: 0x12 waits in the output, 0x34 is dropped as an overrun
    assert seen == {"framing": 1, "overrun": 1, "bytes": [0x12]}


def test_divisor_checks():
    assert uart_divisor(12e6, 115200) == 104
    assert uart_divisor(25e6, 1_000_000) == 25
    with pytest.raises(UserError, match="too fast"):
        uart_divisor(12e6, 6_000_000)
    with pytest.raises(UserError, match="off at"):
        uart_divisor(12e6, 1_600_000)   # 7.5 cycles per bit


def test_each_board_links_at_its_bridges_fastest_rate_with_an_integer_divisor():
    from hdlgen.boards.build import link_clock
    from hdlgen.boards.platforms import get_board
    from hdlgen.boards.uart import exact_divisor, fastest_baud

    assert link_clock(get_board("icebreaker")) == (None, 12e6, 3_000_000)           # FT2232H, 12 MHz / 4
    pll, clock, baud = link_clock(get_board("ulx3s-85f"))                            # FT231X; 25 MHz cannot
    assert (clock, baud, exact_divisor(clock, baud)) == (30e6, 3_000_000, 10) and pll.f_out == 30e6
    assert link_clock(get_board("ulx3s-85f"), 100e6)[1:] == (100e6, 2_000_000)      # 100 / 3 is no integer
    assert link_clock(get_board("ecpix585")) == (None, 100e6, 115_200)               # a plain bridge: as before
    assert link_clock(get_board("icebreaker"), baud=115_200) == (None, 12e6, 115_200)
    assert fastest_baud(27e6, 3_000_000) == 3_000_000 and fastest_baud(7.5e6, 3_000_000) == 1_500_000
    with pytest.raises(UserError, match="too fast"):
        link_clock(get_board("icebreaker"), baud=6_000_000)
