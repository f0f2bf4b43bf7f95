"""A small 8N1 UART: one receiver and one transmitter, each a ``wiring.Component``.

Neither amaranth 0.5 nor amaranth-boards ships a UART (amaranth-stdio is not on PyPI), so the
two blocks are here. Both run in the ``sync`` domain and time bits with a cycle counter:
``divisor = round(clk_freq / baud)`` clock cycles per bit.
"""


from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..errors import UserError

__all__ = ["BITS_PER_BYTE", "uart_divisor", "exact_divisor", "fastest_baud", "STANDARD_BAUDS", "UARTReceiver", "UARTTransmitter"]

BITS_PER_BYTE = 10       # 8N1: a start bit, 8 data bits, a stop bit on the line per byte
MIN_DIVISOR = 4          # the receiver samples mid-bit: it needs a few cycles per bit
MAX_BAUD_ERROR = 0.02    # ±2 % keeps the last sample of a frame inside its bit at both ends
# Rates USB-UART bridges (FTDI, CP210x, CH340) and host serial drivers offer, fastest first.
STANDARD_BAUDS = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 500_000, 460_800, 230_400, 115_200)


def uart_divisor(clk_freq: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq``; a :class:`UserError` if the clock
    cannot make that rate within ±2 %."""
    if baud <= 0:
        raise UserError(f"baud rate must be positive, got {baud}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise UserError(f"baud rate {baud} is too fast for a {clk_freq / 1e6:g} MHz clock "
                        f"(needs ≥ {MIN_DIVISOR} clock cycles per bit); use ≤ {int(clk_freq // MIN_DIVISOR)} baud")
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise UserError(f"baud rate {baud} is {error:.1%} off at {clk_freq / 1e6:g} MHz "
                        f"({clk_freq / divisor:.0f} baud); choose a rate that divides the clock within 2%")
    return divisor


def exact_divisor(clk_freq: float, baud: int) -> int | None:
    """``clk_freq / baud`` when it is an integer ≥ :data:`MIN_DIVISOR` (to 1 ppm), else None."""
    divisor = round(clk_freq / baud)
    return divisor if divisor >= MIN_DIVISOR and abs(divisor * baud - clk_freq) <= 1e-6 * clk_freq else None


def fastest_baud(clk_freq: float, max_baud: int) -> int:
    """The fastest of :data:`STANDARD_BAUDS` up to ``max_baud`` that ``clk_freq`` makes with an
    integer divisor ≥ 4; failing that, the fastest within ±2 % (:func:`uart_divisor`)."""
    rates = [baud for baud in STANDARD_BAUDS if baud <= max_baud]
    for baud in rates:
        if exact_divisor(clk_freq, baud):
            return baud
    for baud in rates:
        try:
            uart_divisor(clk_freq, baud)
            return baud
        except UserError:
            continue
    raise UserError(f"no standard baud rate up to {max_baud} works at {clk_freq / 1e6:g} MHz; give --baud")


class UARTReceiver(wiring.Component):
    """8N1 UART receiver.

    The line idles high. A start bit (low) that is still low half a bit later starts a byte;
    the 8 data bits (LSB first) are sampled in the middle of each bit, then the stop bit. A
    byte with a high stop bit is offered on ``data``; a low stop bit (noise, a break, a baud
    mismatch) drops the byte and strobes ``framing_error``. The line must go high again before
    the next start bit is looked for.

    ``data`` holds one byte until it is taken; the byte being received meanwhile is the only
    other buffer, so a byte that completes while ``data`` is still full is dropped and
    ``overrun`` strobes for one cycle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (:func:`uart_divisor`), at least 4.

    Members
    -------
    rx : In(1)
        The serial line (asynchronous; synchronised here).
    data : Out(stream.Signature(8))
        Received bytes.
    overrun, framing_error : Out(1)
        One-cycle strobes for a dropped byte.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    overrun: Out(1)
    framing_error: Out(1)

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"UART divisor must be ≥ {MIN_DIVISOR}, got {divisor}")
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self.divisor + self.divisor // 2))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq((shift >> 1) | (line << 7)), timer.eq(self.divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    m.next = "WAIT_HIGH"
            with m.State("WAIT_HIGH"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 UART transmitter.

    Takes one byte from ``data`` whenever the line is idle and sends a start bit (low), the 8
    data bits LSB first and a stop bit (high), each ``divisor`` clock cycles long.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (:func:`uart_divisor`).

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line, high when idle.
    busy : Out(1)
        High while a byte is on the line.
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, divisor: int):
        if divisor < 1:
            raise ValueError(f"UART divisor must be ≥ 1, got {divisor}")
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        # start bit, 8 data bits, stop bit; shifted out LSB first
        shift = Signal(10, init=0x3FF)
        bits_left = Signal(range(11))

        m.d.comb += [self.tx.eq(shift[0]), self.busy.eq(bits_left != 0)]
        with m.If(bits_left == 0):
            m.d.comb += self.data.ready.eq(1)
            with m.If(self.data.valid):
                m.d.sync += [shift.eq((self.data.payload << 1) | (1 << 9)), bits_left.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shift.eq((shift >> 1) | (1 << 9)), bits_left.eq(bits_left - 1),
                             timer.eq(self.divisor - 1)]
        return m
