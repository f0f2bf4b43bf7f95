"""Platforms of a user's own boards, amaranth-boards style, for ``hdlgen build --board file.py:Class``."""

from amaranth.build import Attrs, Clock, Pins, Resource
from amaranth.vendor import SiliconBluePlatform
from amaranth_boards.resources import LEDResources, UARTResource


class MyBoardPlatform(SiliconBluePlatform):
    """An iCE40 UP5K board with a 12 MHz oscillator, a USB-UART bridge and two LEDs."""

    device = "iCE40UP5K"
    package = "SG48"
    default_clk = "clk12"
    resources = [
        Resource("clk12", 0, Pins("35", dir="i"), Clock(12e6), Attrs(GLOBAL=True, IO_STANDARD="SB_LVCMOS")),
        UARTResource(0, rx="6", tx="9", attrs=Attrs(IO_STANDARD="SB_LVTTL", PULLUP=1)),
        *LEDResources(pins="11 37", invert=True, attrs=Attrs(IO_STANDARD="SB_LVCMOS")),
    ]
    connectors = []


class NoUartPlatform(MyBoardPlatform):
    """The same board without its serial bridge."""

    resources = [r for r in MyBoardPlatform.resources if r.name != "uart"]


class NoClockPlatform(MyBoardPlatform):
    default_clk = None


class NotAPlatform:
    pass
